"""genba-server backup: a consistent copy of the live database, written atomically, old copies pruned.

SQLite: the backup runs while another connection keeps committing, and the copy must be a
database SQLite and the server's migrations accept, holding only whole transactions. PostgreSQL:
pg_dump of the suite's private server, read back with pg_restore. Pruning keys on the timestamp in
the file name (see server/backup.py for why), never touches other files.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from mosquitto import free_port
from pgserver import PrivatePostgres

from server import backup
from server.store import migrate

BIN = Path(sys.executable).with_name("genba-server")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120)


def _config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "server.toml"
    cfg.write_text(f'database_url = "{url}"\n[mqtt]\nenabled = false\n', encoding="utf-8")
    return cfg


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _live_sqlite(tmp_path: Path, rows: int = 20_000) -> Path:
    """A migrated database in WAL mode, padded so that copying it takes a while."""
    db = tmp_path / "live" / "genba.db"
    db.parent.mkdir()
    migrate.upgrade(f"sqlite:///{db}")
    conn = sqlite3.connect(db, isolation_level=None)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, pad BLOB)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO probe (batch, pad) VALUES (0, randomblob(1000))", ([] for _ in range(rows)))
    conn.execute("COMMIT")
    conn.close()
    return db


class Writer(threading.Thread):
    """Another process's connection: commits batches of two rows as fast as it can."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.batches = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.db, isolation_level=None, timeout=5)
            while not self.stop.is_set():
                n = self.batches + 1
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO probe (batch) VALUES (?)", (n,))
                conn.execute("INSERT INTO probe (batch) VALUES (?)", (n,))
                conn.execute("COMMIT")
                self.batches = n
            conn.close()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_for(self, batches: int) -> None:
        deadline = time.monotonic() + 30
        while self.batches < batches and self.error is None:
            assert time.monotonic() < deadline, "the writer stalled"
            time.sleep(0.001)


def test_sqlite_backup_is_a_consistent_copy_while_another_connection_writes(tmp_path: Path) -> None:
    db = _live_sqlite(tmp_path)
    out = tmp_path / "backup"
    out.mkdir()
    writer = Writer(db)
    writer.start()
    try:
        writer.wait_for(20)
        before = writer.batches
        result = backup.backup(f"sqlite:///{db}", out)
        during = writer.batches
        writer.wait_for(during + 20)
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error  # the backup never blocked the writer
    assert during > before, "the writer committed while the backup ran"

    path = result.path
    assert path.parent == out and backup.NAME_RE.match(path.name) and path.suffix == ".db"
    assert _mode(path) == 0o600
    assert sorted(p.name for p in out.iterdir()) == [path.name]  # no temporary file, no -wal/-journal left
    copy = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        live = sqlite3.connect(db)
        tables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        assert copy.execute(tables).fetchall() == live.execute(tables).fetchall()
        live.close()
        # Only whole transactions: every batch has both its rows, and the batches are 1..k without a gap.
        batches = copy.execute("SELECT batch, count(*) FROM probe WHERE batch > 0 GROUP BY batch").fetchall()
        assert all(count == 2 for _, count in batches)
        k = len(batches)
        assert [b for b, _ in batches] == list(range(1, k + 1))
        assert before <= k <= during
        assert copy.execute("SELECT count(*) FROM probe WHERE batch = 0").fetchone()[0] == 20_000
    finally:
        copy.close()
    # The server's own migrations see the copy as an up-to-date database.
    assert migrate.current(f"sqlite:///{path}") == migrate.current(f"sqlite:///{db}") is not None


def _stamp(when: datetime) -> str:
    return when.strftime(backup.STAMP_FORMAT)


def test_prune_removes_only_backups_named_older_than_n_days(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, 3, 30, 0)
    d = tmp_path / "backup"
    d.mkdir()

    def make(name: str, mtime: datetime | None = None) -> Path:
        p = d / name
        p.write_bytes(b"x")
        if mtime is not None:
            os.utime(p, (mtime.timestamp(), mtime.timestamp()))
        return p

    old_db = make(f"genba-{_stamp(now - timedelta(days=15))}.db", mtime=now)  # fresh mtime, old name
    old_dump = make(f"genba-{_stamp(now - timedelta(days=40))}.dump")
    just_old = make(f"genba-{_stamp(now - timedelta(days=14, seconds=1))}.db")
    recent = make(f"genba-{_stamp(now - timedelta(days=13))}.dump", mtime=now - timedelta(days=100))  # old mtime
    edge = make(f"genba-{_stamp(now - timedelta(days=14))}.db")  # exactly 14 days: kept
    others = [
        make("notes.txt", mtime=now - timedelta(days=100)),
        make("genba-20200101-000000.db.bak"),
        make("genba-latest.db"),
        make("genba-20201301-000000.db"),  # not a date
        make("backup-20200101-000000.db"),
        make(".genba-20200101-000000.db.tmp-123"),
    ]
    (d / "genba-20200102-000000.db").mkdir()  # a directory with a backup's name
    outside = tmp_path / "elsewhere.db"
    outside.write_bytes(b"keep me")
    (d / "genba-20200103-000000.db").symlink_to(outside)

    pruned = backup.prune(d, 14, now)
    assert sorted(pruned) == sorted([old_db, old_dump, just_old])
    for p in [recent, edge, *others, d / "genba-20200102-000000.db", d / "genba-20200103-000000.db"]:
        assert os.path.lexists(p), p
    assert outside.read_bytes() == b"keep me"

    # Never the backup just written, even when the clock says it is old.
    assert backup.prune(d, 1, now + timedelta(days=365), keep=recent) == [edge]
    assert recent.exists()


