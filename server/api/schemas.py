"""Request bodies: strict pydantic models at the edge (unknown fields are refused, not ignored)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.domain.accounts import Role

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """NUL and other control characters: PostgreSQL refuses NUL, SQLite stores it; refuse both alike."""
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and _CONTROL.search(v) for v in items):
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
    login_id: str
    display_name: str = ""
    role: Role
    company_id: int | None = None
    worker_id: int | None = None
    site_ids: list[int] = []


class SiteBindingIn(Body):
    site_ids: list[int]


class CompanyIn(Body):
    ccus_id: str = Field(..., description="事業者ID（14桁）")
    name: str
    name_kana: str | None = None
    permit_number: str | None = Field(None, description="建設業許可番号")
    corporate_number: str | None = Field(None, description="法人番号（13桁）")
    address: str | None = None
    representative: str | None = None


class QualificationIn(Body):
    category: str = Field(..., description="技能士 / 資格・免許 / 技能講習 / 特別教育 など")
    name: str
    number: str | None = None
    acquired_on: date | None = None


class TradeIn(Body):
    major: str = Field(..., description="職種 大分類コード")
    minor: str = Field(..., description="職種 小分類コード")


class WorkerIn(Body):
    ccus_id: str = Field(..., description="技能者ID（14桁）")
    name: str
    employer_id: int
    name_kana: str | None = None
    birth_date: date | None = None
    address: str | None = None
    phone: str | None = None
    blood_type: str | None = None
    level: int | None = None
    face_photo: str | None = None
    health_insurance: str = "unknown"
    pension_insurance: str = "unknown"
    employment_insurance: str = "unknown"
    kentaikyo: str = "unknown"
    trades: list[TradeIn] = []
    qualifications: list[QualificationIn] = []


class WorkerUpdateIn(Body):
    name: str | None = None
    name_kana: str | None = None
    birth_date: date | None = None
    address: str | None = None
    phone: str | None = None
    blood_type: str | None = None
    level: int | None = None
    face_photo: str | None = None
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
    reason: str | None = None


class CardRevokeIn(Body):
    reason: str = "紛失"


class SiteIn(Body):
    ccus_id: str = Field(..., description="現場ID（14桁）")
    name: str
    order_type: str = Field(..., description="発注区分: public_national | public_local | public_other | private")
    period_start: date = Field(..., description="就業履歴蓄積期間（開始）")
    period_end: date = Field(..., description="就業履歴蓄積期間（終了）")
    address: str | None = None
    manager_name: str | None = Field(None, description="現場担当者名")
    disclosed_items: list[str] = Field([], description="下請・技能者に公開する項目（4-1）")


class SiteUpdateIn(Body):
    name: str | None = None
    address: str | None = None
    manager_name: str | None = None
    order_type: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    disclosed_items: list[str] | None = None
    day_boundary: str | None = Field(
        None, max_length=5,
        description="就業日の区切り時刻 HH:MM（既定 04:00）。夜勤が日付をまたぐ現場は夜勤の退場後の時刻に",
    )


class InviteIn(Body):
    parent_node_id: int = Field(..., description="この行の下位に登録する（自社または自社より下位の行）")
    company_id: int | None = Field(None, description="CCUS登録事業者（招待 → 未承認）")
    placeholder_name: str | None = Field(None, description="CCUS未登録事業者の事業者名のみ")


class ApproveIn(Body):
    work_name: str = Field(..., description="工事名称")
    work_content: str | None = Field(None, description="工事内容")


class WorkIn(ApproveIn):
    pass


class ReplaceIn(Body):
    company_id: int = Field(..., description="置換先のCCUS登録事業者")


class PatternSaveIn(Body):
    site_id: int
    name: str


class PatternApplyIn(Body):
    site_id: int


class EntryFieldsIn(Body):
    trade: TradeIn | None = None
    position: str | None = None
    work_description: str | None = None
    hazardous: list[str] = []
    hazardous_other: str | None = None
    health_checks: list[str] = []
    health_checks_other: str | None = None
    qualification_ids: list[int] = []


class RosterIn(EntryFieldsIn):
    worker_id: int


class RosterUpdateIn(Body):
    trade: TradeIn | None = None
    position: str | None = None
    work_description: str | None = None
    hazardous: list[str] | None = None
    hazardous_other: str | None = None
    health_checks: list[str] | None = None
    health_checks_other: str | None = None
    qualification_ids: list[int] | None = None


class RosterPatternEntryIn(EntryFieldsIn):
    worker_id: int


class RosterPatternIn(Body):
    name: str
    entries: list[RosterPatternEntryIn]


class ProxyConsentIn(Body):
    consented: bool = Field(..., description="true = 同意する / false = 同意しない（撤回）")


class DisclosureIn(Body):
    all: bool | None = Field(None, description="true = 一括開示 / false = 一括非開示")
    items: dict[str, bool] | None = Field(None, description="部分開示: 項目ごとに true/false")
