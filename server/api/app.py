"""The HTTP API (FastAPI, under /api/v1). Thin: parse, call one service, return its result.

Every error leaves as ``{"code", "message" (日本語), "message_en", "details"?}``, with a listed
code (README, "Errors"): the services' refusals, and what the HTTP edge itself refuses (a body it
cannot read, a URL or method it does not serve). An unexpected exception is logged and answered
with a 500 in the same shape, never a stack trace.

Two operator endpoints sit beside the API, outside /api/v1 and outside the OpenAPI document:
``/healthz`` (the database and the broker link) and ``/metrics`` (Prometheus text, see
server/metrics.py). Neither asks for a login: they hold no personal data, and they are meant for
the operator's network only (README, "Operations").
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from server import metrics
from server.api import (
    attendance,
    auth,
    companies,
    consents,
    devices,
    ledgers,
    reference,
    reports,
    roster,
    safety_documents,
    site_reports,
    sites,
    worker_reports,
)
from server.errors import (
    Conflict,
    Forbidden,
    GenbaError,
    InvalidInput,
    NotFound,
    Throttled,
    Unauthorized,
    Unavailable,
)
from server.services import health
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
    429: {"model": ErrorBody, "description": "試行が多すぎる / too many tries (Retry-After: seconds)"},
    503: {"model": ErrorBody, "description": "一時的に処理できない / busy, try again (Retry-After: seconds)"},
}


def _error(status: int, code: str, ja: str, en: str, details: Any = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": ja, "message_en": en}
    if details is not None:
        body["details"] = details
    metrics.count_refusal(status, code)
    return JSONResponse(body, status_code=status, headers=headers)


#: How each kind of refusal is answered over HTTP; the domain raises the kind and knows no status.
STATUS: dict[type[GenbaError], int] = {
    InvalidInput: 422, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
    Throttled: 429, Unavailable: 503,
}


def status_of(exc: GenbaError) -> int:
    """The status of the nearest kind in the error's class hierarchy; 400 for a plain GenbaError."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


def _retry_after(exc: GenbaError) -> dict[str, str] | None:
    """``Retry-After`` (whole seconds) for a refusal that says when to come back (429, 503)."""
    seconds = getattr(exc, "retry_after_s", None)
    if seconds is None:
        seconds = exc.details.get("retry_after_s")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return {"Retry-After": str(max(0, math.ceil(seconds)))}
    return None


#: What the HTTP edge itself refuses (Starlette/FastAPI raise these, no service is called):
#: status → (code, 日本語, English). Any other status: ``http_<status>`` and a general sentence.
HTTP_ERRORS: dict[int, tuple[str, str, str]] = {
    404: ("not_found", "指定のURLはありません", "no such endpoint"),
    405: ("method_not_allowed", "このURLではその操作はできません（Allow ヘッダーの操作を使ってください）",
          "method not allowed (see the Allow header)"),
    413: ("payload_too_large", "リクエストが大きすぎます", "the request body is too large"),
    415: ("unsupported_media_type", "本文は JSON（Content-Type: application/json）で送ってください",
          "send the body as JSON (Content-Type: application/json)"),
}


