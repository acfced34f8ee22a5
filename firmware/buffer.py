"""The gate's local buffer: the SD card's truth about every tap.

A tap is written here, durably, before the worker gets any feedback, and stays until the server has
acknowledged it (after its own database commit) and the retention period has passed. The publisher
reads the unacknowledged taps from here in ``seq`` order; paho's in-memory queue is never the truth.

Why it is built the way it is:

- SQLite through sqlite-utils, in WAL mode with ``synchronous=FULL`` on *every* connection: with
  ``NORMAL``, WAL mode skips the fsync at commit and a power cut can lose the last commits, i.e. taps
  the worker already heard 「入場を記録しました」 for. ``FULL`` fsyncs the WAL on each commit.
- ``seq`` is an ``INTEGER PRIMARY KEY AUTOINCREMENT``: SQLite then never hands out a rowid again, even
  after the rows with the highest ids were pruned, so (device_id, seq) stays a unique key on the server.
- One Buffer per thread: each opens its own connection (sqlite3 refuses use from another thread).
  The tap thread and the publisher thread work on the same file at once; WAL lets readers run
  alongside the single writer and ``busy_timeout`` makes a writer wait for the other instead of failing.
- Every write is its own short transaction that starts with the write (never read-then-write), so a
  busy writer only ever waits, it never gets a stale-snapshot error.
- A full disk is an alarm, never a crash: SQLITE_FULL / ENOSPC becomes ``BufferFull`` and the
  connection stays usable, so the next tap is recorded as soon as space is back.
- The tap path is one prepared INSERT in its own BEGIN/COMMIT on the stdlib connection: sqlite-utils
  is used everywhere else, but its insert() looks the table up and rebuilds the statement on every call,
  0.1–0.2 ms a tap on the development machine, of the order of the fsync'd commit itself (`make bench`).
- The tap thread's connection never checkpoints (``autocheckpoint=False``, ``PRAGMA wal_autocheckpoint
  = 0``): SQLite would otherwise copy the WAL back into the database inside the COMMIT of every ~300th
  tap, an extra write and fsync of the database file between that card and its LED. The gate's
  housekeeping thread checkpoints instead (``checkpoint()``, PASSIVE: it never blocks the tap), and the
  other connections keep SQLite's automatic checkpoint.

Personal data (a stolen SD card, a buffer copied off for support): the buffer keeps a card UID in clear
only while the tap still has to be sent. The UPDATE that marks a tap acknowledged replaces its UID by
``hmac-sha256:<hex>``, an HMAC-SHA256 under the gate's ``uid_key``, which lives in the secrets file
(firmware/keystore.py), never in the buffer; the cached DeviceConfig is stored without its roster key
(that goes to the secrets file too). Overwritten bytes must not linger either:

- ``PRAGMA secure_delete = ON`` on every connection: SQLite zeroes the space a changed or deleted row
  leaves in its page, and pages it frees, so neither the database file nor the WAL frames written after
  the change keep the old UID.
- The WAL still holds the frames written *before* the change (the tap's INSERT). A checkpoint copies
  them into the database (where the digest overwrites them) and, when every frame was copied, the WAL
  is truncated to zero bytes without waiting for anyone, never in the tap's COMMIT:
  - by the gate's housekeeping thread (``scrub()``) once no card was tapped for ``SCRUB_QUIET_S`` by
    its monotonic clock, online or not;
  - by the publisher's connection after acks (``checkpoint()``, at most every ``SCRUB_INTERVAL_S``) when
    no tap was recorded for ``SCRUB_QUIET_S``, or when the scrub has been owed for
    ``SCRUB_MAX_DEFER_S`` (a site that is never quiet for a minute);
  - at ``close()``, always.
  Until then a checkpoint leaves the WAL's size alone and the next commits overwrite it from its
  start. Truncating in a rush made every following tap's COMMIT grow the file again, and a growing
  file's fsync also commits the file system's journal (its size changed): +0.18 ms a tap, a third of
  the bare insert, measured with `make bench`. So after a clean stop no UID of an acknowledged tap is
  in any file; after a power cut the WAL can still hold the UIDs of taps acknowledged in the current
  rush (at most ``SCRUB_MAX_DEFER_S`` back) in the frames newer taps have not overwritten yet.
- Residual risk, which only encrypting the card (and keeping its key off it) removes: truncating and
  rewriting files frees blocks at the file-system level without erasing them, and the SD card's flash
  translation layer keeps old copies of rewritten blocks; a forensic read of the raw card can find them.

Timestamps: ``at`` is the gate's wall clock as given (ISO 8601 with its offset); the bookkeeping
columns (created_at, last_sent_at, acked_at) are UTC ISO 8601 with a fixed width, so they compare as text.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

from sqlite_utils import Database

from firmware import keystore
from firmware.errors import BufferFull
from protocol.messages import Card, Direction, Outcome, TapEvent

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000  # writes take milliseconds; a writer waits this long for the other connection
_CARD_CACHE_MAX = 4096  # cards remembered as valid per connection (see Buffer._valid_card)
_INSERT_TAP = (
    "INSERT INTO taps (card_tech, card_uid, direction, at, clock_synced, boot_id, mono_ms, shown, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
CONFIG_KEY = "device_config"
BUFFER_ID_KEY = "buffer_id"
ACKED_UID_PREFIX = "hmac-sha256:"  # card_uid of an acknowledged tap: this prefix and the HMAC's hex
ROSTER_KEY_MAC = "roster_key_mac"  # in the stored config instead of the key: which key it needs
SCRUB_INTERVAL_S = 10.0  # after acks, the publisher's connection checkpoints the WAL at most this often,
SCRUB_QUIET_S = 60.0  # ... and empties it once no tap came for this long (so does housekeeping: scrub())
SCRUB_MAX_DEFER_S = 600.0  # ... or once the scrub has been owed this long, quiet or not
_DIRECTIONS = frozenset(get_args(Direction))
_OUTCOMES = frozenset(get_args(Outcome))


@dataclass(frozen=True)
class TapRecord:
    """One row of the buffer, as the tap path and the publisher see it. Once ``acked``, ``card_uid`` is
    no longer the UID but its digest (``ACKED_UID_PREFIX`` + hex, see acked_uid_digest())."""

    seq: int
    card_tech: str
    card_uid: str
    direction: str
    at: datetime
    clock_synced: bool
    boot_id: str
    mono_ms: int
    shown: str | None
    acked: bool
    outcome: str | None
    sent_count: int
    reason: str | None = None
    last_sent_at: datetime | None = None

    def to_event(self, device_id: str, buffer_id: str) -> TapEvent:
        """The wire form of this tap (raises pydantic.ValidationError if device_id is not a valid id)."""
        return TapEvent(
            device_id=device_id,
            buffer_id=buffer_id,
            seq=self.seq,
            card=Card(tech=self.card_tech, uid=self.card_uid),  # type: ignore[arg-type]
            direction=self.direction,  # type: ignore[arg-type]
            at=self.at,
            clock_synced=self.clock_synced,
            boot_id=self.boot_id,
            mono_ms=self.mono_ms,
            shown=self.shown,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TapRecord:
        return cls(
            seq=row["seq"],
            card_tech=row["card_tech"],
            card_uid=row["card_uid"],
            direction=row["direction"],
            at=datetime.fromisoformat(row["at"]),
            clock_synced=bool(row["clock_synced"]),
            boot_id=row["boot_id"],
            mono_ms=row["mono_ms"],
            shown=row["shown"],
            acked=row["acked_at"] is not None,
            outcome=row["outcome"],
            sent_count=row["sent_count"],
            reason=row["reason"],
            last_sent_at=datetime.fromisoformat(row["last_sent_at"]) if row["last_sent_at"] else None,
        )


# --- schema -------------------------------------------------------------------------------------------

# sqlite-utils' public Table.create() has no AUTOINCREMENT option (simonw/sqlite-utils#664; only
# transform() preserves an existing one), and without it SQLite may hand a pruned seq out again.
# So this one table is created with plain SQL; everything else goes through sqlite-utils.
_TAPS_SQL = """
CREATE TABLE IF NOT EXISTS taps (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    card_tech    TEXT    NOT NULL,
    card_uid     TEXT    NOT NULL,
    direction    TEXT    NOT NULL,
    at           TEXT    NOT NULL,
    clock_synced INTEGER NOT NULL,
    boot_id      TEXT    NOT NULL,
    mono_ms      INTEGER NOT NULL,
    shown        TEXT,
    created_at   TEXT    NOT NULL,
    sent_count   INTEGER NOT NULL DEFAULT 0,
    last_sent_at TEXT,
    acked_at     TEXT,
    outcome      TEXT,
    reason       TEXT
)
"""


def _schema_v1(db: Database) -> None:
    db.execute(_TAPS_SQL)
    # (acked_at, seq) order: unacked rows (acked_at NULL) come first in seq order; prune ranges on acked_at.
    db["taps"].create_index(["acked_at"], index_name="taps_acked_at", if_not_exists=True)
    db["meta"].create({"key": str, "value": bytes}, pk="key", if_not_exists=True)
    # This file's identity: seqs count within it (see protocol.messages.TapEvent.buffer_id).
    db["meta"].insert({"key": BUFFER_ID_KEY, "value": uuid.uuid4().hex.encode()}, pk="key", ignore=True)


def _schema_v2(db: Database) -> None:
    """No UID of an acknowledged tap in clear, no roster key in the buffer (see the module docstring).
    Runs through the SQL functions every Buffer connection carries (Buffer._register_functions), so the
    keys stay in the secrets file; the Buffer then VACUUMs the file once, as rows pruned before this
    version may still sit in free pages."""
    db.execute(
        "UPDATE taps SET card_uid = genba_uid_digest(card_uid), reason = genba_scrub(reason, card_uid)"
        " WHERE acked_at IS NOT NULL AND substr(card_uid, 1, ?) != ?",
        [len(ACKED_UID_PREFIX), ACKED_UID_PREFIX],
    )
    row = db.execute("SELECT value FROM meta WHERE key = ?", [CONFIG_KEY]).fetchone()
    if row is not None:
        stored = db.execute("SELECT genba_config_to_store(?)", [row[0]]).fetchone()[0]
        db.execute("UPDATE meta SET value = ? WHERE key = ?", [stored, CONFIG_KEY])


# MIGRATIONS[i] takes the schema from version i to i + 1 (PRAGMA user_version). Add a function to move
# on; only ever add nullable columns or new tables, so an older firmware can still read a newer file.
MIGRATIONS: list[Callable[[Database], None]] = [_schema_v1, _schema_v2]
_PRIVATE_FROM = 2  # a buffer migrated from below this version is VACUUMed once (see _schema_v2)
SCHEMA_VERSION = len(MIGRATIONS)


# --- errors ---------------------------------------------------------------------------------------------


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == sqlite3.SQLITE_FULL
        return "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


@contextlib.contextmanager
def _disk_full_is_buffer_full() -> Iterator[None]:
    """Turn SQLITE_FULL / ENOSPC into BufferFull. sqlite-utils has already rolled the transaction back."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        if _is_disk_full(exc):
            raise BufferFull(f"tap buffer: {exc}") from exc
        raise


