"""What a stored text (a name, an address, a qualification) may hold: no control characters.

A name is printed on forms, written into Excel and CSV files and shown on the gate's screen. A C0
control character in it is never what a person meant (it comes from a copy-paste or a broken export),
PostgreSQL refuses NUL where SQLite stores it, and Excel's XML cannot hold most of them at all. So the
HTTP API (``server.api.schemas.Body``) and the CCUS CSV import (``server.importer``) refuse the same
characters by this one rule: every C0 control character except tab, line feed and carriage return
(an address is typed on several lines), and DEL.
"""

from __future__ import annotations

import re

#: The characters refused, as a Python pattern.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: The same rule as a whole-string pattern both ECMA and Python regex read alike (the OpenAPI's
#: ``pattern`` of every text field).
NO_CONTROL_PATTERN = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$"


def control_character(text: str) -> str | None:
    """The first refused character of ``text`` as a person can look it up ("U+000B"), or None."""
    m = CONTROL_CHARACTERS.search(text)
    return None if m is None else f"U+{ord(m.group()):04X}"
