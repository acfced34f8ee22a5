"""CSV import of CCUS exports (server/importer.py and `genba-server import`).

The promises under test: a good file lands completely, a file with any bad row lands not at all and
says which physical lines are wrong, a file imported again updates what changed (and only that,
audited), and the CLI reports the same through its exit code, stdout counts and stderr.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import importer
from server.api.schemas import NO_CONTROL_PATTERN
from server.domain.ids import corporate_number_check_digit
from server.domain.text import control_character
from server.services import registry
from server.services.context import Context
from server.store import tables as t
from server.store.database import Store
from server.store.migrate import upgrade

GENBA_SERVER = Path(sys.executable).with_name("genba-server")


def _corporate_number(body12: str) -> str:
    return f"{corporate_number_check_digit(body12)}{body12}"


CORP = _corporate_number("234567890123")
CO_A = "10000000000001"
CO_B = "10000000000002"

COMPANIES_CSV = f"""事業者ID,事業者名,事業者名(カナ),建設業許可番号,法人番号,所在地,代表者名,郵便番号
{CO_A},山田建設株式会社,ヤマダケンセツ,国土交通大臣許可（特-5）第12345号,{CORP},"東京都千代田区1-1",山田 一郎,100-0001

{CO_B},有限会社 佐藤電気,サトウデンキ,,,,佐藤 花子,
"""

WORKERS_HEADER = "技能者ID,氏名,氏名（カナ）,所属事業者ID,生年月日,レベル,健康保険,年金保険,雇用保険,建退共,職種,資格"

QUALS = "技能講習:玉掛け;特別教育:足場の組立て"
WORKERS_CSV = f"""{WORKERS_HEADER}
20000000000001,鈴木 太郎,スズキ タロウ,{CO_A},1985/04/01,3,加入,加入,適用除外,,06-01;09-01,{QUALS}
20000000000002,田中 次郎,タナカ ジロウ,{CO_B},1990-12-31,,未加入,未確認,加入,加入,34-01,
"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Context]:
    """A real, freshly migrated SQLite file: savepoints and BEGIN IMMEDIATE behave as in production."""
    url = f"sqlite:///{tmp_path / 'genba.db'}"
    upgrade(url)
    context = Context(Store(url), fast_hashing=True)
    yield context
    context.store.dispose()


def run_import(ctx: Context, kind: importer.Kind, text: str) -> importer.ImportResult:
    # newline="" as the CLI opens files, so quoted line breaks stay inside their cell.
    return importer.import_csv(ctx, kind, io.StringIO(text, newline=""))


def refused(ctx: Context, kind: importer.Kind, text: str) -> list[importer.Problem]:
    with pytest.raises(importer.ImportFailed) as info:
        run_import(ctx, kind, text)
    return list(info.value.problems)


