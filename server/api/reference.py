"""Code lists the screens need: 職種, 立場, 有害物質, 特殊健康診断, 開示項目, 発注区分; and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import QueryId
from server.domain.consent import PERSONAL_ITEMS
from server.domain.roster import HAZARDOUS, HEALTH_CHECKS, LEADER_POSITIONS, POSITIONS
from server.domain.site import ORDER_TYPES, SITE_ITEMS
from server.domain.trades import trade_table
from server.services import audit as audit_svc

router = APIRouter(tags=["reference"])


@router.get("/reference/trades")
def trades(q: str | None = None) -> list[dict[str, str]]:
    rows = trade_table().search(q) if q else trade_table().all()
    return [
        {
            "major": t.major_code,
            "major_name": t.major_name,
            "minor": t.minor_code,
            "minor_name": t.minor_name,
            "label": t.label,
        }
        for t in rows
    ]


@router.get("/reference/lists")
def lists() -> dict[str, Any]:
    return {
        "positions": [{"code": k, "label": v, "leader": k in LEADER_POSITIONS} for k, v in POSITIONS.items()],
        "hazardous": [{"code": k, "label": v} for k, v in HAZARDOUS.items()],
        "health_checks": [{"code": k, "label": v} for k, v in HEALTH_CHECKS.items()],
        "personal_items": [{"code": k, "label": v} for k, v in PERSONAL_ITEMS.items()],
        "order_types": [{"code": k, "label": v} for k, v in ORDER_TYPES.items()],
        "site_items": [{"code": k, "label": v} for k, v in SITE_ITEMS.items()],
    }


@router.get("/audit")
def audit(ctx: Ctx, actor: CurrentActor, site_id: QueryId = None, limit: int = 100) -> list[dict[str, Any]]:
    """変更履歴: 運用管理者は全体、元請は自社の現場、事業者は自社の操作。"""
    return audit_svc.list_entries(ctx, actor, site_id, limit)
