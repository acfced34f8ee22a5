"""The company and site 帳票: 3-1 事業者情報, 4-1 現場・契約情報, 4-2 自社に関する現場一覧, and the 元請's
現場利用料 estimate for a month, each ready for JSON, CSV or Excel (``server.exports.report.Tabular``).

Who sees what is the one policy's (``server.domain.visibility``), reached through the views the JSON API
already has, so a file never shows more than the screen:

- 3-1 opens to the parties the seed names (技能者、所属事業主、元請、上位下請), which is
  ``Visibility.relates_to_company``: the company itself, its workers, and a company above its registered
  row on some site (the 元請 anywhere). Anyone else is told the company does not exist (404). The JSON
  ``GET /companies/{id}`` answers any company account, because the 事業者検索 of the invitation screen
  hands the same registry facts to every company; the report follows the seed's table instead.
- 4-1 is ``sites.site_view_for``: the 元請 every item, anyone else on the site (a worker on its roster,
  a company on its tree) only what the 元請 made public (``sites.disclosed_items``); nobody else is told
  the site exists.
- 4-2 lists, for one company and only to its own accounts (``Visibility.is_own_company``), the sites it
  is on (as on ``GET /sites``: the 元請's own sites and those where it is invited or registered, a 現場管理者
  only its bound ones), each shown through the same ``site_view_for``: items the 元請 of a site did not
  make public print as ``非公開``.
- The 現場利用料 estimate is the 元請's alone: its worker-days are the month view's
  (``attendance.site_month``, summary ``site_fee_days``: one per worker, site and day with a record),
  not counted again here, times the fee per 人日 in the server's settings (``Context.site_fee_per_worker_day``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from server.domain import site as site_rules
from server.domain.accounts import Actor
from server.domain.hierarchy import STATUS_LABELS, Status
from server.domain.visibility import Visibility
from server.errors import Forbidden, company_not_found
from server.exports import Row
from server.exports.report import Layout
from server.services import attendance, sites
from server.services.common import (
    company_or_404,
    load_tree,
    related_company_or_404,
    require_reader,
    site_or_404,
    tier_label,
)
from server.services.companies import company_view
from server.services.context import Context
from server.store.unit_of_work import UnitOfWork

HIDDEN = "非公開"
PROFILE_TITLE = "事業者情報"
SITE_TITLE = "現場・契約情報"
SITES_TITLE = "自社に関する現場一覧"
FEE_TITLE = "現場利用料（概算）"
PROFILE_COLUMNS = (
    ("ccus_id", "事業者ID"), ("name", "事業者名"), ("name_kana", "ふりがな"), ("permit_number", "建設業許可番号"),
    ("corporate_number", "法人番号"), ("address", "住所"), ("representative", "代表者"),
)
PERIOD_START, PERIOD_END = "就業履歴蓄積期間（開始）", "就業履歴蓄積期間（終了）"
SITES_HEADER = ("No.", "現場ID", "現場名", "元請名", "次数", "状態", PERIOD_START, PERIOD_END)
FEE_HEADER = ("No.", "所属事業者", "技能者数", "人日", "単価（円／人日）", "概算額（円）")


# -- 3-1 事業者情報 ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyProfile:
    """帳票 3-1: one company's registry facts, one row."""

    company: dict[str, Any]
    number: str = "3-1"
    title: str = PROFILE_TITLE

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.company['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        return f"company-profile_{self.company['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[18, 30, 30, 22, 16, 40, 16], freeze="A2")

    def header(self) -> list[str]:
        return [label for _, label in PROFILE_COLUMNS]

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        yield [self.company[key] or "" for key, _ in PROFILE_COLUMNS]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "company": self.company}


def company_profile(ctx: Context, actor: Actor, company_id: int, *, uow: UnitOfWork | None = None) -> CompanyProfile:
    """3-1 事業者情報 for 技能者（自社）、所属事業主、元請、上位下請; anyone else: 404 ``company_not_found``."""
    require_reader(actor, "3-1")
    with ctx.read(uow) as uow:
        return CompanyProfile(company_view(related_company_or_404(uow, actor, company_id)))


