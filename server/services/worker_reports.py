"""技能者 reports, the 帳票 1-1 技能者情報, 1-2 所属技能者一覧, 1-3 所属技能者統計情報 and 1-4 施工体制登録技能者一覧,
ready for JSON, CSV or Excel.

Each is built on the JSON view that already answers the same question, so a report never shows what the
view would not and refuses whom the view refuses (the same 404), never with an empty file:

- 1-1 on ``workers.get_worker``, for the worker itself and its employer only (the seed: 技能者、所属事業主).
  A company that may see the worker some other way (a roster, a disclosure) is told the report is not
  its own (403 ``report_forbidden``); one that may not see the worker at all gets 404 ``worker_not_found``
  (``Visibility.profile_access``).
- 1-2 on ``workers.list_company_workers``: the employer sees every item; any other company the workers and
  items the policy grants it (``Visibility.company_workers`` and ``worker_items``: what both the worker and
  the employer agreed to disclose; the 元請 and upper companies of a site where the worker is on the roster
  also its social insurance, which that site's 作業員名簿 shows them anyway). An item not granted prints as
  ``非開示``.
- 1-3 counts the company's workers for ``Visibility.relates_to_company`` (the company, its workers, the 元請
  and upper companies of a site where it is registered); anyone else is not told the company exists. A count
  tells as much as the item it counts (a company with one worker at レベル3 names that worker's level), so
  each worker is counted by what the reader may see of it, as 1-2 would show it (``disclosure.visible_items``,
  the policy's ``worker_items``): an item it may not see is counted under ``非開示`` in its group. The
  employer sees every item of every worker; a worker every item of its own, its colleagues' as ``非開示``
  (``worker_items`` grants one worker nothing of another).
- 1-4 on ``roster.list_roster``, the 現場作業員一覧: the 元請 all, an upper company its branch, the employer
  its own workers, a worker its own row.

The Excel sheets end with a 合計 row (1-2, 1-4: the number of workers; 1-3: the company's workers); the CSV,
which other tools read, has none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.domain.accounts import Actor
from server.domain.trades import trade_table
from server.domain.visibility import Visibility
from server.errors import Forbidden, worker_not_found
from server.exports import Row
from server.exports.report import Layout
from server.services import disclosure, roster, workers
from server.services.common import company_or_404, related_company_or_404, require_reader, tier_label, worker_or_404
from server.services.companies import INSURANCE_STATES
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

HIDDEN = "非開示"
INSURANCE_KINDS = (("health", "健康保険"), ("pension", "年金保険"), ("employment", "雇用保険"))
LEVELS = (1, 2, 3, 4)
NO_TRADE = "職種未登録"
NO_LEVEL = "レベル未登録"


def level_label(level: int | None) -> str:
    return f"レベル{level}" if level is not None else ""


def insurance_label(state: str | None) -> str:
    return INSURANCE_STATES.get(state or "", state or "")


def qualification_label(q: dict[str, Any]) -> str:
    """A qualification as one cell: its name, then what the certificate says (区分, 番号, 取得日)."""
    detail = [q["category"]]
    if q.get("number"):
        detail.append(f"番号 {q['number']}")
    if q.get("acquired_on"):
        detail.append(f"{q['acquired_on']} 取得")
    return f"{q['name']}（{'、'.join(d for d in detail if d)}）"


def _forbidden(report: str) -> Forbidden:
    """The same refusal as ``require_reader``, for a party the table admits in general but not here."""
    return Forbidden("report_forbidden", ja=f"この帳票（{report}）は、このアカウントでは出力できません",
                     en=f"this account may not open report {report}", report=report)


def _company(c: t.Company) -> dict[str, Any]:
    return {"id": c.id, "ccus_id": c.ccus_id, "name": c.name}


# -- 1-1 技能者情報 --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerProfile:
    """1-1 技能者情報: one worker's items as (項目, 内容) rows, one row per qualification."""

    worker: dict[str, Any]
    employer: dict[str, Any]
    number: str = "1-1"
    title: str = "技能者情報"

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.worker['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        return f"worker-profile_{self.worker['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[18, 60], freeze="A2")

    def header(self) -> list[str]:
        return ["項目", "内容"]

    def items(self) -> list[tuple[str, str]]:
        w = self.worker
        insurance = w["social_insurance"]
        quals = [qualification_label(q) for q in w["qualifications"]] or [""]
        return [
            ("技能者ID", w["ccus_id"]),
            ("氏名", w["name"]),
            ("ふりがな", w["name_kana"] or ""),
            ("所属事業者", self.employer["name"]),
            ("所属事業者の事業者ID", self.employer["ccus_id"]),
            ("生年月日", w["birth_date"] or ""),
            ("住所", w["address"] or ""),
            ("電話番号", w["phone"] or ""),
            ("血液型", w["blood_type"] or ""),
            ("技能レベル", level_label(w["level"])),
            ("職種", "、".join(tr["label"] for tr in w["trades"])),
            *(("保有資格", q) for q in quals),
            *((label, insurance_label(insurance[key])) for key, label in INSURANCE_KINDS),
            ("建退共", insurance_label(w["kentaikyo"])),
        ]

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        for label, value in self.items():
            yield [label, value]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "worker": self.worker, "employer": self.employer,
                "items": [{"label": label, "value": value} for label, value in self.items()]}


