"""Card readers: the interface the gate codes against, and the backends behind it.

`make_reader` turns the config's `reader` string (or the CLI's --reader) into a backend:
"sim" or "stdin" is the simulated reader on standard input, anything else an nfcpy device path
(usb, usb:054c:06c3, tty:AMA0:pn532, udp:HOST:PORT). A PC/SC backend (RC-S300) would be one more
branch here.
"""

from __future__ import annotations

import sys

from firmware.errors import ConfigError
from firmware.reader.base import CardRead, Reader, ReaderLoop, ReaderState
from firmware.reader.nfcpy import NfcpyReader
from firmware.reader.sim import SimReader

__all__ = ["CardRead", "NfcpyReader", "Reader", "ReaderLoop", "ReaderState", "SimReader", "make_reader"]


def make_reader(spec: str) -> Reader:
    """The backend for a reader spec. Opening it is the ReaderLoop's job (a missing device is a state, not a crash)."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("reader: empty (use usb, usb:054c:06c3, tty:AMA0:pn532, udp:HOST:PORT or stdin)")
    if spec.lower() in ("sim", "stdin"):
        return SimReader(sys.stdin)
    return NfcpyReader(spec)
