"""Request bodies: strict pydantic models at the edge (unknown fields are refused, not ignored).

The OpenAPI document says what the server refuses, so a generated client (or a fuzzer) meets no
refusal it was not told of: ids are 1 to 2**31-1 (what both databases can hold; ``Id``, and
``PathId``/``QueryId`` for the URL), every text field refuses control characters (``pattern``: the
rule of ``server.domain.text``, which the CSV import applies too), and free text carries its column's
``maxLength``. The lengths and the few value ranges are *documented* here and enforced where they
always were (the store's ``value_too_long``, the services' own codes), so the answers keep their codes.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.domain.accounts import Role
from server.domain.text import NO_CONTROL_PATTERN, control_character

#: The largest id either database holds: the keys are INTEGER columns, 32 bits on PostgreSQL (64 on
#: SQLite). A larger id is refused at the edge with 422 invalid_request on both backends alike, where
#: it once became 404 on one and value_out_of_range (or a 500) on the other.
MAX_ID = 2**31 - 1
Id = Annotated[int, Ge(1), Le(MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _max(length: int) -> dict[str, Any]:
    """A free-text field stored as-is in a column of ``length`` characters: longer text is refused by
    the store with 422 ``value_too_long`` (server/store/database.py). Said in the OpenAPI only."""
    return {"maxLength": length}


def _no_control_in_strings(node: dict[str, Any]) -> None:
    if node.get("type") == "string" and "enum" not in node:
        node.setdefault("pattern", NO_CONTROL_PATTERN)
    for member in node.get("anyOf", ()):
        _no_control_in_strings(member)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        _no_control_in_strings(node["items"])


def _document_refusals(schema: dict[str, Any], _model: type) -> None:
    """Every text property of a body refuses control characters (``Body._no_control_characters``)."""
    for prop in schema.get("properties", {}).values():
        _no_control_in_strings(prop)


_LEVEL: dict[str, Any] = {"minimum": 1, "maximum": 4}  # refused by the service as invalid_level


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=_document_refusals)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """NUL and other control characters: PostgreSQL refuses NUL, SQLite stores it; refuse both alike.
        Before stripping, so that a control character at either end (which ``strip`` would drop) is
        refused as the OpenAPI's pattern says."""
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and control_character(v) for v in items):
            raise ValueError("制御文字は使えません (control characters are not allowed)")
        return value


class LoginIn(Body):
    login_id: str
    password: str


class PasswordChangeIn(Body):
    current_password: str
    new_password: str
    security_code: str | None = Field(None, description="初回は必須（パスワード再設定用、6〜12桁の数字）")


class PasswordResetIn(Body):
    login_id: str
    security_code: str
    new_password: str


class AccountIn(Body):
    login_id: str = Field(..., description="半角3〜64文字（空白なし）", json_schema_extra=_max(64))
    display_name: str = Field("", json_schema_extra=_max(100))
    role: Role
    company_id: Id | None = None
    worker_id: Id | None = None
    site_ids: list[Id] = []


class SiteBindingIn(Body):
    site_ids: list[Id]


class CompanyIn(Body):
    ccus_id: str = Field(..., description="事業者ID（14桁。全角数字・空白・ハイフンは除いて読みます）")
    name: str = Field(..., json_schema_extra=_max(200))
    name_kana: str | None = Field(None, json_schema_extra=_max(200))
    permit_number: str | None = Field(None, description="建設業許可番号", json_schema_extra=_max(40))
    corporate_number: str | None = Field(None, description="法人番号（13桁、先頭はチェックディジット）")
    address: str | None = Field(None, json_schema_extra=_max(300))
    representative: str | None = Field(None, json_schema_extra=_max(100))


class QualificationIn(Body):
    category: str = Field(..., description="技能士 / 資格・免許 / 技能講習 / 特別教育 など", json_schema_extra=_max(40))
    name: str = Field(..., json_schema_extra=_max(200))
    number: str | None = Field(None, json_schema_extra=_max(60))
    acquired_on: date | None = None


class TradeIn(Body):
    major: str = Field(..., description="職種 大分類コード")
    minor: str = Field(..., description="職種 小分類コード")


class WorkerIn(Body):
    ccus_id: str = Field(..., description="技能者ID（14桁。全角数字・空白・ハイフンは除いて読みます）")
    name: str = Field(..., json_schema_extra=_max(100))
    employer_id: Id
    name_kana: str | None = Field(None, json_schema_extra=_max(100))
    birth_date: date | None = None
    address: str | None = Field(None, json_schema_extra=_max(300))
    phone: str | None = Field(None, json_schema_extra=_max(30))
    blood_type: str | None = None
    level: int | None = Field(None, description="技能者ランク", json_schema_extra=_LEVEL)
    face_photo: str | None = Field(None, json_schema_extra=_max(300))
    health_insurance: str = "unknown"
    pension_insurance: str = "unknown"
    employment_insurance: str = "unknown"
    kentaikyo: str = "unknown"
    trades: list[TradeIn] = []
    qualifications: list[QualificationIn] = []


