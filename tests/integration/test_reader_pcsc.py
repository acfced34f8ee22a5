"""The PC/SC reader (RC-S300) through a real pcscd: vsmartcard's virtual reader and a virtual card.

The gate's PcscReader talks to a private pcscd (tests/support/pcscd.py: its own mount namespace,
socket and vpcd port, never the machine's pcscd) whose only reader is vpcd, named like an RC-S300.
Cards are tests/support/vpcd_card.py: connected to vpcd's port means "on the reader"; they answer
the PC/SC GET DATA ``FF CA 00 00 00`` with their UID and carry the ATR an RC-S300 builds (FeliCa:
``3B 8F 80 01 80 4F 0C A0 00 00 03 06 11 00 3B 00 00 00 00 42``). The reader going away is pcscd
going away (vpcd's reader cannot be unplugged on its own), killed and started again.

libpcsclite reads PCSCLITE_CSOCK_NAME once per process, at its first call, so it is set when this
module is imported (collection comes before any test runs) and the one pcscd of the session keeps
that socket path through its restarts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pcscd import PrivatePcscd
from vpcd_card import FELICA_ATR, MIFARE_1K_ATR, TYPE_B_ATR, VirtualCard

from firmware.errors import ReaderError
from firmware.reader import make_reader
from firmware.reader.auto import AutoReader
from firmware.reader.base import CardRead, ReaderLoop, ReaderState
from firmware.reader.nfcpy import NfcpyReader
from firmware.reader.pcsc import READ_ATTEMPTS, PcscReader

_SOCKET_DIR = Path(tempfile.mkdtemp(prefix="genba-pcscd-"))
os.environ["PCSCLITE_CSOCK_NAME"] = str(_SOCKET_DIR / "run" / "pcscd" / "pcscd.comm")

CARD_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "vpcd_card.py"
IDM = bytes.fromhex("012e4128728c7e8b")  # a FeliCa IDm (8 bytes)
UID_7 = bytes.fromhex("04a1b2c3d4e5f6")  # an ISO 14443-A double-size UID
READ_S = 5.0  # pcscd polls vpcd about every 0.4 s; generous, not a speed requirement
WAIT_S = 20.0


def wait_for(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def wait_until_empty(pcscd: PrivatePcscd, timeout: float = WAIT_S) -> None:
    """Until pcscd has seen the reader empty, through a PC/SC context of the test's own.

    vpcd notices a card has gone only at its next presence poll (about 0.4 s); a card presented
    before that would be taken for the one that left, ATR and all — a swap faster than any hand.
    """
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hresult, states = scard.SCardGetStatusChange(context, 200, [(pcscd.first_reader, state)])
            if hresult == scard.SCARD_S_SUCCESS:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if state & scard.SCARD_STATE_EMPTY:
                    return
        raise AssertionError("pcscd never saw the reader empty")
    finally:
        scard.SCardReleaseContext(context)


@contextmanager
def presented(pcscd: PrivatePcscd, atr: bytes, uid: bytes, **kw: Any) -> Iterator[VirtualCard]:
    """A card put on the reader, and taken away again (until pcscd has seen it go)."""
    with VirtualCard(pcscd.port, atr, uid, **kw) as card:
        yield card
    wait_until_empty(pcscd)


@pytest.fixture(scope="session")
def pcscd_server() -> Iterator[PrivatePcscd]:
    server = PrivatePcscd(socket_dir=_SOCKET_DIR)
    assert str(server.socket_path) == os.environ["PCSCLITE_CSOCK_NAME"]
    try:
        yield server.start()
    finally:
        server.close()
        shutil.rmtree(_SOCKET_DIR, ignore_errors=True)


@pytest.fixture
def pcscd(pcscd_server: PrivatePcscd) -> Iterator[PrivatePcscd]:
    """The session's pcscd, running at the start of each test (a test may stop it)."""
    if not pcscd_server.running:
        pcscd_server.start()
    yield pcscd_server
    if not pcscd_server.running:
        pcscd_server.start()


