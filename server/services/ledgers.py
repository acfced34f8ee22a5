"""The 施工体制台帳 family of safety documents (the seed's AZ1, AZ3, AZ4, AZ5): the data each printed form
holds, gathered once and already cut to what the account may see; ``server.forms`` lays it out.

Who may open which, each through the one visibility policy:

- AZ1 施工体制台帳 — 元請、1次下請 (``Visibility.ledger_nodes``): the 元請's block and the 下請負人 block
  of each 1次 company (a 1次: only its own); a 2次 or lower is refused (403 ``report_forbidden``).
- AZ3 施工体制台帳（工事担当技術者）, AZ4 下請負業者編成表 — 元請、施工体系図にある事業者（自身の枝のみ）
  (``Visibility.branch``): the 元請 the whole tree; a company its node, the path to the 元請, its subtree.
- AZ5 再下請負通知書 — 元請、当該下請（上位は自身の下位のみ） (``Visibility.subcontractor_nodes``): one
  notice per subcontractor the account may open, with its 直近上位注文者 and the companies it contracted.

A worker or the operator is refused by the seed's table (``REPORT_READERS``: 403); a company with no part
in the site is not told it exists (404 ``site_not_found``); a company whose invitation is still 未承認 is
told to approve it first (409 ``own_invitation_pending``), as for AZ2/AZ6/AZ7. Nobody gets an empty file.

As on AZ2 (``safety_documents``), the forms print the 登録 rows whose every upper row is 登録 too
(``Tree.is_contracted``): an invitation not yet approved is no contract yet (nor is a placeholder added
under one), a declined one is history.
Names of who holds a 立場 (主任技術者, 監理技術者, 現場代理人, 安全衛生責任者, 元方安全衛生管理者) come
from the site's roster through the policy's roster scope: a company sees them for its own subtree only,
so the blocks of the companies above it print those boxes empty, as they print every item GenbaGate does
not hold (契約日, 発注者名, 専門技術者, 健康保険等の加入状況 of the company, …): ruled boxes to fill by
hand. Site facts (工期 = the site's period, 現場の住所, 発注区分, 現場担当者名) follow 4-1: a company other
than the 元請 sees those the 元請 discloses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from openpyxl import Workbook

from server.domain.accounts import Actor
from server.domain.attendance import parse_time_zone
from server.domain.hierarchy import Tree
from server.domain.visibility import Visibility
from server.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.forms import az1, az3, az4, az5
from server.services.common import require_reader, site_or_404, tier_label
from server.services.context import Context
from server.services.sites import require_on_site, site_view_for
from server.store.unit_of_work import UnitOfWork

TITLES = {
    "AZ1": "施工体制台帳",
    "AZ3": "施工体制台帳（工事担当技術者）",
    "AZ4": "下請負業者編成表",
    "AZ5": "再下請負通知書（変更届）",
}
ASCII_NAMES = {
    "AZ1": "construction-ledger",
    "AZ3": "ledger-engineers",
    "AZ4": "subcontractor-chart",
    "AZ5": "subcontract-notice",
}
# The 立場 the forms print a name for; 安全衛生責任者 is also held by a 職長 who is one.
SITE_AGENT, SUPERVISING, CHIEF, SAFETY, SAFETY_MANAGER = (
    "site_agent", "supervising_engineer", "chief_engineer", "safety_officer", "safety_manager")
FOREMAN_SAFETY = "foreman_safety"
PRINTED_POSITIONS = (SITE_AGENT, SUPERVISING, CHIEF, SAFETY, FOREMAN_SAFETY, SAFETY_MANAGER)
UNREGISTERED = "CCUS未登録"


@dataclass(frozen=True)
class Holder:
    """A worker on the roster in a 立場 the forms print, and the qualifications its entry lists."""

    name: str
    qualifications: tuple[str, ...] = ()


@dataclass(frozen=True)
class Party:
    """One company's (or CCUS未登録 placeholder's) place on the site, as the forms print it."""

    node_id: int
    parent_id: int | None
    tier: int
    company_id: int | None
    ccus_id: str  # 事業者ID, or CCUS未登録 for a name-only placeholder
    name: str
    representative: str | None = None
    address: str | None = None
    permit_number: str | None = None
    work_name: str | None = None
    work_content: str | None = None
    holders: dict[str, tuple[Holder, ...]] = field(default_factory=dict)  # 立場 code → who, as the reader sees

    @property
    def tier_label(self) -> str:
        return tier_label(self.tier)

    @property
    def work(self) -> str | None:
        """工事名称及び工事内容: what the company entered when it approved."""
        parts = [p for p in (self.work_name, self.work_content) if p]
        return "\n".join(parts) or None

    def people(self, *positions: str) -> tuple[Holder, ...]:
        return tuple(h for p in positions for h in self.holders.get(p, ()))

    def names(self, *positions: str) -> str | None:
        """Who holds any of ``positions`` (、-separated), None when nobody the reader sees does."""
        return "、".join(h.name for h in self.people(*positions)) or None

    def qualifications(self, *positions: str) -> str | None:
        quals = [q for h in self.people(*positions) for q in h.qualifications]
        return "、".join(dict.fromkeys(quals)) or None


@dataclass(frozen=True)
class SiteFacts:
    """The site as the reader may see it (4-1): None for what the 元請 does not disclose to it."""

    id: int
    ccus_id: str  # 現場ID
    name: str
    address: str | None = None
    manager_name: str | None = None
    order_type: str | None = None  # 発注区分 as printed
    period: tuple[date, date] | None = None  # 工期 (the site's 就業履歴蓄積期間)


@dataclass(frozen=True)
class Notice:
    """AZ5 for one subcontractor: itself, its 直近上位注文者 and the companies it contracted."""

    reporter: Party
    upper: Party
    contracted: tuple[Party, ...]


@dataclass(frozen=True)
class Ledger:
    """One safety document's data: the site, the parties the reader may see on it in screen order (depth
    first, children in invitation order), and for AZ5 the notices."""

    number: str  # 帳票NO: AZ1, AZ3, AZ4, AZ5
    site: SiteFacts
    parties: tuple[Party, ...]
    printed_on: date
    notices: tuple[Notice, ...] = ()
    subject: Party | None = None  # AZ5 for one company (company_id=, always a registered company)

    @property
    def title(self) -> str:
        return TITLES[self.number]

    @property
    def prime(self) -> Party:
        return next(p for p in self.parties if p.tier == 0)

    def children(self, party: Party) -> list[Party]:
        return [p for p in self.parties if p.parent_id == party.node_id]

    @property
    def file_stem(self) -> str:
        """The file name without extension: the form, the 現場ID (and the company's 事業者ID for one notice)."""
        tail = f"_{self.subject.ccus_id}" if self.subject is not None else ""
        return f"{self.title}_{self.site.ccus_id}{tail}"

    @property
    def ascii_stem(self) -> str:
        tail = f"_{self.subject.ccus_id}" if self.subject is not None else ""
        return f"{ASCII_NAMES[self.number]}_{self.site.ccus_id}{tail}"

    def workbook(self) -> Workbook:
        """The printed form (``server.forms.layout.Form``)."""
        return FORMS[self.number](self)


FORMS = {"AZ1": az1.workbook, "AZ3": az3.workbook, "AZ4": az4.workbook, "AZ5": az5.workbook}


def _site_facts(view: dict[str, Any]) -> SiteFacts:
    period = view.get("period")
    return SiteFacts(
        id=view["id"], ccus_id=view["ccus_id"], name=view["name"], address=view.get("address"),
        manager_name=view.get("manager_name"), order_type=view.get("order_type_label"),
        period=(date.fromisoformat(period["start"]), date.fromisoformat(period["end"])) if period else None,
    )


def _parties(uow: UnitOfWork, actor: Actor, tree: Tree, shown: Iterable[int]) -> tuple[Party, ...]:
    """The rows among ``shown`` that are 登録 up to the 元請, in screen order, with company facts (the
    registry's, which any company may look up) and the holders of the printed 立場 the account sees on
    the roster."""
    wanted = set(shown)
    nodes = [n for n in tree.walk() if n.id in wanted and tree.is_contracted(n.id)]
    rows = {r.id: r for r in uow.sites.nodes(tree.site_id)}
    companies = {c.id: c for c in uow.companies.by_ids({n.company_id for n in nodes if n.company_id})}
    holders: dict[int, dict[str, list[Holder]]] = {}
    for h in uow.ledgers.position_holders(tree.site_id, Visibility(actor).roster(tree), PRINTED_POSITIONS):
        if h.node_id in wanted:
            position = SAFETY if h.position == FOREMAN_SAFETY else h.position
            holders.setdefault(h.node_id, {}).setdefault(position, []).append(Holder(h.worker_name, h.qualifications))
    out = []
    for n in nodes:
        r, c = rows[n.id], companies.get(n.company_id) if n.company_id else None
        out.append(Party(
            node_id=n.id, parent_id=n.parent_id, tier=tree.tier(n.id), company_id=n.company_id,
            ccus_id=c.ccus_id if c else UNREGISTERED, name=c.name if c else (r.placeholder_name or ""),
            representative=c.representative if c else None, address=c.address if c else None,
            permit_number=c.permit_number if c else None, work_name=r.work_name, work_content=r.work_content,
            holders={k: tuple(v) for k, v in holders.get(n.id, {}).items()},
        ))
    return tuple(out)


def _refused(number: str, ja: str, en: str) -> Forbidden:
    return Forbidden("report_forbidden", ja=f"この帳票（{number}）は{ja}", en=f"report {number}: {en}", report=number)


def _open(ctx: Context, actor: Actor, site_id: int, number: str, uow: UnitOfWork) -> tuple[Tree, SiteFacts, date]:
    """The seed's table first (403), then the site (404 for a company with no part in it), then the
    account's own row (409 while its invitation is 未承認). The date is today on the site's calendar."""
    require_reader(actor, number)
    tree = require_on_site(uow, actor, site_id)
    if Visibility(actor).member_node(tree) is None:
        raise Conflict("own_invitation_pending", ja="自社への招待がまだ未承認です。承認要請リストから承認してください",
                       en="your company's invitation to this site is still pending; approve it first")
    view = site_view_for(uow, actor, site_or_404(uow, site_id))
    return tree, _site_facts(view), ctx.now().astimezone(parse_time_zone(view["time_zone"])).date()


def construction_ledger(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> Ledger:
    """AZ1 施工体制台帳: the 元請's block and the 下請負人 block of each 1次 company the account may see."""
    with ctx.read(uow) as uow:
        tree, site, today = _open(ctx, actor, site_id, "AZ1", uow)
        shown = Visibility(actor).ledger_nodes(tree)
        if shown is None:
            raise _refused("AZ1", "元請と1次下請の事業者だけが出力できます",
                           "only the prime and the first-tier subcontractors may open it")
        return Ledger("AZ1", site, _parties(uow, actor, tree, shown), today)


def _branch_document(ctx: Context, actor: Actor, site_id: int, number: str, uow: UnitOfWork | None) -> Ledger:
    with ctx.read(uow) as uow:
        tree, site, today = _open(ctx, actor, site_id, number, uow)
        return Ledger(number, site, _parties(uow, actor, tree, Visibility(actor).branch(tree)), today)


def ledger_engineers(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> Ledger:
    """AZ3 施工体制台帳（工事担当技術者）: each company of the account's branch with its 監理技術者・主任技術者."""
    return _branch_document(ctx, actor, site_id, "AZ3", uow)


def subcontractor_chart(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> Ledger:
    """AZ4 下請負業者編成表: the companies of the account's branch by tier, each under the one above it."""
    return _branch_document(ctx, actor, site_id, "AZ4", uow)


def subcontract_notices(ctx: Context, actor: Actor, site_id: int, company_id: int | None = None, *,
                        uow: UnitOfWork | None = None) -> Ledger:
    """AZ5 再下請負通知書: a notice per subcontractor the account may open (``company_id``: that company's
    only). A company that is not the account's own nor registered below it gets the same 404 as one not
    on the site (as AZ6/AZ7), so a company is not told who is beside or above it; the 元請 has none."""
    with ctx.read(uow) as uow:
        tree, site, today = _open(ctx, actor, site_id, "AZ5", uow)
        reporters = {n for n in Visibility(actor).subcontractor_nodes(tree) if tree.is_contracted(n)}
        subject_node: int | None = None
        if company_id is not None:
            node = tree.node_of_company(company_id)
            if node is not None and node.parent_id is None:
                raise InvalidInput("prime_has_no_notice",
                                   ja="元請の再下請負通知書はありません（下請負業者を指定してください）",
                                   en="the prime has no subcontract notice; name a subcontractor")
            if node is None or node.id not in reporters:
                raise NotFound("company_not_found", ja="この現場の自社以下の施工体制に、指定の事業者は見つかりません",
                               en="no such company in your part of this site's hierarchy", company_id=company_id)
            reporters, subject_node = {node.id}, node.id
        if not reporters:
            raise NotFound("no_subcontractors", ja="この現場には出力できる下請負業者が登録されていません",
                           en="no registered subcontractor on this site to print a notice for")
        uppers = {tree.nodes[n].parent_id for n in reporters}
        below = {c.id for n in reporters for c in tree.children(n)}
        parties = _parties(uow, actor, tree, reporters | below | {n for n in uppers if n is not None}
                           | {tree.root.id})
        by_node = {p.node_id: p for p in parties}
        notices = tuple(
            Notice(p, by_node[p.parent_id], tuple(c for c in parties if c.parent_id == p.node_id))
            for p in parties if p.node_id in reporters and p.parent_id is not None
        )
        subject = by_node.get(subject_node) if subject_node is not None else None
        return Ledger("AZ5", site, parties, today, notices=notices, subject=subject)