def worker_profile(ctx: Context, actor: Actor, worker_id: int, *, uow: UnitOfWork | None = None) -> WorkerProfile:
    """1-1 技能者情報 for the worker itself and its employer (所属事業主, any of its IDs).

    The seed leaves out 「過去の所属事業者」 (the employers a worker had before): this server keeps no
    such history (a worker has one employer, changed in place), so there is nothing to leave out."""
    require_reader(actor, "1-1")
    with ctx.read(uow) as uow:
        w = worker_or_404(uow, worker_id)
        access = Visibility(actor).profile_access(worker_id=w.id, employer_id=w.employer_id,
                                                  seen_items=disclosure.visible_items(uow, actor, w))
        if access == "refused":
            raise _forbidden("1-1")
        if access == "hidden":
            raise worker_not_found()
        view = workers.get_worker(ctx, actor, worker_id, uow=uow)
        return WorkerProfile(view, _company(company_or_404(uow, w.employer_id)))


# -- 1-2 所属技能者一覧 ----------------------------------------------------------------------------------

LIST_HEADER = ("No.", "技能者ID", "氏名", "職種", "技能レベル", *(label for _, label in INSURANCE_KINDS), "保有資格")


@dataclass(frozen=True)
class CompanyWorkers:
    """1-2 所属技能者一覧: a row per worker of the company the account lists, items it may not see as 非開示."""

    company: dict[str, Any]
    workers: list[dict[str, Any]] = field(default_factory=list)
    number: str = "1-2"
    title: str = "所属技能者一覧"

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.company['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        return f"company-workers_{self.company['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[6, 16, 18, 30, 10, 10, 10, 10, 50], freeze="D2")

    def header(self) -> list[str]:
        return list(LIST_HEADER)

    @staticmethod
    def cells(w: dict[str, Any]) -> list[str]:
        seen = set(w["visible_items"])
        trades = "、".join(tr["label"] for tr in w["trades"]) if "trades" in seen else HIDDEN
        level = level_label(w["level"]) if "level" in seen else HIDDEN
        insurance = ([insurance_label(w["social_insurance"][key]) for key, _ in INSURANCE_KINDS]
                     if "social_insurance" in seen else [HIDDEN] * len(INSURANCE_KINDS))
        quals = "、".join(qualification_label(q) for q in w["qualifications"]) if "qualifications" in seen else HIDDEN
        return [trades, level, *insurance, quals]

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        for n, w in enumerate(self.workers, 1):
            yield [n, w["ccus_id"], w["name"], *self.cells(w)]
        if totals:
            yield ["合計", "", f"{len(self.workers)}人", *([""] * (len(LIST_HEADER) - 3))]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "company": self.company, "hidden_label": HIDDEN,
                "workers": self.workers, "summary": {"workers": len(self.workers)}}


def company_workers(ctx: Context, actor: Actor, company_id: int, *, uow: UnitOfWork | None = None) -> CompanyWorkers:
    """1-2 所属技能者一覧: the company accounts only (a worker: 403); who sees which workers and items is
    the JSON list's (``workers.list_company_workers``)."""
    require_reader(actor, "1-2")
    with ctx.read(uow) as uow:
        rows = workers.list_company_workers(ctx, actor, company_id, uow=uow)
        return CompanyWorkers(_company(company_or_404(uow, company_id)), rows)


# -- 1-3 所属技能者統計情報 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyStatistics:
    """1-3 所属技能者統計情報: the company's workers counted by 職種, 技能レベル, each 社会保険 and 建退共.

    A worker with two trades counts once under each, so the 職種 counts may add up to more than the
    workers; every other group adds up to exactly the workers. A worker whose item the reader may not see
    counts once under ``非開示`` in that group (in 職種 too: how many trades it has is not told either)."""

    company: dict[str, Any]
    workers: int
    groups: list[dict[str, Any]] = field(default_factory=list)
    number: str = "1-3"
    title: str = "所属技能者統計情報"

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.company['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        return f"worker-statistics_{self.company['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[14, 36, 8], freeze="A2")

    def header(self) -> list[str]:
        return ["区分", "値", "人数"]

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        for g in self.groups:
            for c in g["counts"]:
                yield [g["label"], c["value"], c["workers"]]
        if totals:
            yield ["合計", "所属技能者数", self.workers]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "company": self.company, "hidden_label": HIDDEN,
                "summary": {"workers": self.workers}, "groups": self.groups}


def _items_seen(uow: UnitOfWork, actor: Actor, company_id: int, staff: Sequence[t.Worker]) -> dict[int, frozenset[str]]:
    """What the reader sees of each of the company's workers, asked as 1-2 asks it (proxy consent and the
    disclosure settings loaded once for all); nothing of a worker it may not see at all."""
    agent = disclosure.has_proxy_consent(uow, company_id, actor.company_id)
    agreed = disclosure.agreements_of(uow, [w.id for w in staff])
    return {w.id: disclosure.visible_items(uow, actor, w, is_proxy_agent=agent, agreed=agreed[w.id]) or frozenset()
            for w in staff}


