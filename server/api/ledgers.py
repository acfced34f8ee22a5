"""安全書類 of the 施工体制台帳 family over HTTP: AZ1 施工体制台帳, AZ3 施工体制台帳（工事担当技術者）, AZ4
下請負業者編成表, AZ5 再下請負通知書（変更届）, each an Excel workbook laid out as the printed form.

Thin, as every router: the service decides what the account sees and refuses before any byte is sent
(403 ``report_forbidden``, or the site's 404); the form lays it out; the safety documents' one
``form_response`` names the file (the form and the 現場ID, in RFC 5987 ``filename*`` with a plain ASCII
``filename``) and streams it.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from server.api.deps import Ctx, CurrentActor
from server.api.safety_documents import XLSX_RESPONSES, form_response
from server.api.schemas import PathId, QueryId
from server.services import ledgers

router = APIRouter(tags=["safety-documents"])


@router.get("/sites/{site_id}/safety-documents/az1", response_class=StreamingResponse, responses=XLSX_RESPONSES)
def construction_ledger(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> StreamingResponse:
    """帳票 AZ1 施工体制台帳（Excel）: 元請負人の欄と 1次下請ごとの下請負人の欄。出力できるのは元請と 1次下請
    （1次は元請の欄と自社の欄のみ）。2次以下・技能者は 403。保持していない項目（契約日、発注者名、
    専門技術者など）は手書き用の空欄。"""
    return form_response(ledgers.construction_ledger(ctx, actor, site_id))


@router.get("/sites/{site_id}/safety-documents/az3", response_class=StreamingResponse, responses=XLSX_RESPONSES)
def ledger_engineers(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> StreamingResponse:
    """帳票 AZ3 施工体制台帳（工事担当技術者）（Excel）: 事業者ごとの監理技術者・主任技術者（作業員名簿の立場）と
    専門技術者の欄。元請は全体、施工体系図にある事業者は自身の枝（自社、元請までの経路、自社の下位）のみ。"""
    return form_response(ledgers.ledger_engineers(ctx, actor, site_id))


@router.get("/sites/{site_id}/safety-documents/az4", response_class=StreamingResponse, responses=XLSX_RESPONSES)
def subcontractor_chart(ctx: Ctx, actor: CurrentActor, site_id: PathId) -> StreamingResponse:
    """帳票 AZ4 下請負業者編成表（全建統一様式第1号-乙、Excel）: 次数ごとの列に事業者の枠（会社名、事業者ID、
    工事内容、工期、主任技術者、安全衛生責任者）を置き、上位と線で結ぶ。見える範囲は AZ3 と同じ。"""
    return form_response(ledgers.subcontractor_chart(ctx, actor, site_id))


@router.get("/sites/{site_id}/safety-documents/az5", response_class=StreamingResponse, responses=XLSX_RESPONSES)
def subcontract_notices(ctx: Ctx, actor: CurrentActor, site_id: PathId,
                        company_id: QueryId = None) -> StreamingResponse:
    """帳票 AZ5 再下請負通知書（変更届）（全建統一様式第1号-甲、Excel）: 下請負業者ごとに 1 シート（直近上位の
    注文者、報告下請負業者、再下請負関係）。company_id でその事業者の分のみ。出力できるのは元請と当該下請、
    上位の事業者は自社より下位の分のみ（自社より上位・別系統の事業者は 404）。技能者は 403。"""
    return form_response(ledgers.subcontract_notices(ctx, actor, site_id, company_id))
