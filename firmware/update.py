"""Updating the gate's software without re-flashing: verify a signed bundle, install it beside the running
version, switch ``current``, restart, and let firmware/rollback.py switch back if it never gets healthy.

Steps of :func:`apply_bundle` (each refusal raises UpdateError before anything on disk changed):

1. verify: the manifest's ed25519 signature under the gate's public key (made at provisioning), then
   every listed wheel's size and SHA-256;
2. install: versions/<v>/venv is a copy of the running venv (its dependencies already satisfied,
   offline), with the bundle's wheels installed over it (``pip install --no-index --no-deps``) and
   ``pip check`` run; any failure removes versions/<v> again;
3. record ``pending`` (previous, new, deadline, start count) in state/update.json, then switch
   ``current`` atomically, prune to the last two versions, and request a restart.

The new version calls :func:`confirm_healthy` once it is connected with a live tap path
(:class:`HealthConfirmer`); until then firmware/rollback.py, run by systemd before every start and by
a timer, rolls it back after ``max_starts`` failed starts or after the deadline.

On a Command ``update`` the gate calls :func:`apply_offer_in_background`: the wheels are downloaded
(http(s) or file URL) into a staging folder only after the command's signature verified, so a forged
command costs no download.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware import rollback
from firmware.errors import UpdateError
from firmware.rollback import (
    DEFAULT_ROOT,
    VERSIONS,
    HealthConfirmer,
    check_rollback,
    confirm_healthy,
    current_version,
    gate_version,
)
from protocol.errors import ProtocolError
from protocol.update import (
    MANIFEST,
    SIGNATURE,
    UpdateManifest,
    UpdateOffer,
    load_public_key,
    read_bundle_manifest,
    verify,
)

log = logging.getLogger(__name__)

DEFAULT_PUBLIC_KEY = Path("/etc/genbagate/update_key.pub")
DEADLINE_S = 300.0  # time for a new version to reach the broker with a live tap path
MAX_STARTS = 3  # starts without confirming before the way back
PIP_TIMEOUT_S = 600.0
DOWNLOAD_TIMEOUT_S = 60.0
ROLLBACK_SCRIPT = "rollback.py"
LOCK_FILE = "update.lock"  # one update at a time: two commands, or a command and the CLI
# The unit starts <root>/.venv/bin/genba-gate: a link to current/venv, so the unit never changes.
LEGACY_VENV = ".venv"

__all__ = [
    "HealthConfirmer", "apply_bundle", "apply_offer", "apply_offer_in_background", "check_rollback",
    "confirm_healthy", "current_version", "gate_version", "verify_bundle",
]


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _public_key(public_key: Path | bytes) -> Ed25519PublicKey:
    try:
        data = public_key if isinstance(public_key, bytes) else Path(public_key).read_bytes()
        return load_public_key(data)
    except OSError as exc:
        raise UpdateError(f"更新の公開鍵が読めません: {exc.filename or ''} ({exc.strerror or exc})") from None
    except (ProtocolError, ValueError) as exc:
        raise UpdateError(f"更新の公開鍵が正しくありません ({exc})") from None


def verify_bundle(bundle: Path, public_key: Path | bytes) -> UpdateManifest:
    """The bundle's manifest once its signature, and every wheel's size and hash, are right."""
    try:
        manifest, signature = read_bundle_manifest(bundle)
    except OSError as exc:
        raise UpdateError(f"更新バンドルが読めません: {exc.filename or bundle}"
                          "（manifest.json と manifest.sig が必要です）") from None
    except ProtocolError as exc:
        raise UpdateError(f"更新バンドルの manifest.json が正しくありません ({exc})") from None
    try:
        verify(manifest, signature, _public_key(public_key))
    except ProtocolError:
        raise UpdateError(f"更新 {manifest.version} の署名が正しくありません。更新しません（bad signature）") from None
    for f in manifest.files:
        path = bundle / f.name
        if not path.is_file():
            raise UpdateError(f"更新 {manifest.version} のファイル {f.name} がありません。更新しません") from None
        size = path.stat().st_size
        if size != f.size:
            raise UpdateError(f"更新 {manifest.version} のファイル {f.name} の大きさが違います"
                              f"（{size} ≠ {f.size} バイト）。更新しません (size mismatch)")
        if _sha256(path) != f.sha256:
            raise UpdateError(f"更新 {manifest.version} のファイル {f.name} のハッシュが違います。"
                              "更新しません (hash mismatch)")
    return manifest


def _version_key(v: str) -> tuple[int, object]:
    """Order versions by PEP 440 when they are (packaging ships with pip), else not at all."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - pip vendors packaging; the venv always has it
        return (0, v)
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def _older(a: str, b: str) -> bool:
    ka, kb = _version_key(a), _version_key(b)
    return ka[0] == kb[0] == 1 and ka[1] < kb[1]  # type: ignore[operator]