@pytest.fixture
def reader(pcscd: PrivatePcscd) -> Iterator[PcscReader]:
    r = make_reader("pcsc:RC-S300")
    assert isinstance(r, PcscReader)
    r.open()
    yield r
    r.close()


def read_card(reader: PcscReader, timeout: float = READ_S) -> CardRead | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        card = reader.read(0.5)
        if card is not None:
            return card
    return None


class CardProcess:
    """A card held on the reader by a child process: kill() yanks it away without a goodbye."""

    def __init__(self, port: int, atr: bytes, uid: bytes) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CARD_SCRIPT), str(port), atr.hex(), uid.hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


# --- reading cards ---------------------------------------------------------------------------------


def test_felica_card_is_read_by_its_idm_through_get_data(pcscd: PrivatePcscd, reader: PcscReader) -> None:
    assert reader.reader_name is not None and reader.reader_name.startswith(pcscd.reader_name)
    with presented(pcscd, FELICA_ATR, IDM) as card:
        got = read_card(reader)
        assert got == CardRead(tech="felica", uid="012E4128728C7E8B", random_id=False)
        assert card.apdus == [bytes.fromhex("FFCA000000")]


def test_card_left_on_the_reader_is_read_once_until_removed(pcscd: PrivatePcscd, reader: PcscReader) -> None:
    with presented(pcscd, FELICA_ATR, IDM):
        assert read_card(reader) is not None
        assert read_card(reader, timeout=1.5) is None  # still lying there: not a second tap
        reader.close()
        reader.open()  # as the ReaderLoop does after an error
        assert read_card(reader, timeout=1.5) is None  # still the same presentation
    assert read_card(reader, timeout=1.5) is None  # taken away: nothing to read
    with presented(pcscd, FELICA_ATR, IDM):  # the same card again is a new presentation
        assert read_card(reader) == CardRead(tech="felica", uid="012E4128728C7E8B")


def test_iso14443a_card_is_read_by_its_uid(pcscd: PrivatePcscd, reader: PcscReader) -> None:
    with presented(pcscd, MIFARE_1K_ATR, UID_7):
        assert read_card(reader) == CardRead(tech="iso14443a", uid="04A1B2C3D4E5F6", random_id=False)


def test_iso14443a_random_uid_cannot_identify_a_worker(pcscd: PrivatePcscd, reader: PcscReader) -> None:
    with presented(pcscd, MIFARE_1K_ATR, bytes.fromhex("08a1b2c3")):
        assert read_card(reader) == CardRead(tech="iso14443a", uid="08A1B2C3", random_id=True)


def test_iso14443b_card_is_read_as_a_random_id(pcscd: PrivatePcscd, reader: PcscReader) -> None:
    with presented(pcscd, TYPE_B_ATR, bytes.fromhex("1a2b3c4d")):
        assert read_card(reader) == CardRead(tech="iso14443b", uid="1A2B3C4D", random_id=True)


def test_removing_a_card_and_presenting_another_reads_both(pcscd: PrivatePcscd, reader: PcscReader) -> None:
    first = CardProcess(pcscd.port, FELICA_ATR, IDM)
    try:
        assert read_card(reader) == CardRead(tech="felica", uid="012E4128728C7E8B")
    finally:
        first.kill()  # the card process dies: the card is gone from the reader
    wait_until_empty(pcscd)
    with presented(pcscd, MIFARE_1K_ATR, UID_7):
        assert read_card(reader) == CardRead(tech="iso14443a", uid="04A1B2C3D4E5F6")


def test_a_card_whose_id_the_reader_cannot_get_is_skipped_and_the_next_is_read(
    pcscd: PrivatePcscd, reader: PcscReader
) -> None:
    with presented(pcscd, MIFARE_1K_ATR, UID_7, get_data_sw=b"\x6a\x81") as mute:
        assert read_card(reader, timeout=2.0) is None
        assert mute.apdus == [bytes.fromhex("FFCA000000")] * READ_ATTEMPTS  # asked, refused, given up
    with presented(pcscd, FELICA_ATR, IDM):
        assert read_card(reader) == CardRead(tech="felica", uid="012E4128728C7E8B")


