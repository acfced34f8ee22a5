"""Taps into the server: stored once per (device, buffer, seq), from registered gates only, with the
site taken from the server's own record of the gate. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from world import Api, Company

from protocol.messages import Card, TapEvent
from server.services import ingest
from server.store import tables as t

BUF = "ab" * 16
AT = datetime(2026, 11, 25, 7, 58, tzinfo=UTC)


def tap(seq: int, uid: str = "0114A1B2C3D4E5F6", device: str = "gate-01", buffer_id: str = BUF) -> TapEvent:
    return TapEvent(device_id=device, buffer_id=buffer_id, seq=seq, card=Card(tech="felica", uid=uid),
                    direction="in", at=AT, clock_synced=True, boot_id="b", mono_ms=seq * 1000)


def stored(api: Api) -> list[tuple[int, int | None, int]]:
    with DbSession(api.ctx.store.engine) as s:
        return [(r.seq, r.worker_id, r.site_id) for r in s.scalars(select(t.Tap).order_by(t.Tap.seq))]


def _gate(api: Api) -> tuple[int, dict[str, object]]:
    site_id, worker, _ = _gate_and_prime(api)
    return site_id, worker


def _gate_and_prime(api: Api) -> tuple[int, dict[str, object], Company]:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-01", "name": "正門"}, status=201)
    worker = api.worker(prime, "鳶田 一郎")
    prime.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": "0114A1B2C3D4E5F6"}, status=201)
    return site.id, worker, prime


def test_a_tap_is_stored_once_and_a_resend_is_a_duplicate(api: Api) -> None:
    site_id, worker = _gate(api)
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", [tap(1), tap(2, uid="0114FFFFFFFFFFFF")])] \
        == ["recorded", "recorded"]
    again = ingest.ingest_taps(api.ctx, "gate-01", [tap(1), tap(2, uid="0114FFFFFFFFFFFF"), tap(3)])
    assert [a.outcome for a in again] == ["duplicate", "duplicate", "recorded"]
    # The card's worker is attributed; a card not linked yet is kept for later.
    assert stored(api) == [(1, worker["id"], site_id), (2, None, site_id), (3, worker["id"], site_id)]


def test_a_new_buffer_of_the_same_gate_is_a_new_count(api: Api) -> None:
    _gate(api)
    ingest.ingest_taps(api.ctx, "gate-01", [tap(1)])
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1, buffer_id="cd" * 16)])
    assert [a.outcome for a in acks] == ["recorded"]  # a replaced SD card's seq 1 is not the old seq 1


def test_taps_from_unknown_retired_or_impersonated_gates_are_rejected_with_a_reason(api: Api) -> None:
    _, _, prime = _gate_and_prime(api)
    counters = ingest.Counters()
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1, device="gate-02")], counters)
    assert acks[0].outcome == "rejected" and "differs" in (acks[0].reason or "")
    acks = ingest.ingest_taps(api.ctx, "gate-99", [tap(1, device="gate-99")], counters)
    assert acks[0].outcome == "rejected" and acks[0].reason == "unknown device"
    prime.owner.ok("POST", "/devices/gate-01/retire")
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1)], counters)
    assert acks[0].outcome == "rejected" and acks[0].reason == "device retired"
    assert stored(api) == []
    assert sum(counters.rejected.values()) == 3


def test_two_ingest_workers_with_the_same_batch_store_it_once(api: Api) -> None:
    _gate(api)
    batch = [tap(n) for n in range(1, 21)]
    outcomes: list[list[str]] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        outcomes.append([a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", batch)])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with DbSession(api.ctx.store.engine) as s:
        assert s.scalar(select(func.count()).select_from(t.Tap)) == 20
    per_seq = list(zip(*outcomes, strict=True))
    assert all(sorted(p) == ["duplicate", "recorded"] for p in per_seq)


def test_a_seq_stored_with_other_content_is_a_conflict_kept_for_the_prime_not_a_duplicate(api: Api) -> None:
    site_id, worker, prime = _gate_and_prime(api)
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", [tap(1)])] == ["recorded"]
    other = tap(1, uid="0114FFFFFFFFFFFF")  # the same seq, another card: a restored SD image, or a forgery
    counters = ingest.Counters()
    acks = ingest.ingest_taps(api.ctx, "gate-01", [other, tap(1), other], counters)
    # The conflicting version is answered `conflict` each time it comes (kept once); the true re-send
    # of seq 1 is a duplicate.
    conflict = ("conflict", "seq already stored with other content")
    assert [(a.outcome, a.reason) for a in acks] == [conflict, ("duplicate", None), conflict]
    assert counters.conflict == 2 and counters.duplicate == 1
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", [other])] == ["conflict"]  # answered again
    assert stored(api) == [(1, worker["id"], site_id)]  # the record keeps the first version
    with DbSession(api.ctx.store.engine) as s:
        assert s.scalar(select(func.count()).select_from(t.TapConflict)) == 1  # kept once
    seen = prime.owner.ok("GET", f"/sites/{site_id}/tap-conflicts")
    assert [(c["device_id"], c["seq"], c["stored"]["card"]["uid"], c["other"]["card"]["uid"]) for c in seen] \
        == [("gate-01", 1, "0114A1B2C3D4E5F6", "0114FFFFFFFFFFFF")]
    outsider = api.company("(株)よその会社")
    outsider.owner.fail("GET", f"/sites/{site_id}/tap-conflicts", status=404)


def test_a_seq_repeated_in_one_batch_with_other_content_is_a_conflict(api: Api) -> None:
    _gate(api)
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1), tap(1, uid="0114FFFFFFFFFFFF"), tap(1)])
    assert [a.outcome for a in acks] == ["recorded", "conflict", "duplicate"]
    with DbSession(api.ctx.store.engine) as s:
        kept = s.scalars(select(t.TapConflict)).all()
        assert [(c.seq, c.card_uid) for c in kept] == [(1, "0114FFFFFFFFFFFF")]