def _utc_text(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def acked_uid_digest(uid_key: bytes, uid: str) -> str:
    """What an acknowledged tap keeps of its card: HMAC-SHA256 of the upper-case UID under the gate's
    uid_key. One-way without the key; with it, an operator can still tell whether a given card tapped."""
    mac = hmac.new(uid_key, b"genbagate acked uid:" + uid.upper().encode("utf-8"), hashlib.sha256)
    return ACKED_UID_PREFIX + mac.hexdigest()


# --- the buffer -----------------------------------------------------------------------------------------


def quarantine_if_corrupt(path: Path) -> Path | None:
    """Called once at gate start, before any other connection opens the buffer.

    A buffer SQLite cannot read (power cut on a cheap SD card, a file that is not a database,
    "database disk image is malformed") would otherwise stop the gate at every start, and a gate
    that cannot start records no tap at all. Such a file is renamed aside, with its -wal and -shm,
    as ``buffer.db.corrupt-<UTC time>`` (kept for recovery by hand: its unacknowledged taps may be
    readable with the sqlite3 shell's .recover), and the gate starts a new buffer under a new
    buffer_id, so the server never mistakes the new seq numbers for the old ones.

    An I/O error, a busy or read-only file is not corruption (sqlite3.OperationalError): it is
    raised as before. Returns the quarantined path, or None when the buffer is fine or absent."""
    path = Path(path)
    if not path.exists():
        return None
    problem: str | None = None
    try:
        conn = sqlite3.connect(path)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()
            if not result or result[0] != "ok":
                problem = f"quick_check: {result[0] if result else 'no answer'}"
        finally:
            conn.close()
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem is None:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    log.error("buffer %s is corrupt (%s): moved to %s; starting a new buffer", path, problem, target)
    return target


def quarantined_files(path: Path) -> list[Path]:
    """Buffers set aside by quarantine_if_corrupt and still on the card (the status reports them)."""
    path = Path(path)
    return sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith(("-wal", "-shm")))



