"""A private, throw-away PostgreSQL server for the test suite.

Why this exists: the tests must never touch the machine's shared PostgreSQL
(port 5432) or its databases. Instead each test session runs ``initdb`` into a
fresh temporary directory, starts its own ``postgres`` on a free TCP port bound
to 127.0.0.1 only, and deletes everything again when done. Durability is
switched off (fsync, synchronous_commit, full_page_writes) because the data is
thrown away anyway; that makes start-up take about a second.

``initdb`` refuses to run as root, and CI runs as root. So when we are root the
temporary directory is handed to the ``postgres`` system user and ``initdb`` /
``pg_ctl`` are run through ``runuser -u postgres --``. As a normal user they run
directly as that user.

This module deliberately does not import pytest so it can also be used from a
REPL or a script::

    with PrivatePostgres() as pg:
        url = pg.create_database("scratch")
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    import psycopg

__all__ = ["PrivatePostgres", "find_pg_bindir"]

#: The user the server runs as when we are root (initdb refuses root).
SERVICE_USER = "postgres"
#: Superuser role created by initdb; trust auth, so no password.
SUPERUSER = "postgres"
#: The shared server's port; we must never use it.
SHARED_PORT = 5432

_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found in "
    "/usr/lib/postgresql/<version>/bin, via `pg_config --bindir`, or on PATH. "
    "The test suite starts its own private PostgreSQL server and needs them: "
    "install with `apt-get install postgresql` (Debian/Ubuntu)."
)

# Environment variables that would silently redirect pg_ctl/libpq elsewhere
# (e.g. PGDATA, PGPORT, PGHOST pointing at the shared server).
_PG_ENV_PREFIX = "PG"

_BIND_FAILURE = re.compile(
    r"could not bind|address already in use|could not create any TCP/IP sockets",
    re.IGNORECASE,
)


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: numeric, newest last."""
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def _has_server_binaries(bindir: str | os.PathLike[str]) -> bool:
    return all(os.access(Path(bindir) / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres"))


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb``/``pg_ctl``/``postgres``.

    Debian/Ubuntu keep them off PATH under /usr/lib/postgresql/<version>/bin,
    so that is searched first (newest version wins). ``pg_config --bindir``
    comes next, but it can name a libpq-only install without server binaries,
    so every candidate is checked. PATH is the last resort.

    Raises:
        RuntimeError: nothing usable is installed; the message says what to
            install.
    """
    candidates: list[str] = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(out)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))

    for candidate in candidates:
        if _has_server_binaries(candidate):
            return Path(candidate)
    raise RuntimeError(_INSTALL_HINT)


def _free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (never 5432).

    There is an unavoidable race between closing this socket and postgres
    binding the port; start() retries on a bind failure.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != SHARED_PORT:
            return port


class PrivatePostgres:
    """A PostgreSQL server owned by one test session, in a temporary directory.

    Usage::

        with PrivatePostgres() as pg:
            url = pg.create_database("genbagate_test")  # SQLAlchemy URL
            ...
        # server stopped, directory removed

    ``stop()`` is idempotent and is also registered with :mod:`atexit`, so the
    server and its directory go away even if a test run is interrupted.
    """

    host: str = "127.0.0.1"

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        start_timeout: float = 30.0,
        port_attempts: int = 5,
    ) -> None:
        """Prepare (but do not start) a server.

        Args:
            bindir: PostgreSQL bin directory; found with find_pg_bindir() if None.
            start_timeout: seconds pg_ctl waits for the server to accept connections.
            port_attempts: how many free ports to try if another process grabs
                the chosen port between our probe and postgres binding it.
        """
        self._bindir = Path(bindir) if bindir is not None else None
        self._start_timeout = start_timeout
        self._port_attempts = port_attempts
        self._base_dir: Path | None = None
        self._port: int | None = None
        self._running = False
        self._as_root = os.geteuid() == 0

    # ------------------------------------------------------------------ props

    @property
    def port(self) -> int:
        """TCP port the server listens on (127.0.0.1 only)."""
        if self._port is None or not self._running:
            raise RuntimeError("PrivatePostgres is not running; call start() first")
        return self._port

    @property
    def base_dir(self) -> Path:
        """Temporary directory holding data dir, socket and log."""
        if self._base_dir is None:
            raise RuntimeError("PrivatePostgres has not been started")
        return self._base_dir

    @property
    def data_dir(self) -> Path:
        """The cluster's PGDATA (inside base_dir; removed by stop())."""
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        """The server log (handy when debugging a failing test)."""
        return self.base_dir / "postgres.log"

    @property
    def running(self) -> bool:
        return self._running

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for ``dbname`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    # --------------------------------------------------------------- lifecycle

    def start(self) -> PrivatePostgres:
        """initdb into a new temp dir and start the server; returns self.

        Raises:
            RuntimeError: binaries missing, or the server failed to start (the
                message includes the server log).
        """
        if self._running:
            raise RuntimeError("PrivatePostgres is already running")
        bindir = self._bindir or find_pg_bindir()
        self._bindir = bindir
        # Registered before anything is created so a crash mid-start still
        # cleans up the directory.
        atexit.register(self.stop)
        try:
            self._base_dir = self._make_base_dir()
            self._initdb()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory.

        Safe to call more than once, and after a failed start(). Immediate
        mode skips the shutdown checkpoint and ignores open connections: the
        data is discarded anyway, and a leaked connection must not hang the
        test run.
        """
        atexit.unregister(self.stop)
        base_dir, self._base_dir = self._base_dir, None
        was_running, self._running = self._running, False
        self._port = None
        if base_dir is None:
            return
        data_dir = base_dir / "data"
        if was_running or (data_dir / "postmaster.pid").exists():
            self._stop_server(data_dir)
        shutil.rmtree(base_dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --------------------------------------------------------------- databases

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE ``name`` (optionally as a copy of ``template``) and return its SQLAlchemy URL.

        Uses autocommit because CREATE DATABASE cannot run in a transaction. Copying a migrated
        template is how each test gets a fresh schema without running the migrations again.
        """
        from psycopg import sql

        with self._admin_connection() as conn:
            if template:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
                )
            else:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE ``name`` if it exists, disconnecting any sessions.

        WITH (FORCE) (PostgreSQL 13+) so a connection left open by a test (e.g.
        an undisposed SQLAlchemy engine pool) does not make the drop fail.
        """
        from psycopg import sql

        with self._admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # --------------------------------------------------------------- internals

    def _admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """Autocommit superuser connection to the maintenance database."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def _make_base_dir(self) -> Path:
        """Create the temp dir; when root, hand it to the postgres user.

        When root, the directory must also be reachable by that user, which
        fails if TMPDIR is e.g. under /root (mode 0700); fall back to /tmp then.
        """
        base = Path(tempfile.mkdtemp(prefix="genbagate-pg-"))
        if not self._as_root:
            return base
        try:
            user = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(
                f"running as root but there is no {SERVICE_USER!r} user to run "
                "initdb as (initdb refuses root). Install PostgreSQL with "
                "`apt-get install postgresql`, which creates it, or run the "
                "tests as a non-root user."
            ) from None
        os.chown(base, user.pw_uid, user.pw_gid)
        if self._run(["test", "-w", str(base), "-a", "-x", str(base)], check=False).returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            base = Path(tempfile.mkdtemp(prefix="genbagate-pg-", dir="/tmp"))
            os.chown(base, user.pw_uid, user.pw_gid)
        return base

    def _env(self) -> dict[str, str]:
        """Our environment minus PG* variables that could point at the shared server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PG_ENV_PREFIX)}
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        return env

    def _run(
        self, argv: list[str], *, check: bool = True, new_session: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the service user (when root) with a clean env."""
        if self._as_root:
            argv = ["runuser", "-u", SERVICE_USER, "--", *argv]
        # cwd: the postgres user may not be able to enter our cwd (e.g. /root).
        cwd = str(self._base_dir) if self._base_dir is not None else "/"
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=self._env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            # The postmaster inherits pg_ctl's session; keep it out of the
            # terminal's process group so Ctrl-C reaches only pytest, which
            # then shuts the server down in order via stop().
            start_new_session=new_session,
            timeout=self._start_timeout + 30,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed with exit code {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def _bin(self, name: str) -> str:
        assert self._bindir is not None
        return str(self._bindir / name)

    def _initdb(self) -> None:
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                # Skip fsync of the new cluster: noticeably faster, and the
                # data is thrown away.
                "--no-sync",
            ]
        )

    def _start_server(self) -> None:
        log_file = self.log_file
        failures: list[str] = []
        for _ in range(self._port_attempts):
            port = _free_port()
            log_offset = log_file.stat().st_size if log_file.exists() else 0
            options = " ".join(
                [
                    f"-p {port}",
                    f"-k {shlex.quote(str(self.base_dir))}",  # Unix socket here, not /var/run/postgresql
                    "-c listen_addresses=127.0.0.1",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            proc = self._run(
                [
                    self._bin("pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(self._start_timeout)),
                ],
                check=False,
                new_session=True,
            )
            if proc.returncode == 0:
                self._port = port
                self._running = True
                return
            log = self._read_log(log_offset)
            failures.append(
                f"--- port {port}: pg_ctl exit code {proc.returncode}\n"
                f"{proc.stdout}{proc.stderr}--- server log:\n{log}"
            )
            # pg_ctl -w may give up while a slow postmaster is still alive.
            if (self.data_dir / "postmaster.pid").exists():
                self._stop_server(self.data_dir)
            if not _BIND_FAILURE.search(log):
                break  # not a port collision; retrying will not help
        raise RuntimeError("private PostgreSQL server failed to start:\n" + "\n".join(failures))

    def _read_log(self, offset: int = 0) -> str:
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as fh:
                fh.seek(offset)
                return fh.read()
        except OSError as exc:
            return f"(could not read {self.log_file}: {exc})"

    def _stop_server(self, data_dir: Path) -> None:
        """pg_ctl stop -m immediate; SIGKILL the postmaster if that fails."""
        try:
            proc = self._run(
                [self._bin("pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate", "-w"],
                check=False,
            )
            if proc.returncode == 0:
                return
        except (OSError, subprocess.SubprocessError):
            pass
        pid_file = data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            # As root we could kill anything: make sure the pid (which may
            # have been reused) really is the postmaster of *this* data dir.
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if os.fsencode(str(data_dir)) not in cmdline:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError:
            return  # not ours to kill (non-root, and pid was reused)
        for _ in range(100):  # wait up to ~5 s so rmtree does not race it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
