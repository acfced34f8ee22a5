"""Errors of the provisioning tools: each with a code and a message an installer can act on.

The CLI prints ``message`` (Japanese, with what to do next) and exits non-zero; nothing here is a
traceback for the person at the keyboard.
"""

from __future__ import annotations


class ProvisionError(Exception):
    """A refusal with a machine ``code`` and a Japanese ``message`` (English in ``message_en``)."""

    def __init__(self, code: str, message: str, message_en: str = "") -> None:
        super().__init__(f"{code}: {message_en or message}")
        self.code = code
        self.message = message
        self.message_en = message_en or message


class ImageError(ProvisionError):
    """The image or block device cannot be read or written as a Raspberry Pi OS boot partition."""


class BrokerError(ProvisionError):
    """The broker's configuration folder is missing, inconsistent, or the broker cannot be reloaded."""


class ServerError(ProvisionError):
    """The GenbaGate server refused or could not be reached."""
