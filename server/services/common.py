"""Helpers the services share: loading with a clear 404, the hierarchy tree, audit entries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from server.domain.accounts import Actor
from server.domain.hierarchy import Node, Status, Tree
from server.domain.roster import EntryFields
from server.domain.visibility import Visibility
from server.errors import Forbidden, NotFound, company_not_found, site_not_found, worker_not_found
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

M = TypeVar("M", bound=t.Base)


def get(uow: UnitOfWork, model: type[M], ident: int, code: str, ja: str, en: str, lock: bool = False) -> M:
    obj = uow.get(model, ident, lock=lock)
    if obj is None:
        raise NotFound(code, ja=ja, en=en)
    return obj


def site_or_404(uow: UnitOfWork, site_id: int, lock: bool = False) -> t.Site:
    site = uow.sites.get(site_id, lock=lock)
    if site is None:
        raise site_not_found()
    return site


def worker_or_404(uow: UnitOfWork, worker_id: int) -> t.Worker:
    worker = uow.get(t.Worker, worker_id)
    if worker is None:
        raise worker_not_found()
    return worker


def company_or_404(uow: UnitOfWork, company_id: int) -> t.Company:
    company = uow.get(t.Company, company_id)
    if company is None:
        raise company_not_found()
    return company


def related_company_or_404(uow: UnitOfWork, actor: Actor, company_id: int) -> t.Company:
    """The company, for an account the policy relates to it (``Visibility.relates_to_company``: the
    company itself, its workers, the companies above it on a site where it is registered); anyone else
    gets the 404 of a company that does not exist (1-3, 3-1)."""
    company = company_or_404(uow, company_id)
    own_employer = worker_or_404(uow, actor.worker_id).employer_id if actor.worker_id is not None else None
    if not Visibility(actor).relates_to_company(company_id, own_employer_id=own_employer,
                                                trees=registered_trees(uow, company_id)):
        raise company_not_found()
    return company


def load_tree(uow: UnitOfWork, site_id: int, lock: bool = False) -> Tree:
    """The site's hierarchy. ``lock`` takes row locks on PostgreSQL so deciding rules see settled state."""
    rows = uow.sites.nodes(site_id, lock=lock)
    if not rows:
        raise site_not_found()
    return Tree(
        site_id,
        (Node(r.id, r.parent_id, r.company_id, r.placeholder_name, Status(r.status)) for r in rows),
    )


def registered_trees(uow: UnitOfWork, company_id: int) -> Iterator[Tree]:
    """The 施工体制 of each site the company is registered on, one at a time: a caller asking whether some
    site answers yes (``Visibility.relates_to_company``) stops reading at the first that does."""
    for site_id in dict.fromkeys(n.site_id for n in uow.sites.nodes_of_company(company_id, Status.REGISTERED)):
        yield load_tree(uow, site_id)


def as_aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def snapshot(obj: t.Base) -> dict[str, Any]:
    """A row's columns as JSON-ready values, for the audit log's before/after."""
    out: dict[str, Any] = {}
    for key, v in t.column_values(obj).items():
        if key in ("password_hash", "security_code_hash"):
            v = "***" if v else None
        elif isinstance(v, datetime):
            v = as_aware(v).isoformat()
        elif isinstance(v, date):
            v = v.isoformat()
        out[key] = v
    return out


def audit(
    ctx: Context,
    uow: UnitOfWork,
    actor: Actor | None,
    action: str,
    entity: str,
    entity_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    site_id: int | None = None,
) -> None:
    uow.add(
        t.AuditEntry(
            at=ctx.now(),
            account_id=actor.account_id if actor else None,
            company_id=actor.company_id if actor else None,
            site_id=site_id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=before,
            after=after,
        )
    )


def entry_fields(e: t.RosterEntry | Any) -> EntryFields:
    """A roster row (an ORM object or a plain row of its columns) as the domain reads it (the
    roster's checks and the attendance record's 職種・立場)."""
    return EntryFields(
        trade=(e.trade_major, e.trade_minor) if e.trade_major and e.trade_minor else None,
        position=e.position,
        work_description=e.work_description,
        hazardous=tuple(e.hazardous),
        hazardous_other=e.hazardous_other,
        health_checks=tuple(e.health_checks),
        health_checks_other=e.health_checks_other,
        qualification_ids=tuple(e.qualification_ids),
    )


def require_reader(actor: Actor, report: str) -> None:
    """Refuse (403 ``report_forbidden``) an account the seed's table does not let open report
    ``report`` (its 帳票NO) at all; what it sees in one it may open is the report's own scope."""
    if not Visibility(actor).reads_report(report):
        raise Forbidden("report_forbidden", ja=f"この帳票（{report}）は、このアカウントでは出力できません",
                        en=f"this account may not open report {report}", report=report)


def tier_label(tier: int | None) -> str:
    """次数 as printed: 元請, 1次, 2次, …"""
    if tier is None:
        return ""
    return "元請" if tier == 0 else f"{tier}次"
