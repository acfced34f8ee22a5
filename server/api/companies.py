"""事業者, 技能者, カード."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import CardIn, CardRevokeIn, CompanyIn, PathId, WorkerIn, WorkerUpdateIn
from server.services import cards, workers
from server.services import companies as svc

router = APIRouter(tags=["companies and workers"])


@router.post("/companies", status_code=201)
def create_company(ctx: Ctx, actor: CurrentActor, body: CompanyIn) -> dict[str, Any]:
    return svc.create_company(ctx, actor, svc.CompanyIn(**body.model_dump()))


@router.get("/companies")
def search_companies(
    ctx: Ctx, actor: CurrentActor, ccus_id: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    """事業者検索（事業者IDまたは事業者名の一部）。"""
    return svc.search_companies(ctx, actor, ccus_id=ccus_id, name=name)


@router.get("/companies/{company_id}")
def get_company(ctx: Ctx, actor: CurrentActor, company_id: PathId) -> dict[str, Any]:
    return svc.get_company(ctx, actor, company_id)


@router.get("/companies/{company_id}/workers")
def list_company_workers(ctx: Ctx, actor: CurrentActor, company_id: PathId) -> list[dict[str, Any]]:
    """所属技能者一覧（他の登録事業者には、技能者と所属事業者の双方が開示に同意した項目だけ）。"""
    return workers.list_company_workers(ctx, actor, company_id)


@router.post("/workers", status_code=201)
def create_worker(ctx: Ctx, actor: CurrentActor, body: WorkerIn) -> dict[str, Any]:
    data = body.model_dump(exclude={"trades", "qualifications"})
    return workers.create_worker(
        ctx,
        actor,
        workers.WorkerIn(
            **data,
            trades=[(t.major, t.minor) for t in body.trades],
            qualifications=[workers.QualificationIn(**q.model_dump()) for q in body.qualifications],
        ),
    )


@router.get("/workers/{worker_id}")
def get_worker(ctx: Ctx, actor: CurrentActor, worker_id: PathId) -> dict[str, Any]:
    """見える項目は閲覧者によって変わります（visible_items）。"""
    return workers.get_worker(ctx, actor, worker_id)


@router.patch("/workers/{worker_id}")
def update_worker(ctx: Ctx, actor: CurrentActor, worker_id: PathId, body: WorkerUpdateIn) -> dict[str, Any]:
    """所属事業者が技能者情報（保険・建退共・職種・資格など）を更新します。"""
    changes = body.model_dump(exclude_unset=True, exclude={"trades", "add_qualifications"})
    for key in ("health_insurance", "pension_insurance", "employment_insurance", "kentaikyo"):
        if key in changes and changes[key] is None:
            changes[key] = "unknown"
    return workers.update_worker(
        ctx,
        actor,
        worker_id,
        changes,
        trades=[(t.major, t.minor) for t in body.trades] if body.trades is not None else None,
        add_qualifications=[workers.QualificationIn(**q.model_dump()) for q in body.add_qualifications],
    )


@router.get("/workers/{worker_id}/cards")
def list_cards(ctx: Ctx, actor: CurrentActor, worker_id: PathId) -> list[dict[str, Any]]:
    return cards.list_cards(ctx, actor, worker_id)


@router.post("/workers/{worker_id}/cards", status_code=201)
def link_card(ctx: Ctx, actor: CurrentActor, worker_id: PathId, body: CardIn) -> dict[str, Any]:
    return cards.link_card(ctx, actor, worker_id, body.uid, body.tech, body.replaces, body.reason)


@router.post("/cards/{card_id}/revoke")
def revoke_card(ctx: Ctx, actor: CurrentActor, card_id: PathId, body: CardRevokeIn) -> dict[str, Any]:
    return cards.revoke_card(ctx, actor, card_id, body.reason)
