"""The one shape every tabular 帳票 has, and the one place that turns it into a file.

A report service (``services.calendars``, ``services.company_reports``, …) returns an object with a
header, rows as an iterator (so a 5,000-worker month streams), its JSON form, the names its files go
by, and how its sheet is laid out. ``render`` picks the writer; the HTTP router and the CLI both call
it, so a report downloaded and a report written by ``genba-server report`` are the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from server.exports import Row, csv, xlsx

Format = Literal["json", "csv", "xlsx"]


@dataclass(frozen=True)
class Layout:
    """How a report's sheet is laid out in Excel: column widths in characters (None: from the
    header), the frozen top-left cell of the scrolling area, and which columns are centered."""

    widths: Sequence[float | None] | None = None
    freeze: str | None = "A2"
    centered: Sequence[bool] | None = None


class Tabular(Protocol):
    """A tabular report: what ``render`` and the routers need of it."""

    @property
    def number(self) -> str: ...  # the seed's 帳票NO: "2-4", "3-2", …

    @property
    def title(self) -> str: ...  # the seed's name: the sheet's name and the file's

    @property
    def file_stem(self) -> str: ...  # the file name without extension, with the CCUS ID staff know

    @property
    def ascii_stem(self) -> str: ...  # the same in plain ASCII for old clients

    @property
    def layout(self) -> Layout: ...

    def header(self) -> list[str]: ...

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        """The rows in the header's order; ``totals``: a last 合計 row where the report has one
        (the printed sheet has it, the CSV that other tools read does not)."""
        ...

    def as_json(self) -> dict[str, Any]: ...


def render(report: Tabular, fmt: Literal["csv", "xlsx"],
           encoding: csv.Encoding = "utf-8") -> tuple[Iterator[bytes], str]:
    """The file's bytes, in chunks, and its media type."""
    if fmt == "csv":
        writer = csv.CsvWriter(report.header(), report.table(), encoding)
        return writer.chunks(), writer.media_type
    lay = report.layout
    return (xlsx.chunks(report.header(), report.table(totals=True), title=report.title, widths=lay.widths,
                        freeze=lay.freeze, centered=lay.centered), xlsx.MEDIA_TYPE)
