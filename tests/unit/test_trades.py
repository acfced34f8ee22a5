"""The CCUS trade (職種) table and its loader."""

from __future__ import annotations

import pytest

from server.domain.trades import CSV_COLUMNS, Trade, TradeTable, trade_table
from server.errors import InvalidInput

# Pairs confirmed by public sources (see server/data/trades.md, "Verified rows").
VERIFIED = [
    ("06", "01", "とび工", "とび工"),  # 日本躯体 / とび能力評価: 大分類(06)とび工 / 小分類(01)とび工
    ("06", "04", "とび工", "重量とび工"),
    ("09", "01", "電工", "電気工"),
    ("10", "01", "鉄筋工", "鉄筋工"),
    ("34", "01", "大工", "大工"),
    ("36", "02", "配管工", "配管工（給排水・衛生）"),
    ("43", "08", "内装工", "壁装（クロス）工"),
    ("52", "48", "その他（施工）", "建築測量工"),
]


def test_table_loads_and_is_cached() -> None:
    table = trade_table()
    assert len(table) >= 100
    assert len(table.majors()) >= 50
    assert trade_table() is table


def test_no_duplicate_pairs_and_codes_are_two_digits() -> None:
    trades = trade_table().all()
    pairs = [(t.major_code, t.minor_code) for t in trades]
    assert len(pairs) == len(set(pairs))
    for t in trades:
        assert t.major_code.isascii() and t.major_code.isdigit() and len(t.major_code) == 2, t
        assert t.minor_code.isascii() and t.minor_code.isdigit() and len(t.minor_code) == 2, t
        assert t.major_name and t.minor_name


def test_each_major_has_one_name_and_majors_are_sorted() -> None:
    table = trade_table()
    majors = table.majors()
    assert majors == sorted(majors)
    names = dict(majors)
    for t in table.all():
        assert names[t.major_code] == t.major_name


@pytest.mark.parametrize(("major", "minor", "major_name", "minor_name"), VERIFIED)
def test_verified_trades_resolve(major: str, minor: str, major_name: str, minor_name: str) -> None:
    trade = trade_table().get(major, minor)
    assert trade == Trade(major, major_name, minor, minor_name)


def test_label_and_code() -> None:
    trade = trade_table().get("06", "01")
    assert trade.label == "とび工 / とび工"
    assert trade.code == "06-01"


def test_full_width_digits_and_spaces_are_tolerated() -> None:
    assert trade_table().get("０６", " 01 ").minor_name == "とび工"


def test_unknown_pair_is_refused_with_japanese_message() -> None:
    with pytest.raises(InvalidInput) as exc:
        trade_table().get("06", "99")
    err = exc.value
    assert err.code == "unknown_trade"
    assert "職種コードが見つかりません" in err.message_ja
    assert "大分類 06 / 小分類 99" in err.message_ja
    assert err.details == {"major": "06", "minor": "99"}
    assert isinstance(err, InvalidInput)


def test_unknown_major_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        trade_table().get("98", "01")
    assert exc.value.code == "unknown_trade"


@pytest.mark.parametrize(
    ("major", "minor"),
    [
        ("ab", "01"),
        ("06", "x1"),
        ("", "01"),
        ("06", ""),
        ("6", "01"),
        ("06", "001"),
        ("-6", "01"),
        ("06", "0１a"),
    ],
)
def test_malformed_codes_are_refused(major: str, minor: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        trade_table().get(major, minor)
    assert exc.value.code == "invalid_trade_code"
    assert "数字" in exc.value.message_ja


def test_non_string_code_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        trade_table().get(6, "01")  # type: ignore[arg-type]
    assert exc.value.code == "invalid_trade_code"


def test_minors_of_a_major() -> None:
    table = trade_table()
    tobi = table.minors("06")
    assert [t.minor_code for t in tobi] == sorted(t.minor_code for t in tobi)
    assert all(t.major_code == "06" for t in tobi)
    assert "とび工" in [t.minor_name for t in tobi]
    with pytest.raises(InvalidInput) as exc:
        table.minors("98")
    assert exc.value.code == "unknown_trade"
    with pytest.raises(InvalidInput) as exc:
        table.minors("x")
    assert exc.value.code == "invalid_trade_code"


def test_search_matches_names() -> None:
    table = trade_table()
    assert ("06", "04") in [(t.major_code, t.minor_code) for t in table.search("重量")]
    # A major's name finds its minors too.
    assert {t.major_code for t in table.search("鉄筋")} == {"10"}
    # Half-width parentheses match the full-width ones in the table.
    assert [t.code for t in table.search("運転手(特殊)")][0] == "14-01"
    assert table.search("") == []
    assert table.search("   ") == []
    assert table.search("存在しない職種") == []


def test_all_is_sorted_copy() -> None:
    table = trade_table()
    everything = table.all()
    assert everything == sorted(everything, key=lambda t: (t.major_code, t.minor_code))
    everything.clear()
    assert len(table.all()) == len(table)


def _csv(*rows: str) -> str:
    return "\n".join([",".join(CSV_COLUMNS), *rows]) + "\n"


def test_loader_rejects_bad_tables() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        TradeTable.from_csv_text(_csv("06,とび工,01,とび工", "06,とび工,01,とび工"))
    with pytest.raises(ValueError, match="digits"):
        TradeTable.from_csv_text(_csv("6a,とび工,01,とび工"))
    with pytest.raises(ValueError, match="named both"):
        TradeTable.from_csv_text(_csv("06,とび工,01,とび工", "06,鳶,04,重量とび工"))
    with pytest.raises(ValueError, match="header"):
        TradeTable.from_csv_text("code,name\n06,とび工\n")
    with pytest.raises(ValueError, match="fields"):
        TradeTable.from_csv_text(_csv("06,とび工,01"))
    with pytest.raises(ValueError, match="no trades"):
        TradeTable.from_csv_text(_csv())


def test_loader_accepts_bom_and_blank_lines() -> None:
    table = TradeTable.from_csv_text("\ufeff" + _csv("06,とび工,01,とび工", "", "10,鉄筋工,01,鉄筋工"))
    assert [t.code for t in table.all()] == ["06-01", "10-01"]
