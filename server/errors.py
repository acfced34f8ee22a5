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



class Unavailable(GenbaError):
    """The request is fine but the server cannot serve it now (the store is busy with a long write);
    the same request later will do. ``retry_after_s`` says when: the API sends it as the body's
    ``details.retry_after_s`` and as the ``Retry-After`` header (HTTP 503, never a 500)."""

    def __init__(self, code: str, ja: str, en: str, *, retry_after_s: int = 2, **details: Any) -> None:
        super().__init__(code, ja, en, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


def database_busy(retry_after_s: int = 2) -> Unavailable:
    """The store's write lock is held longer than a request may wait (SQLite's one writer)."""
    return Unavailable(
        "database_busy",
        ja="データベースが混み合っています。少し待ってからもう一度操作してください",
        en="the database is busy; try again shortly",
        retry_after_s=retry_after_s,
    )


def site_not_found() -> NotFound:
    """One answer for "no such site" and "not yours to see": the two must be indistinguishable."""
    return NotFound("site_not_found", ja="現場が見つかりません", en="no such site")


def worker_not_found() -> NotFound:
    """One answer for "no such worker" and "not yours to see"."""
    return NotFound("worker_not_found", ja="技能者が見つかりません", en="no such worker")


def company_not_found() -> NotFound:
    """A company this account may not know of answers as one that does not exist."""
    return NotFound("company_not_found", ja="事業者が見つかりません", en="no such company")


class Throttled(GenbaError):
    """Too many tries of one thing from one place (wrong passwords for a login ID from one address):
    refused without looking at the request, and ``retry_after_s`` says when the next try will be
    considered. The API sends it as the body's ``details.retry_after_s`` and as the ``Retry-After``
    header (HTTP 429)."""

    def __init__(self, code: str, ja: str, en: str, *, retry_after_s: int, **details: Any) -> None:
        super().__init__(code, ja, en, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s
