"""Consents: 代理手続き (proxy) and 開示設定 (disclosure of a worker's personal items).

Both default to "no". A proxy consent is the employer's alone; a personal item is disclosed to
other companies (every registered company: server.domain.visibility) only while the worker AND the
employer both agree (参考資料6).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from server.errors import InvalidInput

# Every personal item a disclosure setting governs (the 部分開示 list), code → screen label.
PERSONAL_ITEMS: dict[str, str] = {
    "face_photo": "顔写真",
    "level": "技能者ランク（レベル）",
    "trades": "職種",
    "qualifications": "資格",
    "social_insurance": "社会保険加入状況",
    "kentaikyo": "建退共加入状況",
    "birth_date": "生年月日",
    "address": "住所",
    "phone": "電話番号",
    "blood_type": "血液型",
}


@dataclass(frozen=True)
class ItemAgreement:
    worker_agrees: bool = False
    employer_agrees: bool = False

    @property
    def disclosed(self) -> bool:
        return self.worker_agrees and self.employer_agrees


def check_items(items: Iterable[str]) -> list[str]:
    items = list(items)
    unknown = [i for i in items if i not in PERSONAL_ITEMS]
    if unknown:
        raise InvalidInput(
            "unknown_personal_item",
            ja=f"開示設定の項目が一覧にありません: {', '.join(unknown)}",
            en=f"unknown personal item(s): {', '.join(unknown)}",
            allowed=list(PERSONAL_ITEMS),
        )
    return items


def disclosed_items(agreements: Mapping[str, ItemAgreement]) -> set[str]:
    """Items other companies may see; an item never set is hidden (初期は一括非開示)."""
    return {item for item, a in agreements.items() if item in PERSONAL_ITEMS and a.disclosed}


def requested_settings(all_disclosed: bool | None, items: Mapping[str, bool] | None) -> dict[str, bool]:
    """One side's request: 一括開示 / 一括非開示 (all_disclosed) or per item (部分開示), not both."""
    if (all_disclosed is None) == (items is None):
        raise InvalidInput(
            "disclosure_request_shape",
            ja="一括（all）か項目ごと（items）のどちらか一方を指定してください",
            en="give either 'all' or 'items', exactly one",
        )
    if all_disclosed is not None:
        return {item: all_disclosed for item in PERSONAL_ITEMS}
    assert items is not None
    check_items(items)
    return dict(items)