def _insurance_of(kind: str) -> Callable[[t.Worker], str]:
    """The label of one kind of a worker's social insurance (``INSURANCE_KINDS``)."""
    return lambda w: insurance_label(getattr(w, f"{kind}_insurance"))


def _group(key: str, label: str, counts: Counter[str], order: list[str]) -> dict[str, Any]:
    """A group's counts in ``order`` (every listed value, zero or not), then any other value seen, then
    ``非開示`` when some worker's item is hidden from the reader."""
    values = order + sorted(v for v in counts if v not in order and v != HIDDEN) + ([HIDDEN] if counts[HIDDEN] else [])
    return {"key": key, "label": label, "counts": [{"value": v, "workers": counts[v]} for v in values]}


def company_statistics(ctx: Context, actor: Actor, company_id: int, *,
                       uow: UnitOfWork | None = None) -> CompanyStatistics:
    """1-3 所属技能者統計情報 for 技能者、所属事業者、元請、上位下請 (``Visibility.relates_to_company``);
    anyone else gets the 404 of a company that does not exist. Counts only: no worker is named, and no
    item is counted that the reader may not see of that worker (``_items_seen``: 非開示 instead)."""
    require_reader(actor, "1-3")
    with ctx.read(uow) as uow:
        company = related_company_or_404(uow, actor, company_id)
        staff = uow.workers.of_employer(company_id)
        seen = _items_seen(uow, actor, company_id, staff)

        def count(item: str, value: Callable[[t.Worker], str]) -> Counter[str]:
            return Counter(value(w) if item in seen[w.id] else HIDDEN for w in staff)

        by_trade: Counter[str] = Counter()
        traded: set[int] = set()
        for tr in uow.workers.trades_of([w.id for w in staff if "trades" in seen[w.id]]):
            by_trade[trade_table().label_of(tr.major_code, tr.minor_code)] += 1
            traded.add(tr.worker_id)
        untraded = sum(1 for w in staff if "trades" in seen[w.id] and w.id not in traded)
        hidden = sum(1 for w in staff if "trades" not in seen[w.id])
        most_first = sorted(by_trade.items(), key=lambda x: (-x[1], x[0]))
        trades = {"key": "trades", "label": "職種",
                  "counts": [{"value": v, "workers": n} for v, n in most_first]
                  + ([{"value": NO_TRADE, "workers": untraded}] if untraded else [])
                  + ([{"value": HIDDEN, "workers": hidden}] if hidden else [])}
        states = list(INSURANCE_STATES.values())
        groups = [
            trades,
            _group("level", "技能レベル", count("level", lambda w: level_label(w.level) or NO_LEVEL),
                   [level_label(n) for n in LEVELS] + [NO_LEVEL]),
            *(_group(f"{key}_insurance", label,
                     count("social_insurance", _insurance_of(key)), states)
              for key, label in INSURANCE_KINDS),
            _group("kentaikyo", "建退共", count("kentaikyo", lambda w: insurance_label(w.kentaikyo)), states),
        ]
        return CompanyStatistics(_company(company), len(staff), groups)


# -- 1-4 施工体制登録技能者一覧 ----------------------------------------------------------------------------

ROSTER_HEADER = ("No.", "技能者ID", "氏名", "所属事業者", "次数", "職種", "立場",
                 *(label for _, label in INSURANCE_KINDS), "資格保有")


@dataclass(frozen=True)
class SiteWorkers:
    """1-4 施工体制登録技能者一覧: a row per roster entry the account sees on the site."""

    site: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)
    number: str = "1-4"
    title: str = "施工体制登録技能者一覧"

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.site['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        return f"site-workers_{self.site['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[6, 16, 18, 26, 6, 24, 16, 10, 10, 10, 40], freeze="D2")

    def header(self) -> list[str]:
        return list(ROSTER_HEADER)

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        for n, e in enumerate(self.entries, 1):
            insurance = e["social_insurance"]
            yield [n, e["worker"]["ccus_id"], e["worker"]["name"], e["employer"]["name"] if e["employer"] else "",
                   tier_label(e["tier"]), e["trade"]["label"] if e["trade"] else "", e["position_label"] or "",
                   *(insurance_label(insurance[key]) for key, _ in INSURANCE_KINDS),
                   "、".join(q["name"] for q in e["qualifications"])]
        if totals:
            yield ["合計", "", f"{len(self.entries)}人", *([""] * (len(ROSTER_HEADER) - 3))]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "site": self.site, "entries": self.entries,
                "summary": {"workers": len(self.entries)}}


def site_workers(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> SiteWorkers:
    """1-4 施工体制登録技能者一覧 for 技能者（本人のみ）、所属事業主、元請、上位下請: the site's 現場作業員一覧 as
    ``roster.list_roster`` shows it to this account (a party with no part in the site: 404)."""
    require_reader(actor, "1-4")
    view = roster.list_roster(ctx, actor, site_id, uow=uow)
    return SiteWorkers(view["site"], view["entries"])
