"""``reader = "auto"``: whichever reader is plugged in, PC/SC (RC-S300) first, then nfcpy on USB (RC-S380).

An installer should not have to know which PaSoRi came in the box: the RC-S300 is a CCID reader that
only pcscd can drive, the RC-S380 one only nfcpy can. The choice is made again at every open, so
swapping one reader for the other at the gate (or unplugging one) is picked up by the ReaderLoop's
reopen without a config change. When neither is there, the ReaderError names both attempts.
"""

from __future__ import annotations

import logging

from firmware.errors import ReaderError
from firmware.reader.base import CardRead, Reader
from firmware.reader.nfcpy import NfcpyReader
from firmware.reader.pcsc import PcscReader

log = logging.getLogger(__name__)


class AutoReader(Reader):
    """Delegates to the first of its candidates that opens; all calls from one thread."""

    def __init__(self, *candidates: Reader) -> None:
        self.candidates: tuple[Reader, ...] = candidates or (PcscReader(""), NfcpyReader("usb"))
        self._current: Reader | None = None
        self._chosen: Reader | None = None  # the last one that opened, to log a change once

    def __repr__(self) -> str:
        return f"AutoReader({', '.join(repr(c) for c in self.candidates)})"

    @property
    def current(self) -> Reader | None:
        """The reader in use, None while none is open."""
        return self._current

    def open(self) -> None:
        self.close()
        failures: list[str] = []
        for candidate in self.candidates:
            try:
                candidate.open()
            except ReaderError as exc:
                candidate.close()
                failures.append(f"{candidate!r}: {exc}")
                continue
            self._current = candidate
            if candidate is not self._chosen:
                log.info("reader auto: using %r", candidate)
                self._chosen = candidate
            return
        raise ReaderError("no card reader found (" + "; ".join(failures) + ")")

    def read(self, timeout: float) -> CardRead | None:
        if self._current is None:
            raise ReaderError("no card reader is open")
        return self._current.read(timeout)

    def close(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.close()
