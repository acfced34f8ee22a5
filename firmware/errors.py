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
