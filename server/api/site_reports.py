"""帳票 of companies and sites (3-1 事業者情報, 4-1 現場・契約情報, 4-2 自社に関する現場一覧), the 元請's
現場利用料 estimate, and a worker's days towards the next skill level (能力評価).

Thin, as every router: the services decide who sees what (``server.services.site_reports``,
``server.services.career``); the files go out through ``server.api.reports.report_response``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from server.api.deps import Ctx, CurrentActor
from server.api.reports import FILE_RESPONSES, Encoding, Format, Month, report_response
from server.api.schemas import PathId
from server.services import career, site_reports

router = APIRouter(tags=["reports"])
Trade = Annotated[str | None, Query(
    description="評価する職種 大分類-小分類（例: 06-01）。省略時は技能者の最初の登録職種（見られる場合）、"
                "なければ見られる作業員名簿の職種（trade_source に由来）",
    max_length=11, pattern=r"^[0-9０-９]{1,4}-[0-9０-９]{1,4}$")]


@router.get("/companies/{company_id}/reports/profile", response_model=None, responses=FILE_RESPONSES)
def company_profile(ctx: Ctx, actor: CurrentActor, company_id: PathId, fmt: Format = "json",
                    encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 3-1 事業者情報: 事業者ID、事業者名、ふりがな、建設業許可番号、法人番号、住所、代表者。
    出力できるのは技能者（自社）、所属事業主、元請、上位下請（施工体制で上にいる事業者）。それ以外は 404。"""
    return report_response(site_reports.company_profile(ctx, actor, company_id), fmt, encoding)


@router.get("/sites/{site_id}/reports/site", response_model=None, responses=FILE_RESPONSES)
def site_info(ctx: Ctx, actor: CurrentActor, site_id: PathId, fmt: Format = "json",
              encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 4-1 現場・契約情報: 元請はすべての項目、技能者（作業員名簿にある）と施工体制の事業者は元請が公開設定した
    項目のみ（公開されていない項目は列ごと出力しない）。現場にいない者には 404。"""
    return report_response(site_reports.site_info(ctx, actor, site_id), fmt, encoding)


@router.get("/companies/{company_id}/reports/sites", response_model=None, responses=FILE_RESPONSES)
def company_sites(ctx: Ctx, actor: CurrentActor, company_id: PathId, fmt: Format = "json",
                  encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 4-2 自社に関する現場一覧: 自社が元請の現場と施工体制にいる現場、1 行 1 現場（現場ID、現場名、元請名、
    次数、状態、就業履歴蓄積期間）。自社のIDのみ（現場管理者は割り当てられた現場のみ）。他の現場の元請が公開して
    いない項目は「非公開」。技能者は 403、他社は 404。"""
    return report_response(site_reports.company_sites(ctx, actor, company_id), fmt, encoding)


@router.get("/sites/{site_id}/reports/fee", response_model=None, responses=FILE_RESPONSES)
def site_fee(ctx: Ctx, actor: CurrentActor, site_id: PathId, month: Month, fmt: Format = "json",
             encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """現場利用料（概算）: 月の人日（技能者・現場・日ごとに 1、月別集計の「現場利用料の人日」と同じ）× 1 人日あたりの
    料金（サーバー設定 [reports] site_fee_per_worker_day、既定 10 円）。所属事業者ごとの内訳つき。元請のみ
    （現場の他の事業者・技能者は 403、現場にいない者は 404）。"""
    return report_response(site_reports.site_fee(ctx, actor, site_id, month), fmt, encoding)


@router.get("/workers/{worker_id}/career")
def worker_career(ctx: Ctx, actor: CurrentActor, worker_id: PathId, trade: Trade = None) -> dict[str, Any]:
    """能力評価に向けた就業日数: 能力評価に有効な就業日数（1 日 1 回）、職長・班長の日数、年数換算（215 日 = 1 年）、
    現在のレベル（開示されている場合）、次のレベルとその不足日数。見える範囲は就業履歴（月別計）と同じ
    （技能者本人、所属事業主、元請、上位下請）。元請・上位下請と現場に限定された現場管理者には、見られる就業履歴
    のみを数えます（counted）。職種を省略すると、登録職種が見られる場合はそれ、なければ見られる作業員名簿の職種で
    評価します（trade_source: query / registered / roster / null、trade_note に説明）。"""
    return career.career(ctx, actor, worker_id, trade)
