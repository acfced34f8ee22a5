"""The gate's version switch and its automatic way back: standard library only, runnable as a file.

Layout under the update root (default /opt/genbagate)::

    versions/<v>/venv     one virtualenv per installed version (the last two are kept)
    current -> versions/<v>   what systemd starts (ExecStart=<root>/current/venv/bin/genba-gate run)
    state/update.json     {"pending": {...} | null, "history": [...]}
    rollback.py           a copy of this file, written by each install

Why a standalone file: the check that undoes a broken version must not run *from* that version. A
new version that cannot even import would otherwise never roll itself back. So systemd runs
``/usr/bin/python3 <root>/rollback.py --root <root> --starting`` before every start (ExecStartPre)
and from a timer; this file imports nothing outside the standard library and nothing of the gate.

A pending update is rolled back when either
- its deadline passed and the new version never called :func:`confirm_healthy` (it runs but never
  reached the broker with a live tap path), or
- it was started more than ``max_starts`` times without confirming (it crashes, or the systemd
  watchdog kills it: each start passes through ExecStartPre, which counts).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/opt/genbagate")
STATE_FILE = Path("state") / "update.json"
VERSIONS = "versions"
CURRENT = "current"
HISTORY_KEEP = 20
KEEP_VERSIONS = 2  # the running one and the one to go back to; SD cards are small


def read_state(root: Path) -> dict[str, Any]:
    """The update state; a missing or unreadable file is "nothing pending" (never a crash at start)."""
    try:
        data = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"pending": None, "history": []}
    if not isinstance(data, dict):
        return {"pending": None, "history": []}
    data.setdefault("pending", None)
    data.setdefault("history", [])
    return data


def write_state(root: Path, state: dict[str, Any]) -> None:
    """Atomically (temp file, fsync, rename): a power cut leaves the old state or the new, never half.

    Readable by all and owned like the root folder: the rollback units write it as root, the gate
    (its own user) must still read and replace it to confirm its health."""
    path = root / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    state["history"] = list(state.get("history", []))[-HISTORY_KEEP:]
    fd, tmp = tempfile.mkstemp(prefix=".update.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        if os.geteuid() == 0:
            owner = os.stat(root)
            os.fchown(fd, owner.st_uid, owner.st_gid)
            os.chown(path.parent, owner.st_uid, owner.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, ensure_ascii=False, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_version(root: Path) -> str | None:
    """The version ``current`` points at, or None before the first install."""
    link = root / CURRENT
    try:
        target = os.readlink(link)
    except OSError:
        return None
    return Path(target).name


def switch_current(root: Path, version: str) -> None:
    """Point ``current`` at versions/<version> atomically: a new link under a temp name, then rename
    over the old one, so there is no moment without a ``current`` for systemd to start."""
    if not (root / VERSIONS / version / "venv").is_dir():
        raise FileNotFoundError(f"{root / VERSIONS / version / 'venv'} is not installed")
    tmp = root / f".{CURRENT}.{os.getpid()}.{time.monotonic_ns()}"
    os.symlink(Path(VERSIONS) / version, tmp)  # relative: the root can be moved or mounted elsewhere
    try:
        os.replace(tmp, root / CURRENT)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def running_version(root: Path, prefix: str | None = None) -> str | None:
    """The version of the running interpreter's venv (``sys.prefix`` = <root>/versions/<v>/venv),
    or None when this process does not run from the update root (a developer's checkout)."""
    here = Path(prefix or sys.prefix).resolve()
    versions = (root / VERSIONS).resolve()
    if here.name == "venv" and here.parent.parent == versions:
        return here.parent.name
    return None


def installed_versions(root: Path) -> list[str]:
    """Installed versions, oldest install first (by folder time)."""
    base = root / VERSIONS
    if not base.is_dir():
        return []
    dirs = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "venv").is_dir()]
    return [p.name for p in sorted(dirs, key=lambda p: (p.stat().st_mtime, p.name))]


def prune(root: Path, keep: Sequence[str]) -> list[str]:
    """Remove every installed version except ``keep`` (and whatever ``current`` points at)."""
    keep_set = set(keep) | {v for v in [current_version(root)] if v}
    removed: list[str] = []
    base = root / VERSIONS
    if not base.is_dir():
        return removed
    for p in base.iterdir():
        if p.name not in keep_set:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def _record(state: dict[str, Any], event: str, **details: Any) -> None:
    state.setdefault("history", []).append({"event": event, "at": time.time(), **details})


def confirm_healthy(root: Path, version: str | None = None) -> bool:
    """Called by the running gate once it is healthy (connected to the broker, tap path alive).

    Clears the pending update when the healthy version is the new one, and prunes to the last two
    versions. Returns True when this call confirmed an update. An older version being healthy (after a
    rollback) confirms nothing."""
    state = read_state(root)
    pending = state.get("pending")
    if not pending:
        return False
    version = version or running_version(root) or current_version(root)
    if version != pending.get("new") or current_version(root) != version:
        return False
    _record(state, "confirmed", version=version, previous=pending.get("previous"))
    state["pending"] = None
    write_state(root, state)
    prune(root, keep=[str(version), str(pending.get("previous"))])
    return True


