"""施工体制技能者登録 / 現場作業員一覧 and 作業員名簿パターン."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import EntryFieldsIn, PathId, PatternApplyIn, RosterIn, RosterPatternIn, RosterUpdateIn
from server.domain.roster import EntryFields
from server.services import roster as svc

router = APIRouter(tags=["roster"])


def _fields(body: EntryFieldsIn) -> EntryFields:
    return EntryFields(
        trade=(body.trade.major, body.trade.minor) if body.trade else None,
        position=body.position,
        work_description=body.work_description,
        hazardous=tuple(body.hazardous),
        hazardous_other=body.hazardous_other,
        health_checks=tuple(body.health_checks),
        health_checks_other=body.health_checks_other,
        qualification_ids=tuple(body.qualification_ids),
    )


@router.get("/sites/{site_id}/roster")
def list_roster(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> dict[str, Any]:
    return svc.list_roster(ctx, actor, site_id)


@router.post("/sites/{site_id}/roster", status_code=201)
def register(ctx: Ctx, actor: CurrentActor, site_id: PathId, body: RosterIn) -> dict[str, Any]:
    """職種・立場がない登録も保存されますが、能力評価に有効ではありません（invalid_reasons）。"""
    return svc.register(ctx, actor, site_id, body.worker_id, _fields(body))


@router.patch("/roster/{entry_id}")
def update(ctx: Ctx, actor: CurrentActor, entry_id: PathId, body: RosterUpdateIn) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if "trade" in changes:
        changes["trade"] = (body.trade.major, body.trade.minor) if body.trade else None
    for key in ("hazardous", "health_checks", "qualification_ids"):
        if key in changes:
            changes[key] = tuple(changes[key] or ())
    return svc.update(ctx, actor, entry_id, changes)


@router.delete("/roster/{entry_id}", status_code=204)
def remove(ctx: Ctx, actor: CurrentActor, entry_id: PathId) -> Response:
    svc.remove(ctx, actor, entry_id)
    return Response(status_code=204)


@router.post("/roster-patterns", status_code=201)
def save_pattern(ctx: Ctx, actor: CurrentActor, body: RosterPatternIn) -> dict[str, Any]:
    return svc.save_pattern(ctx, actor, body.name, [(e.worker_id, _fields(e)) for e in body.entries])


@router.get("/roster-patterns")
def list_patterns(ctx: Ctx, actor: CurrentActor) -> list[dict[str, Any]]:
    return svc.list_patterns(ctx, actor)


@router.post("/roster-patterns/{pattern_id}/apply", status_code=201)
def apply_pattern(ctx: Ctx, actor: CurrentActor, pattern_id: PathId, body: PatternApplyIn) -> dict[str, Any]:
    return svc.apply_pattern(ctx, actor, pattern_id, body.site_id)
