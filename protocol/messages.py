"""The messages on the wire, version 1. Strict: unknown fields, unknown versions and malformed
bodies are refused with a reason (ProtocolError), never guessed at.

Both sides import these; a change here is a change of the contract, so add a version rather than
alter the meaning of a field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from protocol.errors import ProtocolError
from protocol.update import UpdateOffer

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024  # taps, acks, status, commands
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a config carries a whole site's roster digests

DeviceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]
CardUid = Annotated[str, StringConstraints(pattern=r"^([0-9A-F]{2}){4,10}$")]
Tech = Literal["felica", "iso14443a", "iso14443b"]
Direction = Literal["in", "out", "auto"]


# Integers on the wire are bounded by what the store and the gate's SQLite hold (64-bit signed).
INT64_MAX = 2**63 - 1


class Message(BaseModel):
    # strict: no coercion on the wire ("1" is not 1, "yes" is not true, a Unix number is not a time);
    # the contract says what each field is, and a body that says otherwise is refused with a reason.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Card(Message):
    tech: Tech
    uid: CardUid  # upper-case hex: FeliCa IDm (8 bytes) or ISO 14443 UID (4, 7 or 10 bytes)


BufferId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class TapEvent(Message):
    """One card tap, as the gate recorded it. ``seq`` is per buffer, strictly increasing, never reused.

    ``buffer_id`` names the gate's SD-card buffer: a gate whose buffer was lost (a new SD card, a
    reflash, a corrupt file) starts counting again from 1 under a new buffer_id, so the server
    deduplicates on (device_id, buffer_id, seq) and an old Ack can never confirm a new tap."""

    v: Literal[1] = 1
    device_id: DeviceId
    buffer_id: BufferId
    seq: int = Field(..., ge=1, le=INT64_MAX)
    card: Card
    direction: Direction
    at: AwareDatetime  # the gate's wall clock (RFC 3339 with offset)
    clock_synced: bool  # was that clock NTP-synchronised when the tap was taken
    boot_id: str = Field(..., min_length=1, max_length=64)
    # CLOCK_MONOTONIC in ms within boot_id: lets the server fix ``at`` later
    mono_ms: int = Field(..., ge=0, le=INT64_MAX)
    shown: str | None = Field(None, max_length=40)  # what the gate told the worker (feedback signal name)


# conflict: the server already holds this (device, buffer, seq) with other content; it kept this
# version too, for the 元請 to see. held: stored, but not yet a record because the server cannot place
# the gate (not registered, or on no site): it becomes one when the 元請 registers or places the gate,
# with ``reason`` saying which; or ``reason`` "clock not set": taken on an unsynchronised clock that is
# far off, it is dated by the first synchronised tap or status of the same boot. Final, like the
# others: the server has the tap. rejected for time ("time in the future", "time past the correction
# deadline"): kept for the 元請 too, never a record.
Outcome = Literal["recorded", "duplicate", "rejected", "conflict", "held"]


class AckItem(Message):
    seq: int = Field(..., ge=1, le=INT64_MAX)
    outcome: Outcome  # all are final: the gate stops re-sending
    reason: str | None = Field(None, max_length=200)


class Ack(Message):
    """Sent by the server after its database commit, never before."""

    v: Literal[1] = 1
    device_id: DeviceId
    buffer_id: BufferId  # echoed from the taps it answers
    acks: list[AckItem] = Field(..., min_length=1, max_length=1000)


ReaderState = Literal["ok", "starting", "missing", "failed"]


class DeviceStatus(Message):
    """Retained; the Last Will is the same with state=offline."""

    v: Literal[1] = 1
    device_id: DeviceId
    state: Literal["online", "offline"]
    at: AwareDatetime
    firmware: str = Field("", max_length=40)
    uptime_s: int = Field(0, ge=0, le=INT64_MAX)
    buffer_depth: int = Field(0, ge=0, le=INT64_MAX)  # taps not yet acknowledged by the server
    oldest_unacked_seq: int | None = Field(None, ge=1, le=INT64_MAX)
    oldest_unacked_at: AwareDatetime | None = None
    last_tap_at: AwareDatetime | None = None
    reader: ReaderState = "starting"
    clock_synced: bool = False
    boot_id: str = Field("", max_length=64)
    mono_ms: int = Field(0, ge=0, le=INT64_MAX)
    disk_ok: bool = True
    direction: Direction = "auto"
    config_version: int | None = Field(None, ge=0, le=INT64_MAX)


# ok: on this site's roster; incomplete: on it without 職種 or 立場; not_on_roster: a card the server
# knows (linked to a worker of a company on the site) whose worker is not on this site's roster.
# A card not listed at all is not linked to any worker the site knows.
RosterStatus = Literal["ok", "incomplete", "not_on_roster"]


class SiteRef(Message):
    id: int
    name: str = Field(..., max_length=200)


class DeviceConfig(Message):
    """Retained, from the server. The roster holds keyed digests of card UIDs, never names: enough
    for offline feedback, useless if the SD card is stolen."""

    v: Literal[1] = 1
    device_id: DeviceId
    version: int = Field(..., ge=0)
    site: SiteRef | None = None
    direction: Direction = "auto"
    name: str = Field("", max_length=100)  # spoken by ``identify``
    roster_key: str = Field("", pattern=r"^([0-9a-f]{2}){0,64}$")
    roster: dict[str, RosterStatus] = Field(default_factory=dict)  # card_digest(key, uid) → status


class Command(Message):
    v: Literal[1] = 1
    id: str = Field(..., min_length=1, max_length=64)
    name: Literal["identify", "selftest", "resync", "update"]
    issued_at: AwareDatetime | None = None
    update: UpdateOffer | None = None  # name "update": the signed bundle's URL, manifest and signature


def card_digest(roster_key_hex: str, uid: str) -> str:
    """HMAC-SHA256 of the upper-case UID under the config's key, first 16 bytes, hex."""
    mac = hmac.new(bytes.fromhex(roster_key_hex), uid.upper().encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:32]


