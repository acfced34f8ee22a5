"""The gate's errors. None of them may stop the tap path: they are logged, shown, reported in status."""

from __future__ import annotations


class GateError(Exception):
    """Base class."""


class ConfigError(GateError):
    """The gate's TOML config is wrong; raised at start with a message that names the key."""


class ReaderError(GateError):
    """The NFC reader is missing or stopped answering; the reader loop reopens it."""


class BufferFull(GateError):
    """The SD card is full: the tap cannot be made durable (red alarm; never a crash)."""


class HardwareMissing(GateError):
    """The gate's pins cannot be used at start (no pin library, a pin busy or forbidden): restarting will not
    help, so `genba-gate run` exits with its own status (cli.EXIT_HARDWARE) that the unit does not restart.
    A missing card reader is not this: the reader loop waits for it."""


class UpdateError(GateError):
    """A software update refused or failed (bad signature, hash or size, a version that cannot install).
    The message is Japanese for the operator; nothing was switched: the gate keeps running its version."""
