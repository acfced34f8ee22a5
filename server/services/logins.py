"""Logging in: tokens, wrong-password locks, and the forgotten-password reset by security code.

Issuing and administering the IDs themselves is accounts.py.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from argon2.exceptions import VerificationError

from server.domain.accounts import Actor, Role, check_new_password
from server.errors import Forbidden, Unauthorized
from server.services.accounts import account_view
from server.services.common import as_aware, audit
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

FULL = "full"
PASSWORD_CHANGE = "password_change"

_BAD_LOGIN = dict(
    code="login_failed",
    ja="ログインIDまたはパスワードが正しくありません",
    en="wrong login ID or password",
)
_PW_TTL = timedelta(minutes=30)
MAX_RESET_ATTEMPTS = 5


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _locked(ctx: Context, acc: t.Account) -> bool:
    return acc.disabled or (acc.locked_until is not None and as_aware(acc.locked_until) > ctx.now())


def _count_failed_login(ctx: Context, uow: UnitOfWork, account_id: int) -> None:
    """Count one wrong password (atomically, in the repository); reaching the limit starts a timed lock."""
    if uow.accounts.count_failed_login(account_id) >= ctx.max_failed_logins:
        uow.accounts.lock_until(account_id, ctx.now() + ctx.lock_duration)


# login and reset_password check hashes between short units of work, never inside one: on SQLite a
# write transaction holds the database's one write lock, and argon2 takes a noticeable fraction of a
# second by design. Given the caller's ``uow``, every step runs inside it instead (and a failure's
# count is then kept only if the caller commits).


def login(ctx: Context, login_id: str, password: str, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """A token; while the initial password is unchanged it only allows changing it."""
    with ctx.read(uow) as reading:
        acc = reading.accounts.by_login_id(login_id)
    if acc is None:
        ctx.hasher.hash(password)  # same cost as a real check: no timing hint that the ID is unknown
        raise Unauthorized(**_BAD_LOGIN)
    if _locked(ctx, acc):
        minutes = int(ctx.lock_duration.total_seconds() // 60)
        raise Unauthorized(
            "account_locked",
            ja=f"このIDはロックされています。{minutes}分ほど待つか、セキュリティコードでパスワードを再設定してください",
            en=f"this login is locked; wait about {minutes} minutes or reset the password with the security code",
        )
    try:
        ctx.hasher.verify(acc.password_hash, password)
    except VerificationError:
        with ctx.write(uow) as writing:
            _count_failed_login(ctx, writing, acc.id)
        raise Unauthorized(**_BAD_LOGIN) from None
    rehashed = ctx.hasher.hash(password) if ctx.hasher.check_needs_rehash(acc.password_hash) else None
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    scope = PASSWORD_CHANGE if acc.must_change_password else FULL
    expires = now + (min(ctx.token_ttl, _PW_TTL) if scope == PASSWORD_CHANGE else ctx.token_ttl)
    with ctx.write(uow) as writing:
        writing.accounts.logged_in(acc.id, rehashed)
        writing.add(
            t.Token(token_hash=_hash_token(token), account_id=acc.id, scope=scope, created_at=now, expires_at=expires)
        )
    return {
        "token": token,
        "token_type": "bearer",
        "scope": scope,
        "expires_at": expires.isoformat(),
        "must_change_password": acc.must_change_password,
        "account": account_view(acc),
    }


def authenticate(
    ctx: Context, token: str, allow_password_change: bool = False, *, uow: UnitOfWork | None = None
) -> Actor:
    """The Actor behind a bearer token, or 401 with what to do next."""
    with ctx.read(uow) as uow:
        row = uow.accounts.token(_hash_token(token or ""))
        if row is None:
            raise Unauthorized("invalid_token", ja="ログインしてください", en="log in first (unknown token)")
        if as_aware(row.expires_at) <= ctx.now():
            raise Unauthorized(
                "token_expired",
                ja="ログインの有効期限が切れました。もう一度ログインしてください",
                en="the token has expired; log in again",
            )
        acc = uow.get(t.Account, row.account_id)
        if acc is None or acc.disabled:
            raise Unauthorized("invalid_token", ja="ログインしてください", en="log in first")
        if row.scope != FULL and not allow_password_change:
            raise Forbidden(
                "password_change_required",
                ja="初期パスワードのままです。パスワードとセキュリティコードを設定してから、もう一度ログインしてください",
                en="change the initial password (and set a security code), then log in again",
            )
        sites = frozenset(uow.accounts.site_ids(acc.id))
        return Actor(acc.id, Role(acc.role), acc.company_id, acc.worker_id, sites)


def logout(ctx: Context, token: str, *, uow: UnitOfWork | None = None) -> None:
    with ctx.write(uow) as uow:
        uow.accounts.end_session(_hash_token(token))


def reset_password(
    ctx: Context, login_id: str, security_code: str, new_password: str, *, uow: UnitOfWork | None = None
) -> None:
    """Forgotten password: the security code sets a new one and unlocks the ID.

    A security code is short, so wrong codes are counted: after MAX_RESET_ATTEMPTS the reset is
    closed too and only a new initial password from the company (or the operator) opens the ID.
    Every path costs one hash check, so timing does not tell whether the ID exists.
    """
    with ctx.read(uow) as reading:
        acc = reading.accounts.by_login_id(login_id)
    if acc is not None and acc.failed_resets >= MAX_RESET_ATTEMPTS:
        raise Unauthorized(
            "reset_locked",
            ja="セキュリティコードの誤りが続いたため再設定できません。"
            "事業者責任者（または運用管理者）に初期パスワードの再発行を依頼してください",
            en="too many wrong security codes; ask the company owner (or operator) to reissue an initial password",
        )
    ok = False
    if acc is not None and acc.security_code_hash is not None and not acc.disabled:
        try:
            ok = ctx.hasher.verify(acc.security_code_hash, security_code)
        except VerificationError:
            ok = False
    else:
        ctx.hasher.hash(security_code)
    if not ok or acc is None:
        if acc is not None:
            with ctx.write(uow) as writing:
                writing.accounts.count_failed_reset(acc.id)
        raise Unauthorized(
            "reset_failed",
            ja="ログインIDまたはセキュリティコードが正しくありません",
            en="wrong login ID or security code",
        )
    check_new_password(new_password, acc.login_id)
    new_hash = ctx.hasher.hash(new_password)
    with ctx.write(uow) as writing:
        row = writing.get(t.Account, acc.id, lock=True)
        assert row is not None
        row.password_hash = new_hash
        row.failed_logins = 0
        row.failed_resets = 0
        row.locked_until = None
        row.must_change_password = False
        writing.accounts.end_sessions(row.id)
        audit(ctx, writing, None, "account.reset_password", "account", row.id, after={"account_id": row.id})
