"""代理手続きの同意 (proxy consent) and 開示設定 (disclosure), each side setting its own half."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.domain.accounts import COMPANY_ADMIN_ROLES, Actor, Role, require_company_member, require_role
from server.domain.consent import PERSONAL_ITEMS, ItemAgreement, requested_settings
from server.errors import Forbidden, InvalidInput, worker_not_found
from server.services.common import as_aware, audit, company_or_404, snapshot, worker_or_404
from server.services.context import Context
from server.services.disclosure import agreements
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


def _consent_view(c: t.ProxyConsent) -> dict[str, Any]:
    return {
        "employer_id": c.employer_id,
        "agent_id": c.agent_id,
        "consented": c.consented,
        "status_label": "同意する" if c.consented else "同意しない",
        "updated_at": as_aware(c.updated_at).isoformat(),
    }


def set_proxy(
    ctx: Context,
    actor: Actor,
    employer_id: int,
    agent_id: int,
    consented: bool,
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """The employer's 事業者責任者 or 階層管理者 consents to, or withdraws, proxy work by one upper company."""
    require_role(actor, COMPANY_ADMIN_ROLES, "代理手続きの同意", "set proxy consent")
    require_company_member(actor, employer_id)
    if agent_id == employer_id:
        raise InvalidInput("proxy_self", ja="自社を代理手続事業者にはできません", en="cannot consent to yourself")
    with ctx.write(uow) as uow:
        company_or_404(uow, agent_id)
        row = uow.get(t.ProxyConsent, (employer_id, agent_id))
        before = snapshot(row) if row else None
        if row is None:
            row = t.ProxyConsent(employer_id=employer_id, agent_id=agent_id, consented=consented, updated_at=ctx.now())
            uow.add(row)
        else:
            row.consented = consented
            row.updated_at = ctx.now()
        uow.flush()
        audit(ctx, uow, actor, "proxy_consent.set", "proxy_consent", None, before, snapshot(row))
        return _consent_view(row)


def list_proxy(ctx: Context, actor: Actor, company_id: int, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """Consents this company gave, and consents it received (代理手続き合意済事業者リスト)."""
    if not actor.is_company or actor.company_id != company_id:
        raise Forbidden("not_your_company", ja="他の事業者の同意状況は見られません", en="not your company")
    with ctx.read(uow) as uow:
        return [_consent_view(r) for r in uow.companies.proxy_consents_of(company_id)]


def _disclosure_view(agree: Mapping[str, ItemAgreement]) -> dict[str, Any]:
    items = []
    for code, label in PERSONAL_ITEMS.items():
        a = agree.get(code, ItemAgreement())
        items.append(
            {
                "item": code,
                "label": label,
                "worker_agrees": a.worker_agrees,
                "employer_agrees": a.employer_agrees,
                "disclosed": a.disclosed,
            }
        )
    return {"items": items, "disclosed_items": [i["item"] for i in items if i["disclosed"]]}


def _audit_view(view: dict[str, Any]) -> dict[str, Any]:
    """Each side's agreement per item, so a one-sided change is visible in the log, not just the result."""
    return {
        "disclosed_items": view["disclosed_items"],
        "worker_agrees": [i["item"] for i in view["items"] if i["worker_agrees"]],
        "employer_agrees": [i["item"] for i in view["items"] if i["employer_agrees"]],
    }


def _side(actor: Actor, worker: t.Worker) -> str:
    if actor.role == Role.WORKER and actor.worker_id == worker.id:
        return "worker"
    if actor.is_company and actor.company_id == worker.employer_id:
        require_role(actor, COMPANY_ADMIN_ROLES, "開示設定", "set disclosure")
        return "employer"
    raise worker_not_found()


def get_disclosure(ctx: Context, actor: Actor, worker_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    with ctx.read(uow) as uow:
        w = worker_or_404(uow, worker_id)
        if not (
            (actor.role == Role.WORKER and actor.worker_id == w.id)
            or (actor.is_company and actor.company_id == w.employer_id)
        ):
            raise worker_not_found()
        return _disclosure_view(agreements(uow, w.id))


def set_disclosure(
    ctx: Context,
    actor: Actor,
    worker_id: int,
    all_disclosed: bool | None,
    items: Mapping[str, bool] | None,
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """一括開示 / 一括非開示 / 部分開示 for the caller's side; an item shows only when both sides agree."""
    wanted = requested_settings(all_disclosed, items)
    with ctx.write(uow) as uow:
        w = worker_or_404(uow, worker_id)
        side = _side(actor, w)
        before = _disclosure_view(agreements(uow, w.id))
        now = ctx.now()
        for item, value in wanted.items():
            row = uow.get(t.Disclosure, (w.id, item))
            if row is None:
                row = t.Disclosure(
                    worker_id=w.id, item=item, worker_agrees=False, employer_agrees=False, updated_at=now
                )
                uow.add(row)
            setattr(row, f"{side}_agrees", value)
            row.updated_at = now
        uow.flush()
        after = _disclosure_view(agreements(uow, w.id))
        audit(
            ctx,
            uow,
            actor,
            f"disclosure.set_by_{side}",
            "worker",
            w.id,
            _audit_view(before),
            _audit_view(after),
        )
        return after
