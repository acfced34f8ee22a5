"""現場・契約情報 and 施工体制 (招待・承認要請リスト・承認・辞退・置換・削除・パターン)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import (
    ApproveIn,
    InviteIn,
    PathId,
    PatternApplyIn,
    PatternSaveIn,
    ReplaceIn,
    SiteIn,
    SiteUpdateIn,
    WorkIn,
)
from server.services import hierarchy as tree_svc
from server.services import sites as svc

router = APIRouter(tags=["sites and hierarchy"])


@router.post("/sites", status_code=201)
def create_site(ctx: Ctx, actor: CurrentActor, body: SiteIn) -> dict[str, Any]:
    """現場・契約情報の登録（元請の事業者責任者・階層管理者）。"""
    return svc.create_site(ctx, actor, svc.SiteIn(**body.model_dump()))


@router.get("/sites")
def list_sites(ctx: Ctx, actor: CurrentActor) -> list[dict[str, Any]]:
    return svc.list_sites(ctx, actor)


@router.get("/sites/{site_id}")
def get_site(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> dict[str, Any]:
    return svc.get_site(ctx, actor, site_id)


@router.patch("/sites/{site_id}")
def update_site(ctx: Ctx, actor: CurrentActor, site_id: PathId, body: SiteUpdateIn) -> dict[str, Any]:
    return svc.update_site(ctx, actor, site_id, body.model_dump(exclude_unset=True))


@router.get("/sites/{site_id}/hierarchy")
def hierarchy(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> dict[str, Any]:
    return tree_svc.hierarchy(ctx, actor, site_id)


@router.post("/sites/{site_id}/hierarchy", status_code=201)
def invite(ctx: Ctx, actor: CurrentActor, site_id: PathId, body: InviteIn) -> dict[str, Any]:
    """招待（下位個別登録）。CCUS未登録事業者は事業者名のみで登録できます。"""
    return tree_svc.invite(ctx, actor, site_id, body.parent_node_id, body.company_id, body.placeholder_name)


@router.get("/approval-requests")
def approval_requests(ctx: Ctx, actor: CurrentActor) -> list[dict[str, Any]]:
    """承認要請リスト。"""
    return tree_svc.approval_requests(ctx, actor)


@router.post("/hierarchy/{node_id}/approve")
def approve(ctx: Ctx, actor: CurrentActor, node_id: PathId, body: ApproveIn) -> dict[str, Any]:
    return tree_svc.approve(ctx, actor, node_id, body.work_name, body.work_content)


@router.post("/hierarchy/{node_id}/decline")
def decline(ctx: Ctx, actor: CurrentActor, node_id: PathId) -> dict[str, Any]:
    return tree_svc.decline(ctx, actor, node_id)


@router.put("/hierarchy/{node_id}/work")
def edit_work(ctx: Ctx, actor: CurrentActor, node_id: PathId, body: WorkIn) -> dict[str, Any]:
    return tree_svc.edit_work(ctx, actor, node_id, body.work_name, body.work_content)


@router.post("/hierarchy/{node_id}/replace")
def replace(ctx: Ctx, actor: CurrentActor, node_id: PathId, body: ReplaceIn) -> dict[str, Any]:
    """置換（元に戻せません）。"""
    return tree_svc.replace(ctx, actor, node_id, body.company_id)


@router.delete("/hierarchy/{node_id}", status_code=204)
def remove(ctx: Ctx, actor: CurrentActor, node_id: PathId) -> Response:
    tree_svc.remove(ctx, actor, node_id)
    return Response(status_code=204)


@router.post("/hierarchy-patterns", status_code=201)
def save_pattern(ctx: Ctx, actor: CurrentActor, body: PatternSaveIn) -> dict[str, Any]:
    return tree_svc.save_pattern(ctx, actor, body.site_id, body.name)


@router.get("/hierarchy-patterns")
def list_patterns(ctx: Ctx, actor: CurrentActor) -> list[dict[str, Any]]:
    return tree_svc.list_patterns(ctx, actor)


@router.post("/hierarchy-patterns/{pattern_id}/apply", status_code=201)
def apply_pattern(ctx: Ctx, actor: CurrentActor, pattern_id: PathId, body: PatternApplyIn) -> dict[str, Any]:
    return tree_svc.apply_pattern(ctx, actor, pattern_id, body.site_id)
