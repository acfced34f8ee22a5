"""施工体制 company lists, the 帳票 3-2 下位事業者一覧 and 3-3 施工体制登録事業者一覧 of one site: a row per
company (or CCUS未登録 placeholder) with its 次数, 事業者ID, the company above it, its status and 工事名称,
ready for JSON, CSV or Excel.

Built on the 施工体制 view (``hierarchy.hierarchy``) and so through the same visibility policy
(``Visibility.tree_nodes``): a report never lists a company that view would not, and a party who may not
see the site gets the same refusal (404 ``site_not_found``), never an empty file. Which parties may open a
report at all is ``REPORT_READERS`` (a worker: 3-3 only, its employer's row; 3-2 is 403).

3-3 lists every company of the tree the account sees (the 元請: all; a company: its branch and the path
above it); 3-2 only those below the account's own row (the 元請: everyone but itself). Declined
invitations (辞退) are history, not part of the 施工体制: left out of both.

Nodes carry no 工期 of their own (the site has one: 4-1), so the column the seed's structure allows for
it is 工事名称, what the company entered when it approved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from server.domain.accounts import Actor
from server.domain.hierarchy import Status
from server.exports import Row
from server.exports.report import Layout
from server.services import hierarchy
from server.services.common import require_reader, tier_label
from server.services.context import Context
from server.store.unit_of_work import UnitOfWork

TITLES = {"3-2": "下位事業者一覧", "3-3": "施工体制登録事業者一覧"}
ASCII_NAMES = {"3-2": "subcontractors", "3-3": "companies"}
HEADER = ("No.", "次数", "事業者名", "事業者ID", "上位の事業者名", "状態", "工事名称")


@dataclass(frozen=True)
class CompanyList:
    """A company list (帳票 ``number``) of one site, and what the file is named after."""

    number: str
    site: dict[str, Any]
    companies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES[self.number]

    @property
    def file_stem(self) -> str:
        """The file name without extension: the report and the 現場ID staff know."""
        return f"{self.title}_{self.site['ccus_id']}"

    @property
    def ascii_stem(self) -> str:
        """The same for clients that only read a plain ASCII filename."""
        return f"{ASCII_NAMES[self.number]}_{self.site['ccus_id']}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[5, 6, 30, 18, 30, 10, 24], freeze="D2")

    def header(self) -> list[str]:
        return list(HEADER)

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        for n, c in enumerate(self.companies, 1):
            yield [n, c["tier_label"], c["name"], c["ccus_id"], c["upper"]["name"] if c["upper"] else "",
                   c["status_label"], c["work_name"] or ""]

    def as_json(self) -> dict[str, Any]:
        return {"report": self.number, "title": self.title, "site": self.site, "companies": self.companies}


def _company_list(ctx: Context, actor: Actor, site_id: int, number: str, uow: UnitOfWork | None) -> CompanyList:
    require_reader(actor, number)
    with ctx.read(uow) as uow:
        view = hierarchy.hierarchy(ctx, actor, site_id, uow=uow)
    rows = [r for r in view["rows"] if r["status"] != Status.DECLINED]
    if number == "3-2":
        mine = next((r["node_id"] for r in rows if r["company_id"] == actor.company_id), None)
        below: set[int] = set() if mine is None else {mine}
        for r in rows:  # screen order is depth first: a parent comes before its children
            if r["parent_id"] in below:
                below.add(r["node_id"])
        rows = [r for r in rows if r["node_id"] in below and r["node_id"] != mine]
    by_node = {r["node_id"]: r for r in view["rows"]}
    companies = []
    for r in rows:
        upper = by_node.get(r["parent_id"]) if r["parent_id"] is not None else None
        companies.append({
            "node_id": r["node_id"], "tier": r["tier"], "tier_label": tier_label(r["tier"]),
            "company_id": r["company_id"], "ccus_id": r["ccus_id"], "name": r["name"],
            "placeholder": r["placeholder"],
            "upper": {"node_id": upper["node_id"], "company_id": upper["company_id"], "name": upper["name"]}
            if upper else None,
            "status": r["status"], "status_label": r["status_label"], "work_name": r["work_name"],
        })
    return CompanyList(number, view["site"], companies)


def subcontractors(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> CompanyList:
    """3-2 下位事業者一覧: the companies below the account's own row on the site (元請、上位下請)."""
    return _company_list(ctx, actor, site_id, "3-2", uow)


def companies(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> CompanyList:
    """3-3 施工体制登録事業者一覧: the site's companies as the account sees the 施工体制 (a worker: its
    employer's row only)."""
    return _company_list(ctx, actor, site_id, "3-3", uow)
