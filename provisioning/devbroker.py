"""A private, throw-away Mosquitto broker for the tests and ``make demo``.

Why this exists: the MQTT tests must run against a real broker (retained messages, Last Will,
persistent sessions and QoS 1 behave as Mosquitto implements them, not as a mock imagines), but
never against the machine's own broker on 1883. So each test starts ``/usr/sbin/mosquitto`` with a
generated config on a free port bound to 127.0.0.1, with ``persistence true`` in a temporary
directory: ``stop()`` (SIGTERM, which writes the persistence file) and ``start()`` again on the SAME
port behaves like a broker restart, sessions and retained messages included; ``kill()`` (SIGKILL)
is a crash.

Optional: ``users`` (a password file generated with ``mosquitto_passwd -b``; anonymous clients are
then refused) and ``tls`` (a CA, certificate and key: the listener speaks TLS only).

It does not import pytest: the demo starts one too, and it works from a REPL::

    with PrivateMosquitto(Path("/tmp/broker")) as broker:
        print(broker.url)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["MOSQUITTO", "PrivateMosquitto", "TlsFiles"]

MOSQUITTO = Path(os.environ.get("GENBA_MOSQUITTO", "/usr/sbin/mosquitto"))
#: The machine's own broker; tests must never use it.
SHARED_PORT = 1883


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def free_port() -> int:
    """A TCP port nobody listens on right now (never 1883)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != SHARED_PORT:
            return port


class PrivateMosquitto:
    """One Mosquitto process; ``start``/``stop`` may alternate, the port and the data directory stay."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        extra_config: str = "",
        dropin: Path | None = None,
        port: int | None = None,
    ) -> None:
        if not MOSQUITTO.exists():
            raise RuntimeError(f"{MOSQUITTO} not found: install the broker (apt-get install mosquitto)")
        self._own_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="mosquitto-")) if directory is None else directory
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        self.port = port or free_port()
        self.dropin = dropin
        self.users = dict(users or {})
        self.tls = tls
        self.extra_config = extra_config
        self.log_file = self.directory / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """The ``broker_url`` a GateConfig needs to reach this broker."""
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid_file(self) -> Path:
        return self.directory / "mosquitto.pid"

    def _write_config(self) -> None:
        if self.dropin is not None:
            # The way Debian runs it: a main config (pid, persistence, logs) that includes the
            # generated drop-in, which brings its own listeners, TLS, password files and ACL.
            conf_d = self.directory / "conf.d"
            conf_d.mkdir(exist_ok=True)
            (conf_d / "genbagate.conf").write_text(self.dropin.read_text(encoding="utf-8"), encoding="utf-8")
            lines = [f"include_dir {conf_d}"]
        else:
            lines = [
                f"listener {self.port} 127.0.0.1",
                f"allow_anonymous {'false' if self.users else 'true'}",
            ]
        lines += [
            f"pid_file {self.pid_file}",
            "persistence true",
            f"persistence_location {self.directory / 'data'}",
            "autosave_interval 60",
            "log_dest stderr",
            "log_type all",
            "log_timestamp_format %H:%M:%S",
        ]
        if os.geteuid() == 0:
            # As root Mosquitto drops to the "mosquitto" user, which cannot write our temp directory.
            lines.append("user root")
        if self.users:
            pw = self.directory / "passwd"
            pw.write_text("", encoding="utf-8")
            for name, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), name, password], check=True, capture_output=True)
            lines.append(f"password_file {pw}")
        if self.tls:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}", f"keyfile {self.tls.key_file}"]
        if self.extra_config:
            lines.append(self.extra_config)
        (self.directory / "mosquitto.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout: float = 10.0) -> PrivateMosquitto:
        """Start the broker and return once it accepts TCP connections on its port."""
        if self.running:
            return self
        log = self.log_file.open("ab")
        try:
            self._proc = subprocess.Popen(
                [str(MOSQUITTO), "-c", str(self.directory / "mosquitto.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: a clean shutdown that writes the persistence database."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; only what the last autosave wrote survives."""
        self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def reload(self) -> None:
        """SIGHUP, as `systemctl reload mosquitto` sends it: password files and ACL are re-read."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def close(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivateMosquitto:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
