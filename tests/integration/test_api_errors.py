"""Every answer the HTTP edge gives on its own (a body it cannot read, a method a URL does not take,
a busy store, a throttled login) is in the one error shape, in Japanese, with a listed code; and the
OpenAPI document states the limits the server enforces, so a generated client meets no refusal the
document does not announce."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException as StarletteHTTPException
from world import Api

from server import errors
from server.api.app import create_app
from server.services.context import Context

MAX_ID = 2**31 - 1  # the keys are INTEGER: 32 bits on PostgreSQL
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _is_error_body(body: dict[str, Any], code: str) -> None:
    assert body["code"] == code, body
    assert JAPANESE.search(body["message"]), body
    assert body["message_en"] and not JAPANESE.search(body["message_en"]), body


def _post_raw(client: TestClient, path: str, raw: bytes) -> Any:
    return client.post("/api/v1" + path, content=raw, headers={"Content-Type": "application/json"})


def test_a_body_that_cannot_be_read_is_answered_like_any_bad_input_in_japanese(api: Api) -> None:
    """Invalid UTF-8 and JSON nested past the parser's depth once came back as 400 `http_error` with
    FastAPI's English sentence; a client now sees what it sees for any malformed JSON: 422
    invalid_request, a Japanese message, the body named in details.errors."""
    not_json = _post_raw(api.client, "/auth/login", b"{not json")
    assert not_json.status_code == 422
    _is_error_body(not_json.json(), "invalid_request")
    for raw in (b'{"login_id": "\xc3\x28", "password": "x"}', b"[" * 100_000):
        r = _post_raw(api.client, "/auth/login", raw)
        assert r.status_code == 422, r.text
        body = r.json()
        _is_error_body(body, "invalid_request")
        assert [e["field"] for e in body["details"]["errors"]] == ["body"]
        assert JAPANESE.search(body["details"]["errors"][0]["problem"])


def test_a_method_a_url_does_not_take_is_refused_with_the_methods_it_does(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    r = prime.owner.call("DELETE", f"/sites/{site.id}")
    assert r.status_code == 405
    _is_error_body(r.json(), "method_not_allowed")
    # Both routes of the URL, not only the first one the router tried.
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"GET", "PATCH"}
    assert prime.owner.ok("GET", f"/sites/{site.id}")["id"] == site.id  # nothing else changed
    r = api.anonymous.call("PUT", "/auth/login", {"login_id": "x", "password": "y"})
    assert (r.status_code, r.headers["Allow"]) == (405, "POST")


def _app_raising(ctx: Context, exc: Exception) -> TestClient:
    """The real app, with one extra route that raises what a service (or Starlette) may raise."""
    app: FastAPI = create_app(ctx)

    @app.get("/api/v1/raises")
    def raises() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_any_other_http_error_speaks_japanese_with_a_stable_code_and_keeps_its_headers(ctx: Context) -> None:
    client = _app_raising(ctx, StarletteHTTPException(413, "Request Entity Too Large", headers={"Connection": "close"}))
    r = client.get("/api/v1/raises")
    assert r.status_code == 413 and r.headers["Connection"] == "close"
    _is_error_body(r.json(), "payload_too_large")
    r = _app_raising(ctx, StarletteHTTPException(418, "I'm a teapot", headers={"X-Kind": "pot"})).get("/api/v1/raises")
    assert r.status_code == 418 and r.headers["X-Kind"] == "pot"
    _is_error_body(r.json(), "http_418")


def test_a_busy_store_answers_503_with_when_to_retry(ctx: Context) -> None:
    r = _app_raising(ctx, errors.database_busy(retry_after_s=7)).get("/api/v1/raises")
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    _is_error_body(r.json(), "database_busy")
    assert r.json()["details"]["retry_after_s"] == 7


def test_a_throttled_request_answers_429_with_when_to_retry(ctx: Context) -> None:
    throttled = errors.Throttled(  # type: ignore[attr-defined]
        "login_throttled", ja="ログインの試行が多すぎます。しばらく待ってください", en="too many login attempts",
        retry_after_s=30)
    r = _app_raising(ctx, throttled).get("/api/v1/raises")
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    _is_error_body(r.json(), "login_throttled")


# --- the OpenAPI says what the server enforces ----------------------------------------------------


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    found: dict[str, Any] = spec
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def _members(node: dict[str, Any]) -> list[dict[str, Any]]:
    return node.get("anyOf", [node])


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = client.get("/openapi.json").json()
    return result


def test_every_id_in_a_path_or_a_query_is_bounded_to_what_the_store_holds(spec: dict[str, Any]) -> None:
    ids = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for p in op.get("parameters", []):
                if p["in"] in ("path", "query") and p["name"].endswith("_id"):
                    schema = p["schema"]
                    ints = [m for m in _members(schema) if m.get("type") == "integer"]
                    if not ints:
                        continue  # device_id is a text ID
                    ids.append((method, path, p["name"]))
                    assert (ints[0].get("minimum"), ints[0].get("maximum")) == (1, MAX_ID), \
                        f"{method} {path} {p['name']}: {schema}"
    assert ("get", "/api/v1/sites/{site_id}", "site_id") in ids
    assert ("put", "/api/v1/companies/{company_id}/proxy-consents/{agent_id}", "agent_id") in ids


def test_every_id_in_a_body_is_bounded_and_every_text_refuses_control_characters(spec: dict[str, Any]) -> None:
    no_control = re.compile(spec["components"]["schemas"]["SiteIn"]["properties"]["name"]["pattern"])
    assert no_control.fullmatch("東京都 港区\n虎ノ門\t1-1") and not no_control.fullmatch("未登録\x00建設")
    texts = 0
    for name, schema in spec["components"]["schemas"].items():
        if not name.endswith("In"):
            continue
        for field, prop in schema.get("properties", {}).items():
            for m in _members(prop):
                m = _resolve(spec, m)
                item = m.get("items", {}) if m.get("type") == "array" else m
                if item.get("type") == "integer" and (field.endswith("_id") or field.endswith("_ids")):
                    assert (item.get("minimum"), item.get("maximum")) == (1, MAX_ID), f"{name}.{field}: {prop}"
                free_text = "enum" not in item and item.get("format") not in ("date", "date-time")
                if item.get("type") == "string" and free_text:
                    texts += 1
                    assert item.get("pattern") or prop.get("pattern"), f"{name}.{field} says nothing of its refusals"
    assert texts > 50


def test_the_documented_text_lengths_are_the_ones_the_store_refuses_past(api: Api, spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["SiteIn"]["properties"]["name"]["maxLength"] == 200
    assert schemas["WorkerIn"]["properties"]["name"]["maxLength"] == 100
    assert schemas["DeviceIn"]["properties"]["device_id"]["pattern"] == "^[a-z0-9][a-z0-9-]{2,62}$"
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.fail("PATCH", f"/sites/{site.id}", {"name": "現" * 201}, status=422, code="value_too_long")
    assert prime.owner.ok("PATCH", f"/sites/{site.id}", {"name": "現" * 200})["name"] == "現" * 200


def test_an_id_past_what_the_store_holds_is_refused_at_the_edge_alike_on_either_backend(api: Api) -> None:
    prime = api.company("(株)基本建設")
    for path in (f"/sites/{MAX_ID + 1}", f"/sites/{2**63}", "/sites/0", f"/companies/{MAX_ID + 1}/workers"):
        body = prime.owner.fail("GET", path, status=422, code="invalid_request")
        assert body["details"]["errors"][0]["field"].startswith("path.")
    body = prime.owner.fail("POST", "/accounts",
                            {"login_id": "big", "role": "site_manager", "company_id": MAX_ID + 1},
                            status=422, code="invalid_request")
    assert body["details"]["errors"][0]["field"] == "body.company_id"
    r = prime.owner.call("GET", f"/sites/{MAX_ID}")
    assert r.status_code == 404  # the largest id is a fine question: there is no such site
