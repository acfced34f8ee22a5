"""ログイン, パスワード変更, セキュリティコードによる再設定, and accounts (IDs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from server.api.deps import Ctx, CurrentActor, password_change_actor, raw_token
from server.api.schemas import AccountIn, LoginIn, PasswordChangeIn, PasswordResetIn, PathId, SiteBindingIn
from server.domain.accounts import Actor
from server.services import accounts, logins

router = APIRouter(tags=["auth"])


@router.post("/auth/login")
def login(ctx: Ctx, body: LoginIn, request: Request) -> dict[str, Any]:
    """初回ログインのトークンはパスワード変更にのみ使えます（scope=password_change）。

    パスワードの誤りが続くと、その接続元からのログインだけが一定時間待たされます（login_throttled）。
    """
    # Wrong passwords are counted per source: the connection's peer address as uvicorn reports it.
    # uvicorn puts X-Forwarded-For there only when the peer is a trusted proxy (forwarded_allow_ips,
    # by default 127.0.0.1 and ::1: a reverse proxy on this machine), so a client cannot pick its own
    # source by sending the header. Behind a proxy on another host the source is that proxy for every
    # client (one shared count, which a stranger there can use to slow the holder down again) until
    # its address is added to FORWARDED_ALLOW_IPS; nothing here reads the header itself.
    source = request.client.host if request.client else None
    return logins.login(ctx, body.login_id, body.password, source=source)


@router.post("/auth/password")
def change_password(
    ctx: Ctx, body: PasswordChangeIn, actor: Annotated[Actor, Depends(password_change_actor)]
) -> dict[str, Any]:
    """新しいパスワード（初回はセキュリティコードも）を設定します。その後もう一度ログインしてください。"""
    return accounts.change_password(ctx, actor, body.current_password, body.new_password, body.security_code)


@router.post("/auth/reset", status_code=204)
def reset_password(ctx: Ctx, body: PasswordResetIn) -> Response:
    logins.reset_password(ctx, body.login_id, body.security_code, body.new_password)
    return Response(status_code=204)


@router.post("/auth/logout", status_code=204)
def logout(ctx: Ctx, token: Annotated[str, Depends(raw_token)]) -> Response:
    logins.logout(ctx, token)
    return Response(status_code=204)


@router.get("/me")
def me(ctx: Ctx, actor: CurrentActor) -> dict[str, Any]:
    return accounts.me(ctx, actor)


@router.post("/accounts", status_code=201)
def create_account(ctx: Ctx, actor: CurrentActor, body: AccountIn) -> dict[str, Any]:
    """IDを発行し、初期パスワードを一度だけ返します。"""
    return accounts.create_account(
        ctx,
        actor,
        login_id=body.login_id,
        display_name=body.display_name,
        role=body.role,
        company_id=body.company_id,
        worker_id=body.worker_id,
        site_ids=body.site_ids,
    )


@router.post("/accounts/{account_id}/reissue")
def reissue(ctx: Ctx, actor: CurrentActor, account_id: PathId) -> dict[str, Any]:
    """初期パスワードを再発行します（ロック解除・全セッション終了）。新しい初期パスワードは一度だけ返します。"""
    return accounts.reissue(ctx, actor, account_id)


@router.put("/accounts/{account_id}/sites")
def bind_sites(ctx: Ctx, actor: CurrentActor, account_id: PathId, body: SiteBindingIn) -> dict[str, Any]:
    """現場管理者IDに割り当てる現場を設定します。"""
    return accounts.bind_sites(ctx, actor, account_id, body.site_ids)


@router.get("/companies/{company_id}/accounts")
def list_accounts(ctx: Ctx, actor: CurrentActor, company_id: PathId) -> list[dict[str, Any]]:
    return accounts.list_accounts(ctx, actor, company_id)
