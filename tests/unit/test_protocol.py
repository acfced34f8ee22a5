"""The wire contract: strict, versioned, and the same on both sides."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocol import topics
from protocol.errors import ProtocolError
from protocol.messages import (
    Ack,
    AckItem,
    Card,
    Command,
    DeviceConfig,
    DeviceStatus,
    TapEvent,
    card_digest,
    decode,
    encode,
)

NOW = datetime(2026, 11, 25, 7, 58, 12, tzinfo=UTC)
BUF = "0123456789abcdef0123456789abcdef"


def tap(**kw: object) -> TapEvent:
    fields: dict[str, object] = dict(
        device_id="gate-01", buffer_id=BUF, seq=42, card=Card(tech="felica", uid="0114A1B2C3D4E5F6"),
        direction="in", at=NOW, clock_synced=True, boot_id="b1", mono_ms=1234,
    )
    fields.update(kw)
    return TapEvent(**fields)  # type: ignore[arg-type]


def test_every_message_survives_the_wire() -> None:
    for message in (
        tap(),
        Ack(device_id="gate-01", buffer_id=BUF, acks=[AckItem(seq=42, outcome="recorded")]),
        DeviceStatus(device_id="gate-01", state="online", at=NOW, buffer_depth=3),
        DeviceConfig(device_id="gate-01", version=7, roster_key="00ff", roster={"ab" * 16: "ok"}),
        Command(id="c1", name="identify"),
    ):
        assert decode(type(message), encode(message)) == message


@pytest.mark.parametrize(
    "body, code",
    [
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_utf8"),
        (b"[1, 2]", "not_an_object"),
        (b'{"v": 2, "device_id": "gate-01"}', "unsupported_version"),
        (b'{"device_id": "gate-01"}', "unsupported_version"),
        (b'{"v": 1, "device_id": "gate-01"}', "invalid"),
        (b'{"v": 1, "device_id": "GATE 01", "seq": 1}', "invalid"),
    ],
)
def test_a_bad_body_is_refused_with_a_reason(body: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(TapEvent, body)
    assert err.value.code == code


def test_unknown_fields_and_bad_values_are_refused() -> None:
    good = tap().model_dump(mode="json")
    for change in ({"extra": 1}, {"seq": 0}, {"direction": "sideways"}, {"at": "2026-11-25T07:58:12"},
                   {"card": {"tech": "felica", "uid": "0114a1b2"}}, {"card": {"tech": "felica", "uid": "ABC"}}):
        with pytest.raises(ProtocolError):
            decode(TapEvent, json.dumps(good | change).encode())


def test_an_oversized_body_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as err:
        decode(Ack, b" " * (64 * 1024 + 1))
    assert err.value.code == "too_large"


def test_topics_are_per_device_and_parse_back() -> None:
    assert topics.topic("gate-01", "tap") == "genba/v1/devices/gate-01/tap"
    assert topics.parse("genba/v1/devices/gate-01/ack") == ("gate-01", "ack")
    assert topics.parse("genba/v1/devices/gate-01/other") is None
    assert topics.parse("genba/v1/devices/../tap") is None
    assert topics.TAP_SUBSCRIPTION == "$share/genba-ingest/genba/v1/devices/+/tap"
    with pytest.raises(ValueError):
        topics.topic("Gate/01", "tap")


def test_card_digests_are_keyed_and_case_insensitive() -> None:
    a = card_digest("00" * 16, "0114a1b2c3d4e5f6")
    assert a == card_digest("00" * 16, "0114A1B2C3D4E5F6")
    assert a != card_digest("01" * 16, "0114A1B2C3D4E5F6")
    assert len(a) == 32


def test_a_new_buffer_is_a_new_count_of_seqs(tmp_path: Path) -> None:
    """A lost SD card must not make new taps look like duplicates of old ones: each buffer has its id."""
    from firmware.buffer import Buffer

    first, second = Buffer(tmp_path / "a.db"), Buffer(tmp_path / "b.db")
    try:
        assert len(first.buffer_id) == 32 and first.buffer_id != second.buffer_id
        again = Buffer(tmp_path / "a.db")
        assert again.buffer_id == first.buffer_id
        again.close()
    finally:
        first.close()
        second.close()


def test_a_command_without_an_update_is_sent_as_gates_before_signed_updates_read_it() -> None:
    wire = encode(Command(id="c1", name="identify"))
    assert b'"update"' not in wire  # an older gate refuses unknown keys: it must still carry out identify
    assert decode(Command, wire) == Command(id="c1", name="identify")
    # An update without its offer is nothing a gate can act on, but it is valid to decode (the gate ignores it).
    assert decode(Command, encode(Command(id="c2", name="update"))).update is None



def _tap_body(**changes: object) -> bytes:
    body = json.loads(encode(tap()))
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "body, code",
    [
        # Bodies that escaped decode() as RecursionError / ValueError and dropped the ingest's whole batch.
        (b"[" * 5000, "not_json"),
        (b'{"v": 1, "seq": ' + b"9" * 5000 + b"}", "not_json"),
        # Coercions the contract does not allow: each was stored as a tap.
        (_tap_body(v=True), "unsupported_version"),
        (_tap_body(seq="1"), "invalid"),
        (_tap_body(clock_synced="yes"), "invalid"),
        (_tap_body(at=1764057492), "invalid"),
        (_tap_body(mono_ms=1.5), "invalid"),
        (_tap_body().decode().encode("utf-16"), "not_utf8"),
        # Past what the store holds: refused here, not by the database for the whole batch.
        (_tap_body(seq=2**63), "invalid"),
        (_tap_body(mono_ms=2**63), "invalid"),
    ],
)
def test_hostile_and_lax_bodies_are_protocol_errors_never_crashes_or_taps(body: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(TapEvent, body)
    assert err.value.code == code
    assert decode(TapEvent, _tap_body(seq=2**63 - 1)).seq == 2**63 - 1  # the largest seq still goes through
