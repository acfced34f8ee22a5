"""The HTTP API (FastAPI, under /api/v1). Thin: parse, call one service, return its result.

Every error leaves as ``{"code", "message" (日本語), "message_en", "details"?}`` with a 4xx
status; an unexpected exception is logged and answered with a 500 in the same shape, never a
stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.api import attendance, auth, companies, consents, devices, reference, roster, sites
from server.errors import Conflict, Forbidden, GenbaError, InvalidInput, NotFound, Unauthorized
from server.services.context import Context

log = logging.getLogger("genba.api")

API_PREFIX = "/api/v1"


class ErrorBody(BaseModel):
    """The one shape of every error this API returns."""

    code: str = Field(..., description="machine code to switch on, e.g. pending_below_placeholder")
    message: str = Field(..., description="日本語のメッセージ（画面に表示する）")
    message_en: str = Field(..., description="the same in English")
    details: dict[str, Any] | None = Field(None, description="what the code refers to (ids, allowed values, ...)")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "ログインが必要 / not logged in (or token expired)"},
    403: {"model": ErrorBody, "description": "この役割・事業者には許可されていない / role or company may not"},
    404: {"model": ErrorBody, "description": "存在しない、または見る権限がない / does not exist for you"},
    409: {"model": ErrorBody, "description": "現在の状態では受け付けられない / the current state refuses it"},
    422: {"model": ErrorBody, "description": "入力の誤り / invalid input (details.errors lists the fields)"},
}


def _error(status: int, code: str, ja: str, en: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": ja, "message_en": en}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status)


#: How each kind of refusal is answered over HTTP; the domain raises the kind and knows no status.
STATUS: dict[type[GenbaError], int] = {
    InvalidInput: 422, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
}


def status_of(exc: GenbaError) -> int:
    """The status of the nearest kind in the error's class hierarchy; 400 for a plain GenbaError."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]  # type: ignore[index]
    return 400


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="GenbaGate API",
        version="1",
        description=(
            "現場ゲート: 現場・施工体制・作業員名簿・同意・アカウント。"
            "エラーは code / message / message_en を返します。"
        ),
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx

    @app.exception_handler(GenbaError)
    async def _genba(_: Request, exc: GenbaError) -> JSONResponse:
        return JSONResponse(exc.as_dict(), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return _error(
            422,
            "invalid_request",
            "入力内容に誤りがあります（details.errors を確認してください）",
            "the request body or parameters are invalid (see details.errors)",
            {"errors": details},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, "not_found", "指定のURLはありません", "no such endpoint")
        if exc.status_code == 405:
            return _error(405, "method_not_allowed", "このURLではその操作はできません", "method not allowed")
        return _error(exc.status_code, "http_error", str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(500, "internal_error", "サーバー内部でエラーが発生しました", "internal server error")

    for module in (auth, companies, sites, roster, consents, devices, attendance, reference):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
