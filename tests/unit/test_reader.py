"""The card reader: nfcpy against an emulated card, the supervising loop, and the simulated reader.

The nfcpy tests run the gate's real NfcpyReader on nfcpy's ``udp`` driver, with the card emulated by
nfcpy itself in a child process (tests/support/nfc_emulated_card.py): the card side binds the UDP port, the
reader side sends to it. Only the loop tests use a fake Reader; the only thing patched in the nfcpy
tests is the udp device's send (the device vanishing, like a USB reader pulled out).
"""

from __future__ import annotations

import errno
import io
import logging
import queue
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nfc.clf.udp
import pytest

from firmware.errors import ConfigError, ReaderError
from firmware.reader import make_reader
from firmware.reader.base import CardRead, Reader, ReaderLoop, ReaderState
from firmware.reader.nfcpy import NfcpyReader
from firmware.reader.sim import SimReader

CARD_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "nfc_emulated_card.py"
# Long enough for a few of the udp driver's sense rounds (it waits 1 s for each technology that
# nobody answers, so a Type B card is found about 3 s into a round). Not a speed requirement.
FIND_S = 30.0
WAIT_S = 20.0


def wait_for(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --- nfcpy against an emulated card ---------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))  # the card binds 0.0.0.0:PORT, so the port must be free on every address
        return int(s.getsockname()[1])


