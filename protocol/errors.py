"""Why a message was refused. The receiver logs the code and keeps running; it never crashes on input."""

from __future__ import annotations


class ProtocolError(ValueError):
    """A body that is not a valid message: bad JSON, unknown version, wrong shape, too large."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