M = TypeVar("M", bound=Message)


def decode(model: type[M], payload: bytes | str, max_bytes: int | None = None) -> M:
    """Parse and validate one message, or raise ProtocolError with a short reason."""
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    limit = max_bytes or (MAX_CONFIG_BYTES if model is DeviceConfig else MAX_MESSAGE_BYTES)
    if len(raw) > limit:
        raise ProtocolError("too_large", f"{len(raw)} bytes > {limit}")
    try:
        text = raw.decode("utf-8")  # UTF-8 only: json.loads would also take UTF-16 and UTF-32 bytes
    except UnicodeDecodeError as exc:
        raise ProtocolError("not_utf8", str(exc)[:200]) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError: not JSON, or an integer of more digits than Python converts (4,300);
        # RecursionError: arrays or objects nested thousands deep. Both are a body, not a crash.
        raise ProtocolError("not_json", f"{type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(data, dict):
        raise ProtocolError("not_an_object", type(data).__name__)
    version = data.get("v")
    if type(version) is not int or version != VERSION:  # true == 1 in Python, but not on the wire
        raise ProtocolError("unsupported_version", f"v={version!r}, this side speaks v={VERSION}")
    try:
        return model.model_validate_json(text)  # strict, on the JSON types themselves
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ProtocolError("invalid", f"{where}: {first.get('msg')}"[:200]) from None


def encode(message: Message) -> bytes:
    if isinstance(message, Command) and message.update is None:
        # A gate from before signed updates knows no "update" key and refuses unknown keys: leave it
        # out of every other command, so those gates still carry out identify, selftest and resync.
        return message.model_dump_json(exclude={"update"}).encode("utf-8")
    return message.model_dump_json(exclude_none=False).encode("utf-8")


__all__ = [
    "Ack", "AckItem", "Card", "Command", "DeviceConfig", "DeviceStatus", "SiteRef", "TapEvent",
    "card_digest", "decode", "encode",
]