class EmulatedCard:
    """A card held in front of udp:127.0.0.1:PORT by a child process; remove() takes it away."""

    def __init__(self, port: int, tech: str, uid: str, log_path: Path) -> None:
        self.port, self.tech, self.uid, self.log_path = port, tech, uid, log_path
        self.proc: subprocess.Popen[str] | None = None

    def present(self) -> EmulatedCard:
        assert self.proc is None, "already presented"
        with self.log_path.open("a") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, str(CARD_SCRIPT), str(self.port), self.tech, self.uid],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT_S)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.remove()
            pytest.fail(f"emulated card did not start:\n{self.log_path.read_text()}")
        return self

    def remove(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()  # the card exits when its stdin closes
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture
def udp_port() -> int:
    return free_udp_port()


@pytest.fixture
def card_at(udp_port: int, tmp_path: Path) -> Iterator[Callable[[str, str], EmulatedCard]]:
    """Make cards for the emulated field; every card still there is removed (its process ended) at teardown."""
    cards: list[EmulatedCard] = []

    def make(tech: str, uid: str) -> EmulatedCard:
        card = EmulatedCard(udp_port, tech, uid, tmp_path / "card.log")
        cards.append(card)
        return card

    yield make
    for card in cards:
        card.remove()


@pytest.fixture
def udp_reader(udp_port: int) -> Iterator[NfcpyReader]:
    reader = NfcpyReader(f"udp:127.0.0.1:{udp_port}")
    reader.open()
    yield reader
    reader.close()


def test_felica_card_is_read_by_its_idm(card_at, udp_reader: NfcpyReader) -> None:
    card_at("felica", "0123456789abcdef").present()

    assert udp_reader.read(FIND_S) == CardRead(tech="felica", uid="0123456789ABCDEF", random_id=False)


def test_card_left_on_the_reader_is_read_once_until_removed(card_at, udp_reader: NfcpyReader) -> None:
    card = card_at("felica", "012E4CD2E5F7A9B1").present()
    assert udp_reader.read(FIND_S) == CardRead("felica", "012E4CD2E5F7A9B1")

    assert udp_reader.read(2.0) is None  # still lying on the reader: not a second tap

    card.remove()
    assert udp_reader.read(2.0) is None
    card.present()  # the same card, tapped again
    assert udp_reader.read(FIND_S) == CardRead("felica", "012E4CD2E5F7A9B1")


def test_iso14443a_card_is_read_by_its_uid(card_at, udp_reader: NfcpyReader) -> None:
    card_at("iso14443a", "05a1b2c3d4e5f6").present()

    assert udp_reader.read(FIND_S) == CardRead(tech="iso14443a", uid="05A1B2C3D4E5F6", random_id=False)
    assert udp_reader.read(2.0) is None  # nfcpy's Type 2 presence check keeps it from being read twice


def test_iso14443a_random_uid_cannot_identify_a_worker(card_at, udp_reader: NfcpyReader) -> None:
    card_at("iso14443a", "08A1B2C3").present()  # a phone or passport: 4 bytes starting 08 = random

    assert udp_reader.read(FIND_S) == CardRead(tech="iso14443a", uid="08A1B2C3", random_id=True)


def test_iso14443b_card_is_read_as_a_random_id(card_at, udp_reader: NfcpyReader) -> None:
    card_at("iso14443b", "1A2B3C4D").present()

    assert udp_reader.read(FIND_S) == CardRead(tech="iso14443b", uid="1A2B3C4D", random_id=True)
    assert udp_reader.read(2.0) is None  # ISO-DEP presence check: same presentation


@pytest.mark.parametrize("path", ["usb:dead:beef", "tty:nonexistent", "tty:nonexistent:pn532"])
def test_opening_a_reader_that_is_not_there_raises_reader_error(path: str) -> None:
    reader = NfcpyReader(path)

    with pytest.raises(ReaderError, match="no card reader"):
        reader.open()
    reader.close()  # safe after a failed open


def test_reader_that_vanishes_while_reading_raises_reader_error(
    card_at, udp_reader: NfcpyReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    card_at("felica", "0123456789ABCDEF").present()
    assert udp_reader.read(FIND_S) is not None

    def gone(*args: object) -> None:
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(nfc.clf.udp.Device, "_send_data", gone)
    with pytest.raises(ReaderError):
        udp_reader.read(1.0)  # the presence check of the card still on the reader hits the dead device
    udp_reader.close()
    udp_reader.open()
    with pytest.raises(ReaderError, match="stopped answering"):
        udp_reader.read(1.0)  # connect() returns False on IOError


def test_loop_delivers_an_emulated_card_once(card_at, udp_port: int) -> None:
    cards: list[CardRead] = []
    states: list[ReaderState] = []
    loop = ReaderLoop(NfcpyReader(f"udp:127.0.0.1:{udp_port}"), cards.append, states.append)
    loop.start()
    try:
        card = card_at("felica", "0123456789ABCDEF").present()
        assert wait_for(lambda: len(cards) == 1, FIND_S)
        time.sleep(1.5)  # several more reads while the card stays on the reader
        card.remove()
    finally:
        loop.stop()
    assert cards == [CardRead("felica", "0123456789ABCDEF")]
    assert states == [ReaderState.STARTING, ReaderState.OK]


# --- the supervising loop, with a fake reader -----------------------------------------------------


class ScriptedReader(Reader):
    """A reader whose opens and reads follow a script; the script's end is an idle, healthy reader."""

    def __init__(self, opens: list[BaseException | None], reads: list[CardRead | BaseException | None]) -> None:
        self.opens = list(opens)
        self.reads = list(reads)
        self.is_open = False
        self.closes = 0

    def open(self) -> None:
        outcome = self.opens.pop(0) if self.opens else None
        if outcome is not None:
            raise outcome
        self.is_open = True

    def read(self, timeout: float) -> CardRead | None:
        assert self.is_open, "read on a closed reader"
        if not self.reads:
            time.sleep(min(timeout, 0.01))
            return None
        outcome = self.reads.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        self.is_open = False
        self.closes += 1


CARD_1 = CardRead("felica", "0123456789ABCDEF")
CARD_2 = CardRead("iso14443a", "05A1B2C3D4E5F6")


def run_loop(reader: Reader, until: Callable[[list[CardRead], list[ReaderState]], bool], **kw: float):  # type: ignore[no-untyped-def]
    cards: list[CardRead] = []
    states: list[ReaderState] = []
    loop = ReaderLoop(reader, cards.append, states.append, poll_s=0.05, backoff_min_s=0.01, backoff_max_s=0.05, **kw)
    loop.start()
    try:
        assert wait_for(lambda: until(cards, states)), (cards, states)
    finally:
        loop.stop()
    return loop, cards, states


def test_loop_reopens_a_failed_reader_and_keeps_delivering_cards() -> None:
    reader = ScriptedReader(
        opens=[None, ReaderError("unplugged"), None],
        reads=[CARD_1, ReaderError("stopped answering"), CARD_2],
    )

    loop, cards, states = run_loop(reader, lambda cards, states: len(cards) == 2)

    assert cards == [CARD_1, CARD_2]
    assert states == [ReaderState.STARTING, ReaderState.OK, ReaderState.FAILED, ReaderState.MISSING, ReaderState.OK]
    assert loop.state == ReaderState.OK
    assert not reader.is_open  # stop() closed it
    assert reader.closes >= 3  # after the failed read, after the failed open, at stop


def test_loop_survives_anything_a_reader_or_a_callback_raises() -> None:
    reader = ScriptedReader(
        opens=[OSError("driver exploded"), None, None],
        reads=[RuntimeError("bug in a backend"), CARD_1, CARD_2],
    )
    delivered: list[CardRead] = []

    def on_card(card: CardRead) -> None:
        delivered.append(card)
        if card == CARD_1:
            raise ValueError("the tap path failed")

    states: list[ReaderState] = []

    def on_state(state: ReaderState) -> None:
        states.append(state)
        raise RuntimeError("status display failed")

    loop = ReaderLoop(reader, on_card, on_state, poll_s=0.05, backoff_min_s=0.01, backoff_max_s=0.05)
    loop.start()
    try:
        assert wait_for(lambda: len(delivered) == 2)
    finally:
        loop.stop()

    assert delivered == [CARD_1, CARD_2]  # the card after a failing tap still arrives
    assert states == [ReaderState.STARTING, ReaderState.MISSING, ReaderState.OK, ReaderState.FAILED, ReaderState.OK]


def test_stop_ends_the_loop_even_while_it_waits_to_retry() -> None:
    reader = ScriptedReader(opens=[ReaderError("not there")], reads=[])
    states: list[ReaderState] = []
    # A retry delay of an hour: stop() must not wait for it.
    loop = ReaderLoop(
        reader, lambda card: None, states.append, backoff_min_s=3600, backoff_max_s=3600, join_timeout_s=WAIT_S
    )
    loop.start()
    assert wait_for(lambda: ReaderState.MISSING in states)
    assert loop.running

    loop.stop()

    assert not loop.running
    assert states == [ReaderState.STARTING, ReaderState.MISSING]
    loop.stop()  # twice is fine


def test_a_loop_that_is_stopped_closes_its_reader() -> None:
    reader = ScriptedReader(opens=[], reads=[])
    loop, _, states = run_loop(reader, lambda cards, states: ReaderState.OK in states)

    assert not reader.is_open and reader.closes == 1
    assert states == [ReaderState.STARTING, ReaderState.OK]


# --- the simulated reader -------------------------------------------------------------------------


def read_all(reader: SimReader) -> list[CardRead]:
    reader.open()
    cards: list[CardRead] = []
    while not reader.exhausted:
        card = reader.read(0.05)
        if card is not None:
            cards.append(card)
    return cards


def test_sim_lines_become_cards() -> None:
    lines = "0123456789abcdef\niso14443a 04a1b2c3d4e5f6\nISO14443B 1a2b3c4d\n\n# a comment\niso14443a 08A1B2C3\n"

    assert read_all(SimReader(io.StringIO(lines))) == [
        CardRead("felica", "0123456789ABCDEF"),
        CardRead("iso14443a", "04A1B2C3D4E5F6"),
        CardRead("iso14443b", "1A2B3C4D", random_id=True),
        CardRead("iso14443a", "08A1B2C3", random_id=True),
    ]


def test_sim_invalid_lines_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        "zz",
        "felica 0123",
        "nfc-f 0123456789ABCDEF",
        "!explode",
        "felica 0123456789ABCDEF extra",
        "iso14443b 0102030405060708",
    ]
    source = io.StringIO("\n".join([*bad, "0123456789ABCDEF"]) + "\n")

    with caplog.at_level(logging.WARNING, logger="firmware.reader.sim"):
        cards = read_all(SimReader(source))

    assert cards == [CardRead("felica", "0123456789ABCDEF")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(bad)
    for line, message in zip(bad, warnings, strict=True):
        assert repr(line) in message


def test_sim_end_of_input_leaves_the_reader_open_and_idle() -> None:
    reader = SimReader(io.StringIO("0123456789ABCDEF\n"))
    reader.open()
    assert not reader.exhausted

    assert reader.read(WAIT_S) == CardRead("felica", "0123456789ABCDEF")
    assert reader.read(0.1) is None
    assert reader.exhausted
    assert reader.read(0.1) is None


def test_sim_unplug_and_plug_go_through_the_loop_like_a_real_reader() -> None:
    lines: queue.Queue[str | None] = queue.Queue()
    reader = SimReader(lines)
    cards: list[CardRead] = []
    states: list[ReaderState] = []
    loop = ReaderLoop(reader, cards.append, states.append, poll_s=0.05, backoff_min_s=0.01, backoff_max_s=0.05)
    loop.start()
    try:
        lines.put("0123456789ABCDEF\n")
        assert wait_for(lambda: len(cards) == 1)
        lines.put("!unplug\n")
        assert wait_for(lambda: loop.state == ReaderState.MISSING)
        lines.put("iso14443a 05A1B2C3D4E5F6\n")  # tapped on an unplugged reader: lost, like the real thing
        lines.put("!plug\n")
        assert wait_for(lambda: loop.state == ReaderState.OK)
        lines.put("iso14443a 05A1B2C3D4E5F7\n")
        assert wait_for(lambda: len(cards) == 2)
    finally:
        loop.stop()

    assert cards == [CardRead("felica", "0123456789ABCDEF"), CardRead("iso14443a", "05A1B2C3D4E5F7")]
    assert states == [ReaderState.STARTING, ReaderState.OK, ReaderState.FAILED, ReaderState.MISSING, ReaderState.OK]


def test_make_reader_picks_the_backend_from_the_config() -> None:
    assert isinstance(make_reader("stdin"), SimReader)
    assert isinstance(make_reader("sim"), SimReader)
    nfcpy = make_reader("usb:054c:06c3")
    assert isinstance(nfcpy, NfcpyReader) and nfcpy.path == "usb:054c:06c3"
    with pytest.raises(ConfigError, match="reader"):
        make_reader(" ")


def test_a_reader_used_on_its_own_is_closed_whatever_happens() -> None:
    reader = ScriptedReader(opens=[], reads=[ReaderError("stopped answering")])

    with pytest.raises(ReaderError), reader:
        reader.read(0.1)

    assert not reader.is_open and reader.closes == 1


def test_sim_clock_line_sets_the_simulated_wall_clock_which_then_runs_on(caplog: pytest.LogCaptureFixture) -> None:
    from datetime import datetime, timedelta

    from firmware.clock import SimulatedTime

    sim = SimulatedTime()
    source = io.StringIO("!clock 2026-11-25T07:58:00+09:00\n0123456789ABCDEF\n!clock 17:30\n")
    with caplog.at_level(logging.WARNING, logger="firmware.reader.sim"):
        cards = read_all(SimReader(source, set_clock=sim.set))
    assert cards == [CardRead("felica", "0123456789ABCDEF")]
    now = sim.now()
    target = datetime.fromisoformat("2026-11-25T07:58:00+09:00")
    assert timedelta(0) <= now - target < timedelta(seconds=30)
    assert any("ISO time" in r.getMessage() for r in caplog.records)  # "17:30" alone is refused, with the form