def check_rollback(root: Path, *, starting: bool = False, failed: bool = False, now: float | None = None,
                   restart: Callable[[], None] | None = None) -> str | None:
    """Undo a pending update that did not prove itself. Returns the version switched back to, or None.

    ``starting``: this call is the ExecStartPre of a start of the gate; it counts the start, and a
    new version started more than ``max_starts`` times without confirming is rolled back before the
    next start (ExecStart then runs the old one: ``current`` is read at exec time). Without it (the
    timer, the gate's own check) only the deadline counts. ``restart`` is called after a rollback
    when the gate must be restarted to run the old version (the timer's case, not ExecStartPre's).
    ``failed``: systemd gave up on the unit (OnFailure=): a pending version is rolled back at once."""
    state = read_state(root)
    pending = state.get("pending")
    if not pending or pending.get("confirmed"):
        return None
    now = time.time() if now is None else now
    new, previous = str(pending.get("new")), str(pending.get("previous"))
    if current_version(root) != new:
        # Someone switched by hand (or a crash came between writing pending and switching).
        _record(state, "abandoned", version=new, current=current_version(root))
        state["pending"] = None
        write_state(root, state)
        return None
    reason = "the gate's unit failed" if failed else None
    if starting and reason is None:
        pending["starts"] = int(pending.get("starts", 0)) + 1
        if pending["starts"] > int(pending.get("max_starts", 3)):
            reason = f"started {pending['starts'] - 1} times without becoming healthy"
    if reason is None and now > float(pending.get("deadline", 0)):
        reason = "not healthy before the deadline"
    if reason is None:
        state["pending"] = pending
        write_state(root, state)
        return None
    switch_current(root, previous)
    _record(state, "rolled_back", version=new, to=previous, reason=reason)
    state["pending"] = None
    write_state(root, state)
    if restart is not None:
        restart()
    return previous


CONFIRM_AFTER_S = 90.0  # healthy this long without a break before an update counts as good


class HealthConfirmer:
    """Called from the gate's housekeeping loop with "healthy now?"; confirms a pending update once the
    answer has been yes for ``stable_s`` without a break, then costs nothing. Healthy = connected to
    the broker and the tap path alive (the same test that feeds the systemd watchdog). Not at the
    first yes: a version that crashes on its first tap or its first config would be confirmed seconds
    after it started, and then crash-loop for ever with nothing left to roll it back.

    It confirms only the version this process runs from (an old process still up after the switch
    must not vouch for the new one); a process that does not run from the root confirms nothing."""

    def __init__(self, root: Path = DEFAULT_ROOT, version: str | None = None,
                 stable_s: float = CONFIRM_AFTER_S) -> None:
        self.root = Path(root)
        self.version = version or running_version(self.root)
        self.done = self.version is None
        self.stable_s = stable_s
        self._healthy_since: float | None = None

    def superseded(self) -> bool:
        """``current`` no longer points at the version this process runs from: the rollback check
        (run as the gate's own account, never root) switched it back. The gate then exits cleanly and
        systemd starts the version ``current`` names; no root process has to restart anything."""
        if self.version is None:
            return False
        now = current_version(self.root)
        return now is not None and now != self.version

    def tick(self, healthy: bool, now: float | None = None) -> bool:
        if self.done:
            return False
        if not healthy:
            self._healthy_since = None
            return False
        now = time.monotonic() if now is None else now
        if self._healthy_since is None:
            self._healthy_since = now
        if now - self._healthy_since < self.stable_s:
            return False
        self.done = True
        try:
            confirmed = confirm_healthy(self.root, self.version)
        except OSError as exc:  # a read-only root (a developer's machine): nothing to confirm
            _log.warning("could not confirm the update as healthy: %s", exc)
            return False
        if confirmed:
            _log.info("update confirmed healthy: version %s", current_version(self.root))
        return confirmed


def gate_version(root: Path = DEFAULT_ROOT) -> str:
    """The version for the gate's status: the installed version it runs from, else the package's."""
    v = running_version(Path(root))
    if v:
        return v
    try:
        return metadata.version("genbagate")
    except metadata.PackageNotFoundError:
        return "unknown"


def systemctl_restart(unit: str = "genba-gate") -> Callable[[], None]:
    """The production restart: ``systemctl restart <unit>`` (the rollback timer runs as root)."""
    def _restart() -> None:
        subprocess.run(["systemctl", "restart", "--no-block", unit], check=False, timeout=30)
    return _restart


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 rollback.py --root R [--starting] [--failed] [--restart] | --confirm V``: exits 0 even
    when the check cannot run, so that a failing check never stops the gate from starting."""
    p = argparse.ArgumentParser(prog="genba-gate-rollback",
                                description="更新後に正常にならなかったゲートのソフトウェアを前の版に戻します。")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="更新の置き場所（既定 /opt/genbagate）")
    p.add_argument("--starting", action="store_true", help="ゲートの起動前（ExecStartPre）: 起動回数を数える")
    p.add_argument("--confirm", metavar="VERSION", help="この版が正常に動いていると記録する（動いている版が呼ぶ）")
    p.add_argument("--failed", action="store_true", help="ゲートのユニットが失敗した（OnFailure=）: すぐ戻す")
    p.add_argument("--restart", action="store_true", help="戻したらゲートを再起動する（タイマー・OnFailure 用）")
    args = p.parse_args(argv)
    if args.confirm:
        ok = confirm_healthy(args.root, args.confirm)
        print(f"版 {args.confirm} を正常と記録しました。" if ok else "確認待ちの更新はありません。")
        return 0
    try:
        back = check_rollback(args.root, starting=args.starting, failed=args.failed,
                              restart=systemctl_restart() if args.restart else None)
    except OSError as exc:
        print(f"更新の確認ができません: {exc}", file=sys.stderr)
        return 0
    if back:
        print(f"新しい版が正常にならなかったため、版 {back} に戻しました。")
    return 0


if __name__ == "__main__":
    sys.exit(main())