# -- 4-1 現場・契約情報 ---------------------------------------------------------------------------------------


def _site_columns(view: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, cell) for each item the view holds, in the order of the CCUS screen; items the view left
    out (not made public to this reader) have no column at all."""
    cols: list[tuple[str, Any]] = [("現場ID", view["ccus_id"]), ("現場名", view["name"])]
    if "address" in view:
        cols.append(("住所", view["address"] or ""))
    if "prime" in view:
        cols += [("元請事業者名", view["prime"]["name"]), ("元請事業者ID", view["prime"]["ccus_id"])]
    if "order_type" in view:
        cols.append(("発注区分", view["order_type_label"]))
    if "period" in view:
        cols += [(PERIOD_START, view["period"]["start"]), (PERIOD_END, view["period"]["end"])]
    if "manager_name" in view:
        cols.append(("現場担当者名", view["manager_name"] or ""))
    if "day_boundary" in view:
        cols.append(("日付の区切り", view["day_boundary"]))
    if "time_zone" in view:
        cols.append(("タイムゾーン", view["time_zone"]))
    if "disclosed_items" in view:
        cols.append(("公開設定の項目", "、".join(site_rules.SITE_ITEMS[i] for i in view["disclosed_items"])))
    return cols


@dataclass(frozen=True)
class SiteInfo:
    """帳票 4-1: one site's 現場・契約情報 as this reader may see it, one row."""

    site: dict[str, Any]
    is_prime: bool
    number: str = "4-1"
    title: str = SITE_TITLE

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.site['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        return f"site-info_{self.site['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=None, freeze="A2")

    def header(self) -> list[str]:
        return [label for label, _ in _site_columns(self.site)]

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        yield [cell for _, cell in _site_columns(self.site)]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "is_prime": self.is_prime, "site": self.site}


def site_info(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> SiteInfo:
    """4-1 現場・契約情報: the 元請 every item; a worker on the roster and a company on the tree what the
    元請 made public; anyone else 404 ``site_not_found``."""
    require_reader(actor, "4-1")
    with ctx.read(uow) as uow:
        sites.require_on_site(uow, actor, site_id)
        site = site_or_404(uow, site_id)
        return SiteInfo(sites.site_view_for(uow, actor, site), Visibility(actor).is_prime(site.id, site.prime_id))


# -- 4-2 自社に関する現場一覧 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanySites:
    """帳票 4-2: a row per site the company is on, each as this reader may see the site."""

    company: dict[str, Any]
    sites: list[dict[str, Any]] = field(default_factory=list)
    number: str = "4-2"
    title: str = SITES_TITLE

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.company['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        return f"company-sites_{self.company['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[5, 18, 30, 30, 6, 8, 14, 14], freeze="D2")

    def header(self) -> list[str]:
        return list(SITES_HEADER)

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        for n, row in enumerate(self.sites, 1):
            s = row["site"]
            period = s.get("period")
            yield [n, s["ccus_id"], s["name"], s["prime"]["name"] if "prime" in s else HIDDEN,
                   row["tier_label"], row["status_label"],
                   period["start"] if period else HIDDEN, period["end"] if period else HIDDEN]
        if totals:
            yield ["合計", f"{len(self.sites)}現場", "", "", "", "", "", ""]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "company": self.company, "sites": self.sites}


