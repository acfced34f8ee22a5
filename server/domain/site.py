"""Site facts (現場・契約情報) and which of them the 元請 discloses (帳票 4-1)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from server.errors import InvalidInput

ORDER_TYPES: dict[str, str] = {
    "public_national": "公共工事(国)",
    "public_local": "公共工事(地方)",
    "public_other": "公共工事(その他)",
    "private": "民間工事",
}

# Items of 4-1 the 元請 may choose to show subcontractors and workers. The site's name and ID are
# always shown to anyone on the site: without them nobody could find it.
SITE_ITEMS: dict[str, str] = {
    "address": "現場事務所の住所",
    "manager_name": "現場担当者名",
    "order_type": "発注区分",
    "period": "就業履歴蓄積期間",
    "prime": "元請事業者",
}
ALWAYS_SHOWN = ("id", "ccus_id", "name", "time_zone")  # the zone: every time about the site reads in it


def check_order_type(value: str) -> str:
    if value not in ORDER_TYPES:
        raise InvalidInput(
            "unknown_order_type",
            ja=f"発注区分が一覧にありません（{'、'.join(f'{k}={v}' for k, v in ORDER_TYPES.items())}）",
            en=f"unknown order type {value!r}",
            allowed=list(ORDER_TYPES),
        )
    return value


def check_period(start: date, end: date) -> None:
    if start > end:
        raise InvalidInput(
            "period_reversed",
            ja="就業履歴蓄積期間の開始日が終了日より後になっています",
            en="the accumulation period starts after it ends",
        )


def check_disclosed_items(items: Iterable[str]) -> list[str]:
    items = sorted(set(items))
    unknown = [i for i in items if i not in SITE_ITEMS]
    if unknown:
        raise InvalidInput(
            "unknown_site_item",
            ja=f"公開設定の項目が一覧にありません: {', '.join(unknown)}",
            en=f"unknown site item(s): {', '.join(unknown)}",
            allowed=list(SITE_ITEMS),
        )
    return items
