"""Identifier formats, checked at the edge so that a typo never becomes a record.

CCUS shows 事業者ID, 技能者ID and 現場ID as 14 digits on its screens; the 法人番号 is the
National Tax Agency's 13-digit corporate number whose first digit is a check digit.
"""

from __future__ import annotations

import re
import unicodedata

from server.errors import InvalidInput

_KINDS = {
    "company": ("事業者ID", "company ID (事業者ID)"),
    "worker": ("技能者ID", "worker ID (技能者ID)"),
    "site": ("現場ID", "site ID (現場ID)"),
}
_DIGITS14 = re.compile(r"\d{14}")


def ccus_id(kind: str, value: str) -> str:
    """Normalise (full-width digits, spaces and hyphens are tolerated) and check a 14-digit CCUS ID."""
    ja, en = _KINDS[kind]
    cleaned = unicodedata.normalize("NFKC", value or "").replace(" ", "").replace("-", "")
    if not _DIGITS14.fullmatch(cleaned):
        raise InvalidInput(
            f"invalid_{kind}_id",
            ja=f"{ja}は14桁の数字で入力してください（入力値: {value!r}）",
            en=f"the {en} must be 14 digits (got {value!r})",
            value=value,
        )
    return cleaned


def corporate_number_check_digit(body12: str) -> int:
    """The check digit of a 法人番号 from its 12 lower digits (国税庁の計算式)."""
    total = 0
    for n, ch in enumerate(reversed(body12), start=1):
        total += int(ch) * (1 if n % 2 else 2)
    return 9 - (total % 9)


def corporate_number(value: str) -> str:
    """Check a 法人番号: 13 digits whose first is the check digit of the other twelve."""
    cleaned = unicodedata.normalize("NFKC", value or "").replace(" ", "").replace("-", "")
    if not re.fullmatch(r"\d{13}", cleaned) or int(cleaned[0]) != corporate_number_check_digit(cleaned[1:]):
        raise InvalidInput(
            "invalid_corporate_number",
            ja=f"法人番号が正しくありません（13桁・チェックディジット付き。入力値: {value!r}）",
            en=f"not a valid corporate number (13 digits with a check digit; got {value!r})",
            value=value,
        )
    return cleaned


def card_uid(value: str) -> str:
    """A card UID as the gate sends it: upper-case hex, 4 to 10 bytes (ISO 14443 UIDs, FeliCa IDm)."""
    cleaned = (value or "").replace(":", "").replace(" ", "").upper()
    if not re.fullmatch(r"[0-9A-F]{8,20}", cleaned) or len(cleaned) % 2:
        raise InvalidInput(
            "invalid_card_uid",
            ja=f"カードUIDは16進数（4〜10バイト）で入力してください（入力値: {value!r}）",
            en=f"a card UID is 4 to 10 bytes of hex (got {value!r})",
            value=value,
        )
    return cleaned
