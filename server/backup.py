"""Back up the server's database to a dated file, and prune the old ones.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies the live database in one step
under a read transaction, so the copy is a consistent snapshot even while the server and its ingest
workers keep writing (WAL mode: readers do not block writers). The copy is switched to a rollback
journal (one self-contained file), checked with ``PRAGMA integrity_check``, and only then renamed to
``genba-YYYYmmdd-HHMMSS.db``.

PostgreSQL: ``pg_dump --format=custom`` to ``genba-YYYYmmdd-HHMMSS.dump``, checked by reading its
table of contents back with ``pg_restore --list``. The password (if the URL has one) goes to pg_dump
through PGPASSWORD, never on its command line (which every local user can read in /proc).

Every file is written under a hidden temporary name and renamed when complete, so a crash or a full
disk never leaves a half-written file that looks like a backup. Backups are mode 0600: they hold
the workers' personal data.

Pruning keys on the timestamp in the file name (local time), not on the file's mtime: copying or
restoring the backup directory (``cp -r``, rsync without ``-t``, a restore from tape) changes mtimes
but not names, and a name cannot be touched by accident. Only regular files named exactly
``genba-YYYYmmdd-HHMMSS.db`` or ``.dump`` are ever deleted, never the backup just written, and
nothing is pruned when the backup itself failed.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import stat
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from server.errors import GenbaError

NAME_RE = re.compile(r"^genba-(\d{8}-\d{6})\.(db|dump)$")
STAMP_FORMAT = "%Y%m%d-%H%M%S"
DEFAULT_KEEP_DAYS = 14


class BackupFailed(GenbaError):
    """The backup could not be made (no directory, database missing or unreachable, bad copy)."""


@dataclass
class BackupResult:
    path: Path
    pruned: list[Path] = field(default_factory=list)


def backup(database_url: str, directory: str | os.PathLike[str], keep_days: int = DEFAULT_KEEP_DAYS,
           now: datetime | None = None) -> BackupResult:
    """Write one backup of ``database_url`` into ``directory``, then prune backups older than ``keep_days``."""
    if keep_days < 1:
        raise BackupFailed("backup_keep_days", "保存日数は1以上を指定してください", "keep days must be at least 1")
    directory = Path(directory)
    if not directory.is_dir():
        raise BackupFailed(
            "backup_dir_missing",
            f"バックアップ先のディレクトリがありません: {directory}",
            f"no such backup directory: {directory}",
        )
    now = now or datetime.now()
    stamp = now.strftime(STAMP_FORMAT)
    if database_url.startswith("sqlite"):
        path = directory / f"genba-{stamp}.db"
        writer = _backup_sqlite
    elif database_url.startswith("postgresql"):
        path = directory / f"genba-{stamp}.dump"
        writer = _backup_postgres
    else:
        raise BackupFailed("backup_unsupported", f"対応していないデータベースです: {database_url}",
                           "unsupported database URL")
    if path.exists():
        raise BackupFailed("backup_exists", f"同じ名前のバックアップがすでにあります: {path}",
                           f"a backup named {path.name} already exists; try again in a second")
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    try:
        try:
            writer(database_url, tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)
        _fsync_dir(directory)
        return BackupResult(path, prune(directory, keep_days, now, keep=path))
    except OSError as exc:  # not writable, disk full, ...: a message, not a traceback
        raise BackupFailed(
            "backup_failed",
            f"バックアップを書き込めません: {directory}（{exc.strerror or exc}）",
            f"cannot write the backup in {directory}: {exc}",
        ) from exc


def prune(directory: Path, keep_days: int, now: datetime, keep: Path | None = None) -> list[Path]:
    """Delete backups whose name's timestamp is more than ``keep_days`` days before ``now``."""
    cutoff = now - timedelta(days=keep_days)
    pruned = []
    for entry in sorted(directory.iterdir()):
        m = NAME_RE.match(entry.name)
        if not m or (keep is not None and entry.name == keep.name):
            continue
        if not stat.S_ISREG(entry.lstat().st_mode):  # never follow a symlink, never a directory
            continue
        try:
            taken = datetime.strptime(m.group(1), STAMP_FORMAT)
        except ValueError:  # 8 + 6 digits that are not a date: not ours
            continue
        if taken < cutoff:
            entry.unlink()
            pruned.append(entry)
    if pruned:
        _fsync_dir(directory)
    return pruned