def count(ctx: Context, model: type[t.Base]) -> int:
    with Session(ctx.store.engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def registry_audit(ctx: Context) -> list[str]:
    """The audit log's actions on the registry, without the importer's own journal (entity ``import``)."""
    with Session(ctx.store.engine) as s:
        q = select(t.AuditEntry.action).where(t.AuditEntry.entity != "import").order_by(t.AuditEntry.id)
        return list(s.scalars(q))


def import_companies(ctx: Context) -> None:
    assert run_import(ctx, "companies", COMPANIES_CSV).added == 2


# --- the module -----------------------------------------------------------------------------------


def test_companies_then_workers_are_stored(db: Context) -> None:
    result = run_import(db, "companies", COMPANIES_CSV)
    assert result.added == 2
    assert result.ignored_columns == ("郵便番号",)
    with Session(db.store.engine) as s:
        a = s.scalars(select(t.Company).where(t.Company.ccus_id == CO_A)).one()
        assert (a.name, a.name_kana, a.corporate_number, a.representative) == (
            "山田建設株式会社",
            "ヤマダケンセツ",
            CORP,
            "山田 一郎",
        )
        b = s.scalars(select(t.Company).where(t.Company.ccus_id == CO_B)).one()
        assert (b.permit_number, b.corporate_number, b.address) == (None, None, None)

    result = run_import(db, "workers", WORKERS_CSV)
    assert result.added == 2
    assert result.ignored_columns == ()
    with Session(db.store.engine) as s:
        w = s.scalars(select(t.Worker).where(t.Worker.ccus_id == "20000000000001")).one()
        assert w.employer_id == a.id
        assert w.name == "鈴木 太郎" and w.name_kana == "スズキ タロウ"
        assert w.birth_date.isoformat() == "1985-04-01" and w.level == 3
        assert (w.health_insurance, w.pension_insurance, w.employment_insurance, w.kentaikyo) == (
            "enrolled",
            "enrolled",
            "exempt",
            "unknown",
        )
        trades = s.execute(
            select(t.WorkerTrade.major_code, t.WorkerTrade.minor_code).where(t.WorkerTrade.worker_id == w.id)
        ).all()
        assert sorted(tuple(r) for r in trades) == [("06", "01"), ("09", "01")]
        quals = s.execute(
            select(t.Qualification.category, t.Qualification.name).where(t.Qualification.worker_id == w.id)
        ).all()
        assert sorted(tuple(r) for r in quals) == [("技能講習", "玉掛け"), ("特別教育", "足場の組立て")]

        w2 = s.scalars(select(t.Worker).where(t.Worker.ccus_id == "20000000000002")).one()
        assert w2.employer_id == b.id and w2.level is None
        assert (w2.health_insurance, w2.pension_insurance, w2.employment_insurance, w2.kentaikyo) == (
            "not_enrolled",
            "unknown",
            "enrolled",
            "enrolled",
        )
        assert s.scalar(select(func.count()).where(t.Qualification.worker_id == w2.id)) == 0
    assert sorted(registry_audit(db)) == ["company.create"] * 2 + ["worker.create"] * 2


def test_bad_worker_rows_are_reported_by_line_and_nothing_is_written(db: Context) -> None:
    import_companies(db)
    text = f"""{WORKERS_HEADER}
20000000000001,鈴木 太郎,,{CO_A},,,,,,,06-01,
2000000000000X,田中 次郎,,{CO_A},,,,,,,06-01,

20000000000003,高橋 三郎,,{CO_A},,,,,,,99-99,
20000000000004,伊藤 四郎,,99999999999999,,,,,,,06-01,
20000000000005,渡辺 五郎,,{CO_A},,,,,,,34-01,
"""
    problems = refused(db, "workers", text)
    assert [(p.line, p.code) for p in problems] == [
        (3, "invalid_worker_id"),
        (5, "unknown_trade"),  # line 4 is blank and skipped, but still counted
        (6, "employer_not_found"),
    ]
    assert "技能者ID" in problems[0].message
    assert "職種コードが見つかりません" in problems[1].message
    assert "99999999999999" in problems[2].message and "事業者" in problems[2].message
    # The good rows (2 and 7) were checked, but a file with problems is never written.
    assert count(db, t.Worker) == 0
    assert count(db, t.WorkerTrade) == 0
    assert registry_audit(db) == ["company.create"] * 2  # only the two company imports


def test_one_row_reports_all_its_problems(db: Context) -> None:
    import_companies(db)
    text = f"""{WORKERS_HEADER}
20000000000001,鈴木 太郎,,{CO_A},1985/13/01,5,入ってる,,,,0601;06-01,玉掛け
"""
    problems = refused(db, "workers", text)
    assert {p.line for p in problems} == {2}
    assert [p.code for p in problems] == [
        "invalid_insurance_state",
        "invalid_birth_date",
        "invalid_level",
        "invalid_trade_code",
        "invalid_qualification",
    ]
    assert "健康保険" in problems[0].message


def test_duplicate_id_within_the_file_is_reported(db: Context) -> None:
    text = f"""事業者ID,事業者名
{CO_A},山田建設
{CO_B},佐藤電気
{CO_A[:4]}-{CO_A[4:]},山田建設（重複）
"""
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(4, "duplicate_in_file")]
    assert "2行目" in problems[0].message and CO_A in problems[0].message
    assert count(db, t.Company) == 0


