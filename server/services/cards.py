"""CCUS cards: linked to a worker by the employer (a lost card revoked, a new one linked); a card
linked late takes over the taps it made while unlinked (services.records.attribute_card)."""


from __future__ import annotations

from typing import Any

from server.domain import ids
from server.domain.accounts import COMPANY_ADMIN_ROLES, Actor, Role, require_role
from server.errors import Conflict, InvalidInput, NotFound, worker_not_found
from server.services.common import audit, snapshot, worker_or_404
from server.services.companies import too_long
from server.services.context import Context
from server.services.records import attribute_card
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

CARD_TECHS = ("felica", "iso14443a", "iso14443b")


def card_view(c: t.Card) -> dict[str, Any]:
    return {
        "id": c.id,
        "uid": c.uid,
        "tech": c.tech,
        "worker_id": c.worker_id,
        "issued_at": c.issued_at.isoformat(),
        "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
        "revoke_reason": c.revoke_reason,
    }


def _employer_or_operator(uow: UnitOfWork, actor: Actor, worker_id: int) -> t.Worker:
    w = worker_or_404(uow, worker_id)
    if actor.role != Role.OPERATOR:
        require_role(actor, COMPANY_ADMIN_ROLES, "カードの登録", "manage cards")
        if actor.company_id != w.employer_id:
            raise worker_not_found()
    return w


def link_card(
    ctx: Context,
    actor: Actor,
    worker_id: int,
    uid: str,
    tech: str,
    replaces: bool = False,
    reason: str | None = None,
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """Link a card; with ``replaces`` the worker's active cards are revoked (lost card): history stays."""
    uid = ids.card_uid(uid)
    too_long("無効にする理由", reason, t.Card.__table__.c.revoke_reason)
    if tech not in CARD_TECHS:
        raise InvalidInput("invalid_card_tech", ja="カードの種類が正しくありません", en=f"tech is one of {CARD_TECHS}")
    with ctx.write(uow) as uow:
        w = _employer_or_operator(uow, actor, worker_id)
        taken = uow.workers.active_card(uid)
        if taken is not None:
            raise Conflict(
                "card_in_use",
                ja="このカードはすでに別の技能者（または同じ技能者）に登録されています",
                en="this card is already linked",
                card_id=taken.id,
            )
        now = ctx.now()
        if replaces:
            for old in uow.workers.active_cards_of(w.id):
                before = snapshot(old)
                old.revoked_at = now
                old.revoke_reason = reason or "再発行"
                audit(ctx, uow, actor, "card.revoke", "card", old.id, before, snapshot(old))
        c = t.Card(uid=uid, tech=tech, worker_id=w.id, issued_at=now)
        uow.add(c)
        uow.flush()
        audit(ctx, uow, actor, "card.link", "card", c.id, after=snapshot(c))

        view = card_view(c)
        view["attributed_taps"] = attribute_card(ctx, uow, uid, w.id)
        return view


def revoke_card(
    ctx: Context, actor: Actor, card_id: int, reason: str, *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    too_long("無効にする理由", reason, t.Card.__table__.c.revoke_reason)
    with ctx.write(uow) as uow:
        c = uow.get(t.Card, card_id)
        if c is None:
            raise NotFound("card_not_found", ja="カードが見つかりません", en="no such card")
        _employer_or_operator(uow, actor, c.worker_id)
        if c.revoked_at is not None:
            raise Conflict("card_already_revoked", ja="このカードはすでに無効です", en="already revoked")
        before = snapshot(c)
        c.revoked_at = ctx.now()
        c.revoke_reason = reason or "無効化"
        audit(ctx, uow, actor, "card.revoke", "card", c.id, before, snapshot(c))
        return card_view(c)


def list_cards(
    ctx: Context, actor: Actor, worker_id: int, *, uow: UnitOfWork | None = None
) -> list[dict[str, Any]]:
    with ctx.read(uow) as uow:
        if not (actor.role == Role.WORKER and actor.worker_id == worker_id):
            _employer_or_operator(uow, actor, worker_id)
        return [card_view(c) for c in uow.workers.cards_of(worker_id)]
