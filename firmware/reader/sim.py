"""A simulated reader for the demo and the tests: one card per line, from a text stream or a queue.

    0123456789ABCDEF                 a FeliCa card (the default technology), IDm 8 bytes
    iso14443a 04a1b2c3d4e5f6         an ISO 14443-A card (UID 4, 7 or 10 bytes); hex in any case
    iso14443b 1A2B3C4D               an ISO 14443-B card (PUPI 4 bytes): always a random ID
    !unplug                          the reader goes missing: read() raises ReaderError, open() too
    !plug                            the reader is back
    !clock 2026-11-25T07:58+09:00    (simulation) the gate's wall clock jumps there and runs on:
                                     a scripted morning and evening in seconds
    # comment, or a blank line       ignored

Anything else is ignored with a warning naming the line, so a typo in the demo is visible and
harmless. At the end of the stream the reader stays open and idle; `exhausted` then says so (the
CLI's --exit-when-drained waits for it). A queue source gives lines as str and None for the end.
Each line is one presentation of a card: the gate's debounce, not the reader, decides what a
second line with the same card means.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from firmware.errors import ReaderError
from firmware.reader.base import TECHS, CardRead, Reader, Tech

log = logging.getLogger(__name__)

UNPLUG = "!unplug"
PLUG = "!plug"
CLOCK = "!clock"

# How many bytes an identifier of each technology has.
UID_SIZES: dict[Tech, tuple[int, ...]] = {"felica": (8,), "iso14443a": (4, 7, 10), "iso14443b": (4,)}


def parse_line(line: str) -> CardRead | str | None:
    """A card, the control word UNPLUG or PLUG, or None (blank, comment, or invalid: warned)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("!"):
        word = text.lower()
        if word in (UNPLUG, PLUG):
            return word
        if word.startswith(CLOCK + " "):
            return text  # handled by the reader, which knows the clock
        log.warning("simulated reader: unknown command %r (use %s, %s or %s TIME)", text, UNPLUG, PLUG, CLOCK)
        return None
    parts = text.split()
    if len(parts) == 1:
        tech_word, uid_hex = "felica", parts[0]
    elif len(parts) == 2:
        tech_word, uid_hex = parts[0].lower(), parts[1]
    else:
        log.warning("simulated reader: ignoring %r (expected '[tech] UID')", text)
        return None
    if tech_word not in TECHS:
        log.warning("simulated reader: ignoring %r (tech must be one of %s)", text, ", ".join(TECHS))
        return None
    tech: Tech = tech_word  # checked against TECHS just above (mypy narrows `in` on a Literal tuple)
    try:
        uid = bytes.fromhex(uid_hex)
    except ValueError:
        log.warning("simulated reader: ignoring %r (the UID is not hex)", text)
        return None
    if len(uid) not in UID_SIZES[tech]:
        sizes = " or ".join(str(n) for n in UID_SIZES[tech])
        log.warning("simulated reader: ignoring %r (a %s UID has %s bytes, not %d)", text, tech, sizes, len(uid))
        return None
    return CardRead.from_bytes(tech, uid)


class SimReader(Reader):
    """Cards typed on stdin (or put in a queue) instead of tapped on a reader."""

    def __init__(self, source: TextIO | queue.Queue[str | None],
                 set_clock: Callable[[datetime], None] | None = None) -> None:
        self._set_clock = set_clock
        if isinstance(source, queue.Queue):
            self._lines: queue.Queue[str | None] = source
            self._stream: TextIO | None = None
        else:
            self._lines = queue.Queue()
            self._stream = source
        self._feeder: threading.Thread | None = None
        self._plugged = True
        self._open = False
        self._eof = False

    def __repr__(self) -> str:
        return "SimReader()"

    @property
    def exhausted(self) -> bool:
        """The source has ended and every line before its end has been read."""
        return self._eof and self._lines.empty()

    def open(self) -> None:
        self._start_feeder()
        # Unplugged: look at what has arrived so far (without waiting) for the line that plugs it back.
        while not self._plugged:
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                break
            self._handle_unplugged(item)
        if not self._plugged:
            raise ReaderError("simulated reader is unplugged")
        self._open = True

    def close(self) -> None:
        self._open = False

    def read(self, timeout: float) -> CardRead | None:
        if not self._open:
            raise ReaderError("simulated reader is not open")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                item = self._lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if item is None:
                self._eof = True
                continue
            parsed = parse_line(item)
            if parsed == UNPLUG:
                self._plugged = self._open = False
                raise ReaderError("simulated reader unplugged")
            if parsed == PLUG:
                log.info("simulated reader: %s while plugged in, nothing to do", PLUG)
                continue
            if isinstance(parsed, CardRead):
                return parsed
            if isinstance(parsed, str) and parsed.lower().startswith(CLOCK):
                self._clock(parsed)

    def _clock(self, line: str) -> None:
        value = line.split(None, 1)[1].strip()
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            log.warning("simulated reader: %s needs an ISO time with offset, e.g. 2026-11-25T07:58+09:00", CLOCK)
            return
        if at.tzinfo is None:
            log.warning("simulated reader: %s %s has no UTC offset; add one (+09:00)", CLOCK, value)
        elif self._set_clock is None:
            log.warning("simulated reader: %s is not available here (no simulated clock)", CLOCK)
        else:
            self._set_clock(at)

    def _handle_unplugged(self, item: str | None) -> None:
        if item is None:
            self._eof = True
            return
        parsed = parse_line(item)
        if parsed == PLUG:
            self._plugged = True
        elif isinstance(parsed, CardRead):
            log.warning(
                "simulated reader: %s %s tapped while the reader is unplugged: not read", parsed.tech, parsed.uid
            )

    def _start_feeder(self) -> None:
        """Read the stream on a thread of its own: a blocking readline cannot honour read()'s timeout."""
        if self._stream is None or self._feeder is not None:
            return
        self._feeder = threading.Thread(target=self._feed, args=(self._stream,), name="sim-reader-feed", daemon=True)
        self._feeder.start()

    def _feed(self, stream: TextIO) -> None:
        try:
            for line in stream:
                self._lines.put(line)
        except (OSError, ValueError) as exc:  # closed or broken stream: the same as its end
            log.warning("simulated reader: input ended with %r", exc)
        finally:
            self._lines.put(None)