def audit_entries(ctx: Context, action: str) -> list[t.AuditEntry]:
    with Session(ctx.store.engine) as s:
        return list(s.scalars(select(t.AuditEntry).where(t.AuditEntry.action == action).order_by(t.AuditEntry.id)))


def worker_lists(ctx: Context, ccus_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with Session(ctx.store.engine) as s:
        worker_id = s.scalar(select(t.Worker.id).where(t.Worker.ccus_id == ccus_id))
        trades = s.execute(
            select(t.WorkerTrade.major_code, t.WorkerTrade.minor_code)
            .where(t.WorkerTrade.worker_id == worker_id)
            .order_by(t.WorkerTrade.id)
        ).all()
        quals = s.execute(
            select(t.Qualification.category, t.Qualification.name)
            .where(t.Qualification.worker_id == worker_id)
            .order_by(t.Qualification.id)
        ).all()
    return [tuple(r) for r in trades], [tuple(r) for r in quals]


def test_importing_the_same_files_again_changes_nothing(db: Context) -> None:
    import_companies(db)
    assert run_import(db, "workers", WORKERS_CSV).added == 2
    again = run_import(db, "companies", COMPANIES_CSV)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    again = run_import(db, "workers", WORKERS_CSV)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert (count(db, t.Company), count(db, t.Worker), count(db, t.Qualification)) == (2, 2, 2)
    assert count(db, t.WorkerTrade) == 3
    assert len(registry_audit(db)) == 4  # only the four creations: an unchanged row is not audited


def test_an_updated_export_updates_registered_rows_and_adds_new_ones(ctx: Context) -> None:
    """The monthly case: old and new rows mixed, some old ones changed. Runs on both backends."""
    db = ctx
    import_companies(db)
    run_import(db, "workers", WORKERS_CSV)

    companies = f"""事業者ID,事業者名,事業者名(カナ),建設業許可番号,法人番号,所在地,代表者名
{CO_A},山田建設株式会社,ヤマダケンセツ,国土交通大臣許可（特-5）第12345号,{CORP},東京都港区2-2,山田 二郎
{CO_B},有限会社 佐藤電気,サトウデンキ,,,,佐藤 花子
10000000000003,株式会社 高橋組,タカハシグミ,,,,
"""
    result = run_import(db, "companies", companies)
    assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
    with Session(db.store.engine) as s:
        a = s.scalars(select(t.Company).where(t.Company.ccus_id == CO_A)).one()
        assert (a.address, a.representative, a.name) == ("東京都港区2-2", "山田 二郎", "山田建設株式会社")
    [entry] = audit_entries(db, "company.import_update")
    assert entry.entity == "company" and entry.entity_id == a.id and entry.account_id is None
    assert entry.before is not None and entry.after is not None
    assert (entry.before["representative"], entry.after["representative"]) == ("山田 一郎", "山田 二郎")
    assert (entry.before["address"], entry.after["address"]) == ("東京都千代田区1-1", "東京都港区2-2")
    assert len(audit_entries(db, "company.create")) == 3

    # Worker 1: level up, trades replaced, one new qualification next to one already held (written
    # with a full-width colon and a space: still the same one). Worker 2 as before; worker 3 new.
    quals = "技能講習：玉掛け ;技能講習:フォークリフト運転"
    workers = f"""{WORKERS_HEADER}
20000000000001,鈴木 太郎,スズキ タロウ,{CO_A},1985/04/01,4,加入,加入,加入,加入,34-01;06-01,{quals}
20000000000002,田中 次郎,タナカ ジロウ,{CO_B},1990-12-31,,未加入,未確認,加入,加入,34-01,
20000000000003,高橋 三郎,タカハシ サブロウ,10000000000003,,,,,,,,
"""
    result = run_import(db, "workers", workers)
    assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
    with Session(db.store.engine) as s:
        w = s.scalars(select(t.Worker).where(t.Worker.ccus_id == "20000000000001")).one()
        assert (w.level, w.employment_insurance, w.kentaikyo) == (4, "enrolled", "enrolled")
    trades, quals = worker_lists(db, "20000000000001")
    assert trades == [("34", "01"), ("06", "01")]
    assert quals == [("技能講習", "玉掛け"), ("特別教育", "足場の組立て"), ("技能講習", "フォークリフト運転")]
    [entry] = audit_entries(db, "worker.import_update")
    assert entry.entity_id == w.id and entry.before is not None and entry.after is not None
    assert (entry.before["level"], entry.after["level"]) == (3, 4)
    assert (entry.before["trades"], entry.after["trades"]) == (["06-01", "09-01"], ["34-01", "06-01"])
    assert entry.after["qualifications"][-1] == "技能講習:フォークリフト運転"
    assert len(audit_entries(db, "worker.create")) == 3


def test_an_empty_cell_or_missing_column_does_not_erase_a_stored_value(db: Context) -> None:
    import_companies(db)
    run_import(db, "workers", WORKERS_CSV)
    result = run_import(db, "companies", f"事業者ID,事業者名,所在地,代表者名\n{CO_A},山田建設株式会社,,\n")
    assert (result.updated, result.unchanged) == (0, 1)
    text = f"技能者ID,氏名,所属事業者ID,レベル,健康保険,職種,資格\n20000000000001,鈴木 太郎,{CO_A},,,,\n"
    assert run_import(db, "workers", text).unchanged == 1
    with Session(db.store.engine) as s:
        a = s.scalars(select(t.Company).where(t.Company.ccus_id == CO_A)).one()
        assert (a.address, a.representative, a.corporate_number) == ("東京都千代田区1-1", "山田 一郎", CORP)
        w = s.scalars(select(t.Worker).where(t.Worker.ccus_id == "20000000000001")).one()
        assert (w.level, w.health_insurance, w.name_kana) == (3, "enrolled", "スズキ タロウ")
    assert worker_lists(db, "20000000000001")[0] == [("06", "01"), ("09", "01")]


def test_changing_a_workers_employer_is_refused_and_nothing_is_written(db: Context) -> None:
    import_companies(db)
    run_import(db, "workers", WORKERS_CSV)
    text = f"""{WORKERS_HEADER}
20000000000001,鈴木 太郎,スズキ タロウ,{CO_B},1985/04/01,3,加入,加入,適用除外,,06-01;09-01,{QUALS}
20000000000002,田中 次郎,タナカ ジロウ,{CO_B},1990-12-31,2,未加入,未確認,加入,加入,34-01,
"""
    problems = refused(db, "workers", text)
    assert [(p.line, p.code) for p in problems] == [(2, "employer_change_not_allowed")]
    assert "所属事業者の変更は取り込みではできません" in problems[0].message
    assert CO_A in problems[0].message and CO_B in problems[0].message
    with Session(db.store.engine) as s:
        assert s.scalar(select(t.Worker.level).where(t.Worker.ccus_id == "20000000000002")) is None
    assert audit_entries(db, "worker.import_update") == []


def test_dry_run_checks_and_counts_but_writes_nothing(db: Context) -> None:
    result = importer.import_csv(db, "companies", io.StringIO(COMPANIES_CSV, newline=""), dry_run=True)
    assert (result.added, result.updated, result.unchanged, result.dry_run) == (2, 0, 0, True)
    assert count(db, t.Company) == 0 and count(db, t.AuditEntry) == 0

    import_companies(db)
    changed = COMPANIES_CSV.replace("山田 一郎", "山田 二郎")
    result = importer.import_csv(db, "companies", io.StringIO(changed, newline=""), dry_run=True)
    assert (result.added, result.updated, result.unchanged) == (0, 1, 1)
    with Session(db.store.engine) as s:
        assert s.scalar(select(t.Company.representative).where(t.Company.ccus_id == CO_A)) == "山田 一郎"
    assert audit_entries(db, "company.import_update") == []

    # A dry run of a bad file is refused exactly like the real thing.
    with pytest.raises(importer.ImportFailed):
        importer.import_csv(db, "companies", io.StringIO("事業者ID,事業者名\n123,x\n", newline=""), dry_run=True)


def test_missing_required_column_is_refused_naming_it(db: Context) -> None:
    text = "技能者ID,氏名(カナ),生年月日\n20000000000001,スズキ,1985/04/01\n"
    problems = refused(db, "workers", text)
    assert [(p.line, p.code) for p in problems] == [(1, "missing_columns")]
    assert "氏名" in problems[0].message and "所属事業者ID" in problems[0].message
    assert "技能者ID" not in problems[0].message


def test_wrong_kind_of_file_gets_a_hint(db: Context) -> None:
    problems = refused(db, "workers", COMPANIES_CSV)
    assert "事業者のCSVのようです" in problems[0].message


def test_empty_file_is_refused(db: Context) -> None:
    assert [p.code for p in refused(db, "companies", "")] == ["empty_file"]


def test_header_variants_bom_and_extra_columns(db: Context) -> None:
    # A BOM left in the text (file opened as utf-8, not utf-8-sig), full-width ID letters, spaces.
    text = f"\ufeff事業者ＩＤ , 事業者名,事業者名 (カナ),許可業種,登録日\n{CO_A},山田建設,ヤマダ,とび,2020/01/01\n"
    result = run_import(db, "companies", text)
    assert result.added == 1
    assert result.ignored_columns == ("許可業種", "登録日")
    with Session(db.store.engine) as s:
        assert s.scalar(select(t.Company.name_kana)) == "ヤマダ"


def test_line_numbers_count_line_breaks_inside_quoted_cells(db: Context) -> None:
    text = f"""事業者ID,事業者名,所在地
{CO_A},山田建設,"東京都千代田区
丸の内1-1"
bad,佐藤電気,
"""
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(4, "invalid_company_id")]


