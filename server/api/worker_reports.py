"""帳票 1-1 〜 1-4 (技能者 reports) over HTTP, as JSON, CSV (UTF-8 with BOM, or cp932) or Excel (.xlsx).

Thin, as ``server.api.reports``: the service decides who may open a report and what it shows (refusing
before any byte is sent), ``report_response`` formats and names the file.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from server.api.deps import Ctx, CurrentActor
from server.api.reports import FILE_RESPONSES, Encoding, Format, report_response
from server.api.schemas import PathId
from server.services import worker_reports

router = APIRouter(tags=["reports"])


@router.get("/workers/{worker_id}/reports/profile", response_model=None, responses=FILE_RESPONSES)
def worker_profile(ctx: Ctx, actor: CurrentActor, worker_id: PathId, fmt: Format = "json",
                   encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 1-1 技能者情報: 技能者ID、氏名、ふりがな、所属事業者、生年月日、住所、電話番号、血液型、技能レベル、職種、
    保有資格、社会保険（健康・年金・雇用）、建退共。出力できるのは技能者本人と所属事業主のみ（他の事業者は 403、
    技能者が見えない相手には 404）。過去の所属事業者の情報は保持していないため含まない。"""
    return report_response(worker_reports.worker_profile(ctx, actor, worker_id), fmt, encoding)


@router.get("/companies/{company_id}/reports/workers", response_model=None, responses=FILE_RESPONSES)
def company_workers(ctx: Ctx, actor: CurrentActor, company_id: PathId, fmt: Format = "json",
                    encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 1-2 所属技能者一覧: 所属技能者ごとの行（職種、技能レベル、社保加入状況、保有資格）。所属事業主は
    すべて、他の登録事業者は技能者と所属事業者の双方が開示に同意した項目だけを見る（見えない項目は「非開示」）。
    技能者は 403。"""
    return report_response(worker_reports.company_workers(ctx, actor, company_id), fmt, encoding)


@router.get("/companies/{company_id}/reports/worker-statistics", response_model=None, responses=FILE_RESPONSES)
def company_statistics(ctx: Ctx, actor: CurrentActor, company_id: PathId, fmt: Format = "json",
                       encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 1-3 所属技能者統計情報: 所属技能者の人数を職種、技能レベル、健康保険・年金保険・雇用保険、建退共ごとに
    集計（ファイルは 1 行 1 区分・値）。見られるのは技能者（自社）、所属事業者、元請、上位下請。関係のない事業者には
    404。"""
    return report_response(worker_reports.company_statistics(ctx, actor, company_id), fmt, encoding)


@router.get("/sites/{site_id}/reports/roster", response_model=None, responses=FILE_RESPONSES)
def site_workers(ctx: Ctx, actor: CurrentActor, site_id: PathId, fmt: Format = "json",
                 encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 1-4 施工体制登録技能者一覧: 現場に施工体制登録された技能者ごとの行（技能者ID、氏名、所属事業者、次数、
    職種、立場、社保加入、資格保有）。見える範囲は現場作業員一覧と同じ（技能者は本人のみ、所属事業主、元請、上位下請）。"""
    return report_response(worker_reports.site_workers(ctx, actor, site_id), fmt, encoding)
