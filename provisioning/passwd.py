"""Mosquitto's password file, in the format ``mosquitto_passwd`` writes (Mosquitto 2.0, ``$7$``).

One line per account: ``username:$7$ITERATIONS$SALT$HASH`` with a 12-byte random salt and
PBKDF2-HMAC-SHA512 (101 iterations, Mosquitto's default) in standard base64. We write it ourselves
rather than calling ``mosquitto_passwd`` so that a password never appears on a command line (``-b``
would put it in the process list) and the file can be replaced atomically: the broker re-reads it on
SIGHUP and must never see half a file.

Mosquitto checks the hash itself; the tests prove the format by connecting with the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from provisioning.errors import BrokerError

ITERATIONS = 101  # mosquitto_passwd's default for $7$
SALT_BYTES = 12


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify(password: str, encoded: str) -> bool:
    try:
        _, kind, iterations, salt, digest = encoded.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    candidate = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def new_password() -> str:
    """32 random bytes, URL-safe: typed by nobody, carried only in the gate's bundle."""
    return secrets.token_urlsafe(32)


def check_username(name: str) -> str:
    if not name or ":" in name or any(c.isspace() for c in name) or len(name) > 64:
        raise BrokerError("bad_username", f"ブローカーのユーザー名に使えない文字があります: {name!r}",
                          f"a broker username may not contain ':' or spaces: {name!r}")
    return name


class PasswordFile:
    """The accounts of one password file, read whole and written whole (atomic rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        if path.exists():
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip() or line.startswith("#"):
                    continue
                user, sep, encoded = line.partition(":")
                if not sep:
                    raise BrokerError("passwd_corrupt", f"パスワードファイル {path} の {lineno} 行目が読めません",
                                      f"{path}:{lineno}: not user:hash")
                self.entries[user] = encoded

    def __contains__(self, user: str) -> bool:
        return user in self.entries

    def users(self) -> list[str]:
        return sorted(self.entries)

    def set(self, user: str, password: str) -> None:
        self.entries[check_username(user)] = hash_password(password)

    def remove(self, user: str) -> bool:
        return self.entries.pop(user, None) is not None

    def verify(self, user: str, password: str) -> bool:
        return user in self.entries and verify(password, self.entries[user])

    def save(self, mode: int = 0o600, group: int | None = None) -> None:
        text = "".join(f"{u}:{h}\n" for u, h in sorted(self.entries.items()))
        write_private(self.path, text, mode=mode, group=group)


def write_private(path: Path, text: str | bytes, *, mode: int = 0o600, group: int | None = None) -> None:
    """Write a file that holds a secret: created with ``mode`` from the start (never readable by
    others, not even for a moment), fsync'd, then renamed over the old one (readers see old or new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits we want (group read for the broker)
        if group is not None:
            os.fchown(fd, -1, group)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
