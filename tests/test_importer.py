"""CSV import of CCUS exports (server/importer.py and `genba-server import`).

The promises under test: a good file lands completely, a file with any bad row lands not at all and
says which physical lines are wrong, and the CLI reports the same through its exit code and stderr.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server import importer
from server.domain.ids import corporate_number_check_digit
from server.services import companies as companies_service
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
    with ctx.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def import_companies(ctx: Context) -> None:
    assert run_import(ctx, "companies", COMPANIES_CSV).added == 2


# --- the module -----------------------------------------------------------------------------------


def test_companies_then_workers_are_stored(db: Context) -> None:
    result = run_import(db, "companies", COMPANIES_CSV)
    assert result.added == 2
    assert result.ignored_columns == ("郵便番号",)
    with db.store.read() as s:
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
    with db.store.read() as s:
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
        audit_actions = s.scalars(select(t.AuditEntry.action)).all()
    assert sorted(audit_actions) == ["company.create"] * 2 + ["worker.create"] * 2


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
    # The good rows (2 and 7) were added inside the transaction, then rolled back with it.
    assert count(db, t.Worker) == 0
    assert count(db, t.WorkerTrade) == 0
    assert count(db, t.AuditEntry) == 2  # only the two company imports


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


def test_id_already_in_the_database_is_reported_and_nothing_doubles(db: Context) -> None:
    import_companies(db)
    problems = refused(db, "companies", COMPANIES_CSV)
    assert [(p.line, p.code) for p in problems] == [(2, "company_exists"), (4, "company_exists")]
    assert count(db, t.Company) == 2


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
    with db.store.read() as s:
        assert s.scalar(select(t.Company.name_kana)) == "ヤマダ"


def test_line_numbers_count_line_breaks_inside_quoted_cells(db: Context) -> None:
    text = f"""事業者ID,事業者名,所在地
{CO_A},山田建設,"東京都千代田区
丸の内1-1"
bad,佐藤電気,
"""
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(4, "invalid_company_id")]


def test_row_with_wrong_number_of_cells_is_refused(db: Context) -> None:
    text = f"事業者ID,事業者名,所在地\n{CO_A},山田建設\n{CO_B},佐藤電気,大阪,,\n"
    problems = refused(db, "companies", text)
    # A short row is refused; trailing empty cells (Excel likes to add them) are not.
    assert [(p.line, p.code) for p in problems] == [(2, "column_count")]


def test_savepoint_keeps_checking_rows_after_a_database_error(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush that fails in the database must not stop the rows after it from being checked.

    The real add_company checks for duplicates before flushing, so provoke the IntegrityError
    directly; without the per-row SAVEPOINT the session would be unusable for the next rows (and
    PostgreSQL would refuse every later statement). Runs on both backends (conftest's ``ctx``).
    """
    db = ctx
    import_companies(db)
    real = companies_service.add_company

    def add_company(ctx: Context, s, actor, data):  # type: ignore[no-untyped-def]
        if data.ccus_id == "30000000000002":
            s.add(t.Company(ccus_id=CO_A, name="衝突", created_at=ctx.now()))
            s.flush()
        return real(ctx, s, actor, data)

    monkeypatch.setattr(importer, "add_company", add_company)
    text = f"事業者ID,事業者名\n30000000000001,一\n30000000000002,二\n{CO_B},三\n30000000000004,四\n"
    problems = refused(db, "companies", text)
    assert [(p.line, p.code) for p in problems] == [(3, "database_refused"), (4, "company_exists")]
    assert count(db, t.Company) == 2


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
    assert "3行目" in done.stderr and "事業者ID" in done.stderr and "何も登録していません" in done.stderr
    assert cli_count(config, t.Company) == 0

    good = tmp_path / "companies.csv"
    good.write_text(COMPANIES_CSV, encoding="utf-8-sig")
    done = genba(["import", "companies", str(good), "--config", str(config)])
    assert done.returncode == 0, done.stderr
    assert "2件を登録しました" in done.stdout
    assert cli_count(config, t.Company) == 2


@pytest.mark.slow
def test_cli_reads_shift_jis_with_encoding_cp932(config: Path, tmp_path: Path) -> None:
    companies = tmp_path / "companies_sjis.csv"
    companies.write_bytes(COMPANIES_CSV.replace("\n", "\r\n").encode("cp932"))
    workers = tmp_path / "workers_sjis.csv"
    workers.write_bytes(WORKERS_CSV.replace("\n", "\r\n").encode("cp932"))

    # Read as UTF-8 (the default), Shift_JIS bytes are refused with a hint rather than garbled.
    done = genba(["import", "companies", str(companies), "--config", str(config)])
    assert done.returncode == 2 and "cp932" in done.stderr

    for kind, path in (("companies", companies), ("workers", workers)):
        done = genba(["import", kind, str(path), "--config", str(config), "--encoding", "cp932"])
        assert done.returncode == 0, done.stderr
    assert cli_count(config, t.Worker) == 2
    assert cli_count(config, t.Qualification) == 2
