"""Accounts (参考資料 7: ID, 初期パスワード, パスワード変更, セキュリティコード): issuing IDs, binding a
現場管理者 to sites, the holder's password change and the company's reissue. Logging in is logins.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from argon2.exceptions import VerificationError

from server.domain.accounts import (
    COMPANY_ADMIN_ROLES,
    ROLE_LABELS,
    Actor,
    Role,
    check_new_password,
    check_security_code,
    login_key,
    require_company_member,
    require_role,
)
from server.domain.hierarchy import Status
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from server.services.common import audit, company_or_404, snapshot, worker_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


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


def _login_id_free(uow: UnitOfWork, login_id: str) -> None:
    if uow.accounts.by_login_id(login_id):
        raise Conflict("login_id_taken", ja="このログインIDはすでに使われています", en="login ID taken")


def create_operator(ctx: Context, login_id: str, password: str, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """The first account, made by `genba-server init`: it chose its password, so no forced change."""
    login_id = _check_login_id(login_id)
    check_new_password(password, login_id)
    with ctx.write(uow) as uow:
        _login_id_free(uow, login_id)
        acc = t.Account(
            login_id=login_id,
            display_name="運用管理者",
            role=Role.OPERATOR,
            password_hash=ctx.hasher.hash(password),
            must_change_password=False,
            created_at=ctx.now(),
        )
        uow.add(acc)
        uow.flush()
        audit(ctx, uow, None, "account.create", "account", acc.id, after=snapshot(acc))
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
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """Issue an ID with an initial password, shown once; the holder must change it at first login."""
    login_id = _check_login_id(login_id)
    display_name = _check_display_name(display_name, login_id)
    site_ids = sorted(set(site_ids))
    with ctx.write(uow) as uow:
        if role == Role.OPERATOR:
            raise Forbidden("role_not_allowed", ja="運用管理者IDは作成できません", en="operators are made by init")
        if role == Role.WORKER:
            if worker_id is None:
                raise InvalidInput("worker_required", ja="技能者IDを指定してください", en="worker_id is required")
            worker = worker_or_404(uow, worker_id)
            if actor.role != Role.OPERATOR:
                require_role(actor, COMPANY_ADMIN_ROLES, "技能者IDの発行", "issue a worker login")
                require_company_member(actor, worker.employer_id)
            company_id = None
        else:
            if company_id is None:
                raise InvalidInput("company_required", ja="事業者を指定してください", en="company_id is required")
            company_or_404(uow, company_id)
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
        _login_id_free(uow, login_id)
        if worker_id is not None and uow.accounts.of_worker(worker_id):
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
        uow.add(acc)
        uow.flush()
        _bind(uow, acc, site_ids)
        audit(ctx, uow, actor, "account.create", "account", acc.id, after=snapshot(acc))
        return account_view(acc, site_ids) | {"initial_password": initial}


def _bind(uow: UnitOfWork, acc: t.Account, site_ids: list[int]) -> None:
    """A 現場管理者 is bound only to sites where its company is in the hierarchy (and has not declined)."""
    for site_id in site_ids:
        on_site = acc.company_id is not None and any(
            n.company_id == acc.company_id and n.status != Status.DECLINED for n in uow.sites.nodes(site_id)
        )
        if not on_site:
            raise NotFound(
                "site_not_found",
                ja=f"現場（{site_id}）が見つからないか、この事業者が施工体制に登録されていません",
                en=f"site {site_id} not found or the company is not in its hierarchy",
                site_id=site_id,
            )
        uow.add(t.AccountSite(account_id=acc.id, site_id=site_id))


def bind_sites(
    ctx: Context, actor: Actor, account_id: int, site_ids: Iterable[int], *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    ids = sorted(set(site_ids))
    with ctx.write(uow) as uow:
        acc = uow.get(t.Account, account_id)
        if acc is None or acc.role != Role.SITE_MANAGER:
            raise NotFound("account_not_found", ja="現場管理者IDが見つかりません", en="no such site manager login")
        require_role(actor, COMPANY_ADMIN_ROLES, "現場の割り当て", "bind sites")
        require_company_member(actor, acc.company_id or -1)
        before = sorted(uow.accounts.site_ids(acc.id))
        uow.accounts.unbind_sites(acc.id)
        _bind(uow, acc, ids)
        audit(ctx, uow, actor, "account.bind_sites", "account", acc.id, {"site_ids": before}, {"site_ids": ids})
        return account_view(acc, ids)


def list_accounts(
    ctx: Context, actor: Actor, company_id: int, *, uow: UnitOfWork | None = None
) -> list[dict[str, Any]]:
    if actor.role != Role.OPERATOR:
        require_role(actor, COMPANY_ADMIN_ROLES, "IDの一覧", "list logins")
        require_company_member(actor, company_id)
    with ctx.read(uow) as uow:
        accs = uow.accounts.of_company(company_id)
        binds = uow.accounts.site_ids_of([a.id for a in accs])
        return [account_view(a, binds.get(a.id, [])) for a in accs]


def change_password(
    ctx: Context,
    actor: Actor,
    current_password: str,
    new_password: str,
    security_code: str | None,
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """First login: new password and a security code; later: new password. All tokens end: log in again."""
    with ctx.write(uow) as uow:
        acc = uow.get(t.Account, actor.account_id)
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
        uow.accounts.end_sessions(acc.id)
        audit(ctx, uow, actor, "account.change_password", "account", acc.id)
        return account_view(acc)


def reissue(ctx: Context, actor: Actor, account_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """初期パスワードの再発行: a new one-time password, the ID unlocked, every session ended.

    The operator reissues for company owners; a company's 事業者責任者 / 階層管理者 for its own IDs
    and its workers' IDs (a 階層管理者 not for a 事業者責任者).
    """
    with ctx.write(uow) as uow:
        acc = uow.get(t.Account, account_id)
        if acc is None or acc.role == Role.OPERATOR:
            raise NotFound("account_not_found", ja="IDが見つかりません", en="no such account")
        if actor.role != Role.OPERATOR:
            require_role(actor, COMPANY_ADMIN_ROLES, "初期パスワードの再発行", "reissue passwords")
            company_id = acc.company_id
            if acc.worker_id is not None:
                company_id = worker_or_404(uow, acc.worker_id).employer_id
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
        uow.accounts.end_sessions(acc.id)
        uow.accounts.forget_login_failures(login_key(acc.login_id))  # the new password works at once
        audit(ctx, uow, actor, "account.reissue", "account", acc.id, before, snapshot(acc))
        return account_view(acc) | {"initial_password": initial}


def me(ctx: Context, actor: Actor, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    with ctx.read(uow) as uow:
        acc = uow.get(t.Account, actor.account_id)
        assert acc is not None
        return account_view(acc, actor.site_ids)
