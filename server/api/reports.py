"""帳票 (reports) over HTTP: each report as JSON, CSV (UTF-8 with BOM, or cp932) or Excel (.xlsx).

Thin, as every router: the service decides what the account sees (and refuses before any byte is
sent: a party who may not see a report gets the view's 404, never an empty file); ``server.exports``
formats; this module picks the format and names the file. Files stream (StreamingResponse).

The file name carries the site's 現場ID (or the worker's 技能者ID) and the month. Japanese names go
in RFC 5987 ``filename*`` (UTF-8, percent-encoded), with a plain ASCII ``filename`` for old clients.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from server.api.deps import Ctx, CurrentActor
from server.api.schemas import PathId, QueryId
from server.exports import csv, xlsx
from server.exports.report import Tabular, render
from server.services import attendance_reports, calendars, company_reports

router = APIRouter(tags=["reports"])
Month = Annotated[str, Query(description="YYYY-MM", max_length=7)]
Format = Annotated[Literal["json", "csv", "xlsx"], Query(alias="format", description="json | csv | xlsx")]
Encoding = Annotated[Literal["utf-8", "cp932"], Query(
    description="CSV の文字コード: utf-8（BOM 付き、既定）| cp932（Shift_JIS。表せない文字は〓）")]

FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "format=json: JSON / csv: CSV / xlsx: Excel",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            xlsx.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    },
}


def content_disposition(stem: str, ascii_stem: str, ext: str) -> str:
    """attachment with both names: ``filename`` (ASCII) and ``filename*`` (RFC 5987, UTF-8)."""
    return f"attachment; filename=\"{ascii_stem}.{ext}\"; filename*=UTF-8''{quote(f'{stem}.{ext}', safe='')}"


def report_response(report: Tabular, fmt: Format, encoding: csv.Encoding) -> dict[str, Any] | StreamingResponse:
    """The report as JSON, or as a file streamed in chunks with both file names."""
    if fmt == "json":
        return report.as_json()
    chunks, media = render(report, fmt, encoding)
    return StreamingResponse(chunks, media_type=media, headers={
        "Content-Disposition": content_disposition(report.file_stem, report.ascii_stem, fmt)})


@router.get("/sites/{site_id}/reports/attendance-calendar", response_model=None, responses=FILE_RESPONSES)
def site_calendar(ctx: Ctx, actor: CurrentActor, site_id: PathId, month: Month, fmt: Format = "json",
                  encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 2-4 就業履歴一覧（月別カレンダー）: 技能者ごとの行、月の日ごとの列（○ 能力評価に有効な就業、
    △ 有効でない就業、空欄 就業なし）と就業日数。見える範囲は就業履歴と同じ（元請・上位下請・所属事業主）。"""
    report = calendars.site_calendar(ctx, actor, site_id, month)
    return report_response(report, fmt, encoding)


@router.get("/sites/{site_id}/reports/attendance-totals", response_model=None, responses=FILE_RESPONSES)
def site_attendance_totals(ctx: Ctx, actor: CurrentActor, site_id: PathId, month: Month, fmt: Format = "json",
                           encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 2-1 就業履歴（月別計）: 技能者ごとの行（就業日数、能力評価に有効な日数、職長・班長日数、初回・最終就業日）。
    見える範囲は就業履歴と同じ: 元請は全員、上位下請は自社の系統、所属事業主は自社の技能者、技能者は本人の行のみ。"""
    report = attendance_reports.site_totals(ctx, actor, site_id, month)
    return report_response(report, fmt, encoding)


@router.get("/sites/{site_id}/reports/attendance-list", response_model=None, responses=FILE_RESPONSES)
def site_attendance_list(ctx: Ctx, actor: CurrentActor, site_id: PathId, month: Month, fmt: Format = "json",
                         encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 2-2 就業履歴一覧（月別集約）: 就業履歴 1 件につき 1 行（日付、技能者、入退場時刻（現場のタイムゾーン）、
    職種・立場・作業内容・有害物質、健康保険・年金保険・雇用保険・建退共の加入状況（見えない項目は「非開示」）、
    能力評価）。出力できるのは所属事業主・元請・上位下請（技能者は 403）。"""
    report = attendance_reports.site_list(ctx, actor, site_id, month)
    return report_response(report, fmt, encoding)


@router.get("/sites/{site_id}/reports/subcontractors", response_model=None, responses=FILE_RESPONSES)
def site_subcontractors(ctx: Ctx, actor: CurrentActor, site_id: PathId, fmt: Format = "json",
                        encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 3-2 下位事業者一覧: 自社の行より下の事業者（元請は自社以外の全事業者）、1 行 1 事業者（次数、事業者名、
    事業者ID、上位の事業者名、状態、工事名称）。出力できるのは元請・上位下請（技能者は 403）。"""
    report = company_reports.subcontractors(ctx, actor, site_id)
    return report_response(report, fmt, encoding)


@router.get("/sites/{site_id}/reports/companies", response_model=None, responses=FILE_RESPONSES)
def site_companies(ctx: Ctx, actor: CurrentActor, site_id: PathId, fmt: Format = "json",
                   encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 3-3 施工体制登録事業者一覧: 施工体制に見える事業者（元請は全体、下請は自社の系統と上位の経路、
    技能者は所属事業者の行のみ）。辞退した招待は含まない。"""
    report = company_reports.companies(ctx, actor, site_id)
    return report_response(report, fmt, encoding)


@router.get("/workers/{worker_id}/reports/attendance-calendar", response_model=None, responses=FILE_RESPONSES)
def worker_calendar(ctx: Ctx, actor: CurrentActor, worker_id: PathId, month: Month, site_id: QueryId = None,
                    fmt: Format = "json", encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 2-3 就業履歴（月別カレンダー）: 技能者 1 人の月（全現場、または site_id の現場のみ）。
    見える範囲: 技能者本人、所属事業主、元請、上位下請。"""
    report = calendars.worker_calendar(ctx, actor, worker_id, month, site_id)
    return report_response(report, fmt, encoding)


@router.get("/workers/{worker_id}/reports/attendance-totals", response_model=None, responses=FILE_RESPONSES)
def worker_attendance_totals(ctx: Ctx, actor: CurrentActor, worker_id: PathId, month: Month, fmt: Format = "json",
                             encoding: Encoding = "utf-8") -> dict[str, Any] | StreamingResponse:
    """帳票 2-1 就業履歴（月別計）: 技能者 1 人の月、現場ごとの行と月の合計（2 現場で働いた日も 1 就業日）。
    見える範囲: 技能者本人、所属事業主、元請、上位下請（それぞれ見える現場の分）。"""
    report = attendance_reports.worker_totals(ctx, actor, worker_id, month)
    return report_response(report, fmt, encoding)