def test_unclosed_quote_is_reported_at_the_line_where_it_opened(db: Context) -> None:
    # The quote on line 4 runs to the end of the file: line 5's company would silently become part
    # of an address. A correctly quoted two-line address (lines 2-3) is not mistaken for one.
    text = f"""事業者ID,事業者名,所在地
{CO_A},山田建設,"東京都千代田区
丸の内1-1"
{CO_B},佐藤電気,"大阪市北区
10000000000003,高橋組,名古屋市
"""
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(4, "unclosed_quote")]
    assert "CSVの書式が正しくありません（引用符が閉じていません）" in problems[0].message
    assert '「"大阪市北区」' in problems[0].message
    assert count(db, t.Company) == 0


def test_unclosed_quote_closed_by_a_later_cell_is_still_found(db: Context) -> None:
    # The stray quote in line 2 pairs with the opening quote of line 4: one garbled record, which the
    # column count betrays. Nothing after it is read, so no misleading per-cell errors follow.
    text = f"""事業者ID,事業者名,所在地
{CO_A},"山田建設,東京都
{CO_B},佐藤電気,大阪
10000000000003,高橋組,"名古屋市",
bad,x,y
"""
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(2, "unclosed_quote")]


def test_unclosed_quote_in_the_header(db: Context) -> None:
    problems = refused(db, "companies", f'事業者ID,"事業者名,所在地\n{CO_A},山田建設,東京\n')
    assert [(p.line, p.code) for p in problems] == [(1, "unclosed_quote")]


