"""入退場デバイス: registration by the 元請, moves, retirement, and their state per site."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field

from protocol.topics import DEVICE_ID
from server.api.deps import Ctx, CurrentActor
from server.api.schemas import Body, Id, PathId
from server.services import devices as svc

router = APIRouter(tags=["devices"])


#: A gate's device ID as the service checks it (protocol/topics.py DEVICE_ID, refused as invalid_device_id).
DEVICE_ID_PATTERN = f"^{DEVICE_ID.pattern}$"


class DeviceIn(Body):
    device_id: str = Field(
        ..., description="gate-01 のようなデバイスID（ゲートの設定と同じ。英小文字・数字・ハイフン3〜63文字）",
        json_schema_extra={"pattern": DEVICE_ID_PATTERN})
    name: str = Field(..., description="表示名（例: 正門ゲート）", json_schema_extra={"maxLength": 100})
    direction: str = Field("auto", description="in（入場）| out（退場）| auto")
    location: str | None = Field(None, description="現場内の設置場所", json_schema_extra={"maxLength": 200})


class DeviceUpdateIn(Body):
    name: str | None = Field(None, json_schema_extra={"maxLength": 100})
    direction: str | None = None
    location: str | None = Field(None, json_schema_extra={"maxLength": 200})
    site_id: Id | None = Field(None, description="同じ元請の別の現場へ移設")


DeviceKey = Annotated[str, Path(description="デバイスID", json_schema_extra={"pattern": DEVICE_ID_PATTERN})]


@router.post("/sites/{site_id}/devices", status_code=201)
def register(ctx: Ctx, actor: CurrentActor, site_id: PathId, body: DeviceIn) -> dict[str, Any]:
    return svc.register(ctx, actor, site_id, body.device_id, body.name, body.direction, body.location)


@router.get("/sites/{site_id}/devices")
def list_for_site(
    ctx: Ctx, actor: CurrentActor, site_id: PathId, include_retired: bool = False
) -> list[dict[str, Any]]:
    """現場の入退場デバイスと状態（オンライン／オフライン、未送信数、最古の未送信、リーダー、時刻同期）。"""
    return svc.list_for_site(ctx, actor, site_id, include_retired)


@router.get("/sites/{site_id}/tap-conflicts")
def tap_conflicts(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> list[dict[str, Any]]:
    """同じゲート・同じ連番（seq）で内容の違うタップ: 記録に使った方と、もう一方（元請のみ）。"""
    return svc.tap_conflicts(ctx, actor, site_id)


@router.get("/held-taps")
def held_taps(ctx: Ctx, actor: CurrentActor) -> list[dict[str, Any]]:
    """サーバーが現場に結び付けられないゲート（未登録・現場未設定）から届き、保留しているタップ:
    デバイスIDと理由ごとの件数と日時。そのゲートを登録すると、その現場のタップと就業履歴になります。"""
    return svc.held_taps(ctx, actor)


@router.patch("/devices/{device_id}")
def update(ctx: Ctx, actor: CurrentActor, device_id: DeviceKey, body: DeviceUpdateIn) -> dict[str, Any]:
    return svc.update(ctx, actor, device_id, body.model_dump(exclude_unset=True))


@router.post("/devices/{device_id}/retire")
def retire(ctx: Ctx, actor: CurrentActor, device_id: DeviceKey) -> dict[str, Any]:
    return svc.retire(ctx, actor, device_id)
