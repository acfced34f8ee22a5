"""A long import never starves the short writes, and a busy store says "busy", never crashes.

SQLite has one writer at a time. A 5,000-row CCUS import written in one transaction held the lock
for most of a minute: logins waited half a minute and got a 500 ("database is locked"), a gate's
tap was acked only after many re-sends. The promises under test: an import writes in short
chunks and a login gets in between them; a dry run never takes the write lock; a write that cannot
get a lock in time is told ``database_busy`` (Unavailable: 503 + Retry-After at the API); and the
import stays all-or-nothing, even when its process is killed half-way.

Ordering, not wall-clock: the tests check what had been written when the short write returned.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import importer
from server.errors import Conflict, Unavailable
from server.services import accounts, logins, registry
from server.services.companies import CompanyIn
from server.services.context import Context
from server.store import tables as t
from server.store.database import Store

OPERATOR, PASSWORD = "siteoffice01", "gate-keeper-2026"


def companies_csv(n: int, first: int = 10000000000000, bad_line: int | None = None) -> str:
    """``n`` companies; the row on physical line ``bad_line`` (line 1 is the header) has a broken ID."""
    rows = ["事業者ID,事業者名,事業者名(カナ),所在地,代表者名"]
    for i in range(n):
        ccus = "1000000000X" if bad_line == i + 2 else str(first + i)
        rows.append(f"{ccus},株式会社 現場{i},ゲンバ,東京都千代田区{i},代表 {i}")
    return "\n".join(rows) + "\n"


def run_import(ctx: Context, csv_text: str, dry_run: bool = False) -> importer.ImportResult:
    return importer.import_csv(ctx, "companies", io.StringIO(csv_text, newline=""), dry_run=dry_run)


def count(ctx: Context, model: type[t.Base]) -> int:
    with Session(ctx.store.engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def registry_audit(ctx: Context) -> int:
    """Audit entries about the registry (the importer's own journal, entity ``import``, left out)."""
    with Session(ctx.store.engine) as s:
        return int(s.scalar(select(func.count()).where(t.AuditEntry.entity != "import")) or 0)


def journal(ctx: Context) -> list[tuple[str, dict | None]]:
    with Session(ctx.store.engine) as s:
        q = select(t.AuditEntry.action, t.AuditEntry.after).where(t.AuditEntry.entity == "import")
        return [(a, after) for a, after in s.execute(q.order_by(t.AuditEntry.id))]


@pytest.fixture
def db_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "genba.db"
    shutil.copy(sqlite_template, path)
    return path


@pytest.fixture
def db(db_path: Path) -> Iterator[Context]:
    """A real SQLite file, as in production (WAL, BEGIN IMMEDIATE, the default busy timeout)."""
    context = Context(Store(f"sqlite:///{db_path}"), fast_hashing=True)
    yield context
    context.store.dispose()


@pytest.fixture
def impatient(db_path: Path) -> Iterator[Context]:
    """The same file through a store that gives up on a lock after a fifth of a second."""
    context = Context(Store(f"sqlite:///{db_path}", busy_timeout_s=0.2), fast_hashing=True)
    yield context
    context.store.dispose()


@pytest.fixture
def someone_writing(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another program holding SQLite's write lock (BEGIN IMMEDIATE, an uncommitted change)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO audit_log (at, action, entity) VALUES ('2026-01-01 00:00:00', 'held', 'test')")
    yield conn
    conn.rollback()
    conn.close()


# --- a busy store ---------------------------------------------------------------------------------


def test_a_write_that_cannot_get_the_lock_is_told_database_busy_not_a_crash(
    impatient: Context, someone_writing: sqlite3.Connection
) -> None:
    with pytest.raises(Unavailable) as info, impatient.store.write():
        pass  # BEGIN IMMEDIATE itself is what waits
    assert info.value.code == "database_busy"
    assert info.value.retry_after_s >= 1
    assert info.value.as_dict()["details"]["retry_after_s"] == info.value.retry_after_s
    assert "混み合っています" in info.value.message_ja


def test_a_login_while_the_store_is_busy_is_told_to_retry(db: Context, impatient: Context,
                                                           db_path: Path) -> None:
    accounts.create_operator(db, OPERATOR, PASSWORD)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Unavailable) as info:
            logins.login(impatient, OPERATOR, PASSWORD)
        assert info.value.code == "database_busy"
    finally:
        conn.rollback()
        conn.close()
    assert logins.login(impatient, OPERATOR, PASSWORD)["token"]  # the lock is free: the same request works


def test_reads_go_on_while_another_program_writes(impatient: Context, someone_writing: sqlite3.Connection) -> None:
    """SQLite's WAL: a reader sees the last commit and never waits for the writer."""
    with impatient.store.read() as uow:
        assert uow.audit.newest_id() is None  # the held, uncommitted entry is not seen


def test_a_lock_held_too_long_is_database_busy_on_both_backends(backend: str, db_url: str) -> None:
    """On PostgreSQL the store's busy timeout is its lock_timeout: a row locked by another transaction."""
    holder, store = Store(db_url), Store(db_url, busy_timeout_s=0.2)
    try:
        run_import(Context(holder, fast_hashing=True), companies_csv(1))
        with holder.read() as uow:
            company_id = uow.companies.id_of("10000000000000")
        with holder.write() as held:
            row = held.get(t.Company, company_id, lock=True)
            assert row is not None
            row.name = "held"
            held.flush()
            with pytest.raises(Unavailable) as info, store.write() as uow:
                mine = uow.get(t.Company, company_id, lock=True)
                assert mine is not None
                mine.name = "mine"
        assert info.value.code == "database_busy"
        with store.write() as uow:  # the lock is free: the same write goes through
            assert uow.get(t.Company, company_id, lock=True) is not None
    finally:
        holder.dispose()
        store.dispose()


# --- the import -----------------------------------------------------------------------------------


def test_a_login_gets_in_between_the_chunks_of_a_big_import(db: Context) -> None:
    accounts.create_operator(db, OPERATOR, PASSWORD)
    rows = 3000
    failed: list[BaseException] = []

    def big_import() -> None:
        try:
            run_import(db, companies_csv(rows))
        except BaseException as exc:  # reported below
            failed.append(exc)

    worker = threading.Thread(target=big_import)
    worker.start()
    try:
        while count(db, t.Company) == 0 and worker.is_alive():  # until the first chunk is committed
            time.sleep(0.005)
        assert logins.login(db, OPERATOR, PASSWORD)["token"]
        written_when_logged_in = count(db, t.Company)
    finally:
        worker.join()
    assert not failed
    # The login did not wait for the import: it committed while most of the file was still to come.
    assert 0 < written_when_logged_in < rows
    assert count(db, t.Company) == rows


def test_a_dry_run_takes_no_write_lock(impatient: Context, someone_writing: sqlite3.Connection) -> None:
    result = run_import(impatient, companies_csv(700), dry_run=True)
    assert (result.added, result.dry_run) == (700, True)


def test_a_bad_row_4000_refuses_the_file_and_nothing_is_written(db: Context) -> None:
    with pytest.raises(importer.ImportFailed) as info:
        run_import(db, companies_csv(4500, bad_line=4000))
    assert [(p.line, p.code) for p in info.value.problems] == [(4000, "invalid_company_id")]
    assert count(db, t.Company) == 0
    assert registry_audit(db) == 0 and journal(db) == []  # not one row, not even a journal entry


def _kill_half_way(db: Context, db_path: Path, csv_file: Path) -> None:
    script = (
        "from server import importer\n"
        "from server.services.context import Context\n"
        "from server.store.database import Store\n"
        f"ctx = Context(Store({f'sqlite:///{db_path}'!r}))\n"
        f"with open({str(csv_file)!r}, encoding='utf-8', newline='') as fh:\n"
        "    importer.import_csv(ctx, 'companies', fh)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        while count(db, t.Company) == 0 and child.poll() is None:
            time.sleep(0.005)
        child.kill()
    finally:
        child.wait()


def test_an_import_killed_half_way_is_undone_by_the_next_one(db: Context, db_path: Path, tmp_path: Path) -> None:
    rows = 5000
    big = tmp_path / "companies.csv"
    big.write_text(companies_csv(rows), encoding="utf-8")
    _kill_half_way(db, db_path, big)  # SIGKILL: no clean-up of its own, as in a power cut
    left = count(db, t.Company)
    assert 0 < left < rows  # killed with some chunks committed
    assert [a for a, _ in journal(db)][0] == "import.begin" and "import.done" not in [a for a, _ in journal(db)]

    result = run_import(db, companies_csv(2, first=30000000000000))
    assert result.added == 2
    with Session(db.store.engine) as s:
        assert sorted(s.scalars(select(t.Company.ccus_id))) == ["30000000000000", "30000000000001"]
    undone = [after for action, after in journal(db) if action == "import.undone"]
    assert undone == [{"reason": "did not finish (its process ended)", "kept": 0}]


def test_the_same_file_run_again_after_a_killed_import_is_all_there(db: Context, db_path: Path,
                                                                     tmp_path: Path) -> None:
    # Found in review: the re-run checked the file while the dead import's rows were still there,
    # counted them "unchanged", then undid them: 2 of 6 companies were left.
    rows = 1500
    big = tmp_path / "companies.csv"
    big.write_text(companies_csv(rows), encoding="utf-8")
    _kill_half_way(db, db_path, big)
    assert 0 < count(db, t.Company) < rows
    with pytest.raises(Conflict) as info:  # a dry run cannot undo it: it says the real run will
        run_import(db, companies_csv(rows), dry_run=True)
    assert info.value.code == "import_unfinished"
    result = run_import(db, companies_csv(rows))
    assert (result.added, result.unchanged) == (rows, 0)
    assert count(db, t.Company) == rows


def test_the_undo_of_a_dead_import_keeps_a_row_edited_since(db: Context) -> None:
    # Found in review: the undo deleted or reverted rows blindly, destroying edits made after the import.
    import_id = registry.begin_import(db, "companies", 2, "another-host", 1)
    with db.write() as uow:
        notes: list[registry.UndoNote] = []
        for n in (1, 2):
            registry.save_company(db, CompanyIn(ccus_id=f"1000000000000{n}", name=f"取込 {n}"), ("name",),
                                  uow=uow, journal=notes)
        registry.record_chunk(db, uow, import_id, notes)
    with Session(db.store.engine) as s, s.begin():  # someone corrects the first one's name on a screen
        s.scalars(select(t.Company).where(t.Company.ccus_id == "10000000000001")).one().name = "修正 済"
    kept = registry.undo_import(db, import_id, "did not finish")
    assert [note["id"] for note in kept] == [notes[0]["id"]]
    with Session(db.store.engine) as s:
        assert list(s.scalars(select(t.Company.name))) == ["修正 済"]


def test_a_second_import_waits_for_a_running_one_and_undoes_a_dead_one(db: Context) -> None:
    # An import is writing in this very process (its journal is open): another one is refused.
    running = registry.begin_import(db, "companies", 10, socket.gethostname(), os.getpid())
    with pytest.raises(Conflict) as info:
        run_import(db, companies_csv(3))
    assert info.value.code == "import_in_progress"
    assert run_import(db, companies_csv(3), dry_run=True).added == 3  # checking is always allowed
    assert count(db, t.Company) == 0

    # Its host is ours, so only its process can be asked; say it ran elsewhere and went quiet.
    with Session(db.store.engine) as s, s.begin():
        begin = s.get(t.AuditEntry, running)
        assert begin is not None
        begin.after = {**(begin.after or {}), "host": "another-host"}
    with pytest.raises(Conflict):
        run_import(db, companies_csv(3))  # quiet for less than STALE_AFTER: still taken for running
    later = Context(db.store, fast_hashing=True, clock=lambda: db.now() + importer.STALE_AFTER + timedelta(minutes=1))
    assert run_import(later, companies_csv(3)).added == 3
    assert [a for a, _ in journal(db)].count("import.undone") == 1
