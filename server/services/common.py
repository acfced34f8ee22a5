"""Helpers the services share: loading with a clear 404, the hierarchy tree, audit entries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from server.domain.accounts import Actor
from server.domain.hierarchy import Node, Status, Tree
from server.domain.roster import EntryFields
from server.errors import NotFound, site_not_found, worker_not_found
from server.services.context import Context
from server.store import tables as t

M = TypeVar("M", bound=t.Base)


def get(session: Session, model: type[M], ident: int, code: str, ja: str, en: str, lock: bool = False) -> M:
    obj = session.get(model, ident, with_for_update=lock or None)
    if obj is None:
        raise NotFound(code, ja=ja, en=en)
    return obj


def site_or_404(session: Session, site_id: int, lock: bool = False) -> t.Site:
    site = session.get(t.Site, site_id, with_for_update=lock or None)
    if site is None:
        raise site_not_found()
    return site


def worker_or_404(session: Session, worker_id: int) -> t.Worker:
    worker = session.get(t.Worker, worker_id)
    if worker is None:
        raise worker_not_found()
    return worker


def company_or_404(session: Session, company_id: int) -> t.Company:
    return get(session, t.Company, company_id, "company_not_found", "事業者が見つかりません", "no such company")


def load_tree(session: Session, site_id: int, lock: bool = False) -> Tree:
    """The site's hierarchy. ``lock`` takes row locks on PostgreSQL so deciding rules see settled state."""
    q = select(t.HierarchyNode).where(t.HierarchyNode.site_id == site_id).order_by(t.HierarchyNode.id)
    if lock:
        q = q.with_for_update()
    rows = session.scalars(q).all()
    if not rows:
        raise site_not_found()
    return Tree(
        site_id,
        (Node(r.id, r.parent_id, r.company_id, r.placeholder_name, Status(r.status)) for r in rows),
    )


def as_aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def snapshot(obj: t.Base) -> dict[str, Any]:
    """A row's columns as JSON-ready values, for the audit log's before/after."""
    out: dict[str, Any] = {}
    for attr in inspect(obj).mapper.column_attrs:
        v = getattr(obj, attr.key)
        if attr.key in ("password_hash", "security_code_hash"):
            v = "***" if v else None
        elif isinstance(v, datetime):
            v = as_aware(v).isoformat()
        elif isinstance(v, date):
            v = v.isoformat()
        out[attr.key] = v
    return out


def audit(
    ctx: Context,
    session: Session,
    actor: Actor | None,
    action: str,
    entity: str,
    entity_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    site_id: int | None = None,
) -> None:
    session.add(
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


def entry_fields(e: t.RosterEntry) -> EntryFields:
    """A roster row as the domain reads it (the roster's checks and the attendance record's 職種・立場)."""
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