@dataclass(frozen=True)
class BufferSummary:
    depth: int  # taps waiting for the server's ack
    oldest_unacked: tuple[int, datetime] | None  # (seq, at)
    last_tap: tuple[int, datetime] | None  # (seq, at)


def read_summary(path: Path) -> BufferSummary:
    """What `genba-gate status` shows of the buffer, read through a read-only connection: no migration,
    no checkpoint, no write lock, so asking for the status never delays a tap's commit (a Buffer's
    close() checkpoints, which makes the tap thread's next commit wait) and never migrates a file with
    keys this process does not have. Raises sqlite3.Error when the file cannot be read."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        depth = conn.execute("SELECT count(*) FROM taps WHERE acked_at IS NULL").fetchone()[0]
        oldest = conn.execute("SELECT seq, at FROM taps WHERE acked_at IS NULL ORDER BY seq LIMIT 1").fetchone()
        last = conn.execute("SELECT seq, at FROM taps ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return BufferSummary(int(depth), (oldest[0], datetime.fromisoformat(oldest[1])) if oldest else None,
                         (last[0], datetime.fromisoformat(last[1])) if last else None)

class Buffer:
    """The SD card's truth: every tap, durably, before any feedback. SQLite (sqlite-utils) in WAL mode with
    synchronous=FULL on every connection; seq from an AUTOINCREMENT key so it is never reused, even after
    pruning or a crash. One Buffer per thread (each opens its own connection)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utc_now, autocheckpoint: bool = True,
                 secrets: keystore.SecretStore | None = None) -> None:
        """Open (creating or migrating) the buffer at ``path``. ``clock`` stamps created_at / last_sent_at /
        acked_at. ``autocheckpoint=False`` (the tap thread's connection) keeps SQLite's automatic WAL
        checkpoint out of this connection's commits; someone else must then call checkpoint().
        ``secrets`` holds the keys (default: the store `genba-gate run` activated, see firmware/keystore.py).
        Raises BufferFull if the disk is too full even to open the file."""
        self.path = Path(path)
        self._clock = clock
        self._secrets = secrets if secrets is not None else keystore.active(self.path)
        self._last_scrub = time.monotonic()
        self._scrub_pending = False
        self._scrub_owed_since = 0.0
        migrated_from = SCHEMA_VERSION
        with _disk_full_is_buffer_full():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = Database(self.path)
            try:
                # busy_timeout first: switching to WAL takes a lock another connection may hold right now.
                self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                self._enable_wal()
                self.db.execute("PRAGMA synchronous = FULL")
                self.db.execute("PRAGMA secure_delete = ON")  # per connection: see the module docstring
                if not autocheckpoint:
                    self.db.execute("PRAGMA wal_autocheckpoint = 0")
                self._register_functions()
                migrated_from = self._migrate()
            except BaseException:
                self.db.close()
                raise
        # SQLite keeps the -wal beside the file it opened, symlinks resolved: ask it, not self.path.
        self._wal_path = Path(str(self.db.execute("PRAGMA database_list").fetchone()[2]) + "-wal")
        self._taps = self.db.table("taps")
        self._meta = self.db.table("meta")
        self._cards: dict[tuple[str, str], tuple[str, str]] = {}
        row = next(self._meta.rows_where("key = ?", [BUFFER_ID_KEY], limit=1), None)
        self.buffer_id: str = bytes(row["value"]).decode() if row else ""
        if 0 < migrated_from < _PRIVATE_FROM:  # an existing file of an older firmware, not a new one
            self._vacuum()

    def _register_functions(self) -> None:
        """The keyed steps as SQL functions of this connection, so that mark_acked() digests the UID in the
        same UPDATE that marks the tap acknowledged, and the migrations can do the same to old files."""
        conn = self.db.conn
        conn.create_function("genba_uid_digest", 1, self._uid_digest, deterministic=True)
        conn.create_function("genba_scrub", 2, self._scrub_text, deterministic=True)
        conn.create_function("genba_config_to_store", 1, self._config_to_store)

    def _uid_digest(self, uid: str | None) -> str | None:
        if uid is None or uid.startswith(ACKED_UID_PREFIX):
            return uid
        return acked_uid_digest(self._secrets.uid_key, uid)

    def _scrub_text(self, text: str | None, uid: str | None) -> str | None:
        """A server's reason that quotes the card's UID keeps the digest instead."""
        if not text or not uid or uid.startswith(ACKED_UID_PREFIX) or uid.upper() not in text.upper():
            return text
        start = text.upper().index(uid.upper())
        return text[:start] + str(self._uid_digest(uid)) + text[start + len(uid):]

    def _roster_key_mac(self, roster_key: str) -> str:
        return hmac.new(self._secrets.uid_key, b"genbagate roster key:" + roster_key.encode(), hashlib.sha256
                        ).hexdigest()[:32]

    def _config_to_store(self, payload: bytes | str | None) -> bytes | None:
        """The DeviceConfig as the buffer keeps it: its roster key moved to the secrets file, and in its
        place a MAC saying which key the digests need (a key from another config is never paired with them).
        Anything that is not a JSON object with a roster key is kept as it is."""
        if payload is None:
            return None
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        try:
            data = json.loads(raw)
        except ValueError:
            return raw
        if not isinstance(data, dict) or "roster_key" not in data:
            return raw
        key = data.pop("roster_key")
        if isinstance(key, str) and key:
            self._secrets.set_roster_key(key)
            data[ROSTER_KEY_MAC] = self._roster_key_mac(key)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _vacuum(self) -> None:
        """Once, after the migration to the private schema: rebuild the file so that rows deleted before
        (pruned taps, with their UIDs) leave no free pages behind, then empty the WAL. A failure (a full
        disk: VACUUM needs a copy's worth of space) is logged and retried at the next start."""
        try:
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            log.info("buffer %s: rebuilt without the cleared data of older versions", self.path)
        except sqlite3.Error as exc:
            log.warning("buffer %s: could not rebuild it (%s); acknowledged UIDs are digested, but rows "
                        "deleted before this version may remain in free pages", self.path, exc)

    def _enable_wal(self) -> None:
        """WAL is a property of the file, set once by whichever connection gets there first. SQLite does not
        call the busy handler for that switch, so two connections opening a new file at the same moment
        can see SQLITE_BUSY (or the old mode): retry until the file is in WAL mode."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self.db.enable_wal()
                if self.db.journal_mode == "wal":
                    return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"{self.path}: could not switch to WAL mode")
            time.sleep(0.01)

    def _migrate(self) -> int:
        """Bring the file to SCHEMA_VERSION; returns the version it had."""
        # BEGIN IMMEDIATE (sqlite-utils' atomic() uses a deferred BEGIN): two connections opening a new
        # file at once must not both read user_version 0 and then race to write.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                log.warning("buffer %s has schema %d, newer than this firmware's %d; using it as is",
                            self.path, version, SCHEMA_VERSION)
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](self.db)
                log.info("buffer %s: schema %d -> %d", self.path, step, step + 1)
            if version < SCHEMA_VERSION:
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise
        return int(version)

    # -- the tap path --

    def record(self, *, tech: str, uid: str, direction: str, at: datetime, clock_synced: bool,
               boot_id: str, mono_ms: int, shown: str | None = None) -> TapRecord:
        """Insert one tap in its own transaction (see append()); it is committed (fsynced) when this returns."""
        card_tech, card_uid = self._valid_card(tech, uid)
        seq = self.append(tech=tech, uid=uid, direction=direction, at=at, clock_synced=clock_synced,
                          boot_id=boot_id, mono_ms=mono_ms, shown=shown)
        return TapRecord(seq=seq, card_tech=card_tech, card_uid=card_uid, direction=direction, at=at,
                         clock_synced=clock_synced, boot_id=boot_id, mono_ms=int(mono_ms), shown=shown,
                         acked=False, outcome=None, sent_count=0)

    def append(self, *, tech: str, uid: str, direction: str, at: datetime, clock_synced: bool,
               boot_id: str, mono_ms: int, shown: str | None = None) -> int:
        """Insert one tap in its own transaction; it is committed (fsynced) when this returns its seq.

        Raises BufferFull when the disk is full (the buffer stays usable). A card or direction the wire
        contract would refuse, or a naive ``at``, is a caller bug and raises ValueError: better at once
        than a tap the publisher can never send.

        The gate's tap path: one prepared INSERT between BEGIN and COMMIT on the stdlib connection, the
        statements sqlite-utils' insert() runs, without its table lookup and statement building per call.
        It returns the seq alone: the LED waits for this call, not for a TapRecord the gate does not need.
        """
        card_tech, card_uid = self._valid_card(tech, uid)
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}, not {direction!r}")
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        params = (card_tech, card_uid, direction, at.isoformat(), int(clock_synced), boot_id, int(mono_ms), shown,
                  _utc_text(self._clock()))
        conn = self.db.conn
        try:
            conn.execute("BEGIN")
            try:
                seq = conn.execute(_INSERT_TAP, params).lastrowid
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # keep the first error (SQLITE_FULL: BufferFull)
                        conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:  # _disk_full_is_buffer_full(), inline
            if _is_disk_full(exc):
                raise BufferFull(f"tap buffer: {exc}") from exc
            raise
        assert seq is not None
        return int(seq)

    def _valid_card(self, tech: str, uid: str) -> tuple[str, str]:
        """(tech, upper-case uid) once the wire contract's Card accepts them (pydantic.ValidationError if
        not). Remembered per connection: the same few hundred cards tap every day, and a pydantic model
        per tap is work the tap path can skip."""
        key = (tech, uid)
        card = self._cards.get(key)
        if card is None:
            checked = Card(tech=tech, uid=uid.upper())  # type: ignore[arg-type]
            if len(self._cards) >= _CARD_CACHE_MAX:
                self._cards.clear()
            card = self._cards[key] = (checked.tech, checked.uid)
        return card

    def set_shown(self, seq: int, shown: str) -> None:
        """Note what the worker was told for this tap (decided after the durable insert)."""
        with _disk_full_is_buffer_full():
            self._taps.update(seq, {"shown": shown})

    # -- the publisher --

    def unacked(self, limit: int = 100, after_seq: int = 0) -> list[TapRecord]:
        """Taps the server has not acknowledged, oldest (lowest seq) first.

        The publisher polls this every second or so: that is also where a WAL scrub that mark_acked()
        left for later (SCRUB_INTERVAL_S) is carried out, on the publisher's thread, off the tap path."""
        if self._scrub_pending:
            self._scrub_if_due()
        rows = self._taps.rows_where("acked_at IS NULL AND seq > ?", [after_seq], order_by="seq", limit=limit)
        return [TapRecord.from_row(r) for r in rows]

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """Count a (re)send of these taps; acknowledged ones are left alone."""
        seqs = list(seqs)
        if not seqs:
            return
        now = _utc_text(self._clock())
        # Plain SQL: Table.update() sets values per row; it cannot increment a column for a set of rows.
        with _disk_full_is_buffer_full(), self.db.atomic():
            for seq in seqs:
                self.db.execute(
                    "UPDATE taps SET sent_count = sent_count + 1, last_sent_at = ? WHERE seq = ? AND acked_at IS NULL",
                    [now, seq],
                )

    def mark_acked(self, items: Iterable[tuple[int, str, str | None]]) -> int:
        """Record the server's final word on taps: (seq, outcome, reason). Acks for seqs this buffer does not
        hold (never had, or pruned) and repeated acks change nothing. Returns how many taps changed.

        The same UPDATE replaces the card's UID by its digest (acked_uid_digest): from its commit on, the
        tap never has to be sent again, so the buffer has no reason to keep the UID. The WAL frames that
        still hold it are truncated away once the gate is quiet (see the module docstring)."""
        items = list(items)
        for _, outcome, _ in items:
            if outcome not in _OUTCOMES:
                raise ValueError(f"outcome must be one of {sorted(_OUTCOMES)}, not {outcome!r}")
        if not items:
            return 0
        now = _utc_text(self._clock())
        changed = 0
        # Plain SQL: the "only if not acked yet" condition is what makes a duplicate ack harmless, and
        # Table.update() has no WHERE beyond the primary key.
        with _disk_full_is_buffer_full(), self.db.atomic():
            for seq, outcome, reason in items:
                cur = self.db.execute(
                    "UPDATE taps SET acked_at = ?, outcome = ?, reason = genba_scrub(?, card_uid),"
                    " card_uid = genba_uid_digest(card_uid) WHERE seq = ? AND acked_at IS NULL",
                    [now, outcome, reason, seq],
                )
                changed += cur.rowcount
        if changed:
            if not self._scrub_pending:
                self._scrub_pending, self._scrub_owed_since = True, time.monotonic()
            self._scrub_if_due()
        return changed

    # -- status --

    def depth(self) -> int:
        """How many taps wait for the server's ack."""
        return self._taps.count_where("acked_at IS NULL")

    def oldest_unacked(self) -> TapRecord | None:
        found = self.unacked(limit=1)
        return found[0] if found else None

    def last_tap(self) -> TapRecord | None:
        for row in self._taps.rows_where(order_by="seq DESC", limit=1):
            return TapRecord.from_row(row)
        return None

    # -- housekeeping --

    def prune(self, acked_before: datetime) -> int:
        """Delete taps acknowledged before ``acked_before``; unacknowledged taps are never deleted, however
        old. seq keeps counting up (AUTOINCREMENT). Returns how many rows went."""
        cutoff = _utc_text(acked_before)
        before = self.db.conn.total_changes  # Table.delete_where() does not report a count
        with _disk_full_is_buffer_full():
            self._taps.delete_where("acked_at IS NOT NULL AND acked_at < ?", [cutoff])
        return self.db.conn.total_changes - before

    # -- the last DeviceConfig, so feedback works offline after a reboot --

    def save_config(self, payload: bytes) -> None:
        """Keep the server's DeviceConfig (encoded); its roster key goes to the secrets file, not here."""
        stored = self._config_to_store(bytes(payload))
        with _disk_full_is_buffer_full():
            self._meta.upsert({"key": CONFIG_KEY, "value": stored}, pk="key")

    def load_config(self) -> bytes | None:
        """The last DeviceConfig as it was saved, with its roster key back from the secrets file. If that key
        is gone or belongs to another config, the config comes back without one (the gate then judges no
        card until the server's config arrives)."""
        for row in self._meta.rows_where("key = ?", [CONFIG_KEY], limit=1):
            raw = bytes(row["value"])
            try:
                data = json.loads(raw)
            except ValueError:
                return raw
            if not isinstance(data, dict) or ROSTER_KEY_MAC not in data:
                return raw
            mac = data.pop(ROSTER_KEY_MAC)
            key = self._secrets.roster_key
            if key and isinstance(mac, str) and hmac.compare_digest(self._roster_key_mac(key), mac):
                data["roster_key"] = key
            else:
                log.warning("the cached config's roster key is not in the secrets file: cards are not judged "
                            "until the server's config arrives")
            return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return None

    def checkpoint(self) -> int:
        """Copy the committed WAL back into the database file (PASSIVE: it waits for no one and no one waits
        for it; frames a reader still needs stay for the next time). Returns how many frames the WAL holds
        (0 when there was nothing to do). Called off the tap path: see the module docstring.

        When every frame was copied and no tap was recorded for SCRUB_QUIET_S (or a scrub owed after
        acks has waited SCRUB_MAX_DEFER_S), the WAL is then truncated to zero bytes if that can be done at
        once (no busy wait: a tap being written or a reader simply makes it wait for the next time), so
        that the frames with the UIDs of acknowledged taps do not stay in the -wal file. In a rush it is
        left at its size (see the module docstring); a scrub owed after acks stays pending until the
        -wal file is empty."""
        row = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        frames = int(row[1]) if row and row[1] > 0 else 0
        # row[1] counts the frames of the WAL's current generation only: after a restart the file can
        # hold older frames beyond them, so whether there is anything to truncate is the file's size.
        copied = row is not None and row[0] == 0 and row[2] == row[1]
        overdue = self._scrub_pending and time.monotonic() - self._scrub_owed_since >= SCRUB_MAX_DEFER_S
        if not self._wal_has_bytes() or (copied and (overdue or self._quiet()) and self._truncate_wal(wait_ms=0)):
            self._scrub_pending = False
        self._last_scrub = time.monotonic()
        return frames

    def scrub(self) -> bool:
        """Empty the WAL now (TRUNCATE, waiting for no one): the housekeeping thread's call once no card
        was tapped for SCRUB_QUIET_S, online or not (the publisher only scrubs after acks, and a gate
        that goes offline right after them would otherwise keep their UIDs in the -wal file until it is
        back). True when the -wal file is empty."""
        if self._wal_has_bytes() and not self._truncate_wal(wait_ms=0):
            return False
        self._scrub_pending = False
        return True

    def _wal_has_bytes(self) -> bool:
        try:
            return self._wal_path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _quiet(self) -> bool:
        """No tap recorded for SCRUB_QUIET_S, by this buffer's clock (every connection's clock stamps
        created_at the same way: UTC, fixed-width text). A newest tap stamped *after* now means the wall
        clock was stepped back since: that is no rush, so it counts as quiet."""
        row = self.db.execute("SELECT created_at FROM taps ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return True
        now = self._clock()
        last = str(row[0])
        return last <= _utc_text(now - timedelta(seconds=SCRUB_QUIET_S)) or last > _utc_text(now)

    def _truncate_wal(self, wait_ms: int) -> bool:
        """TRUNCATE checkpoint, waiting at most ``wait_ms`` for the other connections. True when done."""
        try:
            self.db.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
            try:
                row = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            log.debug("WAL not truncated now: %s", exc)
            return False
        return bool(row and row[0] == 0)

    def _scrub_if_due(self) -> None:
        if time.monotonic() - self._last_scrub < SCRUB_INTERVAL_S:
            return
        try:
            self.checkpoint()
        except sqlite3.Error as exc:  # never fails an ack: the next due scrub tries again
            log.debug("WAL scrub failed: %s", exc)
            self._last_scrub = time.monotonic()

    def close(self) -> None:
        """Close this connection; safe to call twice. Before that, the WAL is copied into the database and
        truncated (waiting up to a second for the other connections), so a gate that stops cleanly leaves
        no acknowledged UID in its -wal file."""
        with contextlib.suppress(sqlite3.Error):
            if self.db.conn.in_transaction:
                self.db.conn.rollback()
            self._truncate_wal(wait_ms=1000)
        with contextlib.suppress(sqlite3.Error):
            self.db.close()

    def __enter__(self) -> Buffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- benchmark helpers (for `make bench`, not tests) ----------------------------------------------------


class BareInsert:
    """The physical floor on this disk: a bare stdlib-sqlite3 INSERT + COMMIT, same settings as the tap
    thread's buffer connection (WAL, synchronous=FULL, wal_autocheckpoint=0: checkpoint() is called
    outside the timed inserts, as the gate's housekeeping does for the buffer), no library, no schema
    beyond one table. Kept open, so the bench can alternate it with the tap path on warm files."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA wal_autocheckpoint = 0")
        self.conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload TEXT)")
        self._n = 0

    def checkpoint(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def time(self, n: int, gap_s: float = 0.0) -> list[float]:
        """Seconds per insert, ``n`` of them, ``gap_s`` apart (untimed)."""
        latencies: list[float] = []
        for _ in range(n):
            if gap_s:
                time.sleep(gap_s)
            self._n += 1
            t0 = time.perf_counter()
            self.conn.execute("BEGIN")
            self.conn.execute("INSERT INTO t (payload) VALUES (?)", [f"tap {self._n}"])
            self.conn.execute("COMMIT")
            latencies.append(time.perf_counter() - t0)
        return latencies

    def close(self) -> None:
        self.conn.close()
