"""Logins, tokens and accounts (参考資料 7: ID, 初期パスワード, パスワード変更, セキュリティコード)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from argon2.exceptions import VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.domain.accounts import (
    COMPANY_ADMIN_ROLES,
    ROLE_LABELS,
    Actor,
    Role,
    check_new_password,
    check_security_code,
    require_company_member,
    require_role,
)
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from server.services.common import as_aware, audit, company_or_404, snapshot, worker_or_404
from server.services.context import Context
from server.store import tables as t

FULL = "full"
PASSWORD_CHANGE = "password_change"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def account_view(a: t.Account, site_ids: Iterable[int] = ()) -> dict[str, Any]:
    return {
        "id": a.id,
        "login_id": a.login_id,
        "display_name": a.display_name,
        "role": a.role,
        "role_label": ROLE_LABELS[Role(a.role)],
        "company_id": a.company_id,
        "worker_id": a.worker_id,
        "site_ids": sorted(site_ids),
        "must_change_password": a.must_change_password,
        "disabled": a.disabled,
    }


def _check_login_id(login_id: str) -> str:
    cleaned = (login_id or "").strip()
    if not (3 <= len(cleaned) <= 64) or not cleaned.isascii() or " " in cleaned:
        raise InvalidInput(
            "invalid_login_id",
            ja="ログインIDは半角3〜64文字（空白なし）で指定してください",
            en="a login ID is 3 to 64 ASCII characters without spaces",
        )
    return cleaned


def _check_display_name(display_name: str, login_id: str) -> str:
    cleaned = (display_name or "").strip() or login_id
    if len(cleaned) > 100:  # the column's width: refuse here rather than fail in the database
        raise InvalidInput(
            "invalid_display_name",
            ja="表示名は100文字以内で指定してください",
            en="a display name is at most 100 characters",
        )
    return cleaned


def create_operator(ctx: Context, login_id: str, password: str) -> dict[str, Any]:
    """The first account, made by `genba-server init`: it chose its password, so no forced change."""
    login_id = _check_login_id(login_id)
    check_new_password(password, login_id)
    with ctx.store.write() as s:
        if s.scalar(select(t.Account).where(t.Account.login_id == login_id)):
            raise Conflict("login_id_taken", ja="このログインIDはすでに使われています", en="login ID taken")
        acc = t.Account(
            login_id=login_id,
            display_name="運用管理者",
            role=Role.OPERATOR,
            password_hash=ctx.hasher.hash(password),
            must_change_password=False,
            created_at=ctx.now(),
        )
        s.add(acc)
        s.flush()
        audit(ctx, s, None, "account.create", "account", acc.id, after=snapshot(acc))
        return account_view(acc)


def create_account(
    ctx: Context,
    actor: Actor,
    *,
    login_id: str,
    display_name: str,
    role: Role,
    company_id: int | None = None,
    worker_id: int | None = None,
    site_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """Issue an ID with an initial password, shown once; the holder must change it at first login."""
    login_id = _check_login_id(login_id)
    display_name = _check_display_name(display_name, login_id)
    site_ids = sorted(set(site_ids))
    with ctx.store.write() as s:
        if role == Role.OPERATOR:
            raise Forbidden("role_not_allowed", ja="運用管理者IDは作成できません", en="operators are made by init")
        if role == Role.WORKER:
            if worker_id is None:
                raise InvalidInput("worker_required", ja="技能者IDを指定してください", en="worker_id is required")
            worker = worker_or_404(s, worker_id)
            if actor.role != Role.OPERATOR:
                require_role(actor, COMPANY_ADMIN_ROLES, "技能者IDの発行", "issue a worker login")
                require_company_member(actor, worker.employer_id)
            company_id = None
        else:
            if company_id is None:
                raise InvalidInput("company_required", ja="事業者を指定してください", en="company_id is required")
            company_or_404(s, company_id)
            worker_id = None
            if actor.role != Role.OPERATOR:
                require_role(actor, COMPANY_ADMIN_ROLES, "IDの発行", "issue logins")
                require_company_member(actor, company_id)
                if role == Role.COMPANY_OWNER and actor.role != Role.COMPANY_OWNER:
                    raise Forbidden(
                        "role_not_allowed",
                        ja="事業者責任者IDは事業者責任者のみが発行できます",
                        en="only a company owner may issue a company owner login",
                    )
        if site_ids and role != Role.SITE_MANAGER:
            raise InvalidInput(
                "sites_only_for_site_manager",
                ja="現場の割り当ては現場管理者IDにのみ指定できます",
                en="only site manager logins are bound to sites",
            )
        if s.scalar(select(t.Account).where(t.Account.login_id == login_id)):
            raise Conflict("login_id_taken", ja="このログインIDはすでに使われています", en="login ID taken")
        if worker_id is not None and s.scalar(select(t.Account).where(t.Account.worker_id == worker_id)):
            raise Conflict(
                "worker_has_login", ja="この技能者にはすでにIDが発行されています", en="this worker already has a login"
            )
        initial = secrets.token_urlsafe(9)
        acc = t.Account(
            login_id=login_id,
            display_name=display_name,
            role=role,
            company_id=company_id,
            worker_id=worker_id,
            password_hash=ctx.hasher.hash(initial),
            must_change_password=True,
            created_at=ctx.now(),
        )
        s.add(acc)
        s.flush()
        _bind(s, actor, acc, site_ids)
        audit(ctx, s, actor, "account.create", "account", acc.id, after=snapshot(acc))
        return account_view(acc, site_ids) | {"initial_password": initial}


def _bind(s: Any, actor: Actor, acc: t.Account, site_ids: list[int]) -> None:
    """A 現場管理者 is bound only to sites where its company is in the hierarchy."""
    for site_id in site_ids:
        on_site = s.scalar(
            select(t.HierarchyNode.id).where(
                t.HierarchyNode.site_id == site_id,
                t.HierarchyNode.company_id == acc.company_id,
                t.HierarchyNode.status != "declined",
            )
        )
        if on_site is None:
            raise NotFound(
                "site_not_found",
                ja=f"現場（{site_id}）が見つからないか、この事業者が施工体制に登録されていません",
                en=f"site {site_id} not found or the company is not in its hierarchy",
                site_id=site_id,
            )
        s.add(t.AccountSite(account_id=acc.id, site_id=site_id))


def bind_sites(ctx: Context, actor: Actor, account_id: int, site_ids: Iterable[int]) -> dict[str, Any]:
    ids = sorted(set(site_ids))
    with ctx.store.write() as s:
        acc = s.get(t.Account, account_id)
        if acc is None or acc.role != Role.SITE_MANAGER:
            raise NotFound("account_not_found", ja="現場管理者IDが見つかりません", en="no such site manager login")
        require_role(actor, COMPANY_ADMIN_ROLES, "現場の割り当て", "bind sites")
        require_company_member(actor, acc.company_id or -1)
        before = sorted(s.scalars(select(t.AccountSite.site_id).where(t.AccountSite.account_id == acc.id)))
        s.execute(delete(t.AccountSite).where(t.AccountSite.account_id == acc.id))
        _bind(s, actor, acc, ids)
        audit(ctx, s, actor, "account.bind_sites", "account", acc.id, {"site_ids": before}, {"site_ids": ids})
        return account_view(acc, ids)


def list_accounts(ctx: Context, actor: Actor, company_id: int) -> list[dict[str, Any]]:
    if actor.role != Role.OPERATOR:
        require_role(actor, COMPANY_ADMIN_ROLES, "IDの一覧", "list logins")
        require_company_member(actor, company_id)
    with ctx.store.read() as s:
        accs = s.scalars(select(t.Account).where(t.Account.company_id == company_id).order_by(t.Account.id)).all()
        binds: dict[int, list[int]] = {}
        for b in s.scalars(select(t.AccountSite).where(t.AccountSite.account_id.in_([a.id for a in accs]))):
            binds.setdefault(b.account_id, []).append(b.site_id)
        return [account_view(a, binds.get(a.id, [])) for a in accs]


_BAD_LOGIN = dict(
    code="login_failed",
    ja="ログインIDまたはパスワードが正しくありません",
    en="wrong login ID or password",
)
_PW_TTL = timedelta(minutes=30)


def _count_failure(s: Session, ctx: Context, account_id: int, column: Any, limit: int | None) -> None:
    """Count one failure atomically (UPDATE … SET n = n + 1 RETURNING n): parallel guesses on
    PostgreSQL cannot lose increments, and reaching ``limit`` starts a timed lock."""
    n = s.execute(
        update(t.Account).where(t.Account.id == account_id).values({column: column + 1}).returning(column)
    ).scalar_one()
    if limit is not None and n >= limit:
        s.execute(
            update(t.Account)
            .where(t.Account.id == account_id)
            .values(failed_logins=0, locked_until=ctx.now() + ctx.lock_duration)
        )


def _locked(ctx: Context, acc: t.Account) -> bool:
    return acc.disabled or (acc.locked_until is not None and as_aware(acc.locked_until) > ctx.now())


def login(ctx: Context, login_id: str, password: str) -> dict[str, Any]:
    """A token; while the initial password is unchanged it only allows changing it.

    The password hash is checked outside any transaction: on SQLite a write transaction holds the
    database's one write lock, and argon2 takes a noticeable fraction of a second by design.
    """
    with ctx.store.read() as s:
        acc = s.scalar(select(t.Account).where(t.Account.login_id == login_id))
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
        with ctx.store.write() as s:
            _count_failure(s, ctx, acc.id, t.Account.failed_logins, ctx.max_failed_logins)
        raise Unauthorized(**_BAD_LOGIN) from None
    rehashed = ctx.hasher.hash(password) if ctx.hasher.check_needs_rehash(acc.password_hash) else None
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    scope = PASSWORD_CHANGE if acc.must_change_password else FULL
    expires = now + (min(ctx.token_ttl, _PW_TTL) if scope == PASSWORD_CHANGE else ctx.token_ttl)
    with ctx.store.write() as s:
        values: dict[str, Any] = {"failed_logins": 0}
        if rehashed:
            values["password_hash"] = rehashed
        s.execute(update(t.Account).where(t.Account.id == acc.id).values(values))
        s.add(
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


def authenticate(ctx: Context, token: str, allow_password_change: bool = False) -> Actor:
    """The Actor behind a bearer token, or 401 with what to do next."""
    with ctx.store.read() as s:
        row = s.get(t.Token, _hash_token(token or ""))
        if row is None:
            raise Unauthorized("invalid_token", ja="ログインしてください", en="log in first (unknown token)")
        if as_aware(row.expires_at) <= ctx.now():
            raise Unauthorized(
                "token_expired",
                ja="ログインの有効期限が切れました。もう一度ログインしてください",
                en="the token has expired; log in again",
            )
        acc = s.get(t.Account, row.account_id)
        if acc is None or acc.disabled:
            raise Unauthorized("invalid_token", ja="ログインしてください", en="log in first")
        if row.scope != FULL and not allow_password_change:
            raise Forbidden(
                "password_change_required",
                ja="初期パスワードのままです。パスワードとセキュリティコードを設定してから、もう一度ログインしてください",
                en="change the initial password (and set a security code), then log in again",
            )
        sites = frozenset(s.scalars(select(t.AccountSite.site_id).where(t.AccountSite.account_id == acc.id)))
        return Actor(acc.id, Role(acc.role), acc.company_id, acc.worker_id, sites)


def logout(ctx: Context, token: str) -> None:
    with ctx.store.write() as s:
        s.execute(delete(t.Token).where(t.Token.token_hash == _hash_token(token)))


def change_password(
    ctx: Context, actor: Actor, current_password: str, new_password: str, security_code: str | None
) -> dict[str, Any]:
    """First login: new password and a security code; later: new password. All tokens end: log in again."""
    with ctx.store.write() as s:
        acc = s.get(t.Account, actor.account_id)
        assert acc is not None
        try:
            ctx.hasher.verify(acc.password_hash, current_password)
        except VerificationError:
            raise Unauthorized(
                "wrong_password", ja="現在のパスワードが正しくありません", en="the current password is wrong"
            ) from None
        check_new_password(new_password, acc.login_id)
        if new_password == current_password:
            raise InvalidInput(
                "password_unchanged", ja="新しいパスワードを入力してください", en="choose a new password"
            )
        if acc.security_code_hash is None and security_code is None:
            raise InvalidInput(
                "security_code_required",
                ja="初回はセキュリティコード（パスワード再設定用）も設定してください",
                en="set a security code (used to reset the password) on the first change",
            )
        if security_code is not None:
            check_security_code(security_code)
            acc.security_code_hash = ctx.hasher.hash(security_code)
        acc.password_hash = ctx.hasher.hash(new_password)
        acc.must_change_password = False
        s.execute(delete(t.Token).where(t.Token.account_id == acc.id))
        audit(ctx, s, actor, "account.change_password", "account", acc.id)
        return account_view(acc)


MAX_RESET_ATTEMPTS = 5


def reset_password(ctx: Context, login_id: str, security_code: str, new_password: str) -> None:
    """Forgotten password: the security code sets a new one and unlocks the ID.

    A security code is short, so wrong codes are counted: after MAX_RESET_ATTEMPTS the reset is
    closed too and only a new initial password from the company (or the operator) opens the ID.
    Every path costs one hash check, so timing does not tell whether the ID exists.
    """
    with ctx.store.read() as s:
        acc = s.scalar(select(t.Account).where(t.Account.login_id == login_id))
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
            with ctx.store.write() as s:
                _count_failure(s, ctx, acc.id, t.Account.failed_resets, None)
        raise Unauthorized(
            "reset_failed",
            ja="ログインIDまたはセキュリティコードが正しくありません",
            en="wrong login ID or security code",
        )
    check_new_password(new_password, acc.login_id)
    new_hash = ctx.hasher.hash(new_password)
    with ctx.store.write() as s:
        row = s.get(t.Account, acc.id, with_for_update=True)
        assert row is not None
        row.password_hash = new_hash
        row.failed_logins = 0
        row.failed_resets = 0
        row.locked_until = None
        row.must_change_password = False
        s.execute(delete(t.Token).where(t.Token.account_id == row.id))
        audit(ctx, s, None, "account.reset_password", "account", row.id, after={"account_id": row.id})


def reissue(ctx: Context, actor: Actor, account_id: int) -> dict[str, Any]:
    """初期パスワードの再発行: a new one-time password, the ID unlocked, every session ended.

    The operator reissues for company owners; a company's 事業者責任者 / 階層管理者 for its own IDs
    and its workers' IDs (a 階層管理者 not for a 事業者責任者).
    """
    with ctx.store.write() as s:
        acc = s.get(t.Account, account_id)
        if acc is None or acc.role == Role.OPERATOR:
            raise NotFound("account_not_found", ja="IDが見つかりません", en="no such account")
        if actor.role != Role.OPERATOR:
            require_role(actor, COMPANY_ADMIN_ROLES, "初期パスワードの再発行", "reissue passwords")
            company_id = acc.company_id
            if acc.worker_id is not None:
                company_id = worker_or_404(s, acc.worker_id).employer_id
            if company_id != actor.company_id:
                raise NotFound("account_not_found", ja="IDが見つかりません", en="no such account")
            if acc.role == Role.COMPANY_OWNER and actor.role != Role.COMPANY_OWNER:
                raise Forbidden(
                    "role_not_allowed",
                    ja="事業者責任者IDの再発行は事業者責任者のみが行えます",
                    en="only a company owner may reissue a company owner's password",
                )
        before = snapshot(acc)
        initial = secrets.token_urlsafe(9)
        acc.password_hash = ctx.hasher.hash(initial)
        acc.must_change_password = True
        acc.failed_logins = 0
        acc.failed_resets = 0
        acc.locked_until = None
        acc.security_code_hash = None  # a reissue may follow a leak: the old code must not undo it
        s.execute(delete(t.Token).where(t.Token.account_id == acc.id))
        audit(ctx, s, actor, "account.reissue", "account", acc.id, before, snapshot(acc))
        return account_view(acc) | {"initial_password": initial}


def me(ctx: Context, actor: Actor) -> dict[str, Any]:
    with ctx.store.read() as s:
        acc = s.get(t.Account, actor.account_id)
        assert acc is not None
        return account_view(acc, actor.site_ids)