class WorkerUpdateIn(Body):
    name: str | None = Field(None, json_schema_extra=_max(100))
    name_kana: str | None = Field(None, json_schema_extra=_max(100))
    birth_date: date | None = None
    address: str | None = Field(None, json_schema_extra=_max(300))
    phone: str | None = Field(None, json_schema_extra=_max(30))
    blood_type: str | None = None
    level: int | None = Field(None, description="技能者ランク", json_schema_extra=_LEVEL)
    face_photo: str | None = Field(None, json_schema_extra=_max(300))
    health_insurance: str | None = None
    pension_insurance: str | None = None
    employment_insurance: str | None = None
    kentaikyo: str | None = None
    trades: list[TradeIn] | None = Field(None, description="登録職種（一覧を置き換え）")
    add_qualifications: list[QualificationIn] = Field([], description="追加する資格")


class CardIn(Body):
    uid: str = Field(..., description="カードUID（FeliCa IDm など、16進数）")
    tech: str = Field("felica", description="felica | iso14443a | iso14443b")
    replaces: bool = Field(False, description="紛失・再発行: 有効なカードを無効にして置き換える")
    reason: str | None = Field(None, json_schema_extra=_max(200))


class CardRevokeIn(Body):
    reason: str = Field("紛失", json_schema_extra=_max(200))


class SiteIn(Body):
    ccus_id: str = Field(..., description="現場ID（14桁。全角数字・空白・ハイフンは除いて読みます）")
    name: str = Field(..., json_schema_extra=_max(200))
    order_type: str = Field(..., description="発注区分: public_national | public_local | public_other | private")
    period_start: date = Field(..., description="就業履歴蓄積期間（開始）")
    period_end: date = Field(..., description="就業履歴蓄積期間（終了）")
    address: str | None = Field(None, json_schema_extra=_max(300))
    manager_name: str | None = Field(None, description="現場担当者名", json_schema_extra=_max(100))
    disclosed_items: list[str] = Field([], description="下請・技能者に公開する項目（4-1）")
    time_zone: str = Field("Asia/Tokyo", max_length=64, description="現場のタイムゾーン（IANA 名）")


class SiteUpdateIn(Body):
    name: str | None = Field(None, json_schema_extra=_max(200))
    address: str | None = Field(None, json_schema_extra=_max(300))
    manager_name: str | None = Field(None, json_schema_extra=_max(100))
    order_type: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    disclosed_items: list[str] | None = None
    day_boundary: str | None = Field(
        None, max_length=5,
        description="就業日の区切り時刻 HH:MM（既定 04:00）。夜勤が日付をまたぐ現場は夜勤の退場後の時刻に",
    )
    time_zone: str | None = Field(
        None, max_length=64, description="現場のタイムゾーン（IANA 名。既定 Asia/Tokyo）。時刻はこのゾーンで表示します",
    )


class InviteIn(Body):
    parent_node_id: Id = Field(..., description="この行の下位に登録する（自社または自社より下位の行）")
    company_id: Id | None = Field(None, description="CCUS登録事業者（招待 → 未承認）")
    placeholder_name: str | None = Field(
        None, description="CCUS未登録事業者の事業者名のみ", json_schema_extra=_max(200))


class ApproveIn(Body):
    work_name: str = Field(..., description="工事名称", json_schema_extra=_max(200))
    work_content: str | None = Field(None, description="工事内容")


class WorkIn(ApproveIn):
    pass


class ReplaceIn(Body):
    company_id: Id = Field(..., description="置換先のCCUS登録事業者")


class PatternSaveIn(Body):
    site_id: Id
    name: str = Field(..., json_schema_extra=_max(100))


class PatternApplyIn(Body):
    site_id: Id


class EntryFieldsIn(Body):
    trade: TradeIn | None = None
    position: str | None = None
    work_description: str | None = None
    hazardous: list[str] = []
    hazardous_other: str | None = Field(None, json_schema_extra=_max(200))
    health_checks: list[str] = []
    health_checks_other: str | None = Field(None, json_schema_extra=_max(200))
    qualification_ids: list[Id] = []


class RosterIn(EntryFieldsIn):
    worker_id: Id


class RosterUpdateIn(Body):
    trade: TradeIn | None = None
    position: str | None = None
    work_description: str | None = None
    hazardous: list[str] | None = None
    hazardous_other: str | None = Field(None, json_schema_extra=_max(200))
    health_checks: list[str] | None = None
    health_checks_other: str | None = Field(None, json_schema_extra=_max(200))
    qualification_ids: list[Id] | None = None


class RosterPatternEntryIn(EntryFieldsIn):
    worker_id: Id


class RosterPatternIn(Body):
    name: str = Field(..., json_schema_extra=_max(100))
    entries: list[RosterPatternEntryIn]


class ProxyConsentIn(Body):
    consented: bool = Field(..., description="true = 同意する / false = 同意しない（撤回）")


class DisclosureIn(Body):
    all: bool | None = Field(None, description="true = 一括開示 / false = 一括非開示")
    items: dict[str, bool] | None = Field(None, description="部分開示: 項目ごとに true/false")
