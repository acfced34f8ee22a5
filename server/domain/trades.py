"""The CCUS trade (職種) code table: 大分類 (major) + 小分類 (minor) codes and their names.

CCUS registers each worker's trades, and each day's work on a site, as a pair of codes such as
大分類 06「とび工」/ 小分類 01「とび工」. The 能力評価 (level assessment) only counts days booked
under the right pair, so a wrong or made-up pair silently costs a worker their level-up. That is why
every pair that enters GenbaGate is checked here against one table, and refused with a message a
site office can act on, instead of being stored as free text.

The table itself is data, not code: ``server/data/trades.csv`` (see ``server/data/trades.md`` for
where it came from and which rows are verified). It is read once, validated, and cached.
"""

from __future__ import annotations

import csv
import functools
import io
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files

from server.errors import InvalidInput

#: The CSV header, in order. A file with any other header is a packaging mistake, not data.
CSV_COLUMNS: tuple[str, ...] = ("major_code", "major_name", "minor_code", "minor_name")


@dataclass(frozen=True)
class Trade:
    """One CCUS trade: a 大分類/小分類 pair, with codes kept as the zero-padded strings CCUS shows.

    Codes stay strings because "06" and "6" are different things on a CCUS screen, and leading zeros
    must survive a round trip through forms, CSV exports and the gate protocol.
    """

    major_code: str
    major_name: str
    minor_code: str
    minor_name: str

    @property
    def label(self) -> str:
        """How people read the pair on screens and paper, e.g. 「とび工 / とび工」."""
        return f"{self.major_name} / {self.minor_name}"

    @property
    def code(self) -> str:
        """The pair as one short key, e.g. ``"06-01"``; the form used in CSV exports and logs."""
        return f"{self.major_code}-{self.minor_code}"


def _fold(text: str) -> str:
    """Normalise text for matching: NFKC (full-width ↔ half-width, （）→()) then case-fold.

    Office staff type with a Japanese IME, so 「０６」 and 「運転手(特殊)」 must match
    「06」 and 「運転手（特殊）」.
    """
    return unicodedata.normalize("NFKC", text).casefold()


def _clean_code(value: object) -> str | None:
    """The code as digits after NFKC and trimming, or None when it is not a plain digit string."""
    if not isinstance(value, str):
        return None
    cleaned = unicodedata.normalize("NFKC", value).strip()
    if cleaned and cleaned.isascii() and cleaned.isdigit():
        return cleaned
    return None


