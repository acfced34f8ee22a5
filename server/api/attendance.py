"""就業履歴 and 事後補正: per site per day and month, per worker per month, one record's history,
and corrections asked by the worker or the employer and decided by the 元請."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, Field

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import Body, Id, PathId, QueryId
from server.services import attendance as svc
from server.services import corrections

router = APIRouter(tags=["attendance"])
Day = Annotated[date | None, Query(description="就業日 YYYY-MM-DD（省略時は今日）")]
Month = Annotated[str, Query(description="YYYY-MM", max_length=7)]
State = Annotated[str | None, Query(description="pending | approved | rejected")]


@router.get("/sites/{site_id}/attendance")
def site_day(ctx: Ctx, actor: CurrentActor, site_id: PathId,
             day: Day = None) -> dict[str, Any]:
    """その日の就業履歴（見える範囲: 元請は現場全体、上位会社は自社配下、所属事業者は自社の技能者）。
    元請には未登録カード（技能者に紐付いていないカードの打刻）と承認待ちの事後補正の件数も返す。"""
    return svc.site_day(ctx, actor, site_id, day)


@router.get("/sites/{site_id}/attendance/month")
def site_month(ctx: Ctx, actor: CurrentActor, site_id: PathId,
               month: Month) -> dict[str, Any]:
    """月の就業日数（技能者ごと、能力評価に有効な日数、職長・班長日数）と現場利用料の人日。"""
    return svc.site_month(ctx, actor, site_id, month)


@router.get("/workers/{worker_id}/attendance")
def worker_month(ctx: Ctx, actor: CurrentActor, worker_id: PathId,
                 month: Month) -> dict[str, Any]:
    """技能者の月間カレンダー（参考資料2-3）。"""
    return svc.worker_month(ctx, actor, worker_id, month)


@router.get("/attendance/{record_id}")
def record_detail(ctx: Ctx, actor: CurrentActor, record_id: PathId) -> dict[str, Any]:
    """就業履歴 1 件と、その履歴（デバイスの打刻、時刻補正、事後補正と判断者）。"""
    return svc.record_detail(ctx, actor, record_id)


class CorrectionIn(Body):
    site_id: Id
    worker_id: Id
    work_day: date = Field(..., description="補正する就業日")
    entry_at: AwareDatetime | None = Field(None, description="入場時刻（時差付き、例 2026-11-25T08:00:00+09:00）")
    exit_at: AwareDatetime | None = Field(None, description="退場時刻")
    reason: str = Field(..., description="補正理由（例: カードを忘れた）", max_length=500)


class DecisionIn(Body):
    comment: str | None = Field(None, max_length=500, description="否認には必須")


@router.post("/corrections", status_code=201)
def submit(ctx: Ctx, actor: CurrentActor, body: CorrectionIn) -> dict[str, Any]:
    """事後補正・直接入力の申請（技能者本人または所属事業者、就労翌月末まで）。"""
    return corrections.submit_correction(ctx, actor, body.site_id, body.worker_id, body.work_day, body.entry_at,
                                 body.exit_at, body.reason)


@router.get("/corrections")
def list_corrections(ctx: Ctx, actor: CurrentActor, site_id: QueryId = None,
                     state: State = None) -> list[dict[str, Any]]:
    """元請は自社現場の申請、技能者・所属事業者は自分たちの申請（申請中 → 承認／否認）。"""
    return corrections.list_corrections(ctx, actor, site_id, state)


@router.post("/corrections/{correction_id}/approve")
def approve(ctx: Ctx, actor: CurrentActor, correction_id: PathId, body: DecisionIn) -> dict[str, Any]:
    return corrections.decide_correction(ctx, actor, correction_id, True, body.comment)


@router.post("/corrections/{correction_id}/reject")
def reject(ctx: Ctx, actor: CurrentActor, correction_id: PathId, body: DecisionIn) -> dict[str, Any]:
    return corrections.decide_correction(ctx, actor, correction_id, False, body.comment)
