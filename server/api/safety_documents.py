"""安全書類 (safety documents) over HTTP: each form as an Excel workbook laid out like the printed
全建統一様式, ready to print (print area, paper, title rows repeated on every page).

Thin, as every router: the service decides what the account sees and refuses before any byte is sent
(403 ``report_forbidden`` for an account the seed's 帳票 table does not list, 404 for a site or company it
may not see, never an empty file); ``server.forms`` lays the workbook out; this module names the file
after the form and the site's 現場ID (and the company's 事業者ID for a company's form).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from server.api.deps import Ctx, CurrentActor
from server.api.reports import content_disposition
from server.api.schemas import PathId, QueryId
from server.forms import layout
from server.services import safety_documents

router = APIRouter(tags=["safety-documents"])
_CHUNK = 64 * 1024

XLSX_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Excel (.xlsx): 全建統一様式に沿った印刷用の帳票",
        "content": {layout.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    },
}


def form_response(form: layout.Form) -> StreamingResponse:
    """The form's workbook, streamed in chunks, with both file names (ASCII and RFC 5987 UTF-8)."""
    data = layout.to_bytes(form.workbook())

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), _CHUNK):
            yield data[i:i + _CHUNK]

    return StreamingResponse(chunks(), media_type=layout.MEDIA_TYPE, headers={
        "Content-Disposition": content_disposition(form.file_stem, form.ascii_stem, "xlsx")})


@router.get("/sites/{site_id}/safety-documents/az2", response_class=StreamingResponse,
            responses=XLSX_RESPONSES)
def safety_chart(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> StreamingResponse:
    """AZ2 工事作業所災害防止協議会兼施工体系図（全建統一様式第3号）: 次数ごとの列に事業者の枠（会社名、事業者ID、
    工事名称、作業員数ほか）と上位との結線、元請・災害防止協議会の欄。元請は全体、下請は自社の枝（元請までの経路と
    自社以下）のみ。承認済み（登録）の事業者を載せる。技能者は 403、現場に関係のない事業者は 404。"""
    return form_response(safety_documents.safety_chart(ctx, actor, site_id))


@router.get("/sites/{site_id}/safety-documents/az6-a", response_class=StreamingResponse,
            responses=XLSX_RESPONSES)
def worker_roster(ctx: Ctx, actor: CurrentActor, site_id: PathId, company_id: QueryId = None) -> StreamingResponse:
    """AZ6-a 作業員名簿（全建統一様式第5号）: company_id の事業者（省略時は自社）の作業員名簿登録者、1 人 2 行。
    出力できるのは元請、当該下請、その上位の事業者（自社より下位の事業者のみ）。他の事業者は 404、技能者は 403。"""
    return form_response(safety_documents.worker_roster(ctx, actor, site_id, company_id, variant="a"))


@router.get("/sites/{site_id}/safety-documents/az6-b", response_class=StreamingResponse,
            responses=XLSX_RESPONSES)
def worker_roster_insurance(ctx: Ctx, actor: CurrentActor, site_id: PathId,
                            company_id: QueryId = None) -> StreamingResponse:
    """AZ6-b 作業員名簿（社会保険加入状況について組込版）: AZ6-a に健康保険・年金保険・雇用保険の加入状況、
    保険の名称、被保険者番号（下4けた）の欄を加えた版（A3）。見える範囲は AZ6-a と同じ。"""
    return form_response(safety_documents.worker_roster(ctx, actor, site_id, company_id, variant="b"))


@router.get("/sites/{site_id}/safety-documents/az7", response_class=StreamingResponse,
            responses=XLSX_RESPONSES)
def social_insurance(ctx: Ctx, actor: CurrentActor, site_id: PathId, company_id: QueryId = None) -> StreamingResponse:
    """AZ7 社会保険加入状況: company_id の事業者（省略時は自社）とその下位の事業者ごとの技能者の加入状況（事業者別・
    技能者別の 2 シート）。見える範囲は AZ6-a と同じ（元請、当該下請、上位は自身の下位のみ）。"""
    return form_response(safety_documents.social_insurance(ctx, actor, site_id, company_id))