class TradeTable:
    """An immutable, validated set of trades with lookups by code pair, by major, and by name.

    Construction checks the whole table (digit codes, no duplicate pairs, one name per major) so a
    bad edit to the CSV fails loudly at start-up rather than as odd lookups later.
    """

    def __init__(self, trades: Iterable[Trade]) -> None:
        by_pair: dict[tuple[str, str], Trade] = {}
        major_names: dict[str, str] = {}
        for trade in trades:
            for field in ("major_code", "minor_code"):
                value = getattr(trade, field)
                if not (value and value.isascii() and value.isdigit()):
                    raise ValueError(f"trade table: {field} must be digits, got {value!r} in {trade}")
            if not trade.major_name.strip() or not trade.minor_name.strip():
                raise ValueError(f"trade table: empty name in {trade}")
            key = (trade.major_code, trade.minor_code)
            if key in by_pair:
                raise ValueError(f"trade table: duplicate pair {trade.code}")
            known = major_names.setdefault(trade.major_code, trade.major_name)
            if known != trade.major_name:
                raise ValueError(
                    f"trade table: major {trade.major_code} is named both {known!r} and {trade.major_name!r}"
                )
            by_pair[key] = trade
        if not by_pair:
            raise ValueError("trade table: no trades")
        self._trades: tuple[Trade, ...] = tuple(by_pair[k] for k in sorted(by_pair))
        self._by_pair = by_pair
        self._major_names = dict(sorted(major_names.items()))
        # Code widths come from the data, so a future CCUS table with wider codes needs no code change.
        self._major_widths = frozenset(len(t.major_code) for t in self._trades)
        self._minor_widths = frozenset(len(t.minor_code) for t in self._trades)

    @classmethod
    def from_csv_text(cls, text: str) -> TradeTable:
        """Parse the CSV format of ``server/data/trades.csv`` (UTF-8 text, header row first)."""
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise ValueError(f"trade table: header must be {','.join(CSV_COLUMNS)}, got {header!r}")
        trades: list[Trade] = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(CSV_COLUMNS):
                raise ValueError(f"trade table line {line_no}: expected {len(CSV_COLUMNS)} fields, got {row!r}")
            major_code, major_name, minor_code, minor_name = (cell.strip() for cell in row)
            trades.append(Trade(major_code, major_name, minor_code, minor_name))
        return cls(trades)

    def __len__(self) -> int:
        return len(self._trades)

    def _check_format(self, major_code: object, minor_code: object | None) -> tuple[str, str | None]:
        """Refuse anything that cannot be a code at all, before looking it up."""
        major = _clean_code(major_code)
        minor = None if minor_code is None else _clean_code(minor_code)
        major_ok = major is not None and len(major) in self._major_widths
        minor_ok = minor_code is None or (minor is not None and len(minor) in self._minor_widths)
        if not (major_ok and minor_ok):
            widths = sorted(self._major_widths | self._minor_widths)
            digits = "・".join(str(w) for w in widths)
            shown_minor = "" if minor_code is None else f" / 小分類 {minor_code!r}"
            shown_minor_en = "" if minor_code is None else f", minor {minor_code!r}"
            raise InvalidInput(
                "invalid_trade_code",
                ja=(f"職種コードは{digits}桁の数字で入力してください（入力値: 大分類 {major_code!r}{shown_minor}）"),
                en=f"trade codes must be {digits}-digit numbers (got major {major_code!r}{shown_minor_en})",
                # Details go into JSON error bodies: keep them strings whatever the caller passed.
                major=major_code if isinstance(major_code, str) else repr(major_code),
                minor=minor_code if minor_code is None or isinstance(minor_code, str) else repr(minor_code),
            )
        assert major is not None
        return major, minor

    def get(self, major_code: str, minor_code: str) -> Trade:
        """The trade for a 大分類/小分類 pair; full-width digits and surrounding spaces are tolerated.

        Raises ``InvalidInput("invalid_trade_code")`` for something that is not a code and
        ``InvalidInput("unknown_trade")`` for a well-formed pair that is not in the table, so the
        caller can tell a typo from a trade the table does not (yet) know.
        """
        major, minor = self._check_format(major_code, minor_code)
        assert minor is not None
        trade = self._by_pair.get((major, minor))
        if trade is None:
            raise InvalidInput(
                "unknown_trade",
                ja=(f"職種コードが見つかりません（大分類 {major} / 小分類 {minor}）。コード表を確認してください"),
                en=f"no trade with major code {major} and minor code {minor}; check the trade code table",
                major=major,
                minor=minor,
            )
        return trade

    def label_of(self, major_code: str, minor_code: str) -> str:
        """The label of a stored pair for display. A pair the table no longer has (a newer or
        corrected table) is shown by its codes: a read must never fail on data it once accepted."""
        try:
            return self.get(major_code, minor_code).label
        except InvalidInput:
            return f"{major_code}-{minor_code}（コード表にありません）"

    def majors(self) -> list[tuple[str, str]]:
        """Every 大分類 as (code, name), in code order: the first drop-down of a trade picker."""
        return list(self._major_names.items())

    def minors(self, major_code: str) -> list[Trade]:
        """The 小分類 under one 大分類, in code order: the second drop-down of a trade picker.

        An unknown 大分類 is refused (``unknown_trade``) rather than answered with an empty list,
        so a stale picker shows an error instead of looking like a major with no trades.
        """
        major, _ = self._check_format(major_code, None)
        if major not in self._major_names:
            raise InvalidInput(
                "unknown_trade",
                ja=f"職種コードが見つかりません（大分類 {major}）。コード表を確認してください",
                en=f"no trade with major code {major}; check the trade code table",
                major=major,
                minor=None,
            )
        return [t for t in self._trades if t.major_code == major]

    def all(self) -> list[Trade]:
        """Every trade, in (major, minor) code order."""
        return list(self._trades)

    def search(self, text: str) -> list[Trade]:
        """Trades whose 大分類 or 小分類 name contains ``text`` (NFKC, case-insensitive), in code order.

        A blank query matches nothing: listing everything is what ``all()`` is for, and an empty
        search box should not dump the whole table into a picker.
        """
        needle = _fold(text).strip()
        if not needle:
            return []
        return [t for t in self._trades if needle in _fold(t.major_name) or needle in _fold(t.minor_name)]


@functools.lru_cache(maxsize=1)
def trade_table() -> TradeTable:
    """The packaged table, read and validated once per process (the file never changes at run time)."""
    text = (files("server") / "data" / "trades.csv").read_text(encoding="utf-8")
    return TradeTable.from_csv_text(text)