def test_runaway_quote_past_the_csv_field_limit_is_explained(db: Context) -> None:
    text = f'事業者ID,事業者名,所在地\n{CO_A},山田建設,"東京\n' + "x,y,z\n" * 30_000
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(2, "unclosed_quote")]


def test_ids_mangled_by_excel_get_a_hint(db: Context) -> None:
    text = "事業者ID,事業者名,法人番号\n1.23457E+13,山田建設,9.23457E+12\n12345,佐藤電気,\n"
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [
        (2, "invalid_company_id"),
        (2, "invalid_corporate_number"),
        (3, "invalid_company_id"),
    ]
    assert all("Excelで列の書式を文字列にしてください" in p.message for p in problems[:2])
    assert "Excel" not in problems[2].message  # a plain typo gets no Excel hint


def test_ignored_columns_name_the_column_they_resemble(db: Context) -> None:
    result = run_import(db, "companies", f"事業者ID,事業者名,代表社名,郵便番号\n{CO_A},山田建設,山田 一郎,100-0001\n")
    assert result.ignored_columns == ("代表社名", "郵便番号")
    assert result.typo_hints == {"代表社名": "代表者名"}
    warning = importer.ignored_columns_warning(result.ignored_columns, result.typo_hints)
    assert warning == "次の列は取り込みませんでした: 代表社名（代表者名？）、郵便番号（列名の誤りではありませんか）"
    # A column the header already has is never suggested: 所属事業者名 is just an extra CCUS column.
    text = f"{WORKERS_HEADER},所属事業者名\n20000000000001,鈴木 太郎,,{CO_A},,,,,,,,,山田建設\n"
    result = run_import(db, "workers", text)
    assert result.ignored_columns == ("所属事業者名",) and result.typo_hints == {}
    assert importer.ignored_columns_warning(()) is None


