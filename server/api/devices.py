"""入退場デバイス: registration by the 元請, moves, retirement, and their state per site."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import Body
from server.services import devices as svc

router = APIRouter(tags=["devices"])


class DeviceIn(Body):
    device_id: str = Field(..., description="gate-01 のようなデバイスID（ゲートの設定と同じ）")
    name: str = Field(..., description="表示名（例: 正門ゲート）")
    direction: str = Field("auto", description="in（入場）| out（退場）| auto")
    location: str | None = Field(None, description="現場内の設置場所")


class DeviceUpdateIn(Body):
    name: str | None = None
    direction: str | None = None
    location: str | None = None
    site_id: int | None = Field(None, description="同じ元請の別の現場へ移設")


@router.post("/sites/{site_id}/devices", status_code=201)
def register(ctx: Ctx, actor: CurrentActor, site_id: int, body: DeviceIn) -> dict[str, Any]:
    return svc.register(ctx, actor, site_id, body.device_id, body.name, body.direction, body.location)


@router.get("/sites/{site_id}/devices")
def list_for_site(ctx: Ctx, actor: CurrentActor, site_id: int, include_retired: bool = False) -> list[dict[str, Any]]:
    """現場の入退場デバイスと状態（オンライン／オフライン、未送信数、最古の未送信、リーダー、時刻同期）。"""
    return svc.list_for_site(ctx, actor, site_id, include_retired)


@router.get("/sites/{site_id}/tap-conflicts")
def tap_conflicts(ctx: Ctx, actor: CurrentActor, site_id: int) -> list[dict[str, Any]]:
    """同じゲート・同じ連番（seq）で内容の違うタップ: 記録に使った方と、もう一方（元請のみ）。"""
    return svc.tap_conflicts(ctx, actor, site_id)


@router.get("/held-taps")
def held_taps(ctx: Ctx, actor: CurrentActor) -> list[dict[str, Any]]:
    """サーバーが現場に結び付けられないゲート（未登録・現場未設定）から届き、保留しているタップ:
    デバイスIDと理由ごとの件数と日時。そのゲートを登録すると、その現場のタップと就業履歴になります。"""
    return svc.held_taps(ctx, actor)


@router.patch("/devices/{device_id}")
def update(ctx: Ctx, actor: CurrentActor, device_id: str, body: DeviceUpdateIn) -> dict[str, Any]:
    return svc.update(ctx, actor, device_id, body.model_dump(exclude_unset=True))


@router.post("/devices/{device_id}/retire")
def retire(ctx: Ctx, actor: CurrentActor, device_id: str) -> dict[str, Any]:
    return svc.retire(ctx, actor, device_id)
