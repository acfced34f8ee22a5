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
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.api import auth, companies, consents, reference, roster, sites
from server.errors import GenbaError
from server.services.context import Context

log = logging.getLogger("genba.api")

API_PREFIX = "/api/v1"


def _error(status: int, code: str, ja: str, en: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": ja, "message_en": en}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status)


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
        return JSONResponse(exc.as_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return _error(
            422,
            "invalid_request",
            "入力内容に誤りがあります（details を確認してください）",
            "the request body or parameters are invalid (see details)",
            details,
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

    for module in (auth, companies, sites, roster, consents, reference):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