# ------------------------------------------------------------------------------------------ SQLite


def _backup_sqlite(database_url: str, tmp: Path) -> None:
    source_path = make_url(database_url).database
    if not source_path or source_path == ":memory:" or not Path(source_path).is_file():
        raise BackupFailed(
            "backup_no_database",
            f"データベースのファイルがありません: {source_path}（genba-server init を先に実行してください）",
            f"no database file at {source_path} (run genba-server init first)",
        )
    # The file exists before SQLite opens it, so it is created 0600 whatever the umask.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        # mode=rw: never create an empty database where the real one should be.
        src = sqlite3.connect(f"file:{_uri_path(source_path)}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise _sqlite_failed(source_path, exc) from exc
    try:
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            # pages=-1 (the default): one step under one read transaction = one consistent snapshot.
            src.backup(dst)
            # The copy keeps the source's WAL flag; a backup is better as one self-contained file.
            dst.execute("PRAGMA journal_mode=DELETE")
            problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupFailed(
                    "backup_corrupt",
                    f"バックアップの検査（integrity_check）に失敗しました: {'; '.join(problems[:5])}",
                    "the copy failed PRAGMA integrity_check",
                )
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise _sqlite_failed(source_path, exc) from exc
    finally:
        src.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))


def _sqlite_failed(source_path: str, exc: sqlite3.Error) -> BackupFailed:
    return BackupFailed(
        "backup_failed",
        f"データベースをバックアップできません: {source_path}（{exc}）",
        f"cannot back up {source_path}: {exc}",
    )


# -------------------------------------------------------------------------------------- PostgreSQL


def find_pg_tool(name: str) -> str | None:
    """``name`` (pg_dump, pg_restore) on PATH, else the newest /usr/lib/postgresql/<version>/bin/."""
    found = shutil.which(name)
    if found:
        return found

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.split("/")[-3]))

    candidates = [p for p in glob.glob(f"/usr/lib/postgresql/*/bin/{name}") if os.access(p, os.X_OK)]
    return max(candidates, key=version) if candidates else None


def pg_dump_command(database_url: str, pg_dump: str, out: Path) -> tuple[list[str], dict[str, str]]:
    """The pg_dump argv and environment for ``database_url``: the password only in the environment."""
    url = make_url(database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    # A libpq URI without the password (host, port, user, database and query options like sslmode).
    # (URL.set(password=None) would keep the password: None means "unchanged" there.)
    conninfo = URL.create(
        "postgresql", username=url.username, host=url.host, port=url.port, database=url.database, query=url.query
    ).render_as_string(hide_password=False)
    argv = [pg_dump, "--format=custom", "--no-password", f"--file={out}", f"--dbname={conninfo}"]
    return argv, env


def _backup_postgres(database_url: str, tmp: Path) -> None:
    pg_dump = find_pg_tool("pg_dump")
    if pg_dump is None:
        raise BackupFailed(
            "backup_no_pg_dump",
            "pg_dump が見つかりません（apt-get install postgresql-client）",
            "pg_dump not found on PATH nor in /usr/lib/postgresql/*/bin (install postgresql-client)",
        )
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # pg_dump truncates it, keeping 0600
    argv, env = pg_dump_command(database_url, pg_dump, tmp)
    _run_pg(argv, env, "pg_dump")
    pg_restore = str(Path(pg_dump).with_name("pg_restore"))
    if not os.access(pg_restore, os.X_OK):
        pg_restore = find_pg_tool("pg_restore") or ""
    if pg_restore:
        _run_pg([pg_restore, "--list", str(tmp)], env, "pg_restore --list")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())


def _run_pg(argv: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=6 * 3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupFailed("backup_failed", f"{what} を実行できません（{exc}）", f"cannot run {what}: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-3:] if done.stderr.strip() else [f"exit {done.returncode}"]
        raise BackupFailed(
            "backup_failed",
            f"{what} が失敗しました: {' / '.join(detail)}",
            f"{what} failed (exit {done.returncode})",
        )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