def test_row_with_wrong_number_of_cells_is_refused(db: Context) -> None:
    text = f"事業者ID,事業者名,所在地\n{CO_A},山田建設\n{CO_B},佐藤電気,大阪,,\n"
    problems = refused(db, "companies", text)
    # A short row is refused; trailing empty cells (Excel likes to add them) are not.
    assert [(p.line, p.code) for p in problems] == [(2, "column_count")]


def test_a_control_character_in_a_cell_is_refused_naming_the_column_and_nothing_is_written(db: Context) -> None:
    """A name copied with a vertical tab, a trailing unit separator or a NUL is refused as the screens refuse
    it (one rule, ``server.domain.text``), each cell on its own, so one run lists them all. A tab and a
    line break inside a quoted address are what people type and stay allowed."""
    companies = (f"事業者ID,事業者名,所在地,代表者名\n"
                 f"{CO_A},山田建設,\"東京都千代田区\t丸の内\n1-1\",山田\x7f一郎\n"
                 f"{CO_B},佐藤電気,大阪,佐藤 花子\n")
    problems = refused(db, "companies", companies)
    assert [(p.line, p.code) for p in problems] == [(2, "control_character")]
    assert "「代表者名」" in problems[0].message and "U+007F" in problems[0].message
    assert count(db, t.Company) == 0  # 佐藤電気 on line 4 was fine, but the file is all or nothing

    import_companies(db)
    workers = f"""{WORKERS_HEADER}
20000000000001,鈴木 太郎,スズキ タロウ,{CO_A},,,,,,,06-01,
20000000000002,"田中\x0b次郎",タナカ ジロウ,{CO_A},,,,,,,06-01,技能講習:玉掛け\x00
20000000000003,高橋 三郎,タカハシ サブロウ\x1f,{CO_A},,,,,,,06-01,
"""
    problems = refused(db, "workers", workers)
    assert [(p.line, p.code) for p in problems] == [(3, "control_character")] * 2 + [(4, "control_character")]
    assert ["「氏名」" in problems[0].message, "「資格」" in problems[1].message] == [True, True]
    assert "U+000B" in problems[0].message and "U+0000" in problems[1].message
    assert "「氏名（カナ）」" in problems[2].message and "U+001F" in problems[2].message  # strip() would hide it
    assert count(db, t.Worker) == 0 and count(db, t.Qualification) == 0
    # The same characters the API's OpenAPI pattern refuses, no more, no fewer.
    for code in range(0x80):
        assert (re.fullmatch(NO_CONTROL_PATTERN, chr(code)) is None) == (control_character(chr(code)) is not None)


