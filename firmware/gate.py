"""The gate: a card read becomes a durable tap, feedback, and a message to the server.

The tap path, in this order, on the reader's thread:

    read card → debounce → decide what to show (cached roster, in memory) → durable insert
    (seq assigned, synchronous=FULL) → feedback (LED, beep, voice; returns at once) → kick the publisher

Feedback never waits for the network, and a worker is only told 「記録しました」 after the tap is on
the SD card. Where a crash can happen and why it is safe:

- before the insert commits: no feedback was given, the worker taps again;
- after the commit, before feedback: the tap is kept and sent; the worker sees nothing and may tap
  again, which the debounce or the server's one-record-per-day rule absorbs;
- after feedback, before the publish: the publisher re-sends everything unacknowledged on start;
- after the publish, before the server's Ack: the tap stays unacknowledged and is sent again; the
  server deduplicates on (device_id, seq).

Everything that is not the tap path (config, commands, statistics, pruning, status, the watchdog)
runs on the housekeeping thread with its own buffer connection. That includes the WAL checkpoint: the
tap thread's connection never checkpoints (it would copy the WAL into the database inside a tap's
COMMIT, before the LED); housekeeping does it while no card is being tapped (see Buffer.checkpoint).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firmware.buffer import SCRUB_QUIET_S, Buffer, quarantine_if_corrupt, quarantined_files
from firmware.clock import Clock
from firmware.config import GateConfig
from firmware.errors import BufferFull
from firmware.feedback import Feedback, Idle, Signal
from firmware.reader.base import CardRead, Reader, ReaderLoop, ReaderState
from firmware.rollback import HealthConfirmer, gate_version
from firmware.status import STATUS_FILE, StatusFile, gate_state
from firmware.update import apply_offer_in_background
from protocol.errors import ProtocolError
from protocol.messages import AckItem, Command, DeviceConfig, DeviceStatus, card_digest, decode, encode

log = logging.getLogger("genba.gate")

RESERVE_BYTES = 4 * 1024 * 1024  # freed when the SD card fills up, so acks and pruning can still commit
RESERVE_REFILL_FREE = 64 * 1024 * 1024  # put the reserve back once this much is free again
COMMAND_MAX_AGE = timedelta(minutes=10)
DISK_LOW_BYTES = 1024 * 1024  # below this the SD card counts as full (red alarm) before a tap fails
STALL_S = 30.0  # a tap path stuck this long stops the watchdog pings: systemd restarts the gate
# The WAL checkpoint, off the tap path: once this many taps are in the WAL (about SQLite's own 1,000-page
# threshold, three pages a tap) and no card was tapped for CHECKPOINT_IDLE_S; at CHECKPOINT_MAX_TAPS even
# in a rush without pauses, so the WAL stays bounded. Online, the publisher's connection (SQLite's
# automatic checkpoint) usually gets there first.
CHECKPOINT_TAPS = 300
CHECKPOINT_IDLE_S = 1.0
CHECKPOINT_MAX_TAPS = 1000
DIGEST_CACHE_MAX = 10_000  # card digests remembered for the roster lookup (more than any site's cards)

# Signals that told the worker the tap was recorded: the same card again within the debounce window
# hears 「記録済みです」 (a refused card is told again why).
_RECORDED = frozenset({Signal.ENTRY, Signal.EXIT, Signal.RECORDED_UNCONFIGURED, Signal.RECORDED_UNREGISTERED})


@dataclass
class Stats:
    """What the status shows, refreshed by the housekeeping thread (the only reader of the buffer there)."""

    depth: int = 0
    oldest_unacked_seq: int | None = None
    oldest_unacked_at: datetime | None = None
    last_tap_at: datetime | None = None
    disk_ok: bool = True
    connected: bool = False
    reader: ReaderState = ReaderState.STARTING


def _local_date(at: datetime) -> str:
    return at.astimezone().date().isoformat()


class Gate:
    def __init__(
        self,
        cfg: GateConfig,
        *,
        reader: Reader,
        feedback: Feedback,
        clock: Clock,
        publisher_factory: Any = None,
        motion: Any = None,
        direction: Any = None,
        notify: Any = None,
        events: Any = None,
        voice: Any = None,
    ) -> None:
        self.cfg = cfg
        self.voice = voice
        self.reader = reader
        self.events = events  # simulation: one line per tap, `tap <seq> <signal>`
        self.feedback = feedback
        self.clock = clock
        self.motion = motion
        self.direction_switch = direction
        self.notify = notify  # sdnotify.SystemdNotifier or None
        self.buffer_path = Path(cfg.data_dir) / "buffer.db"
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        self.started = time.monotonic()
        self._tap_buffer: Buffer | None = None  # opened on the reader thread, used only there
        self._last_recorded: dict[str, float] = {}  # uid → monotonic time of its last recorded tap
        self._last_direction: dict[str, tuple[str, str]] = {}  # uid → (local date, direction) for 'auto'
        self._last_signal: dict[str, Signal] = {}  # uid → what its last recorded tap was told
        self._digests: tuple[str, dict[str, str]] = ("", {})  # roster key → {uid → card_digest}
        self._idle_lock = threading.Lock()
        self._tap_started: float | None = None
        self._taps_recorded = 0  # counted by the tap thread; the housekeeping thread checkpoints after them
        self._last_tap_mono = float("-inf")
        self._taps_checkpointed = 0
        self._taps_scrubbed = -1  # the tap count at the last quiet scrub (-1: none yet since start)
        self._control: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._config: DeviceConfig | None = None
        self.version = gate_version()  # the installed version it runs from (signed updates), else the package's
        self._update_health = HealthConfirmer()
        # The server answered our taps `held`: it does not know this gate, or the gate is on no site.
        # Until a config with a site arrives (or a tap is recorded), taps are saved but not judged.
        self._unregistered = False
        self._disk_full = False
        self.status_file = StatusFile(Path(cfg.data_dir) / STATUS_FILE)  # `genba-gate status` (firmware/status.py)
        self.reader_loop = ReaderLoop(reader, self.on_card, self._on_reader_state)
        from firmware.publisher import Publisher

        factory = publisher_factory or Publisher
        self.publisher = factory(
            cfg,
            self.buffer_path,
            on_config=lambda c: self._control.put(("config", c)),
            on_command=lambda c: self._control.put(("cmd", c)),
            on_connection=self._on_connection,
            status=self.status,
            on_acks=self._on_acks,
        )
        self._housekeeping = threading.Thread(target=self._housekeep, name="housekeeping", daemon=True)

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if quarantine_if_corrupt(self.buffer_path) is not None:
            log.error("the taps not yet acknowledged in the corrupt buffer are not sent; recover them by hand")
        buf = Buffer(self.buffer_path)
        try:
            cached = buf.load_config()
            self._refresh_stats(buf)
        finally:
            buf.close()
        if cached:
            try:
                self._config = decode(DeviceConfig, cached)
                log.info("using cached config version %s", self._config.version)
            except ProtocolError as exc:
                log.warning("cached config unusable (%s); waiting for the server's", exc.code)
        self.clock.start()
        self._update_idle()
        self.status_file.update(gate_state(self))
        self.publisher.start()
        self.reader_loop.start()
        if self.notify is not None:
            self.notify.notify("READY=1")
        self._housekeeping.start()

    def stop(self) -> None:
        if self.notify is not None:
            self.notify.notify("STOPPING=1")
        self._stop.set()
        self.reader_loop.stop()
        self._housekeeping.join(timeout=10)
        self.publisher.stop()
        if self.motion is not None:
            self.motion.close()
        self.status_file.stopped(gate_state(self))
        self.feedback.close()
        if self.voice is not None:
            self.voice.close()
        self.clock.stop()

    # --- the tap path (reader thread) ------------------------------------------------------------
    @property
    def direction(self) -> str:
        if self.direction_switch is not None:
            return str(self.direction_switch.current)
        if self._config is not None and self.cfg.direction == "auto":
            return self._config.direction
        return self.cfg.direction

    def _decide(self, card: CardRead, direction: str, today: str | None) -> Signal:
        cfg = self._config
        # No roster to judge by: the tap is saved and sent (the server holds it until the gate is
        # placed), so the worker hears it was recorded, never a refusal the gate cannot know is true.
        if self._unregistered or (cfg is not None and cfg.site is None):
            return Signal.RECORDED_UNREGISTERED
        if cfg is None:
            return Signal.RECORDED_UNCONFIGURED
        if cfg.roster_key:
            status = cfg.roster.get(self._digest(cfg.roster_key, card.uid))
            if status is None:
                return Signal.UNKNOWN_CARD
            if status == "not_on_roster":
                return Signal.NOT_ON_ROSTER
            if status != "ok":
                return Signal.INCOMPLETE
        if direction == "out":
            return Signal.EXIT
        if direction == "in":
            return Signal.ENTRY
        # 'auto': the server pairs taps; for the worker, the first tap of the day reads as entry.
        last = self._last_direction.get(card.uid)
        return Signal.EXIT if last is not None and last[0] == today and last[1] == "in" else Signal.ENTRY

    def _digest(self, roster_key: str, uid: str) -> str:
        """card_digest(), remembered per roster key: an HMAC per tap for the same cards every day."""
        key, digests = self._digests
        if key != roster_key:
            digests = {}
            self._digests = (roster_key, digests)
        digest = digests.get(uid)
        if digest is None:
            if len(digests) >= DIGEST_CACHE_MAX:
                digests.clear()
            digest = digests[uid] = card_digest(roster_key, uid)
        return digest

    def on_card(self, card: CardRead) -> None:
        self._tap_started = started = time.monotonic()
        try:
            self._tap(card, started)
        except Exception:  # the reader thread must survive anything a tap can raise
            log.exception("tap path failed for a card")
            self.feedback.show(Signal.TAP_NOT_SAVED)
        finally:
            self._tap_started = None

    def _tap(self, card: CardRead, now_mono: float) -> None:
        if card.random_id:
            self.feedback.show(Signal.UNREADABLE_CARD)
            return
        last = self._last_recorded.get(card.uid)
        if last is not None and now_mono - last < self.cfg.debounce_s:
            # 「記録済み」 in green only for a tap that was good; a refused card is told again why.
            previous = self._last_signal.get(card.uid, Signal.ENTRY)
            self.feedback.show(Signal.DUPLICATE if previous in _RECORDED else previous)
            return
        stamp = self.clock.stamp()
        direction = self.direction
        # The local date only matters before the LED for 'auto'; otherwise it is worked out after it.
        today = _local_date(stamp.at) if direction == "auto" else None
        signal = self._decide(card, direction, today)
        try:
            if self._tap_buffer is None:
                self._tap_buffer = Buffer(self.buffer_path, autocheckpoint=False)
            seq = self._tap_buffer.append(
                tech=card.tech, uid=card.uid, direction=direction, at=stamp.at, clock_synced=stamp.clock_synced,
                boot_id=stamp.boot_id, mono_ms=stamp.mono_ms, shown=signal.value,
            )
        except BufferFull:
            log.error("buffer full: a tap was not saved")  # no UID: the journal is on the SD card
            self._disk_full = True
            self._release_reserve()
            self.feedback.show(Signal.TAP_NOT_SAVED)
            self._update_idle()
            return
        # Durable from here on: nothing below may report the tap as not saved.
        try:
            self._taps_recorded += 1
            self._last_tap_mono = now_mono
            self._last_recorded[card.uid] = now_mono
            self._last_signal[card.uid] = signal
            self.feedback.show(signal)
            if signal in (Signal.ENTRY, Signal.EXIT):
                day = today if today is not None else _local_date(stamp.at)
                self._last_direction[card.uid] = (day, "in" if signal == Signal.ENTRY else "out")
            if self._disk_full:
                self._disk_full = False
                self._update_idle()
            if self.events is not None:
                self.events(f"tap {seq} {signal.value}")
            if self.motion is not None:
                self.motion.tapped()
        except Exception:
            log.exception("after saving tap %s", seq)
        finally:
            self.publisher.kick()

    # --- state -----------------------------------------------------------------------------------
    def _on_reader_state(self, state: ReaderState) -> None:
        self.stats.reader = state
        self._update_idle()
        self._control.put(("status", None))

    def _on_connection(self, connected: bool) -> None:
        self.stats.connected = connected
        self._update_idle()

    def _update_idle(self) -> None:
        with self._idle_lock:  # four threads call this: compute and apply as one step
            self.feedback.set_idle(self._idle_states())
        self._control.put(("changed", None))  # the housekeeping thread writes the status file at once

    def _idle_states(self) -> set[Idle]:
        states = {Idle.READY}
        if self.stats.reader in (ReaderState.MISSING, ReaderState.FAILED):
            states.add(Idle.READER_FAILED)
        if self._disk_full or not self.stats.disk_ok:
            states.add(Idle.DISK_FULL)
        if not self.clock.synced:
            states.add(Idle.CLOCK_UNSYNCED)
        if not self.stats.connected:
            states.add(Idle.OFFLINE)
        if self._unregistered or (self._config is not None and self._config.site is None):
            states.add(Idle.UNREGISTERED)
        elif self._config is None:
            states.add(Idle.UNCONFIGURED)
        return states

    def _on_acks(self, acks: list[AckItem]) -> None:
        """From the publisher's sender thread: a `held` answer says the server cannot place this gate;
        a `recorded` one that it can (a config with its site follows)."""
        # `held` for "clock not set" waits for this gate's clock, not for a place (DESIGN: Ack reasons).
        held = any(a.outcome == "held" and a.reason != "clock not set" for a in acks)
        recorded = any(a.outcome == "recorded" for a in acks)
        with self._idle_lock:
            cfg = self._config
            # A late `held` for a tap sent before the gate was registered must not undo the config
            # with a site that arrived since (the housekeeping thread applies configs).
            placed = cfg is not None and cfg.site is not None
            unregistered = held and not recorded and not placed
            changed = (held or recorded) and unregistered != self._unregistered
            if changed:
                self._unregistered = unregistered
        if changed:
            log.warning("the server %s this gate", "does not know or place" if unregistered else "now places")
            self._update_idle()

    def status(self) -> DeviceStatus:
        """Called from the publisher's thread: built from memory only."""
        stamp = self.clock.stamp()
        return DeviceStatus(
            device_id=self.cfg.device_id,
            state="online",
            at=stamp.at,
            firmware=self.version,
            uptime_s=int(time.monotonic() - self.started),
            buffer_depth=self.stats.depth,
            oldest_unacked_seq=self.stats.oldest_unacked_seq,
            oldest_unacked_at=self.stats.oldest_unacked_at,
            last_tap_at=self.stats.last_tap_at,
            reader=self.stats.reader.value,  # type: ignore[arg-type]
            clock_synced=stamp.clock_synced,
            boot_id=stamp.boot_id,
            mono_ms=stamp.mono_ms,
            # A corrupt buffer set aside on the card also says "look at this disk" until it is removed.
            disk_ok=not self._disk_full and self.stats.disk_ok and not quarantined_files(self.buffer_path),
            direction=self.direction,  # type: ignore[arg-type]
            config_version=self._config.version if self._config else None,
        )

    # --- housekeeping thread ---------------------------------------------------------------------
    def _refresh_stats(self, buf: Buffer) -> None:
        self.stats.depth = buf.depth()
        oldest = buf.oldest_unacked()
        self.stats.oldest_unacked_seq = oldest.seq if oldest else None
        self.stats.oldest_unacked_at = oldest.at if oldest else None
        last = buf.last_tap()
        self.stats.last_tap_at = last.at if last else None

    def _housekeep(self) -> None:
        buf = Buffer(self.buffer_path)
        last_status = float("-inf")
        last_prune = float("-inf")
        synced = self.clock.synced
        try:
            while not self._stop.is_set():
                try:
                    kind, item = self._control.get(timeout=1.0)
                except queue.Empty:
                    kind, item = "tick", None
                try:
                    if kind == "config":
                        self._apply_config(buf, item)
                    elif kind == "cmd":
                        self._command(item)
                    now = time.monotonic()
                    self._refresh_stats(buf)
                    disk_ok = shutil.disk_usage(self.cfg.data_dir).free >= DISK_LOW_BYTES
                    if disk_ok != self.stats.disk_ok:
                        self.stats.disk_ok = disk_ok
                        self._update_idle()
                        kind = "status"
                    if self.clock.synced != synced:
                        synced = self.clock.synced
                        self._update_idle()
                        kind = "status"
                    if kind == "status" or now - last_status > 60:
                        self.publisher.publish_status()
                        last_status = now
                    self.status_file.update(gate_state(self))  # written only when something changed
                    self._checkpoint_if_due(buf, now)
                    if now - last_prune > 3600:
                        self._ensure_reserve()
                        cutoff = datetime.now(UTC) - timedelta(days=self.cfg.retention_days)
                        pruned = buf.prune(cutoff)
                        if pruned:
                            log.info("pruned %d delivered taps older than %s", pruned, cutoff.date())
                        last_prune = now
                except Exception:  # housekeeping must go on: log and continue
                    log.exception("housekeeping step failed")
                self._watchdog()
                # A pending update is confirmed once this version runs connected with a live tap path
                # (firmware/rollback.py rolls it back if that never happens by its deadline).
                self._update_health.tick(self.stats.connected and self._tap_started is None
                                         and getattr(self.publisher, "alive", True))
                if not self._stop.is_set() and self._update_health.superseded():
                    # The rollback check switched `current` back to the previous version (it runs
                    # as this account, not root): stop cleanly; systemd starts the version it names.
                    log.error("this version (%s) was rolled back: stopping so the previous one starts",
                              self.version)
                    os.kill(os.getpid(), signal.SIGTERM)
                    self._stop.wait(5.0)  # the handler stops the gate; do not send it again meanwhile
        finally:
            buf.close()

    def _checkpoint_if_due(self, buf: Buffer, now: float) -> None:
        """The WAL checkpoint the tap thread's connection does not do (see the module docstring), and once
        per quiet spell the scrub that empties the WAL (firmware/buffer.py: the UIDs of acknowledged
        taps), whether the publisher is online or not."""
        recorded = self._taps_recorded
        pending = recorded - self._taps_checkpointed
        quiet_for = now - self._last_tap_mono if self._tap_started is None else 0.0
        if quiet_for >= SCRUB_QUIET_S and self._taps_scrubbed != recorded:
            if buf.scrub():  # a reader in the way: the next tick tries again
                self._taps_scrubbed = self._taps_checkpointed = recorded
            return
        if (pending >= CHECKPOINT_TAPS and quiet_for >= CHECKPOINT_IDLE_S) or pending >= CHECKPOINT_MAX_TAPS:
            buf.checkpoint()
            self._taps_checkpointed = recorded

    @property
    def _reserve(self) -> Path:
        return Path(self.cfg.data_dir) / "reserve.bin"

    def _release_reserve(self) -> None:
        """A full disk blocks even deletes in SQLite (the WAL needs room): free the reserve so that
        acknowledgements and pruning can go on, and with them the next taps."""
        try:
            self._reserve.unlink(missing_ok=True)
        except OSError:
            log.exception("could not free the reserve file")

    def _ensure_reserve(self) -> None:
        if self._reserve.exists():
            return
        try:
            if shutil.disk_usage(self.cfg.data_dir).free < RESERVE_REFILL_FREE:
                return
            with open(self._reserve, "wb") as fh:
                fh.truncate(0)
                fh.write(b"\0" * RESERVE_BYTES)  # real blocks: a sparse file would reserve nothing
        except OSError:
            log.warning("could not create the reserve file %s", self._reserve)

    def _watchdog(self) -> None:
        """Ping systemd only while the gate really works: the tap path is not stuck (an SD card write),
        the reader driver returns (a wedged PN532 or nfcpy call), and the publisher's sender lives.
        Otherwise systemd restarts the gate, which reopens the reader and re-sends from the buffer."""
        if self.notify is None:
            return
        now = time.monotonic()
        started = self._tap_started
        if started is not None and now - started > STALL_S:
            log.error("tap path stalled for %.0f s: not pinging the watchdog", now - started)
            return
        beat = getattr(self.reader_loop, "last_beat", now)
        if now - beat > STALL_S:
            log.error("the card reader driver has not returned for %.0f s: not pinging the watchdog", now - beat)
            return
        if not getattr(self.publisher, "alive", True):
            log.error("the publisher's sender thread is gone: not pinging the watchdog")
            return
        self.notify.notify("WATCHDOG=1")

    def _apply_config(self, buf: Buffer, cfg: DeviceConfig) -> None:
        if cfg.device_id != self.cfg.device_id:
            log.warning("ignored a config for %s", cfg.device_id)
            return
        with self._idle_lock:  # _on_acks (publisher thread) reads it with _unregistered
            self._config = cfg
            if cfg.site is not None:
                self._unregistered = False  # registered and placed: cards are judged by the roster again
        buf.save_config(encode(cfg))
        log.info("config version %s: %d cards on the roster", cfg.version, len(cfg.roster))
        self._update_idle()

    def _command(self, cmd: Command) -> None:
        if cmd.issued_at is not None and datetime.now(UTC) - cmd.issued_at > COMMAND_MAX_AGE:
            # A command queued in the broker while the gate was off (an `identify` from last week) is
            # no longer what anyone standing at the gate asked for.
            log.info("ignored stale command %s (%s) issued at %s", cmd.name, cmd.id, cmd.issued_at.isoformat())
            return
        log.info("command %s (%s)", cmd.name, cmd.id)
        if cmd.name == "identify":
            self.feedback.identify(self._config.name if self._config and self._config.name else self.cfg.device_id)
        elif cmd.name == "selftest":
            self.feedback.selftest()
        elif cmd.name == "resync":
            self.publisher.resync()
        elif cmd.name == "update" and cmd.update is not None:
            # Signature checked before anything is downloaded; download and install in the background
            # (the tap path never waits); the gate restarts into the new version when it is in place.
            apply_offer_in_background(cmd.update)