def _copy_venv(src: Path, dst: Path, aliases: Sequence[Path] = ()) -> None:
    """Copy a venv (symlinks kept) and repoint its scripts: their shebangs and activate files name the
    venv's absolute path (or an alias of it, <root>/.venv of a flashed gate), and a copy whose scripts
    still ran the old interpreter would break when the old version is pruned."""
    shutil.copytree(src, dst, symlinks=True)
    new = str(dst.resolve()).encode()
    olds = [str(src.resolve()).encode(), *(str(a).encode() for a in aliases)]
    for p in (dst / "bin").iterdir():
        if p.is_symlink() or not p.is_file():
            continue
        data = p.read_bytes()
        if b"\0" in data[:1024] or not any(old in data for old in olds):
            continue
        for old in olds:
            data = data.replace(old + b"/", new + b"/")
        mode = p.stat().st_mode
        p.write_bytes(data)
        os.chmod(p, mode)


def _run(cmd: list[str], what: str) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"{what}に失敗しました ({exc})") from None
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
        raise UpdateError(f"{what}に失敗しました: " + " / ".join(tail))


def _install_rollback_script(root: Path) -> None:
    """Put this (known-good) version's rollback.py where systemd runs it, atomically."""
    src = Path(rollback.__file__)
    fd, tmp = tempfile.mkstemp(prefix=".rollback.", dir=root)
    with os.fdopen(fd, "wb") as fh:
        fh.write(src.read_bytes())
    os.chmod(tmp, 0o644)
    os.replace(tmp, root / ROLLBACK_SCRIPT)