def test_a_card_that_fails_its_first_read_is_read_while_it_stays(pcscd: PrivatePcscd, reader: PcscReader) -> None:
    with presented(pcscd, FELICA_ATR, IDM, fail_first=1) as edge:
        assert read_card(reader) == CardRead(tech="felica", uid="012E4128728C7E8B")
        assert len(edge.apdus) == 2


# --- choosing the reader -----------------------------------------------------------------------------


def test_pcsc_spec_picks_the_first_reader_or_one_by_name(pcscd: PrivatePcscd) -> None:
    first = make_reader("pcsc")
    assert isinstance(first, PcscReader)
    with first:
        assert first.reader_name == f"{pcscd.reader_name} 00 00"  # vpcd's first slot is pcscd's first reader
    by_name = make_reader("pcsc:rc-s300/p (virtual) 00 01")  # case does not matter
    with by_name:
        assert isinstance(by_name, PcscReader) and by_name.reader_name == f"{pcscd.reader_name} 00 01"
    with pytest.raises(ReaderError, match="no PC/SC reader named like 'RC-S380'.*RC-S300/P"):
        make_reader("pcsc:RC-S380").open()


def test_no_pcscd_is_a_missing_reader_not_a_crash(pcscd: PrivatePcscd) -> None:
    pcscd.stop()
    reader = make_reader("pcsc")
    with pytest.raises(ReaderError, match="pcscd is not reachable"):
        reader.open()
    reader.close()


def test_auto_takes_the_pcsc_reader_and_falls_back_to_nfcpy_without_one(pcscd: PrivatePcscd) -> None:
    assert isinstance(make_reader("auto"), AutoReader)
    nfc_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a free port: nfcpy's udp driver opens without a card
    nfc_port.bind(("127.0.0.1", 0))
    pcsc, nfc = PcscReader(""), NfcpyReader(f"udp:127.0.0.1:{nfc_port.getsockname()[1]}")
    nfc_port.close()
    auto = AutoReader(pcsc, nfc)
    with auto:
        assert auto.current is pcsc
        with presented(pcscd, FELICA_ATR, IDM):
            assert read_card(pcsc) == CardRead(tech="felica", uid="012E4128728C7E8B")
    pcscd.stop()
    with auto:
        assert auto.current is nfc
    missing = AutoReader(PcscReader(""), NfcpyReader("usb:ffff:ffff"))
    with pytest.raises(ReaderError, match="no card reader found.*pcscd is not reachable.*usb:ffff:ffff"):
        missing.open()
    missing.close()


# --- the supervising loop --------------------------------------------------------------------------


def test_loop_survives_the_reader_going_away_and_coming_back(pcscd: PrivatePcscd) -> None:
    cards: list[CardRead] = []
    states: list[ReaderState] = []
    loop = ReaderLoop(PcscReader("RC-S300"), cards.append, states.append, poll_s=0.2,
                      backoff_min_s=0.05, backoff_max_s=0.3)
    loop.start()
    try:
        assert wait_for(lambda: loop.state == ReaderState.OK)
        with presented(pcscd, FELICA_ATR, IDM):
            assert wait_for(lambda: len(cards) == 1)

        pcscd.kill()  # the reader vanishes mid-wait, without a word
        assert wait_for(lambda: ReaderState.FAILED in states)
        assert wait_for(lambda: loop.state == ReaderState.MISSING)  # reopening finds no pcscd, no reader

        pcscd.start()  # plugged back in
        assert wait_for(lambda: loop.state == ReaderState.OK)
        with presented(pcscd, MIFARE_1K_ATR, UID_7):
            assert wait_for(lambda: len(cards) == 2)
    finally:
        loop.stop()
    assert not loop.running
    assert states[:2] == [ReaderState.STARTING, ReaderState.OK]
    assert states[-1] == ReaderState.OK and ReaderState.MISSING in states
    assert cards == [CardRead(tech="felica", uid="012E4128728C7E8B"),
                     CardRead(tech="iso14443a", uid="04A1B2C3D4E5F6")]

