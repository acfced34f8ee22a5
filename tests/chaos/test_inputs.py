"""`make chaos`'s inputs, short, inside `make test`: a fuzzer's flood on the gates' topics while a real gate
taps, schemathesis against the OpenAPI, and every endpoint tried as each of the six roles of the seed's
帳票 table. A row fails on a tap lost or stored twice, a process that died, a 500, or a role let through
where the seed refuses it (tests/chaos/api.py, fuzz.py say what each measures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.api.app import create_app
from server.services.context import Context
from server.store.database import Store

from . import api, fuzz
from .table import render


@pytest.mark.slow
def test_a_flood_of_fuzzed_bodies_on_the_gates_topics_loses_no_tap_of_a_gate_tapping_through_it() -> None:
    rows = fuzz.rows(quick=True)
    print(render(rows))
    assert rows and rows[0].sent > 0, render(rows)
    assert not [r for r in rows if r.failed], render(rows)


@pytest.mark.slow
def test_each_role_reaches_what_the_seed_lets_it_and_no_request_makes_the_api_answer_500() -> None:
    rows = api.rows(quick=True)
    print(render(rows))
    assert len(rows) == 2 and all(r.sent > 0 for r in rows), render(rows)
    assert not [r for r in rows if r.failed], render(rows)


def test_every_endpoint_of_the_openapi_has_its_row_in_the_role_matrix(tmp_path: Path) -> None:
    """A new endpoint without an expectation would go untried as the six roles."""
    ctx = Context(Store(f"sqlite:///{tmp_path / 'genba.db'}"), fast_hashing=True)
    try:
        paths = create_app(ctx).openapi()["paths"]
    finally:
        ctx.store.dispose()
    in_schema = {(method.upper(), api.shape(path)) for path, ops in paths.items() for method in ops}
    in_matrix = {(e.method, api.shape("/api/v1" + e.path)) for e in api.MATRIX}
    assert in_schema - in_matrix == set(), "endpoints without a row in tests/chaos/api.py MATRIX"
    assert in_matrix - in_schema == set(), "rows in MATRIX for endpoints the API no longer has"
