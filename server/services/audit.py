"""Reading the audit log: who changed what, when, before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from server.domain.accounts import Actor, Role, require_site_access
from server.errors import Forbidden
from server.services.common import as_aware, site_or_404
from server.services.context import Context
from server.store import tables as t


def list_entries(ctx: Context, actor: Actor, site_id: int | None, limit: int = 100) -> list[dict[str, Any]]:
    """The operator sees everything; the 元請 its sites; any company the changes its own accounts made."""
    limit = max(1, min(limit, 1000))
    with ctx.store.read() as s:
        q = select(t.AuditEntry).order_by(t.AuditEntry.id.desc()).limit(limit)
        if actor.role == Role.OPERATOR:
            if site_id is not None:
                q = q.where(t.AuditEntry.site_id == site_id)
        elif actor.is_company and site_id is not None:
            site = site_or_404(s, site_id)
            if site.prime_id == actor.company_id:
                require_site_access(actor, site_id)
            if site.prime_id != actor.company_id or not actor.acts_on_site(site_id):
                raise Forbidden(
                    "prime_only", ja="現場の変更履歴は元請のみが見られます", en="only the prime sees a site's log"
                )
            q = q.where(t.AuditEntry.site_id == site_id)
        elif actor.is_company:
            q = q.where(t.AuditEntry.company_id == actor.company_id)
            if actor.role == Role.SITE_MANAGER:  # its bound sites only, and what it did itself
                q = q.where(or_(t.AuditEntry.site_id.in_(actor.site_ids), t.AuditEntry.account_id == actor.account_id))
        else:
            q = q.where(t.AuditEntry.account_id == actor.account_id)
        return [
            {
                "id": e.id,
                "at": as_aware(e.at).isoformat(),
                "account_id": e.account_id,
                "company_id": e.company_id,
                "site_id": e.site_id,
                "action": e.action,
                "entity": e.entity,
                "entity_id": e.entity_id,
                "before": e.before,
                "after": e.after,
            }
            for e in s.scalars(q)
        ]
