"""The gate's secrets: broker credentials and its two keys, in one small file apart from everything else.

    # /etc/genbagate/private/secrets.toml   (0600, owned by the gate's account; folder 0700)
    username = "40224614116771-01"
    password = "…"
    uid_key = "9f…"          # 32 random bytes, hex: keys the digest that replaces an acknowledged tap's UID
    roster_key = "5a…"       # the server's roster key (DeviceConfig.roster_key), kept here, not in the buffer

Why a file of its own:

- The buffer (data_dir/buffer.db) and everything else under data_dir may be copied off for support,
  backed up, or read by `genba-gate status`. None of it holds a key, a password or (once acknowledged) a
  card UID: the roster digests in the cached config are useless without the roster key, and the digest
  of an acknowledged UID is useless without ``uid_key``.
- The gate's service account must read it (the unit runs as ``genba``) and write it (``uid_key`` is made
  at the first start, the roster key changes with the server's config), so it is that account's file,
  mode 0600, in a folder of its own (0700) where it can be replaced atomically: write a temporary file,
  fsync, rename, fsync the folder. A power cut leaves the old file or the new one, never half of one.

What it does not do: a thief holding the whole SD card can read this file too (there is no key
off the card on a Raspberry Pi without a TPM or the SoC's OTP key). Separating the file keeps a copy of
the buffer harmless and the secrets away from other accounts; it does not make the card itself safe.

Where no file can be used (old installations whose folder the gate cannot create, tests that build a Gate
by hand), a store lives in memory: the UID digest key is then random per process (the digests are still
one-way, just not comparable across restarts) and the roster key is kept until the process ends.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as _random
import stat
import threading
import tomllib
from pathlib import Path

from firmware.errors import ConfigError

log = logging.getLogger("genba.secrets")

UID_KEY_BYTES = 32
FILE_MODE = 0o600
DIR_MODE = 0o700
_KNOWN = ("username", "password", "uid_key", "roster_key")


def read_secrets(path: Path) -> dict[str, str]:
    """The file's values, or {} when it does not exist. Raises ConfigError when it exists but cannot be
    read (a gate must not silently run without the password it was given)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the secrets file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_KNOWN))
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(_KNOWN)})")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"{path}: {', '.join(bad)} must be strings")
    return {k: str(v) for k, v in data.items()}


def render(values: dict[str, str]) -> str:
    """The file's text (TOML basic strings: JSON's escapes are valid there)."""
    lines = ["# GenbaGate gate secrets: broker credentials and the gate's keys. Keep this file 0600."]
    lines += [f"{k} = {json.dumps(values[k])}" for k in _KNOWN if values.get(k)]
    return "\n".join(lines) + "\n"


def write_private_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, 0600 from its first byte, atomically and durably."""
    path = Path(path)
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode only counts for a new file
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SecretStore:
    """The gate's secrets, read once and written back on change. Thread-safe: the publisher's thread
    digests with ``uid_key`` while the housekeeping thread stores a new roster key."""

    def __init__(self, path: Path | None, values: dict[str, str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._values = dict(values or {})
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> SecretStore:
        """Read the file at ``path``; with ``create``, make ``uid_key`` (and the file, 0600) when missing.

        A file with a wider mode is narrowed to 0600 (with a warning). When the file or its folder cannot be
        written, the store still works from memory (an error is logged: the key is then per process)."""
        path = Path(path)
        values = read_secrets(path)
        store = cls(path, values)
        with store._lock:
            if path.exists():
                store._narrow_mode()
            if create and not _valid_hex(values.get("uid_key", ""), UID_KEY_BYTES):
                if values.get("uid_key"):
                    log.error("%s: uid_key is not %d bytes of hex; making a new one", path, UID_KEY_BYTES)
                store._values["uid_key"] = _random.token_hex(UID_KEY_BYTES)
                store._save()
        return store

    @classmethod
    def in_memory(cls) -> SecretStore:
        """A store that keeps everything in this process only (see the module docstring)."""
        return cls(None, {"uid_key": _random.token_hex(UID_KEY_BYTES)})

    # -- values --

    @property
    def username(self) -> str | None:
        return self._values.get("username") or None

    @property
    def password(self) -> str | None:
        return self._values.get("password") or None

    @property
    def uid_key(self) -> bytes:
        """The key of the digest that replaces an acknowledged tap's UID (made on first use in memory)."""
        with self._lock:
            key = self._values.get("uid_key", "")
            if not _valid_hex(key, UID_KEY_BYTES):
                key = self._values["uid_key"] = _random.token_hex(UID_KEY_BYTES)
                log.warning("no usable uid_key%s: digesting with a key of this process only",
                            f" in {self.path}" if self.path else "")
            return bytes.fromhex(key)

    @property
    def roster_key(self) -> str | None:
        return self._values.get("roster_key") or None

    def set_roster_key(self, key: str) -> None:
        """Keep the server's roster key here (written to the file only when it changed)."""
        with self._lock:
            if self._values.get("roster_key", "") == key:
                return
            self._values["roster_key"] = key
            self._save()

    # -- file --

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            write_private_atomically(self.path, render(self._values))
        except OSError as exc:
            log.error("cannot write the secrets file %s (%s): the gate keeps its keys in memory until it stops. "
                      "Make its folder: install -d -o genba -g genba -m 0700 %s", self.path, exc, self.path.parent)

    def _narrow_mode(self) -> None:
        assert self.path is not None
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                os.chmod(self.path, FILE_MODE)
                log.warning("%s was readable by others (%o): now 0600", self.path, mode)
        except OSError as exc:
            log.warning("cannot check or narrow the mode of %s: %s", self.path, exc)


def _valid_hex(text: str, n_bytes: int) -> bool:
    try:
        return len(bytes.fromhex(text)) == n_bytes
    except ValueError:
        return False


# --- the store this process uses --------------------------------------------------------------------------

_active: SecretStore | None = None
_memory: dict[Path, SecretStore] = {}
_memory_lock = threading.Lock()


def activate(store: SecretStore | None) -> None:
    """Make ``store`` the one every Buffer of this process uses (`genba-gate run` does it at start)."""
    global _active
    _active = store


def active(buffer_path: Path | None = None) -> SecretStore:
    """The activated store, or a memory store of this process for ``buffer_path`` (one per buffer file)."""
    if _active is not None:
        return _active
    key = Path(buffer_path).resolve() if buffer_path is not None else Path("/")
    with _memory_lock:
        store = _memory.get(key)
        if store is None:
            store = _memory[key] = SecretStore.in_memory()
        return store