def _method_table(routers: list[Any]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each API path (as a regex) with the methods its routes take, for the 405's ``Allow``.
    Starlette's own Allow names only the first route whose path matched (``GET /sites/{id}`` and
    ``PATCH /sites/{id}`` are two routes), so it would say GET where PATCH is allowed too."""
    table: dict[str, set[str]] = {}
    for router in routers:
        for route in router.routes:
            methods = getattr(route, "methods", None)
            if methods:
                table.setdefault(API_PREFIX + route.path, set()).update(methods)
    return [(compile_path(path)[0], frozenset(methods)) for path, methods in table.items()]


def create_app(ctx: Context, ingest: metrics.BrokerLink | None = None, *, mqtt_configured: bool = True,
               on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The app over ``ctx``. ``ingest`` is the MQTT ingest running in this process, if any (``genba-server
    run``): ``/healthz`` reports its broker connection. Without one, the broker is either ``not_configured``
    (``[mqtt] enabled = false``) or served by another process (``run --no-mqtt`` beside ``genba-server
    ingest``): ``not_in_this_process``, whose own health shows in its metrics (genba_broker_connected).

    ``on_shutdown`` runs when the server shuts down (the ingest's clean stop): uvicorn re-raises
    SIGTERM after its own shutdown, so code after ``uvicorn.run`` never runs on a SIGTERM."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="GenbaGate API",
        version="1",
        description=(
            "現場ゲート: 現場・施工体制・作業員名簿・同意・アカウント。"
            "エラーは code / message / message_en を返します。"
        ),
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.state.ingest = ingest

    @app.exception_handler(GenbaError)
    async def _genba(_: Request, exc: GenbaError) -> JSONResponse:
        status = status_of(exc)
        metrics.count_refusal(status, exc.code)
        return JSONResponse(exc.as_dict(), status_code=status, headers=_retry_after(exc))

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
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 400:
            # FastAPI's "There was an error parsing the body": JSON it could not decode (invalid
            # UTF-8, nesting past the parser's depth). The same answer as any malformed JSON.
            problem = "本文を読み取れません。UTF-8 の JSON で送ってください (the body is not readable UTF-8 JSON)"
            return _error(
                422,
                "invalid_request",
                "入力内容に誤りがあります（details.errors を確認してください）",
                "the request body or parameters are invalid (see details.errors)",
                {"errors": [{"field": "body", "problem": problem, "type": "json_invalid"}]},
                headers,
            )
        if exc.status_code == 405:
            allowed = {m for regex, methods in method_table if regex.match(request.url.path) for m in methods}
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
        code, ja, en = HTTP_ERRORS.get(exc.status_code) or (
            f"http_{exc.status_code}",
            f"リクエストを処理できませんでした（HTTP {exc.status_code}）",
            f"the request could not be served (HTTP {exc.status_code}: {exc.detail})",
        )
        return _error(exc.status_code, code, ja, en, headers=headers or None)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(500, "internal_error", "サーバー内部でエラーが発生しました", "internal server error")

    modules = (auth, companies, sites, roster, consents, devices, attendance, reports, reference, worker_reports,
               site_reports, ledgers, safety_documents)
    for module in modules:
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    method_table = _method_table([m.router for m in modules])

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """200 while the database answers (``degraded`` when the broker link of this process is down:
        the API still serves, taps wait at the gates); 503 when the database cannot be read."""
        try:
            database: dict[str, Any] = {"ok": True, "latency_ms": round(health.database_latency_ms(ctx), 2)}
        except Exception as exc:  # any failure of the store is the answer, never a 500
            log.warning("health check: the database cannot be read: %s", exc)
            database = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        if ingest is not None:
            broker: dict[str, Any] = {
                "state": "connected" if ingest.broker_connected() else "disconnected",
                "client_id": ingest.client_id,
            }
        else:
            broker = {"state": "not_in_this_process" if mqtt_configured else "not_configured"}
        if not database["ok"]:
            status, code = "unavailable", 503
        elif broker["state"] == "disconnected":
            status, code = "degraded", 200
        else:
            status, code = "ok", 200
        return JSONResponse({"status": status, "database": database, "broker": broker}, status_code=code)

    @app.get("/metrics", include_in_schema=False)
    def metrics_text() -> Response:
        """This process's counters and ingest gauges, and every gate's last contact from the database
        (left out, not failed, when the database cannot be read: /healthz says why)."""
        try:
            gates = [_gate_seen(v) for v in health.gates(ctx)]
        except Exception as exc:
            log.warning("metrics: the gates cannot be read: %s", exc)
            gates = []
        return Response(metrics.render(metrics.gate_families(gates)), media_type=metrics.CONTENT_TYPE)

    return app


def _gate_seen(view: dict[str, Any]) -> metrics.GateSeen:
    last = view.get("last_seen_at")
    return metrics.GateSeen(
        device_id=view["device_id"],
        site_id=view.get("site_id"),
        online=bool(view.get("online")),
        last_seen_at=datetime.fromisoformat(last) if last else None,
        buffer_depth=view.get("buffer_depth") if isinstance(view.get("buffer_depth"), int) else None,
    )
