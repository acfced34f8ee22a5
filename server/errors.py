"""Every error the server reports, each with a stable machine code and a Japanese and English message.

The domain raises these; the HTTP layer maps the class to a status code (server/api/app.py,
``STATUS``: the domain knows no HTTP) and the CLI prints the message. Codes are part of the API
contract: clients switch on ``code``, never on the text.
"""

from __future__ import annotations

from typing import Any


class GenbaError(Exception):
    """Base class: a refusal with a reason, never a crash."""


    def __init__(self, code: str, ja: str, en: str, **details: Any) -> None:
        super().__init__(f"{code}: {en}")
        self.code = code
        self.message_ja = ja
        self.message_en = en
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message_ja, "message_en": self.message_en}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(GenbaError):
    """The request itself is wrong (bad ID, unknown trade code, missing field)."""



class Unauthorized(GenbaError):
    """No valid login (missing, wrong or expired token; wrong password)."""



class Forbidden(GenbaError):
    """Logged in, but this account's role or company may not do this."""



class NotFound(GenbaError):
    """The thing does not exist, or this account may not know that it exists."""



class Conflict(GenbaError):
    """The request is valid but the current state refuses it (already approved, has children, ...)."""



def site_not_found() -> NotFound:
    """One answer for "no such site" and "not yours to see": the two must be indistinguishable."""
    return NotFound("site_not_found", ja="現場が見つかりません", en="no such site")


def worker_not_found() -> NotFound:
    """One answer for "no such worker" and "not yours to see"."""
    return NotFound("worker_not_found", ja="技能者が見つかりません", en="no such worker")
