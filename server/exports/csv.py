"""CSV written row by row: UTF-8 with BOM (the default) or Shift_JIS / cp932 on request.

Why a BOM: Excel on Windows opens a BOM-less CSV as the machine's ANSI code page and shows Japanese
UTF-8 as mojibake; with the BOM it reads UTF-8. Older tools (and some 建退共 / payroll imports) want
Shift_JIS, which on Windows is cp932 (Shift_JIS plus the NEC and IBM extensions: 髙, 﨑, ①, ㈱).

Characters cp932 cannot hold (e.g. 𠮷 U+20BB7, emoji): replaced by 〓 (げた, the mark Japanese
printing has long used for a character the typeface lacks), and counted in ``CsvWriter.replaced``.
Chosen over refusing the whole file: one worker's name would otherwise keep a site's month from its
office, and the UTF-8 file (the default) stays lossless for whoever needs the exact name. The count
lets a caller (the CLI, a log line) say how many were replaced.

Control characters are written as stored, unlike in Excel (``server.exports.xlsx.printable``): CSV
has no character it cannot hold (the csv module reads a vertical tab or a NUL back in both encodings,
and cp932 encodes every C0 character), and the UTF-8 file is the one that shows exactly what is
stored, which is what the office needs to find and fix such a name. The API and the CSV import refuse
them (``server.domain.text``), so only a row stored before that rule can hold one.

Cells that a spreadsheet would run as a formula (starting with = + - @, or a tab / CR) get a leading
apostrophe (OWASP "CSV injection"): names and site names are typed by other companies.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Literal

from server.exports import REPLACEMENT, Cell, Row, Rows

Encoding = Literal["utf-8", "cp932"]
ENCODINGS: tuple[Encoding, ...] = ("utf-8", "cp932")
BOM = "\ufeff".encode()
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FLUSH_BYTES = 64 * 1024


def _text(cell: Cell) -> str | int | float:
    if cell is None:
        return ""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


class CsvWriter:
    """One CSV document. ``chunks`` yields its bytes; ``replaced`` counts the characters the chosen
    encoding could not hold (always 0 for UTF-8), final once ``chunks`` is exhausted."""

    def __init__(self, header: Row, rows: Rows, encoding: Encoding = "utf-8") -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown CSV encoding {encoding!r}")
        self.header = header
        self.rows = rows
        self.encoding = encoding
        self.replaced = 0

    @property
    def media_type(self) -> str:
        return "text/csv; charset=utf-8" if self.encoding == "utf-8" else "text/csv; charset=Shift_JIS"

    def _encode(self, text: str) -> bytes:
        if self.encoding == "utf-8":
            return text.encode("utf-8")
        try:
            return text.encode("cp932")
        except UnicodeEncodeError:
            out = []
            for ch in text:
                try:
                    out.append(ch.encode("cp932"))
                except UnicodeEncodeError:
                    self.replaced += 1
                    out.append(REPLACEMENT.encode("cp932"))
            return b"".join(out)

    def chunks(self) -> Iterator[bytes]:
        """The document, about 64 KiB at a time (CRLF line ends, as Excel writes them)."""
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\r\n")
        if self.encoding == "utf-8":
            yield BOM
        out.writerow([_text(c) for c in self.header])
        for row in self.rows:
            out.writerow([_text(c) for c in row])
            if buf.tell() >= _FLUSH_BYTES:
                yield self._encode(buf.getvalue())
                buf.seek(0)
                buf.truncate()
        if buf.tell():
            yield self._encode(buf.getvalue())
