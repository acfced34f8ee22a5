"""Logging in: tokens, the wait after wrong passwords, and the forgotten-password reset by security code.

Issuing and administering the IDs themselves is accounts.py.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from argon2.exceptions import VerificationError

from server.domain.accounts import (
    TRUST_SOURCE_FOR,
    Actor,
    LoginThrottlePolicy,
    Role,
    check_new_password,
    login_key,
    login_source,
    login_throttled,
)
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


# A day without tries from a source ends its count (and any wait, which is never longer).
_FORGET_AFTER = timedelta(days=1)


def _throttle(ctx: Context) -> LoginThrottlePolicy:
    # [auth] max_failed_logins: wrong passwords per ID and source before the waits start;
    # lock_minutes (ctx.lock_duration): the longest wait.
    return LoginThrottlePolicy.of(ctx.max_failed_logins, ctx.lock_duration)


def _remaining(not_before: datetime | None, now: datetime) -> timedelta | None:
    if not_before is None or as_aware(not_before) <= now:
        return None
    return as_aware(not_before) - now


def _claim_check(ctx: Context, uow: UnitOfWork, key: str, source: str) -> timedelta | None:
    """Take one password check for this source, or say how long it must wait.

    The check is counted as a wrong password before it is made, in one locked step with the
    "may it try now?" test: parallel tries cannot all pass the test before any is counted, so a
    burst gets ``free_failures`` checks and then waits. A right password takes the count back.
    """
    now = ctx.now()
    forget_before = now - max(_FORGET_AFTER, ctx.lock_duration)
    everyone, mine = uow.accounts.lock_login_throttles(key, source, now)
    trusted = mine.trusted_until is not None and as_aware(mine.trusted_until) > now
    wait = _remaining(mine.not_before, now)
    if wait is None and not trusted:  # the ID-wide wait: strangers' many addresses share it
        wait = _remaining(everyone.not_before, now)
    if wait is not None:
        return wait
    for row in (everyone, mine):
        if as_aware(row.updated_at) < forget_before:
            row.failures = 0  # a day without tries forgets the count
        row.failures += 1
        row.updated_at = now
    policy = _throttle(ctx)
    mine_delay, everyone_delay = policy.source_wait(mine.failures), policy.account_wait(everyone.failures)
    mine.not_before = now + mine_delay if mine_delay else None
    everyone.not_before = now + everyone_delay if everyone_delay else None
    uow.accounts.prune_login_throttles(forget_before, now)  # other IDs' and sources' old counts, a few at a time
    return None


# login and reset_password check hashes between short units of work, never inside one: on SQLite a
# write transaction holds the database's one write lock, and argon2 takes a noticeable fraction of a
# second by design. Given the caller's ``uow``, every step runs inside it instead (and a failure's
# count is then kept only if the caller commits).


def login(
    ctx: Context, login_id: str, password: str, *, source: str | None = None, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """A token; while the initial password is unchanged it only allows changing it.

    ``source`` is the address the try comes from: wrong passwords slow down that source for this
    ID (``login_throttled`` with ``retry_after_s``, the password not checked), never the ID for
    everyone, so a stranger cannot keep its holder out.
    """
    key, src = login_key(login_id), login_source(source)
    with ctx.read(uow) as reading:
        acc = reading.accounts.by_login_id(login_id)
        counted = reading.accounts.login_throttle(key, src)
        wait = _remaining(counted.not_before if counted else None, ctx.now())
    if acc is not None and acc.disabled:
        raise Unauthorized(
            "account_locked",
            ja="このIDは利用停止されています。事業者責任者（または運用管理者）に確認してください",
            en="this login is disabled; ask the company owner (or operator)",
        )
    if wait is None:  # re-checked under the lock: the read above only spares a waiting source the write lock
        with ctx.write(uow) as writing:
            wait = _claim_check(ctx, writing, key, src)
    if wait is not None:
        raise login_throttled(wait)
    if acc is None:
        ctx.hasher.hash(password)  # same cost as a real check: no timing hint that the ID is unknown
        raise Unauthorized(**_BAD_LOGIN)
    try:
        ctx.hasher.verify(acc.password_hash, password)
    except VerificationError:
        raise Unauthorized(**_BAD_LOGIN) from None  # already counted by the claim
    rehashed = ctx.hasher.hash(password) if ctx.hasher.check_needs_rehash(acc.password_hash) else None
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    scope = PASSWORD_CHANGE if acc.must_change_password else FULL
    expires = now + (min(ctx.token_ttl, _PW_TTL) if scope == PASSWORD_CHANGE else ctx.token_ttl)
    with ctx.write(uow) as writing:
        writing.accounts.login_succeeded(key, src, now, now + TRUST_SOURCE_FOR)
        if rehashed:
            writing.accounts.rehashed(acc.id, rehashed)
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
    """Forgotten password: the security code sets a new one and ends every wait for the ID.

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
        row.failed_resets = 0
        row.must_change_password = False
        writing.accounts.end_sessions(row.id)
        writing.accounts.forget_login_failures(login_key(row.login_id))
        audit(ctx, writing, None, "account.reset_password", "account", row.id, after={"account_id": row.id})
