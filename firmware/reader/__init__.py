"""Card readers: the interface the gate codes against, and the backends behind it.

`make_reader` turns the config's `reader` string (or the CLI's --reader) into a backend:
"sim" or "stdin" is the simulated reader on standard input; "pcsc" the first PC/SC reader pcscd
lists (a Sony RC-S300), "pcsc:NAME" the first whose name contains NAME; "auto" a PC/SC reader when
pcscd has one, else nfcpy's first USB reader; anything else an nfcpy device path (usb,
usb:054c:06c3, tty:AMA0:pn532, udp:HOST:PORT).
"""

from __future__ import annotations

import sys

from firmware.errors import ConfigError
from firmware.reader.auto import AutoReader
from firmware.reader.base import CardRead, Reader, ReaderLoop, ReaderState
from firmware.reader.nfcpy import NfcpyReader
from firmware.reader.pcsc import PcscReader
from firmware.reader.sim import SimReader

__all__ = ["AutoReader", "CardRead", "NfcpyReader", "PcscReader", "Reader", "ReaderLoop", "ReaderState",
           "SimReader", "make_reader"]

SPECS = "auto, pcsc, pcsc:RC-S300, usb, usb:054c:06c3, tty:AMA0:pn532, udp:HOST:PORT or stdin"


def make_reader(spec: str) -> Reader:
    """The backend for a reader spec. Opening it is the ReaderLoop's job (a missing device is a state, not a crash)."""
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"reader: empty (use {SPECS})")
    kind, _, rest = spec.partition(":")
    if spec.lower() in ("sim", "stdin"):
        return SimReader(sys.stdin)
    if spec.lower() == "auto":
        return AutoReader()
    if kind.lower() == "pcsc":
        return PcscReader(rest.strip())
    return NfcpyReader(spec)
