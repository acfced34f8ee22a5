"""Reading the audit log: who changed what, when, before and after."""

from __future__ import annotations

from typing import Any

from server.domain.accounts import Actor, require_site_access
from server.domain.visibility import Visibility
from server.errors import Forbidden
from server.services import records
from server.services.common import as_aware, site_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


def _entry_view(uow: UnitOfWork, e: t.AuditEntry) -> dict[str, Any]:
    """An entry of a site is timed in the site's zone (what its staff read); others in UTC."""
    site = uow.get(t.Site, e.site_id) if e.site_id is not None else None
    return {
        "id": e.id,
        "at": records.local_time(e.at, records.rule_of(site)) if site is not None else as_aware(e.at).isoformat(),
        "account_id": e.account_id,
        "company_id": e.company_id,
        "site_id": e.site_id,
        "action": e.action,
        "entity": e.entity,
        "entity_id": e.entity_id,
        "before": e.before,
        "after": e.after,
    }


def list_entries(
    ctx: Context, actor: Actor, site_id: int | None, limit: int = 100, *, uow: UnitOfWork | None = None
) -> list[dict[str, Any]]:
    """The operator sees everything; the 元請 its sites; any company the changes its own accounts made."""
    limit = max(1, min(limit, 1000))
    policy = Visibility(actor)
    with ctx.read(uow) as uow:
        prime_id = None
        if site_id is not None and actor.is_company:
            prime_id = site_or_404(uow, site_id).prime_id
            if prime_id == actor.company_id:
                require_site_access(actor, site_id)  # the 元請's 現場管理者 not bound to it: say so
        scope = policy.audit(site_id=site_id, prime_id=prime_id)
        if scope is None:
            raise Forbidden("prime_only", ja="現場の変更履歴は元請のみが見られます",
                            en="only the prime sees a site's log")
        return [_entry_view(uow, e) for e in uow.audit.latest(limit, scope)]
