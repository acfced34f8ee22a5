"""What a card reader gives the gate, and the loop that keeps one running.

A reader backend only knows how to open a device, wait for one card and close it again. Keeping it
alive is the loop's job: a USB reader gets unplugged, a PN532 on the UART stops answering, a
driver raises something nobody expected. The gate must go on showing 「カードリーダーを確認してください」
and come back by itself when the reader does, so ReaderLoop reopens the reader with backoff and
never lets an exception end its thread.

Backends: nfcpy (firmware/reader/nfcpy.py: USB, UART and udp devices), PC/SC (firmware/reader/pcsc.py:
the RC-S300 that 建レコ recommends is a CCID device nfcpy does not drive), the simulated reader
(firmware/reader/sim.py) and `auto` (firmware/reader/auto.py). Each only implements Reader.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from firmware.errors import ReaderError

log = logging.getLogger(__name__)

Tech = Literal["felica", "iso14443a", "iso14443b"]
TECHS: tuple[Tech, ...] = ("felica", "iso14443a", "iso14443b")


@dataclass(frozen=True)
class CardRead:
    """One presentation of a card.

    `random_id` marks a card whose identifier changes on every power-up (an ISO 14443-A random UID,
    a 14443-B PUPI): such a card cannot identify a worker, and the gate says so instead of
    recording a tap no one could ever match.
    """

    tech: Tech
    uid: str  # upper-case hex (FeliCa IDm / ISO UID)
    random_id: bool = False

    @classmethod
    def from_bytes(cls, tech: Tech, uid: bytes | bytearray) -> CardRead:
        """The card as the gate sees it, whatever backend read it: upper-case hex, random IDs flagged."""
        return cls(tech=tech, uid=bytes(uid).hex().upper(), random_id=is_random_id(tech, bytes(uid)))


def is_random_id(tech: str, uid: bytes) -> bool:
    """Whether the identifier is generated anew on each power-up.

    ISO 14443-3: a single-size (4-byte) NFCID1 whose first byte is 0x08 is random (phones emulating
    a card, some passports). Type B PUPIs may be random and nothing in the answer tells which, so
    every Type B identifier counts as random. A FeliCa IDm is fixed.
    """
    if tech == "iso14443a":
        return len(uid) == 4 and uid[0] == 0x08
    return tech == "iso14443b"


class ReaderState(StrEnum):
    OK = "ok"
    STARTING = "starting"
    MISSING = "missing"  # the device could not be opened (unplugged, wrong path, no permission)
    FAILED = "failed"  # the device was open and then failed


class Reader(ABC):
    """One card reader backend. read() blocks up to `timeout` and returns a card once per presentation
    (a card left on the reader is not read again until it is removed), or None.

    All calls come from one thread (the ReaderLoop's), so backends need no locking."""

    @abstractmethod
    def open(self) -> None:
        """Open the device; raises ReaderError when it is missing."""

    @abstractmethod
    def read(self, timeout: float) -> CardRead | None:
        """Wait up to about `timeout` seconds for a new card; raises ReaderError when the device fails."""

    @abstractmethod
    def close(self) -> None:
        """Release the device. Always safe to call, also when open() failed or was never called."""

    def __enter__(self) -> Reader:
        """`with reader:` for one-off use outside the loop (selftest): open, and close whatever happens."""
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReaderLoop:
    """Supervises a Reader in its own thread: opens it, reads, reports cards and state changes; on
    ReaderError (or any exception) closes it, reports MISSING/FAILED, retries with backoff (max ~5 s).
    Never dies.

    States: STARTING until the first open; OK while reading; MISSING when open() fails; FAILED when
    an open reader raised. on_state is called once per change, on the loop's thread. on_card runs
    on the loop's thread too, so the tap path is serial; an exception from it is logged and does not
    count against the reader.
    """

    def __init__(
        self,
        reader: Reader,
        on_card: Callable[[CardRead], None],
        on_state: Callable[[ReaderState], None],
        poll_s: float = 0.5,
        *,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 5.0,
        join_timeout_s: float = 15.0,
    ) -> None:
        self.reader = reader
        self.on_card = on_card
        self.on_state = on_state
        self.poll_s = poll_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.join_timeout_s = join_timeout_s
        self._state = ReaderState.STARTING
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def running(self) -> bool:
        """Whether the loop's thread is alive (for status and tests)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("ReaderLoop already started")
        self._stop.clear()
        # Daemon: a reader call wedged inside a driver must not keep the process from exiting.
        self.last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="reader-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end and wait for it; it notices within one read (poll_s plus one sense round)."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(self.join_timeout_s)
        if thread.is_alive():
            log.error("reader loop did not stop within %.0f s (a driver call is stuck)", self.join_timeout_s)
        else:
            self._thread = None

    # --- the loop's thread ----------------------------------------------------------------------

    def _set_state(self, state: ReaderState, *, force: bool = False) -> None:
        if state == self._state and not force:
            return
        self._state = state
        try:
            self.on_state(state)
        except Exception:
            log.exception("on_state(%s) raised", state)

    def _deliver(self, card: CardRead) -> None:
        try:
            self.on_card(card)
        except Exception:
            log.exception("on_card(%s card) raised; the reader keeps going", card.tech)  # no UID in the journal

    def _close(self) -> None:
        try:
            self.reader.close()
        except Exception:
            log.exception("closing the reader raised")

    def _run(self) -> None:
        self._set_state(ReaderState.STARTING, force=True)
        backoff = self.backoff_min_s
        while not self._stop.is_set():
            self.last_beat = time.monotonic()
            worked = False
            try:
                worked = self._session()
            except Exception:  # _session handles everything; this is the last line of defence
                log.exception("reader loop iteration failed")
                self._set_state(ReaderState.FAILED)
            finally:
                self._close()  # always: a PN532 left open stops answering until power-cycled
            if self._stop.is_set():
                break
            # A reader that worked for a while starts over at the short delay; one that keeps
            # failing is retried less and less often, so a missing device does not spin the CPU.
            if worked:
                backoff = self.backoff_min_s
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)
        log.debug("reader loop stopped")

    def _session(self) -> bool:
        """Open the reader and read until it fails or the loop is stopped; the caller closes it.

        Returns whether at least one read completed (the device worked)."""
        try:
            self.reader.open()
        except Exception as exc:
            if isinstance(exc, ReaderError):
                log.warning("card reader not available: %s", exc)
            else:
                log.exception("opening the card reader raised")
            self._set_state(ReaderState.MISSING)
            return False
        self._set_state(ReaderState.OK)
        log.info("card reader ready")
        worked = False
        while not self._stop.is_set():
            try:
                card = self.reader.read(self.poll_s)
            except Exception as exc:
                if isinstance(exc, ReaderError):
                    log.warning("card reader failed: %s", exc)
                else:
                    log.exception("card reader raised")
                self._set_state(ReaderState.FAILED)
                return worked
            worked = True
            self.last_beat = time.monotonic()  # the watchdog's sign that the driver is not wedged
            if card is not None:
                self._deliver(card)
        return worked