def test_a_row_the_database_refuses_while_writing_undoes_the_rows_written_before_it(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check passed, yet the database refuses a row while the file is written (a race the
    checks could not see): the file is refused naming that line, and the rows already committed in
    earlier chunks are undone, an update restored and an addition removed. One row per chunk here,
    so each earlier row really was committed. Runs on both backends (conftest's ``ctx``).

    The refusal is provoked directly (the real add_company checks for duplicates before flushing);
    the row's SAVEPOINT turns it into a problem of that row instead of a broken transaction.
    """
    db = ctx
    import_companies(db)
    monkeypatch.setattr(importer, "ROWS_PER_CHUNK", 1)
    real = registry.add_company

    def add_company(ctx: Context, uow, actor, data):  # type: ignore[no-untyped-def]
        if data.ccus_id == "30000000000004":
            uow.add(t.Company(ccus_id=CO_A, name="衝突", created_at=ctx.now()))
            uow.flush()
        return real(ctx, uow, actor, data)

    monkeypatch.setattr(registry, "add_company", add_company)
    text = f"事業者ID,事業者名\n{CO_B},三\n30000000000003,一\n30000000000004,二\n30000000000005,四\n"
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(4, "database_refused")]
    assert count(db, t.Company) == 2
    with Session(db.store.engine) as s:  # line 2 updated CO_B and was committed; the undo restored it
        assert s.scalar(select(t.Company.name).where(t.Company.ccus_id == CO_B)) == "有限会社 佐藤電気"
        journal = s.scalars(select(t.AuditEntry.action).where(t.AuditEntry.entity == "import")).all()
    assert journal[-6:] == [
        "import.begin", "import.chunk", "import.chunk", "import.undo", "import.undo", "import.undone"
    ]
    assert run_import(db, "companies", text.replace("30000000000004,二\n", "")).added == 2  # fixed: it goes in


def test_undoing_a_refused_workers_file_restores_fields_trades_and_qualifications(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The undo of a worker's update gives back what the row changed: its fields (a date among
    them), its trade list, and no qualification it did not hold; a worker the file added is gone."""
    db = ctx
    import_companies(db)
    run_import(db, "workers", WORKERS_CSV)
    before = worker_lists(db, "20000000000001")
    monkeypatch.setattr(importer, "ROWS_PER_CHUNK", 1)
    real = registry.add_worker

    def add_worker(ctx: Context, uow, actor, data):  # type: ignore[no-untyped-def]
        if data.ccus_id == "20000000000009":
            uow.add(t.Worker(ccus_id="20000000000001", name="衝突", employer_id=data.employer_id, created_at=ctx.now()))
            uow.flush()
        return real(ctx, uow, actor, data)

    monkeypatch.setattr(registry, "add_worker", add_worker)
    text = f"""{WORKERS_HEADER}
20000000000001,鈴木 太郎,スズキ タロウ,{CO_A},1986/05/02,4,加入,加入,適用除外,,34-01,技能講習:フォークリフト
20000000000003,高橋 三郎,,{CO_A},,,,,,,06-01,
20000000000009,伊藤 四郎,,{CO_A},,,,,,,06-01,
"""
    problems = refused(db, "workers", text)
    assert [(p.line, p.code) for p in problems] == [(4, "database_refused")]
    assert worker_lists(db, "20000000000001") == before
    with Session(db.store.engine) as s:
        w = s.scalars(select(t.Worker).where(t.Worker.ccus_id == "20000000000001")).one()
        assert (w.level, w.birth_date.isoformat() if w.birth_date else None) == (3, "1985-04-01")
        assert s.scalar(select(t.Worker.id).where(t.Worker.ccus_id == "20000000000003")) is None
    assert count(db, t.Worker) == 2


# --- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "server.toml"
    cfg.write_text(f'database_url = "sqlite:///{tmp_path / "cli.db"}"\n', encoding="utf-8")
    done = genba(["init", "--config", str(cfg)])
    assert done.returncode == 0, done.stderr
    return cfg


def genba(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GENBA_SERVER), *args], capture_output=True, text=True, encoding="utf-8", timeout=120, check=False
    )


def cli_count(cfg: Path, model: type[t.Base]) -> int:
    ctx = Context(Store(f"sqlite:///{cfg.parent / 'cli.db'}"), fast_hashing=True)
    try:
        return count(ctx, model)
    finally:
        ctx.store.dispose()


