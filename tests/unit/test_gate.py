"""The tap path inside one gate process: the real Gate, Buffer, Feedback (gpiozero mock pins) and a
simulated reader, with the publisher replaced by a recorder (the network is tested end to end in
test_gate_e2e.py). Asserts on pins and the buffer, not on log lines."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from mqtt_peers import wait_for

from firmware.buffer import Buffer
from firmware.clock import Clock, LocalNow
from firmware.config import GateConfig, Pins
from firmware.direction import DirectionSwitch
from firmware.errors import BufferFull
from firmware.feedback import Feedback, Idle, Signal
from firmware.gate import Gate
from firmware.reader.sim import SimReader
from firmware.voice import Voice
from protocol.messages import AckItem, Command, DeviceConfig, SiteRef, card_digest, encode

KEY = "5a" * 16
CARD = "0114A1B2C3D4E5F6"
OTHER = "0114A1B2C3D4E5F7"
SITE = SiteRef(id=1, name="基本ビル新築工事")
# What a registered gate on a site has from the server (cached in its buffer): both test cards on the roster.
PLACED = DeviceConfig(device_id="gate-01", version=1, site=SITE, roster_key=KEY,
                      roster={card_digest(KEY, CARD): "ok", card_digest(KEY, OTHER): "ok"})


class RecordingPublisher:
    instances: list[RecordingPublisher] = []

    def __init__(self, cfg: GateConfig, buffer_path: Path, **callbacks: Any) -> None:
        self.callbacks = callbacks
        self.kicks = 0
        self.statuses = 0
        self.resyncs = 0
        RecordingPublisher.instances.append(self)

    def start(self) -> None:
        self.callbacks["on_connection"](True)

    def kick(self) -> None:
        self.kicks += 1

    def publish_status(self) -> None:
        self.statuses += 1

    def resync(self) -> None:
        self.resyncs += 1

    def stop(self) -> None:
        pass


class Notifier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, state: str) -> None:
        self.sent.append(state)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    # State lives on the class in gpiozero: a fresh factory per test.
    f = MockFactory()
    Device.pin_factory = f
    yield f
    f.reset()
    Device.pin_factory = None


class Rig:
    def __init__(self, tmp_path: Path, factory: MockFactory, direction: str = "in", switch: bool = False,
                 config: DeviceConfig | None = PLACED) -> None:
        """A gate on mock pins; ``config``: what it has from the server before it starts (None: nothing yet)."""
        self.events: list[str] = []
        self.cfg = GateConfig(device_id="gate-01", data_dir=tmp_path / "data", direction=direction,  # type: ignore[arg-type]
                              debounce_s=5, pins=Pins(motion=None))
        self.cards: queue.Queue[str | None] = queue.Queue()
        self.voice = Voice(self.cfg.voice, tmp_path / "voice", events=self.events.append, simulate=True)
        self.feedback = Feedback(self.cfg.pins, self.voice, events=self.events.append, pin_factory=factory)
        self.notifier = Notifier()
        self.switch = DirectionSwitch(23, 24, "in", self.events.append, factory) if switch else None
        self.gate = Gate(self.cfg, reader=SimReader(self.cards), feedback=self.feedback, clock=Clock(synced=True),
                         publisher_factory=RecordingPublisher, notify=self.notifier, direction=self.switch,
                         events=self.events.append)
        self.factory = factory
        if config is not None and not (self.cfg.data_dir / "buffer.db").exists():
            buf = Buffer(self.cfg.data_dir / "buffer.db")
            try:
                buf.save_config(encode(config))
            finally:
                buf.close()

    def __enter__(self) -> Rig:
        self.gate.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.stop()
        if self.switch is not None:
            self.switch.close()

    def tap(self, uid: str = CARD) -> None:
        before = len(self.taps())
        self.cards.put(uid)
        wait_for(lambda: len(self.taps()) > before or self.told_after(before), f"the gate's answer to {uid}")

    def taps(self) -> list[str]:
        return [e for e in self.events if e.startswith("tap ")]

    def told_after(self, _: int) -> bool:
        return False

    def buffer_seqs(self) -> list[int]:
        buf = Buffer(self.cfg.data_dir / "buffer.db")
        try:
            return [r.seq for r in buf.unacked(1000)]
        finally:
            buf.close()


def test_a_tap_is_on_disk_before_the_worker_is_told(tmp_path: Path, factory: MockFactory) -> None:
    rig = Rig(tmp_path, factory)
    seen_on_disk: list[list[int]] = []
    original = rig.feedback.show

    def show(signal: Signal) -> None:
        seen_on_disk.append(rig.buffer_seqs())  # what the SD card holds at the moment of feedback
        original(signal)

    rig.feedback.show = show  # type: ignore[method-assign]
    with rig:
        rig.tap()
        assert seen_on_disk == [[1]]
        assert rig.taps() == ["tap 1 entry"]
        assert factory.pin(27).state  # green lamp on
        assert RecordingPublisher.instances[-1].kicks == 1


def test_the_same_card_within_the_debounce_window_is_not_a_new_tap(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory) as rig:
        rig.tap()
        rig.cards.put(CARD)
        wait_for(lambda: "say 記録済みです" in rig.events, "the duplicate's answer")
        assert rig.buffer_seqs() == [1]


def test_a_random_id_card_is_told_it_cannot_be_used_and_is_not_recorded(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory) as rig:
        rig.cards.put("iso14443b 0A1B2C3D")
        wait_for(lambda: any("このカードは使えません" in e for e in rig.events), "the refusal")
        assert rig.buffer_seqs() == []


def test_a_full_disk_is_a_red_alarm_never_a_crash(tmp_path: Path, factory: MockFactory,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with Rig(tmp_path, factory) as rig:
        reserve = rig.cfg.data_dir / "reserve.bin"
        wait_for(reserve.exists, "the reserve file laid down")

        def full(self: Buffer, **_: Any) -> None:
            raise BufferFull("database or disk is full")

        with monkeypatch.context() as m:
            m.setattr(Buffer, "append", full)
            rig.cards.put(CARD)
            wait_for(lambda: any("記録できませんでした" in e for e in rig.events), "the failed save told")
            assert rig.feedback.idle == Idle.DISK_FULL
            assert not reserve.exists()  # freed, so acks and pruning can commit again
        rig.tap("0114A1B2C3D4E5F7")  # space is back: the next tap is saved and the alarm clears
        assert rig.taps() == ["tap 1 entry"]
        assert rig.feedback.idle == Idle.READY


def test_auto_direction_tells_entry_then_exit_for_the_same_card(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory, direction="auto") as rig:
        rig.gate.cfg = rig.cfg.model_copy(update={"debounce_s": 0})
        rig.tap()
        rig.tap()
        assert rig.taps() == ["tap 1 entry", "tap 2 exit"]


def test_the_direction_button_toggles_entry_and_exit_with_its_own_lamp(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory, direction="in", switch=True) as rig:
        rig.tap()
        button, lamp = factory.pin(23), factory.pin(24)
        assert not lamp.state
        button.drive_low()  # pressed (pull-up)
        wait_for(lambda: rig.switch is not None and rig.switch.current == "out", "the toggle")
        button.drive_high()
        assert lamp.state and "direction out" in rig.events
        rig.tap("0114A1B2C3D4E5F7")
        assert rig.taps() == ["tap 1 entry", "tap 2 exit"]
        buf = Buffer(rig.cfg.data_dir / "buffer.db")
        try:
            assert [r.direction for r in buf.unacked(10)] == ["in", "out"]
        finally:
            buf.close()


def test_the_servers_config_is_cached_and_commands_are_carried_out(tmp_path: Path, factory: MockFactory) -> None:
    config = DeviceConfig(device_id="gate-01", version=2, name="正門", roster_key=KEY, site=SITE,
                          roster={card_digest(KEY, CARD): "incomplete"})
    with Rig(tmp_path, factory) as rig:
        publisher = RecordingPublisher.instances[-1]
        publisher.callbacks["on_config"](config)
        wait_for(lambda: rig.gate.status().config_version == 2, "the config applied")
        rig.tap()
        assert rig.taps() == ["tap 1 incomplete"]
        publisher.callbacks["on_config"](config.model_copy(update={"device_id": "gate-99", "version": 9}))
        publisher.callbacks["on_command"](Command(id="c1", name="identify"))
        wait_for(lambda: "say 正門" in rig.events, "identify says the gate's name")
        assert rig.gate.status().config_version == 2  # another gate's config is ignored
        publisher.callbacks["on_command"](Command(id="c2", name="resync"))
        wait_for(lambda: publisher.resyncs == 1, "resync re-sends")
    # After a restart the cached config decides at once, before any server answers.
    with Rig(tmp_path, factory) as again:
        again.tap()
        assert again.taps() == ["tap 2 incomplete"]


def test_the_watchdog_is_fed_only_while_the_tap_path_moves(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory) as rig:
        assert rig.notifier.sent[0] == "READY=1"
        wait_for(lambda: "WATCHDOG=1" in rig.notifier.sent, "a watchdog ping")
        rig.gate._tap_started = time.monotonic() - 60  # a tap stuck for a minute (a wedged SD card write)
        rig.notifier.sent.clear()
        time.sleep(2.5)
        assert "WATCHDOG=1" not in rig.notifier.sent
        rig.gate._tap_started = None
        wait_for(lambda: "WATCHDOG=1" in rig.notifier.sent, "pings again once it moves")


def test_a_wedged_reader_driver_stops_the_watchdog(tmp_path: Path, factory: MockFactory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("firmware.gate.STALL_S", 1.0)
    with Rig(tmp_path, factory) as rig:
        wait_for(lambda: "WATCHDOG=1" in rig.notifier.sent, "a watchdog ping")
        wedged = threading.Event()
        release = threading.Event()

        def read(timeout: float) -> None:  # a driver call that does not return (a PN532 that stopped answering)
            wedged.set()
            release.wait(30)

        monkeypatch.setattr(rig.gate.reader, "read", read)
        wedged.wait(5)
        time.sleep(1.5)
        rig.notifier.sent.clear()
        time.sleep(1.5)
        try:
            assert "WATCHDOG=1" not in rig.notifier.sent
        finally:
            release.set()


def test_a_reader_unplugged_and_plugged_back_is_shown_and_reported(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory) as rig:
        rig.tap()
        rig.cards.put("!unplug")
        wait_for(lambda: rig.feedback.idle == Idle.READER_FAILED, "the reader alarm")
        assert rig.gate.status().reader in ("missing", "failed")
        assert any("カードリーダーを確認してください" in e for e in rig.events)
        rig.cards.put("!plug")
        wait_for(lambda: rig.feedback.idle == Idle.READY, "the alarm cleared", timeout=30)
        assert rig.gate.status().reader == "ok"
        rig.tap("0114A1B2C3D4E5F7")
        assert rig.taps()[-1] == "tap 2 entry"


def test_status_is_built_from_memory(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory) as rig:
        rig.tap()
        wait_for(lambda: rig.gate.stats.depth == 1, "the stats refreshed")
        status = rig.gate.status()
        assert status.buffer_depth == 1 and status.oldest_unacked_seq == 1 and status.clock_synced
        assert status.last_tap_at is not None and status.last_tap_at <= datetime.now(UTC)


def test_a_clock_not_yet_synchronised_flags_taps_and_shows_it(tmp_path: Path, factory: MockFactory) -> None:
    rig = Rig(tmp_path, factory)
    synced = threading.Event()
    rig.gate.clock = Clock(probe=synced.is_set, refresh_s=0.1)
    with rig:
        wait_for(lambda: rig.feedback.idle == Idle.CLOCK_UNSYNCED, "the unsynced clock shown")
        rig.tap()
        buf = Buffer(rig.cfg.data_dir / "buffer.db")
        try:
            assert buf.unacked(1)[0].clock_synced is False
        finally:
            buf.close()
        synced.set()
        wait_for(lambda: rig.feedback.idle == Idle.READY, "synchronised")


def test_a_stale_command_from_while_the_gate_was_off_is_ignored(tmp_path: Path, factory: MockFactory) -> None:
    from datetime import timedelta

    with Rig(tmp_path, factory) as rig:
        publisher = RecordingPublisher.instances[-1]
        old = datetime.now(UTC) - timedelta(days=7)
        publisher.callbacks["on_command"](Command(id="old", name="identify", issued_at=old))
        publisher.callbacks["on_command"](Command(id="new", name="identify", issued_at=datetime.now(UTC)))
        wait_for(lambda: any(e.startswith("led all blink-fast") for e in rig.events), "the fresh identify")
        assert sum(1 for e in rig.events if e.startswith("led all blink-fast")) == 1


def test_a_corrupt_buffer_is_set_aside_and_the_gate_keeps_recording(tmp_path: Path, factory: MockFactory) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "buffer.db").write_bytes(b"power cut in the middle of a page" * 200)  # not a database any more
    rig = Rig(tmp_path, factory)
    with rig:
        rig.tap()
        # A new buffer, counting from 1 under a new buffer_id; the cached config went with the old
        # file, so until the server sends it again the tap is saved but not judged.
        assert rig.taps() == ["tap 1 recorded_unconfigured"]
        assert rig.gate.status().disk_ok is False  # staff see the disk needs a look
    kept = sorted(p.name for p in data.iterdir() if ".corrupt-" in p.name)
    assert len(kept) == 1 and kept[0].startswith("buffer.db.corrupt-")


def test_the_toggled_direction_survives_a_restart(tmp_path: Path, factory: MockFactory) -> None:
    state = tmp_path / "direction"
    switch = DirectionSwitch(23, 24, "in", None, factory, state_file=state)
    button = factory.pin(23)
    button.drive_low()  # pressed (pull-up)
    wait_for(lambda: switch.current == "out", "the toggle")
    button.drive_high()
    switch.close()
    assert state.read_text().strip() == "out"
    again = DirectionSwitch(23, 24, "in", None, factory, state_file=state)  # after a power cut
    try:
        assert again.current == "out" and factory.pin(24).state  # the 退場 lamp is lit again
    finally:
        again.close()
    state.write_text("garbage\n")
    fallback = DirectionSwitch(23, 24, "in", None, factory, state_file=state)
    try:
        assert fallback.current == "in"  # an unreadable state falls back to the configured way
    finally:
        fallback.close()


def test_a_gate_without_config_records_every_card_and_says_it_is_not_configured(
        tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory, config=None) as rig:
        # At start: its own idle pattern (amber, fast blink) and sentence, not the READY dark LED.
        sentence = "say このゲートはまだ設定されていません。タッチは記録されます"
        wait_for(lambda: sentence in rig.events, "the sentence at start")
        assert "led amber blink-fast" in rig.events and rig.feedback.idle == Idle.UNCONFIGURED
        rig.tap(CARD)
        rig.tap("0114FFFFFFFFFFFF")  # a card no roster knows: recorded, not refused
        assert rig.taps() == ["tap 1 recorded_unconfigured", "tap 2 recorded_unconfigured"]
        assert rig.events.count("say 記録しました。ゲートの設定を待っています") == 2
        assert not factory.pin(17).state or factory.pin(27).state  # never red alone: green/amber alternate
        assert rig.buffer_seqs() == [1, 2]  # both on the SD card, to be sent


def test_a_gate_the_server_holds_taps_for_says_it_is_unregistered_until_its_config_places_it(
        tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory, config=None) as rig:
        publisher = RecordingPublisher.instances[-1]
        rig.tap(CARD)
        publisher.callbacks["on_acks"]([AckItem(seq=1, outcome="held", reason="unknown device")])
        wait_for(lambda: rig.feedback.idle == Idle.UNREGISTERED, "the unregistered state")
        assert "led amber/green alternate" in rig.events
        assert "say このゲートはサーバーに登録されていません。元請に登録を依頼してください" in rig.events
        rig.tap(OTHER)
        assert rig.taps()[-1] == "tap 2 recorded_unregistered"
        assert "say 記録しました。このゲートは未登録です" in rig.events
        # The 元請 registers it: the server's config with the site and roster arrives; cards are judged again.
        publisher.callbacks["on_config"](PLACED.model_copy(update={"version": 3}))
        wait_for(lambda: rig.feedback.idle == Idle.READY, "ready once placed")
        rig.tap("0114FFFFFFFFFFFF")
        assert rig.taps()[-1] == "tap 3 unknown_card"


def test_a_config_without_a_site_is_an_unregistered_gate(tmp_path: Path, factory: MockFactory) -> None:
    unplaced = PLACED.model_copy(update={"site": None, "roster": {}})  # registered nowhere, or retired
    with Rig(tmp_path, factory, config=unplaced) as rig:
        wait_for(lambda: rig.feedback.idle == Idle.UNREGISTERED, "the unregistered state at start")
        rig.tap(CARD)
        assert rig.taps() == ["tap 1 recorded_unregistered"]


def test_a_late_held_answer_does_not_undo_the_config_that_placed_the_gate(tmp_path: Path, factory: MockFactory) -> None:
    with Rig(tmp_path, factory) as rig:  # registered and placed: PLACED is its config
        publisher = RecordingPublisher.instances[-1]
        # The Ack of a tap sent before the 元請 registered the gate arrives after the config did.
        publisher.callbacks["on_acks"]([AckItem(seq=1, outcome="held", reason="unknown device")])
        rig.tap(CARD)
        assert rig.taps() == ["tap 1 entry"] and rig.feedback.idle == Idle.READY


def test_a_tap_is_stamped_in_the_gates_time_zone_looked_up_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local offset comes from the C library (TZ): a changed zone shows within a minute, and the
    instant stamped is exact throughout."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        now = LocalNow()
        first = now()
        assert first.utcoffset() == timedelta(hours=9)
        assert abs((first - datetime.now(UTC)).total_seconds()) < 1
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        assert now().utcoffset() == timedelta(hours=9)  # within the minute: the offset looked up before
        now._until = datetime.now(UTC)  # a minute has passed
        again = now()
        assert again.utcoffset() == timedelta(0) and abs((again - datetime.now(UTC)).total_seconds()) < 1
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        now._since = datetime.now(UTC) + timedelta(hours=1)  # the wall clock was stepped back since
        assert now().utcoffset() == timedelta(hours=9)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_quiet_gate_empties_its_wal_of_acknowledged_uids_even_offline(
        tmp_path: Path, factory: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher scrubs only after acks while online; a gate whose link drops right after them must
    not keep their UIDs in the -wal file all night: its housekeeping empties it once no card came for
    SCRUB_QUIET_S (shortened here), without any connection."""
    monkeypatch.setattr("firmware.gate.SCRUB_QUIET_S", 1.0)
    uids = ["0114A1B2C3D4E501", "0114A1B2C3D4E502", "0114A1B2C3D4E503"]
    with Rig(tmp_path, factory) as rig:
        for uid in uids:
            rig.tap(uid)
        path = rig.cfg.data_dir / "buffer.db"
        wal = Path(f"{path}-wal")
        publisher = Buffer(path)  # acks in, then the link drops: its own scrub is not due for 10 s
        try:
            assert publisher.mark_acked([(s, "recorded", None) for s in range(1, 4)]) == 3
            assert any(u.encode() in wal.read_bytes() for u in uids)
            wait_for(lambda: wal.stat().st_size == 0, "the quiet gate's scrub", timeout=10)
            blob = b"".join(p.read_bytes() for p in path.parent.glob("buffer.db*") if p.is_file())
            assert not any(u.encode() in blob for u in uids)
        finally:
            publisher.close()