def test_backup_prunes_after_writing(tmp_path: Path) -> None:
    db = _live_sqlite(tmp_path, rows=10)
    d = tmp_path / "backup"
    d.mkdir()
    now = datetime.now().replace(microsecond=0)
    old = d / f"genba-{_stamp(now - timedelta(days=3))}.db"
    old.write_bytes(b"x")
    kept = d / f"genba-{_stamp(now - timedelta(days=1))}.db"
    kept.write_bytes(b"x")
    result = backup.backup(f"sqlite:///{db}", d, keep_days=2, now=now)
    assert result.pruned == [old]
    assert sorted(p.name for p in d.iterdir()) == sorted([kept.name, result.path.name])


def test_backup_refuses_a_missing_directory_or_database(tmp_path: Path) -> None:
    db = _live_sqlite(tmp_path, rows=10)
    with pytest.raises(backup.BackupFailed) as exc:
        backup.backup(f"sqlite:///{db}", tmp_path / "nope")
    assert exc.value.code == "backup_dir_missing"
    d = tmp_path / "backup"
    d.mkdir()
    missing = tmp_path / "missing.db"
    with pytest.raises(backup.BackupFailed) as exc:
        backup.backup(f"sqlite:///{missing}", d)
    assert exc.value.code == "backup_no_database"
    assert not missing.exists()  # no empty database made where the real one should be
    assert list(d.iterdir()) == []  # and no temporary file left


def test_cli_backup_writes_and_prunes(tmp_path: Path) -> None:
    db = _live_sqlite(tmp_path, rows=10)
    cfg = _config(tmp_path, f"sqlite:///{db}")
    d = tmp_path / "backup"
    d.mkdir()
    old = d / "genba-20200101-000000.db"
    old.write_bytes(b"x")
    r = _run("backup", "--config", str(cfg), "--dir", str(d), "--keep-days", "14")
    assert r.returncode == 0, r.stderr
    written = [p for p in d.iterdir()]
    assert len(written) == 1 and written[0].suffix == ".db" and _mode(written[0]) == 0o600
    assert f"(written): {written[0]}" in r.stdout
    assert f"(pruned): {old}" in r.stdout and not old.exists()
    copy = sqlite3.connect(written[0])
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()


def test_cli_backup_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    db = _live_sqlite(tmp_path, rows=10)
    cfg = _config(tmp_path, f"sqlite:///{db}")
    r = _run("backup", "--config", str(cfg), "--dir", str(tmp_path / "nope"))
    assert r.returncode == 2 and "backup_dir_missing" in r.stderr and "ディレクトリがありません" in r.stderr
    assert "Traceback" not in r.stderr

    d = tmp_path / "backup"
    d.mkdir()
    unreachable = _config(tmp_path, f"postgresql+psycopg://genba:s3cret@127.0.0.1:{free_port()}/genba")
    r = _run("backup", "--config", str(unreachable), "--dir", str(d))
    assert r.returncode == 2 and "backup_failed" in r.stderr and "pg_dump" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "s3cret" not in r.stderr
    assert list(d.iterdir()) == []

    r = _run("backup", "--config", str(cfg), "--dir", str(d), "--keep-days", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_the_pg_dump_password_goes_in_the_environment_only() -> None:
    url = "postgresql+psycopg://genba:s3cret%2Fx@db.example:5433/genba?sslmode=require"
    argv, env = backup.pg_dump_command(url, "/usr/bin/pg_dump", Path("/tmp/x.dump"))
    assert not any("s3cret" in a for a in argv)
    assert env["PGPASSWORD"] == "s3cret/x"
    assert "--dbname=postgresql://genba@db.example:5433/genba?sslmode=require" in argv
    assert "--format=custom" in argv and "--no-password" in argv


@pytest.mark.postgres
def test_postgres_backup_is_a_pg_dump_that_restores(tmp_path: Path, pg: PrivatePostgres, pg_template: str) -> None:
    import psycopg

    url = pg.create_database("backup_src", template=pg_template)
    libpq = url.replace("+psycopg", "")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO probe VALUES (1, '現場'), (2, 'gate')")
    d = tmp_path / "backup"
    d.mkdir()
    try:
        result = backup.backup(url, d)
        assert result.path.suffix == ".dump" and backup.NAME_RE.match(result.path.name)
        assert _mode(result.path) == 0o600
        assert sorted(p.name for p in d.iterdir()) == [result.path.name]

        pg_restore = backup.find_pg_tool("pg_restore")
        assert pg_restore
        listing = subprocess.run([pg_restore, "--list", str(result.path)], capture_output=True, text=True, check=True)
        assert "TABLE public alembic_version" in listing.stdout and "TABLE public probe" in listing.stdout

        # And it restores: into a new database, with the rows and the schema revision.
        restored = pg.create_database("backup_restored")
        subprocess.run([pg_restore, "--no-owner", f"--dbname={restored.replace('+psycopg', '')}", str(result.path)],
                       capture_output=True, text=True, check=True)
        with psycopg.connect(restored.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT note FROM probe ORDER BY id").fetchall() == [("現場",), ("gate",)]
        assert migrate.current(restored) == migrate.current(url) is not None
    finally:
        pg.drop_database("backup_src")
        pg.drop_database("backup_restored")