@pytest.mark.slow
def test_cli_imports_a_good_file_and_refuses_a_bad_one(config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"事業者ID,事業者名\n{CO_A},山田建設\n12345,佐藤電気\n", encoding="utf-8-sig")
    done = genba(["import", "companies", str(bad), "--config", str(config)])
    assert done.returncode == 1
    assert "エラー: 取り込みを中止しました（何も登録・更新していません）" in done.stderr
    assert "(csv_import_failed)" in done.stderr
    assert "  3行目: 事業者IDは14桁の数字で入力してください（入力値: '12345'） (invalid_company_id)" in done.stderr
    assert cli_count(config, t.Company) == 0

    good = tmp_path / "companies.csv"
    good.write_text(COMPANIES_CSV, encoding="utf-8-sig")
    done = genba(["import", "companies", str(good), "--config", str(config), "--dry-run"])
    assert done.returncode == 0, done.stderr
    assert "何も書き込んでいません" in done.stdout and "追加 2件、更新 0件、変更なし 0件" in done.stdout
    assert cli_count(config, t.Company) == 0

    done = genba(["import", "companies", str(good), "--config", str(config)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "事業者を取り込みました: 追加 2件、更新 0件、変更なし 0件"
    assert cli_count(config, t.Company) == 2

    # The monthly re-import: one row changed, one as before, one new.
    monthly = tmp_path / "companies_next_month.csv"
    monthly.write_text(
        COMPANIES_CSV.replace("山田 一郎", "山田 二郎") + "10000000000003,高橋組,,,,,,\n", encoding="utf-8-sig"
    )
    done = genba(["import", "companies", str(monthly), "--config", str(config)])
    assert done.returncode == 0, done.stderr
    assert "追加 1件、更新 1件、変更なし 1件" in done.stdout


@pytest.mark.slow
def test_cli_warns_about_ignored_columns_on_stderr(config: Path, tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    path.write_text(f"事業者ID,事業者名,代表社名\n{CO_A},山田建設,山田 一郎\n", encoding="utf-8")
    done = genba(["import", "companies", str(path), "--config", str(config)])
    assert done.returncode == 0, done.stderr
    assert "警告: 次の列は取り込みませんでした: 代表社名（代表者名？）（列名の誤りではありませんか）" in done.stderr
    assert "(ignored_columns)" in done.stderr
    assert "警告" not in done.stdout and "追加 1件" in done.stdout

    # Also when the file is refused: the typo may be why.
    path.write_text("事業者ID,事業者名,代表社名\n123,山田建設,山田 一郎\n", encoding="utf-8")
    done = genba(["import", "companies", str(path), "--config", str(config)])
    assert done.returncode == 1
    assert "代表社名（代表者名？）" in done.stderr


@pytest.mark.slow
def test_cli_reports_a_broken_quote_and_bad_encoding_with_codes(config: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(f'事業者ID,事業者名,所在地\n{CO_A},山田建設,"東京\n{CO_B},佐藤電気,大阪\n', encoding="utf-8")
    done = genba(["import", "companies", str(path), "--config", str(config)])
    assert done.returncode == 1
    assert "2行目: CSVの書式が正しくありません（引用符が閉じていません）" in done.stderr
    assert "(unclosed_quote)" in done.stderr
    assert cli_count(config, t.Company) == 0

    done = genba(["import", "companies", str(path), "--config", str(config), "--encoding", "sjis-x"])
    assert done.returncode == 2 and "(unknown_encoding)" in done.stderr and "エラー: " in done.stderr
    done = genba(["import", "companies", str(tmp_path / "none.csv"), "--config", str(config)])
    assert done.returncode == 2 and "(file_not_found)" in done.stderr


@pytest.mark.slow
def test_cli_reads_shift_jis_with_encoding_cp932(config: Path, tmp_path: Path) -> None:
    companies = tmp_path / "companies_sjis.csv"
    companies.write_bytes(COMPANIES_CSV.replace("\n", "\r\n").encode("cp932"))
    workers = tmp_path / "workers_sjis.csv"
    workers.write_bytes(WORKERS_CSV.replace("\n", "\r\n").encode("cp932"))

    # Read as UTF-8 (the default), Shift_JIS bytes are refused with a hint rather than garbled.
    done = genba(["import", "companies", str(companies), "--config", str(config)])
    assert done.returncode == 2 and "cp932" in done.stderr and "(undecodable_file)" in done.stderr

    for kind, path in (("companies", companies), ("workers", workers)):
        done = genba(["import", kind, str(path), "--config", str(config), "--encoding", "cp932"])
        assert done.returncode == 0, done.stderr
    assert cli_count(config, t.Worker) == 2
    assert cli_count(config, t.Qualification) == 2