def apply_bundle(bundle: Path, public_key: Path | bytes, root: Path = DEFAULT_ROOT, *,
                 restart: Callable[[], None] | None = None, deadline_s: float = DEADLINE_S,
                 max_starts: int = MAX_STARTS, check_deps: bool = True) -> str:
    """Verify, install and switch to the bundle's version; returns it. Raises UpdateError, with nothing
    switched, when the bundle is refused or cannot install."""
    root = Path(root)
    manifest = verify_bundle(bundle, public_key)
    (root / "state").mkdir(parents=True, exist_ok=True)
    with open(root / "state" / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpdateError("別の更新が進行中です。終わるのを待ってください") from None
        return _apply_locked(bundle, manifest, root, restart=restart, deadline_s=deadline_s,
                             max_starts=max_starts, check_deps=check_deps)


def _apply_locked(bundle: Path, manifest: UpdateManifest, root: Path, *, restart: Callable[[], None] | None,
                  deadline_s: float, max_starts: int, check_deps: bool) -> str:
    v = manifest.version
    previous = current_version(root)
    if previous is None and (root / LEGACY_VENV).is_dir() and not (root / LEGACY_VENV).is_symlink():
        previous = adopt(root, installed_version(root / LEGACY_VENV) or "0")  # a flashed gate's first update
    if previous is None or not (root / VERSIONS / previous / "venv").is_dir():
        raise UpdateError(f"{root}/current がありません: 最初の版はイメージの書き込み（flash）で入れます")
    if v == previous:
        raise UpdateError(f"版 {v} はもう動いています。更新しません")
    # Only forward: an older bundle signed long ago (one with a known bug) must not be replayable by
    # whoever can publish on the gate's cmd topic. Going back is the rollback's job, not an update's.
    if not _older(previous, v):
        raise UpdateError(f"版 {v} は今の版 {previous} より新しくありません。古い版には更新しません")
    if manifest.min_previous_version and _older(previous, manifest.min_previous_version):
        raise UpdateError(f"版 {v} には先に版 {manifest.min_previous_version} 以降が必要です（今は {previous}）")
    pending = rollback.read_state(root).get("pending")
    if pending:
        raise UpdateError(f"前の更新（版 {pending.get('new')}）がまだ正常と確認されていません。"
                          "確認か戻しを待ってください")

    target = root / VERSIONS / v
    if target.exists():  # a version installed before and left (rolled back, or pruned half-way)
        shutil.rmtree(target)
    target.mkdir(parents=True)
    try:
        _copy_venv(root / VERSIONS / previous / "venv", target / "venv", aliases=[root / LEGACY_VENV])
        python = str(target / "venv" / "bin" / "python")
        wheels = [str(bundle / f.name) for f in manifest.files]
        _run([python, "-m", "pip", "install", "--no-index", "--no-deps", "--force-reinstall",
              "--disable-pip-version-check", "--no-warn-script-location", *wheels], f"版 {v} のインストール")
        if check_deps:
            _run([python, "-m", "pip", "check", "--disable-pip-version-check"], f"版 {v} の依存関係の確認")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise

    _install_rollback_script(root)
    state = rollback.read_state(root)
    state["pending"] = {"previous": previous, "new": v, "deadline": time.time() + deadline_s,
                        "confirmed": False, "starts": 0, "max_starts": max_starts, "applied_at": time.time()}
    state.setdefault("history", []).append({"event": "applied", "at": time.time(), "version": v, "previous": previous})
    rollback.write_state(root, state)  # first: a crash before the switch is seen as "abandoned"
    rollback.switch_current(root, v)
    _link_legacy_venv(root)
    rollback.prune(root, keep=[v, previous])
    log.info("update %s installed (was %s); restarting", v, previous)
    if restart is not None:
        restart()
    return v


def _link_legacy_venv(root: Path) -> None:
    link = root / LEGACY_VENV
    if not os.path.lexists(link):
        os.symlink(Path(rollback.CURRENT) / "venv", link)


def installed_version(venv: Path, dist: str = "genbagate") -> str | None:
    """The version of ``dist`` installed in ``venv`` (from its .dist-info folder's name), or None."""
    for info in sorted(venv.glob(f"lib/python*/site-packages/{dist}-*.dist-info")):
        return info.name.removesuffix(".dist-info").split("-", 1)[1]
    return None


def adopt(root: Path, version: str) -> str:
    """Turn a flashed gate's <root>/.venv into versions/<version>/venv with ``current`` and a .venv link,
    so that the first update has a version to copy and to go back to. Idempotent: a root that already
    has ``current`` is left as it is. The venv is moved, not copied: its scripts name <root>/.venv,
    which keeps pointing at it through the link."""
    root = Path(root)
    have = current_version(root)
    if have:
        return have
    venv = root / LEGACY_VENV
    if venv.is_symlink() or not venv.is_dir():
        raise UpdateError(f"{venv} がありません: 取り込む版がありません")
    target = root / VERSIONS / version
    if target.exists():
        raise UpdateError(f"{target} がもうあります")
    target.mkdir(parents=True)
    os.rename(venv, target / "venv")
    rollback.switch_current(root, version)
    _link_legacy_venv(root)
    return version


def _download(url: str, dst: Path, size: int) -> None:
    """At most ``size`` + 1 bytes: a server that sends more is refused by the size check, not filled in."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, open(dst, "wb") as fh:  # noqa: S310
        remaining = size + 1
        while remaining > 0:
            block = resp.read(min(1 << 20, remaining))
            if not block:
                break
            fh.write(block)
            remaining -= len(block)


def apply_offer(offer: UpdateOffer, public_key: Path | bytes, root: Path = DEFAULT_ROOT, *,
                restart: Callable[[], None] | None = None, deadline_s: float = DEADLINE_S,
                max_starts: int = MAX_STARTS) -> str:
    """An ``update`` command's offer: check its signature, download the wheels to a staging folder under
    the root, then :func:`apply_bundle`. The staging folder is removed whatever happens."""
    try:
        verify(offer.manifest, offer.signature, _public_key(public_key))
    except ProtocolError:
        raise UpdateError(f"更新 {offer.manifest.version} の署名が正しくありません。ダウンロードしません") from None
    staging_parent = Path(root) / "state"
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download.", dir=staging_parent))
    try:
        (staging / MANIFEST).write_text(offer.manifest.model_dump_json(), encoding="utf-8")
        (staging / SIGNATURE).write_text(offer.signature + "\n", encoding="ascii")
        base = offer.url.rstrip("/")
        for f in offer.manifest.files:
            try:
                _download(f"{base}/{f.name}", staging / f.name, f.size)
            except (OSError, ValueError) as exc:
                raise UpdateError(
                    f"更新 {offer.manifest.version} の {f.name} をダウンロードできません ({exc})") from None
        return apply_bundle(staging, public_key, root, restart=restart, deadline_s=deadline_s, max_starts=max_starts)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def restart_self() -> None:
    """The running gate's restart after an update: SIGTERM to itself, which `genba-gate run` handles as a
    clean stop (buffer closed, status written); systemd's Restart=always starts it again, from ``current``.
    No privileges needed: the gate runs as its own user with NoNewPrivileges, so `systemctl` is no option."""
    os.kill(os.getpid(), signal.SIGTERM)


def apply_offer_in_background(offer: UpdateOffer, public_key: Path | bytes = DEFAULT_PUBLIC_KEY,
                              root: Path = DEFAULT_ROOT, *, restart: Callable[[], None] | None = restart_self,
                              on_error: Callable[[UpdateError], None] | None = None) -> threading.Thread:
    """For the gate's command handler: downloads and pip take minutes on a Pi, the tap path must not wait.
    By default the gate restarts itself (:func:`restart_self`) once the new version is switched in."""
    def run() -> None:
        try:
            apply_offer(offer, public_key, root, restart=restart)
        except UpdateError as exc:
            log.error("update refused: %s", exc)
            if on_error is not None:
                on_error(exc)
        except Exception:  # a bug here must not take the gate down with it
            log.exception("update failed")

    t = threading.Thread(target=run, name="gate-update", daemon=True)
    t.start()
    return t


# --- `genba-gate update ...` -------------------------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register ``update apply|rollback-check|confirm|status`` under genba-gate's subcommands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "update", help="ソフトウェアの更新: 署名済みバンドルの適用、正常確認、自動の戻し")
    sub = p.add_subparsers(dest="update_command", required=True, metavar="UPDATE_COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="更新の置き場所（既定 /opt/genbagate）")

    sp = sub.add_parser("apply", help="署名済みバンドル（フォルダー）を検証して入れ、切り替えて再起動する")
    sp.add_argument("bundle", type=Path, metavar="BUNDLE")
    common(sp)
    sp.add_argument("--public-key", type=Path, default=DEFAULT_PUBLIC_KEY,
                    help="更新の公開鍵（既定 /etc/genbagate/update_key.pub）")
    sp.add_argument("--deadline", type=float, default=DEADLINE_S, help="この秒数内に正常にならなければ前の版に戻す")
    sp.add_argument("--no-restart", action="store_true", help="切り替えるだけで再起動しない")
    sp.set_defaults(func=main)

    sp = sub.add_parser("rollback-check", help="正常と確認されないまま期限を過ぎた版を前の版に戻す")
    common(sp)
    sp.add_argument("--starting", action="store_true", help="起動前の確認（起動回数を数える）")
    sp.add_argument("--restart", action="store_true", help="戻したら genba-gate を再起動する")
    sp.set_defaults(func=main)

    sp = sub.add_parser("adopt", help="書き込んだときの .venv を最初の版として取り込む（初回起動で一度）")
    common(sp)
    sp.add_argument("--version", help="その版の名前（既定: 入っている genbagate の版）")
    sp.set_defaults(func=main)

    sp = sub.add_parser("status", help="今の版、入っている版、確認待ちの更新")
    common(sp)
    sp.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run one ``genba-gate update`` subcommand; refusals print Japanese and exit 1."""
    root: Path = args.root
    if args.update_command == "apply":
        try:
            v = apply_bundle(args.bundle, args.public_key, root, deadline_s=args.deadline,
                             restart=None if args.no_restart else rollback.systemctl_restart())
        except UpdateError as exc:
            print(f"更新しません: {exc}", file=sys.stderr)
            return 1
        print(f"版 {v} に切り替えました。{int(args.deadline)} 秒以内に正常にならなければ自動で前の版に戻ります。")
        return 0
    if args.update_command == "rollback-check":
        back = check_rollback(root, starting=args.starting,
                              restart=rollback.systemctl_restart() if args.restart else None)
        print(f"新しい版が正常にならなかったため、版 {back} に戻しました。" if back else "戻す必要はありません。")
        return 0
    if args.update_command == "adopt":
        try:
            v = adopt(root, args.version or installed_version(root / LEGACY_VENV) or gate_version(root))
        except (UpdateError, OSError) as exc:
            print(f"取り込めません: {exc}", file=sys.stderr)
            return 1
        print(f"今の版: {v}（{root}/current）")
        return 0
    state = rollback.read_state(root)
    print(f"今の版: {current_version(root) or 'なし'}")
    print(f"入っている版: {', '.join(rollback.installed_versions(root)) or 'なし'}")
    pending = state.get("pending")
    if pending:
        left = float(pending.get("deadline", 0)) - time.time()
        print(f"確認待ち: 版 {pending.get('new')}（前の版 {pending.get('previous')}、あと {max(0, int(left))} 秒、"
              f"起動 {pending.get('starts', 0)}/{pending.get('max_starts', MAX_STARTS)} 回）")
    for h in state.get("history", [])[-5:]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(h.get("at", 0))))
        print(f"  {when} {h.get('event')} {h.get('version', '')} {h.get('reason', '')}".rstrip())
    return 0
