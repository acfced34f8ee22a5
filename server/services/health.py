"""What the operator's health check and metrics read from the database. No actor: these answer
the operator's network (``/healthz``, ``/metrics``), never a user, and say nothing personal."""

from __future__ import annotations

import time
from typing import Any

from server.services.context import Context
from server.services.devices import device_view


def database_latency_ms(ctx: Context) -> float:
    """One short read (the audit log's newest id, an index lookup): the store answers, with its
    schema. Raises whatever the database raises when it cannot be read; the caller reports it."""
    started = time.perf_counter()
    with ctx.read() as uow:
        uow.audit.newest_id()
    return (time.perf_counter() - started) * 1000.0


def gates(ctx: Context) -> list[dict[str, Any]]:
    """Every gate in service (not retired) as the site's device list shows it: online (a fresh
    status and no Last Will), last seen, taps waiting in its buffer."""
    with ctx.read() as uow:
        now = ctx.now()
        return [device_view(d, now) for d in uow.devices.all() if d.retired_at is None]
