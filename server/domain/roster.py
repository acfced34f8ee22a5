"""The roster entry (施工体制技能者登録) and what makes it count for skill evaluation.

CCUS counts 就業日数 for a skill level only when the entry has the right 職種 (to the 小分類) and a
立場; the days as 職長/班長 count separately for level 3 and 4, so 立場 is a code from a list,
never free text. An entry missing either is kept (the worker still gets through the gate) but
is flagged with the reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from server.errors import InvalidInput

# 立場. The first two are the ones the skill levels count separately.
POSITIONS: dict[str, str] = {
    "foreman": "職長",
    "subforeman": "班長",
    "general": "一般",
    "safety_officer": "安全衛生責任者",
    "foreman_safety": "職長・安全衛生責任者",
    "chief_engineer": "主任技術者",
    "supervising_engineer": "監理技術者",
    "site_agent": "現場代理人",
    "safety_manager": "元方安全衛生管理者",
    "apprentice": "見習い",
}
LEADER_POSITIONS = frozenset({"foreman", "subforeman", "foreman_safety"})

# 有害物質の取扱い.
HAZARDOUS: dict[str, str] = {
    "asbestos": "石綿",
    "dust": "粉じん",
    "organic_solvent": "有機溶剤",
    "specified_chemical": "特定化学物質",
    "lead": "鉛",
    "ionizing_radiation": "電離放射線",
    "other": "その他",
}

# 特殊健康診断 (checkboxes plus その他 with text).
HEALTH_CHECKS: dict[str, str] = {
    "asbestos": "石綿に関する作業",
    "dust": "粉じんに関する作業（じん肺健康診断）",
    "organic_solvent": "有機溶剤業務",
    "specified_chemical": "特定化学物質業務",
    "lead": "鉛業務",
    "ionizing_radiation": "電離放射線業務",
    "high_pressure": "高気圧業務",
    "other": "その他",
}


@dataclass(frozen=True)
class EntryFields:
    """What a company enters for one worker on one site."""

    trade: tuple[str, str] | None = None  # (大分類, 小分類)
    position: str | None = None
    work_description: str | None = None
    hazardous: tuple[str, ...] = ()
    hazardous_other: str | None = None
    health_checks: tuple[str, ...] = ()
    health_checks_other: str | None = None
    qualification_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class WorkerHoldings:
    """What the worker is registered with in CCUS: the roster may only pick from these."""

    trades: frozenset[tuple[str, str]]
    qualification_ids: frozenset[int]


@dataclass(frozen=True)
class Validity:
    valid: bool
    reasons: tuple[dict[str, str], ...] = field(default_factory=tuple)


def _items(values: Iterable[str], table: dict[str, str], other: str | None, what_ja: str, code: str) -> None:
    unknown = [v for v in values if v not in table]
    if unknown:
        raise InvalidInput(
            f"unknown_{code}",
            ja=f"{what_ja}の項目が一覧にありません: {', '.join(unknown)}（選べる項目: {', '.join(table)}）",
            en=f"unknown {code} item(s): {', '.join(unknown)}",
            allowed=list(table),
        )
    if "other" in values and not (other or "").strip():
        raise InvalidInput(
            f"{code}_other_text_required",
            ja=f"{what_ja}で「その他」を選んだ場合は内容を記入してください",
            en=f"'other' in {code} needs a text",
        )


def check_entry(fields: EntryFields, holdings: WorkerHoldings) -> None:
    """Refuse what cannot be right; missing 職種/立場 is allowed here and reported by validity()."""
    if fields.trade is not None and fields.trade not in holdings.trades:
        raise InvalidInput(
            "trade_not_held",
            ja="この職種は技能者が登録している職種ではありません。技能者の登録職種から選択してください",
            en="the worker is not registered with this trade; pick one of the worker's trades",
            trade=list(fields.trade),
            held=[list(tr) for tr in sorted(holdings.trades)],
        )
    if fields.position is not None and fields.position not in POSITIONS:
        raise InvalidInput(
            "unknown_position",
            ja=f"立場が一覧にありません（選べる立場: {'、'.join(POSITIONS.values())}）",
            en=f"unknown position {fields.position!r}",
            allowed=list(POSITIONS),
        )
    _items(fields.hazardous, HAZARDOUS, fields.hazardous_other, "有害物質の取扱い", "hazardous")
    _items(fields.health_checks, HEALTH_CHECKS, fields.health_checks_other, "特殊健康診断", "health_checks")
    foreign = sorted(set(fields.qualification_ids) - holdings.qualification_ids)
    if foreign:
        raise InvalidInput(
            "qualification_not_held",
            ja="技能者が保有していない資格が選択されています。技能者の保有資格から選択してください",
            en="qualifications must be chosen from the worker's own",
            qualification_ids=foreign,
        )


def validity(fields: EntryFields) -> Validity:
    """Whether this entry makes attendance count for skill evaluation (能力評価), and if not why."""
    reasons: list[dict[str, str]] = []
    if fields.trade is None:
        reasons.append({"code": "no_trade", "message": "職種が未設定です", "message_en": "no trade (職種) is set"})
    if fields.position is None:
        reasons.append(
            {"code": "no_position", "message": "立場が未設定です", "message_en": "no position (立場) is set"}
        )
    return Validity(not reasons, tuple(reasons))
