"""A private pcscd with vsmartcard's virtual reader (vpcd), for the PC/SC reader tests.

Why this exists: the tests must not use (or disturb) the machine's own pcscd and its readers, and
two test runs must not collide. pcscd 1.9 has no option for its socket or pid file: both are
compiled in under /run/pcscd, and a second pcscd refuses to start while the first one's socket and
pid file are there. So this pcscd runs in a mount namespace of its own (``unshare --mount``, plus
``--user --map-root-user`` when not root) in which a private directory is bind-mounted over /run:
its /run/pcscd/pcscd.comm is ``<dir>/run/pcscd/pcscd.comm`` for everyone else, and the machine's
/run is untouched. Clients find it through ``PCSCLITE_CSOCK_NAME`` (read by libpcsclite once per
process, at its first call: set it before the first pyscard call, and keep one path per process —
``PrivatePcscd(socket_dir=…)`` reuses a directory so a restarted pcscd has the same path).

Its only reader is vpcd from a private reader.conf.d (``--config``), listening for virtual cards on
a free TCP port (``DEVICENAME /dev/null:PORT``; Debian's vpcd opens two slots, on PORT and PORT+1,
both picked free, both bound to every interface by vpcd itself). The reader gets a name of our own,
so a test can select it the way the gate selects an RC-S300 (``pcsc:RC-S300``). With /run hidden,
this pcscd sees no udev and so does not grab a real USB reader either.

``stop()`` is pcscd going away with its readers (a clean SIGTERM), ``kill()`` the same abruptly;
``start()`` again brings the reader back on the same socket and port: the tests' unplug and replug.

    with PrivatePcscd() as pcscd:
        os.environ["PCSCLITE_CSOCK_NAME"] = str(pcscd.socket_path)
        ... VirtualCard(pcscd.port, atr, uid) ...
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PCSCD", "PrivatePcscd", "VPCD_DRIVER"]

PCSCD = shutil.which("pcscd") or "/usr/sbin/pcscd"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
DEFAULT_READER_NAME = "SONY FeliCa RC-S300/P (virtual)"

_INSTALL_HINT = (
    "pcscd and the vpcd virtual reader are needed for the PC/SC reader tests: "
    "apt-get install pcscd libccid vsmartcard-vpcd (make system-deps does it as root)"
)


def _port_pair_free(port: int) -> bool:
    """Whether PORT and PORT+1 can both be bound now (vpcd listens on both, on every interface)."""
    socks: list[socket.socket] = []
    try:
        for p in (port, port + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("0.0.0.0", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port_pair() -> int:
    """A port P with P and P+1 free (there is a race with vpcd binding them; start() checks for it)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("0.0.0.0", 0))
            port = int(s.getsockname()[1])
        if port < 65535 and _port_pair_free(port):
            return port
    raise RuntimeError("no two consecutive free TCP ports")


class PrivatePcscd:
    """One pcscd process with one virtual reader; start/stop may alternate, socket path and port stay."""

    def __init__(self, socket_dir: Path | None = None, *, reader_name: str = DEFAULT_READER_NAME,
                 start_timeout: float = 15.0) -> None:
        if not (os.access(PCSCD, os.X_OK) and os.path.exists(VPCD_DRIVER)):
            raise RuntimeError(_INSTALL_HINT)
        self._own_dir = socket_dir is None
        self.directory = Path(tempfile.mkdtemp(prefix="genba-pcscd-")) if socket_dir is None else socket_dir
        self.reader_name = reader_name
        self.start_timeout = start_timeout
        self.port = free_port_pair()
        self._proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)

    # --- where things are -------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """Mounted over /run inside pcscd's namespace."""
        return self.directory / "run"

    @property
    def socket_path(self) -> Path:
        """The value for PCSCLITE_CSOCK_NAME."""
        return self.run_dir / "pcscd" / "pcscd.comm"

    @property
    def first_reader(self) -> str:
        """The PC/SC name of vpcd's first slot (the one on ``port``), as pcscd lists it."""
        return f"{self.reader_name} 00 00"

    @property
    def config_dir(self) -> Path:
        return self.directory / "reader.conf.d"

    @property
    def log_file(self) -> Path:
        return self.directory / "pcscd.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    # --- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> PrivatePcscd:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> PrivatePcscd:
        """Start pcscd and wait until it serves clients with the virtual reader."""
        if self.running:
            raise RuntimeError("pcscd is already running")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        if not _port_pair_free(self.port):  # taken since we chose it (or last ran): choose again
            self.port = free_port_pair()
        (self.config_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{self.reader_name}"\n'
            f"DEVICENAME   /dev/null:0x{self.port:04X}\n"  # /dev/null: vpcd listens (server mode)
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.port:04X}\n",
            encoding="utf-8",
        )
        argv = [UNSHARE]
        if os.geteuid() != 0:
            argv += ["--user", "--map-root-user"]  # a user namespace lets a normal user mount privately
        argv += [
            "--mount", "--propagation", "private",
            "sh", "-c", 'mount --bind "$1" /run && exec "$2" --foreground --info --apdu --config "$3"',
            "sh", str(self.run_dir), PCSCD, str(self.config_dir),
        ]  # fmt: skip
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child, closed right after
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)  # Ctrl-C reaches pytest, not pcscd
        finally:
            log.close()
        self._wait_ready(offset)
        return self

    def _wait_ready(self, offset: int) -> None:
        """Until this run's log says the daemon is ready with vpcd listening, and the socket is there."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"pcscd exited at start:\n{self.log_tail()}")
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", errors="replace")
            if "daemon ready" in text and self.socket_path.exists():
                if f"Waiting for virtual ICC on port {self.port}" not in text:
                    self.kill()
                    raise RuntimeError(f"vpcd did not open port {self.port}:\n{self.log_tail()}")
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"pcscd did not become ready within {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: pcscd shuts down cleanly and its readers disappear with it."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: the reader vanishes without a word (the closest to a yanked USB cable pcscd has)."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)  # our own child, by its pid (unshare and sh exec into pcscd)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # A killed pcscd leaves its socket file; a client would then wait on a dead socket.
        self.socket_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop pcscd and remove the directory (when it is ours). Idempotent."""
        self.stop()
        if self._own_dir and self.directory.exists():
            shutil.rmtree(self.directory, ignore_errors=True)
