"""Request-scoped dependencies: the service context and the logged-in Actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.domain.accounts import Actor
from server.errors import Unauthorized
from server.services import logins
from server.services.context import Context

bearer = HTTPBearer(auto_error=False, description="`POST /api/v1/auth/login` で取得したトークン")


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(context)]


def _token(creds: HTTPAuthorizationCredentials | None) -> str:
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized(
            "login_required",
            ja="ログインが必要です（Authorization: Bearer <トークン>）",
            en="log in and send 'Authorization: Bearer <token>'",
        )
    return creds.credentials


def current_actor(ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
    return logins.authenticate(ctx, _token(creds))


def password_change_actor(ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
    """The one place a first-login token (scope password_change) is accepted."""
    return logins.authenticate(ctx, _token(creds), allow_password_change=True)


def raw_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    return _token(creds)


CurrentActor = Annotated[Actor, Depends(current_actor)]