def company_sites(ctx: Context, actor: Actor, company_id: int, *, uow: UnitOfWork | None = None) -> CompanySites:
    """4-2 自社に関する現場一覧 of the actor's own company (any of its IDs; a 現場管理者 its bound sites):
    another company's list is not told to exist (404), a worker may not open it (403)."""
    require_reader(actor, "4-2")
    with ctx.read(uow) as uow:
        company = company_or_404(uow, company_id)
        seer = Visibility(actor)
        if not seer.is_own_company(company_id):
            raise company_not_found()
        statuses = uow.sites.node_statuses_of_company(company_id, except_status=Status.DECLINED)
        rows = []
        for site in uow.sites.by_ids(seer.sites_listed(statuses)):
            tree = load_tree(uow, site.id)
            node = tree.node_of_company(company_id)
            if node is None:  # the listing and the tree are read in one transaction: never here
                continue
            tier = tree.tier(node.id)
            rows.append({
                "site": sites.site_view_for(uow, actor, site),
                "is_prime": seer.is_prime(site.id, site.prime_id),
                "tier": tier, "tier_label": tier_label(tier),
                "status": str(node.status), "status_label": STATUS_LABELS[node.status],
            })
        return CompanySites({"id": company.id, "ccus_id": company.ccus_id, "name": company.name}, rows)


# -- 現場利用料 (the 元請's estimate) ------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteFee:
    """The 元請's 現場利用料 for one site and month: worker-days per employer and in all, times the fee."""

    site: dict[str, Any]
    month: str
    fee_per_worker_day: int
    by_employer: list[dict[str, Any]] = field(default_factory=list)
    worker_days: int = 0
    number: str = "fee"
    title: str = FEE_TITLE

    @property
    def estimate(self) -> int:
        return self.worker_days * self.fee_per_worker_day

    @property
    def file_stem(self) -> str:
        return f"現場利用料_{self.site['ccus_id']}_{self.month}"

    @property
    def ascii_stem(self) -> str:
        return f"site-fee_{self.site['ccus_id']}_{self.month}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[5, 30, 10, 10, 16, 14], freeze="C2")

    def header(self) -> list[str]:
        return list(FEE_HEADER)

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        for n, e in enumerate(self.by_employer, 1):
            yield [n, e["employer"]["name"] if e["employer"] else "", e["workers"], e["worker_days"],
                   self.fee_per_worker_day, e["worker_days"] * self.fee_per_worker_day]
        if totals:
            yield ["合計", "", sum(e["workers"] for e in self.by_employer), self.worker_days,
                   self.fee_per_worker_day, self.estimate]

    def as_json(self) -> dict[str, Any]:
        return {
            "report": self.number, "title": self.title, "site": self.site, "month": self.month,
            "worker_days": self.worker_days, "fee_per_worker_day": self.fee_per_worker_day,
            "estimate": self.estimate, "currency": "JPY",
            "by_employer": [e | {"estimate": e["worker_days"] * self.fee_per_worker_day} for e in self.by_employer],
        }


def site_fee(ctx: Context, actor: Actor, site_id: int, month: str, *, uow: UnitOfWork | None = None) -> SiteFee:
    """The month's 現場利用料 estimate of a site, for its 元請 only: another party on the site is refused
    (403 ``prime_only``), anyone else is not told the site exists (404). The worker-days are the month
    view's ``site_fee_days``, its per-worker ``days`` grouped by employer (they sum to it)."""
    with ctx.read(uow) as uow:
        site = site_or_404(uow, site_id)
        if not Visibility(actor).is_prime(site.id, site.prime_id):
            sites.require_on_site(uow, actor, site_id)
            raise Forbidden("prime_only", ja="現場利用料は元請（この現場の担当者）のみが確認できます",
                            en="only the site's prime contractor sees its site fee")
        view = attendance.site_month(ctx, actor, site_id, month, uow=uow)
        groups: dict[int | None, dict[str, Any]] = {}
        for w in view["workers"]:
            key = w["employer"]["id"] if w["employer"] else None
            g = groups.setdefault(key, {"employer": w["employer"], "workers": 0, "worker_days": 0})
            g["workers"] += 1
            g["worker_days"] += w["days"]
        rows = sorted(groups.values(),
                      key=lambda g: (-g["worker_days"], g["employer"]["name"] if g["employer"] else ""))
        return SiteFee({"id": site.id, "ccus_id": site.ccus_id, "name": site.name}, view["month"],
                       ctx.site_fee_per_worker_day, rows, view["summary"]["site_fee_days"])
