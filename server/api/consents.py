"""代理手続きの同意 and 開示設定."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import DisclosureIn, PathId, ProxyConsentIn
from server.services import consents as svc

router = APIRouter(tags=["consents"])


@router.get("/companies/{company_id}/proxy-consents")
def list_proxy(ctx: Ctx, actor: CurrentActor, company_id: PathId) -> list[dict[str, Any]]:
    return svc.list_proxy(ctx, actor, company_id)


@router.put("/companies/{company_id}/proxy-consents/{agent_id}")
def set_proxy(
    ctx: Ctx, actor: CurrentActor, company_id: PathId, agent_id: PathId, body: ProxyConsentIn
) -> dict[str, Any]:
    """所属事業者（company_id）が上位事業者（agent_id）の代理手続きに同意する／しない。"""
    return svc.set_proxy(ctx, actor, company_id, agent_id, body.consented)


@router.get("/workers/{worker_id}/disclosure")
def get_disclosure(ctx: Ctx, actor: CurrentActor, worker_id: PathId) -> dict[str, Any]:
    return svc.get_disclosure(ctx, actor, worker_id)


@router.put("/workers/{worker_id}/disclosure")
def set_disclosure(ctx: Ctx, actor: CurrentActor, worker_id: PathId, body: DisclosureIn) -> dict[str, Any]:
    """技能者本人または所属事業者が、自分の側の同意を設定します。双方が同意した項目だけが開示されます。"""
    return svc.set_disclosure(ctx, actor, worker_id, body.all, body.items)
