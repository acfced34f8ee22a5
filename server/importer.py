"""Load companies (事業者) and workers (技能者) from the CSV files CCUS exports.

A site office moves its registry into GenbaGate by exporting from CCUS and running
``genba-server import companies|workers FILE``, and keeps it current by downloading a fresh export
each month and importing it again. Five decisions shape this module:

* **Re-importing is normal.** A row whose 事業者ID / 技能者ID is already registered updates that
  company or worker from the file; a new ID is added. Each row is counted as added, updated or
  unchanged, so running the same file twice changes nothing and says so. An empty cell never erases
  what is stored (a column emptied by mistake in Excel must not wipe a registry), and a worker's
  employer is never changed by an import.
* **All or nothing.** A half-imported file is worse than none: staff cannot tell which rows made
  it. Any problem refuses the whole file, and nothing of it stays written (see "How a file is
  written" below).
* **Every problem at once.** Fixing a 2,000-row export one error per run is miserable, so a bad row
  does not stop the check: every row is checked and all problems are reported together with their
  physical line numbers. The one exception is a quote that never closes: everything after it is
  misread, so reading stops there.
* **The services decide.** Rows are checked and saved by ``services.registry``: ``plan_*`` decides
  by the rules ``add_company`` / ``add_worker`` and the screens' edit apply, and ``save_*`` writes
  through that same code, so an import can never store something the screens would refuse; updates
  are audited (``company.import_update`` / ``worker.import_update``). This module turns CSV cells
  into ``CompanyIn`` / ``WorkerIn`` and explains, in Japanese, what is wrong where.
* **An import never starves the gates and the screens.** SQLite has one writer at a time; a file
  written in one transaction held it for most of a minute (5,000 rows), so logins and taps waited
  and failed. So a file is written in short transactions, and others get the lock between them.

How a file is written:

1. **Check, reading only.** Every row is parsed and planned (``registry.plan_*``) in short read
   transactions; no write lock is taken. Any problem refuses the file here, having written nothing.
   A dry run stops here too, with the counts: it never takes the write lock.
2. **Write in chunks.** The rows that add or change something are saved (``registry.save_*``, each
   row in its savepoint) in transactions of at most ``ROWS_PER_CHUNK`` rows and about
   ``CHUNK_SECONDS``; on SQLite the importer then pauses ``PAUSE_SECONDS`` (longer than SQLite's
   longest sleep between two tries for a busy lock), so a login or a batch of taps waiting for the
   lock gets it. Each chunk stores, in the same transaction, how to undo it (its journal entry,
   ``import.chunk`` in the audit log under an ``import.begin`` entry whose id is the import's id);
   the last chunk also stores ``import.done``. A chunk that finds the store busy is tried again.
3. **Undo on failure.** Between the check and the write someone may have changed the registry (a
   race), so a row can still be refused while writing. Then, or on any other error (Ctrl-C too),
   the chunks already committed are undone from their journal, newest first, one transaction per
   chunk (``registry.undo_import``), and the file is refused naming that row.

Where a crash can happen, and why it is safe: during the check nothing is written. During the write,
every committed chunk carries its own journal entry (one transaction), so the journal is exactly
what is in the database, never more or less. An import that stopped without ``import.done`` or
``import.undone`` is undone by the next ``import`` (at once when it ran on this host and its
process is gone; after ``STALE_AFTER`` without a journal entry when it ran elsewhere), before that
one writes; until then its rows are visible, as they were while it ran (other readers see a file's
rows appear chunk by chunk while it is written, and disappear if it is undone). An undo cut short
resumes where it stopped: each undone chunk is noted in the transaction that undid it. Two imports
never write at once: the second is refused while the first runs. A row that something else came to
depend on in those seconds (a worker added to a roster) cannot be deleted by the undo; it is kept
and named in the refusal.

Headers are matched after NFKC normalisation and with spaces removed, so 「氏名(カナ)」 (half-width
parentheses, as Excel or an IME may produce) matches 「氏名（カナ）」. Columns we do not use are
ignored, because real CCUS exports carry many, but they are named in the result (with the column
each one resembles, when it looks like a misspelling) so a typo in a header can be spotted.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import os
import re
import socket
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import Any, Literal, TextIO, TypeVar

from server.domain import ids
from server.domain.text import control_character
from server.domain.trades import trade_table
from server.errors import Conflict, GenbaError, InvalidInput, Unavailable
from server.services import registry
from server.services.companies import INSURANCE_STATES, CompanyIn
from server.services.context import Context
from server.services.registry import Outcome, UndoNote
from server.services.workers import QualificationIn, WorkerIn

Kind = Literal["companies", "workers"]

#: A write transaction saves at most this many rows ...
ROWS_PER_CHUNK = 500
#: ... and stops taking more after about this long, so no one waits for the lock longer than that.
CHUNK_SECONDS = 0.4
#: SQLite only: the pause after each chunk. SQLite's busy handler sleeps up to 100 ms between tries,
#: so a writer waiting for the lock tries at least once while it is free.
PAUSE_SECONDS = 0.12
#: How often a chunk (or an undo) is tried again when the store stays busy (each try waits for the
#: lock as long as the store's busy timeout).
BUSY_TRIES = 12
#: An unfinished import from another host is taken for dead after this long without a journal entry.
STALE_AFTER = timedelta(minutes=10)

T = TypeVar("T")

#: The CCUS word for each insurance state, mapped to the value the services store.
INSURANCE_VALUES: dict[str, str] = {label: key for key, label in INSURANCE_STATES.items()}

#: What each kind is called in messages.
KIND_LABELS: dict[str, str] = {"companies": "事業者", "workers": "技能者"}


# --- results and errors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file, where a person can find it: line 1 is the header."""

    line: int
    code: str
    message: str


@dataclass(frozen=True)
class ImportResult:
    """How many rows were added, updated or already up to date, and which header columns were not used.

    ``typo_hints`` maps an ignored column to the column we know that it resembles (「代表社名」 →
    「代表者名」), so a misspelt header is caught instead of silently losing the column. With
    ``dry_run`` the counts say what an import would do; nothing was written.
    """

    added: int
    updated: int = 0
    unchanged: int = 0
    ignored_columns: tuple[str, ...] = ()
    typo_hints: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


class ImportFailed(InvalidInput):
    """The file was refused and nothing was written; ``problems`` says where and why, in line order.

    A GenbaError so that an HTTP upload can return it as a 422 with the problems in ``details``,
    exactly as the CLI prints them. ``ignored_columns`` / ``typo_hints`` are as in ``ImportResult``
    when the header could be read: a misspelt column is worth knowing about while fixing the file.
    """

    def __init__(
        self,
        problems: Sequence[Problem],
        ignored_columns: Sequence[str] = (),
        typo_hints: dict[str, str] | None = None,
    ) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=lambda p: p.line))
        self.ignored_columns = tuple(ignored_columns)
        self.typo_hints = dict(typo_hints or {})
        n = len(self.problems)
        super().__init__(
            "csv_import_failed",
            ja=f"CSVに{n}件の誤りがあるため、何も取り込みませんでした（登録も更新もしていません）",
            en=f"the CSV file has {n} problem(s); nothing was imported or updated",
            problems=[{"line": p.line, "code": p.code, "message": p.message} for p in self.problems],
        )


def ignored_columns_warning(ignored: Sequence[str], typo_hints: dict[str, str] | None = None) -> str | None:
    """The warning to show for unused header columns, or None when every column was used."""
    if not ignored:
        return None
    hints = typo_hints or {}
    names = "、".join(f"{c}（{hints[c]}？）" if c in hints else c for c in ignored)
    return f"次の列は取り込みませんでした: {names}（列名の誤りではありませんか）"


# --- columns --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column as CCUS names it, and the key the row parser reads it by."""

    header: str
    key: str
    required: bool = False


COMPANY_COLUMNS: tuple[Column, ...] = (
    Column("事業者ID", "ccus_id", required=True),
    Column("事業者名", "name", required=True),
    Column("事業者名（カナ）", "name_kana"),
    Column("建設業許可番号", "permit_number"),
    Column("法人番号", "corporate_number"),
    Column("所在地", "address"),
    Column("代表者名", "representative"),
)

WORKER_COLUMNS: tuple[Column, ...] = (
    Column("技能者ID", "ccus_id", required=True),
    Column("氏名", "name", required=True),
    Column("氏名（カナ）", "name_kana"),
    Column("所属事業者ID", "employer", required=True),
    Column("生年月日", "birth_date"),
    Column("レベル", "level"),
    Column("健康保険", "health_insurance"),
    Column("年金保険", "pension_insurance"),
    Column("雇用保険", "employment_insurance"),
    Column("建退共", "kentaikyo"),
    Column("職種", "trades"),
    Column("資格", "qualifications"),
)

COLUMNS: dict[str, tuple[Column, ...]] = {"companies": COMPANY_COLUMNS, "workers": WORKER_COLUMNS}


def _header_key(text: str) -> str:
    """Fold a header cell so IME and Excel variants match: BOM, NFKC (（）→()), no whitespace."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text.replace("\ufeff", "")))


@dataclass(frozen=True)
class _Header:
    """Which cell index holds which column (and that column's CCUS name), and what was left over."""

    positions: dict[str, int]
    width: int
    ignored: tuple[str, ...]
    typo_hints: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)


def _typo_hints(kind: Kind, ignored: Sequence[str], found: set[str]) -> dict[str, str]:
    """For each ignored column, the known column it resembles, among those the header lacks.

    A column the header already has cannot have been misspelt, so it is never suggested: a real
    export's 「所属事業者名」 next to 「所属事業者ID」 is just an extra column.
    """
    absent = {_header_key(c.header): c.header for c in COLUMNS[kind] if c.key not in found}
    hints: dict[str, str] = {}
    for name in ignored:
        match = difflib.get_close_matches(_header_key(name), list(absent), n=1, cutoff=0.7)
        if match:
            hints[name] = absent[match[0]]
    return hints


def _read_header(kind: Kind, cells: list[str]) -> _Header:
    """Map the header row to our columns, refusing a file that lacks a required one.

    A known column given twice is refused too: we could not know which of the two to believe.
    """
    wanted = {_header_key(c.header): c for c in COLUMNS[kind]}
    positions: dict[str, int] = {}
    ignored: list[str] = []
    problems: list[Problem] = []
    for i, cell in enumerate(cells):
        col = wanted.get(_header_key(cell))
        if col is None:
            if cell.strip():
                ignored.append(cell.strip().replace("\ufeff", ""))
        elif col.key in positions:
            message = f"列「{col.header}」がヘッダーに2回あります（どちらを使うか決められません）"
            problems.append(Problem(1, "duplicate_column", message))
        else:
            positions[col.key] = i
    hints = _typo_hints(kind, ignored, set(positions))
    missing = [c.header for c in COLUMNS[kind] if c.required and c.key not in positions]
    if missing:
        message = f"必須の列がありません: {'、'.join(missing)}"
        other: Kind = "workers" if kind == "companies" else "companies"
        other_keys = {_header_key(c) for c in cells}
        if all(_header_key(c.header) in other_keys for c in COLUMNS[other] if c.required):
            message += f"（このファイルは{KIND_LABELS[other]}のCSVのようです。種類の指定を確認してください）"
        problems.append(Problem(1, "missing_columns", message))
    if problems:
        raise ImportFailed(problems, ignored, hints)
    return _Header(positions, len(cells), tuple(ignored), hints, {c.key: c.header for c in COLUMNS[kind]})


# --- reading records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """One CSV record, the physical line it starts on, and the physical lines it was read from."""

    line: int
    cells: list[str]
    raw: tuple[str, ...]


class _PhysicalLines:
    """The file's lines as csv.reader takes them, kept until the record they belong to is complete."""

    def __init__(self, fh: TextIO) -> None:
        self._it = iter(fh)
        self.pending: list[str] = []

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        line = next(self._it)
        self.pending.append(line)
        return line

    def take(self) -> tuple[str, ...]:
        lines, self.pending = tuple(self.pending), []
        return lines


class _Records:
    """Non-blank records with the physical line each starts on (line 1 is the header).

    Lines are counted as the file has them, so a quoted cell spanning several lines (an address,
    say) and skipped blank lines still leave the numbers matching what a text editor shows.
    """

    def __init__(self, fh: TextIO) -> None:
        self._lines = _PhysicalLines(fh)
        self.reader = csv.reader(self._lines)
        self.next_line = 1

    def __iter__(self) -> Iterator[_Record]:
        for cells in self.reader:
            raw = self._lines.take()
            line, self.next_line = self.next_line, self.next_line + len(raw)
            if any(c.strip() for c in cells):
                yield _Record(line, cells, raw)

    def unfinished(self) -> _Record:
        """The record being read when csv.reader gave up, for explaining its error."""
        return _Record(self.next_line, [], tuple(self._lines.pending))


def _wrong_width(cells: Sequence[str], width: int) -> bool:
    """Fewer cells than the header, or more that are not empty (Excel adds empty ones; those are fine)."""
    return len(cells) < width or any(c.strip() for c in cells[width:])


def _open_quote(raw: Sequence[str]) -> tuple[int, str] | None:
    """Where a quote was opened that the end of its line left open: (index in ``raw``, text after it).

    A ``""`` inside a quoted cell counts twice, so it does not change the state.
    """
    quotes = 0
    for offset, text in enumerate(raw):
        opened_at = -1
        for i, char in enumerate(text):
            if char == '"':
                quotes += 1
                if quotes % 2:
                    opened_at = i
        if quotes % 2:
            return offset, text[opened_at + 1 :].rstrip("\r\n")
    return None


def _unclosed_quote(record: _Record, width: int | None) -> Problem | None:
    """A quote that never closed swallowed the lines after it into one cell; say where it opened.

    Only a record read from several lines can be one. It is one when its quotes do not pair up (the
    quote ran to the end of the file, or was "closed" by a quote meant for another cell), or when the
    swallowed lines leave it with the wrong number of cells. A correctly quoted multi-line address
    has neither, and is left alone.
    """
    if len(record.raw) < 2:
        return None
    unpaired = sum(text.count('"') for text in record.raw) % 2 == 1
    if not (unpaired or (width is not None and _wrong_width(record.cells, width))):
        return None
    offset, start = _open_quote(record.raw) or (0, "")
    start = start.strip()
    shown = f'「"{start[:15]}{"…" if len(start) > 15 else ""}」で始まるセルの' if start else ""
    return Problem(
        record.line + offset,
        "unclosed_quote",
        f'CSVの書式が正しくありません（引用符が閉じていません）: この行で開いた{shown}引用符「"」が閉じていないため、'
        'これ以降の行を読めません。セルの先頭の「"」を消すか、閉じる「"」を加えてください',
    )


class _Row:
    """One record's cells by column key, collecting problems so a row reports all it has wrong."""

    def __init__(self, record: _Record, header: _Header) -> None:
        self.line = record.line
        self.problems: list[Problem] = []
        self._cells = record.cells
        self._header = header
        if _wrong_width(record.cells, header.width):
            # A short row is usually a record broken by an unquoted line break; guessing which cells
            # moved would store data under the wrong column.
            self.fail(
                "column_count",
                f"列の数がヘッダー（{header.width}列）と合いません（{len(record.cells)}列）。"
                'セルの中の改行やカンマは、セル全体を「"」で囲んでください',
            )
        self._refuse_control_characters()

    def _refuse_control_characters(self) -> None:
        """A cell we store may hold no control character: the screens refuse them by the same rule
        (``server.domain.text``), and one in a name broke every Excel file naming that worker. Checked
        on the cell as written, before trimming, as the API checks a field before stripping it."""
        for key, i in self._header.positions.items():
            found = control_character(self._cells[i]) if i < len(self._cells) else None
            if found is not None:
                label = self._header.labels.get(key, key)
                self.fail(
                    "control_character",
                    f"「{label}」に制御文字（{found}）が含まれています。"
                    "元のデータから取り除いてから、もう一度取り込んでください",
                )

    def fail(self, code: str, message: str) -> None:
        self.problems.append(Problem(self.line, code, message))

    def error(self, exc: GenbaError) -> None:
        self.fail(exc.code, exc.message_ja)

    def text(self, key: str) -> str | None:
        """The trimmed cell (full-width spaces too), or None when empty or the column is absent."""
        i = self._header.positions.get(key)
        if i is None or i >= len(self._cells):
            return None
        value = self._cells[i].strip()
        return value or None

    def given(self) -> set[str]:
        """The column keys whose cell has a value: only these may change a registered row."""
        return {key for key in self._header.positions if self.text(key) is not None}

    def parse(self, key: str, parser: Callable[[str], Any], default: Any = None) -> Any:
        """Apply ``parser`` to a non-empty cell, recording its InvalidInput instead of raising."""
        value = self.text(key)
        if value is None:
            return default
        try:
            return parser(value)
        except GenbaError as exc:
            self.error(exc)
            return default


# --- cell parsers ---------------------------------------------------------------------------------

_EXCEL_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?E\+?[0-9]+", re.IGNORECASE)

EXCEL_HINT = "Excelで数値として保存され、桁が失われています。元のCSVから作り直し、Excelで列の書式を文字列にしてください"


def _excel_safe(parser: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parser``, with a hint added to its refusal when the value is an Excel exponent (1.23457E+13).

    The digits are gone by then, so the ID is refused, never guessed at.
    """

    def parse(value: str) -> Any:
        try:
            return parser(value)
        except InvalidInput as exc:
            if not _EXCEL_NUMBER.fullmatch(unicodedata.normalize("NFKC", value).strip()):
                raise
            raise InvalidInput(
                exc.code,
                ja=f"{exc.message_ja}。{EXCEL_HINT}",
                en=f"{exc.message_en}; Excel saved it as a number and lost digits: format the column as text",
                **exc.details,
            ) from None

    return parse


def _birth_date(value: str) -> date:
    """YYYY/MM/DD or YYYY-MM-DD; Excel drops leading zeros (1985/4/1), so those are accepted too."""
    m = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", unicodedata.normalize("NFKC", value))
    try:
        if m is None:
            raise ValueError(value)
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise InvalidInput(
            "invalid_birth_date",
            ja=f"生年月日は YYYY/MM/DD か YYYY-MM-DD で入力してください（入力値: {value!r}）",
            en=f"birth date must be YYYY/MM/DD or YYYY-MM-DD (got {value!r})",
        ) from None


def _level(value: str) -> int:
    """技能者レベル 1-4; 「レベル2」 as some sheets write it is read as 2."""
    m = re.fullmatch(r"(?:レベル|lv\.?)?\s*([0-9]+)", unicodedata.normalize("NFKC", value), re.IGNORECASE)
    if m is None or not 1 <= int(m[1]) <= 4:
        raise InvalidInput(
            "invalid_level",
            ja=f"レベルは1〜4の数字で入力してください（入力値: {value!r}）",
            en=f"level is 1 to 4 (got {value!r})",
        )
    return int(m[1])


def _insurance(label: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        state = INSURANCE_VALUES.get(unicodedata.normalize("NFKC", value).strip())
        if state is None:
            raise InvalidInput(
                "invalid_insurance_state",
                ja=f"{label}の値が正しくありません（{'・'.join(INSURANCE_VALUES)}のいずれか。入力値: {value!r}）",
                en=f"{label} must be one of {', '.join(INSURANCE_VALUES)} (got {value!r})",
            )
        return state

    return parse


def _split_list(value: str) -> list[str]:
    """Items separated by ";" (full-width ";" too), blanks dropped."""
    return [item.strip() for item in re.split(r"[;；]", value) if item.strip()]


def _trades(row: _Row, value: str) -> list[tuple[str, str]]:
    """「06-01;09-01」 into code pairs, each checked against the trade table now, each once, in order.

    add_worker checks them too, but stops at the first; checking here lists every bad pair.
    """
    pairs: list[tuple[str, str]] = []
    for item in _split_list(value):
        parts = unicodedata.normalize("NFKC", item).split("-")
        if len(parts) != 2:
            row.fail(
                "invalid_trade_code",
                f"職種は「大分類-小分類」の形で、複数あるときは「;」で区切って入力してください"
                f"（例: 06-01;09-01、入力値: {item!r}）",
            )
            continue
        major, minor = (p.strip() for p in parts)
        try:
            trade = trade_table().get(major, minor)
        except GenbaError as exc:
            row.error(exc)
            continue
        pairs.append((trade.major_code, trade.minor_code))
    return list(dict.fromkeys(pairs))


def _qualifications(row: _Row, value: str) -> list[QualificationIn]:
    """「技能講習:玉掛け;特別教育:足場の組立て」 into qualifications; the names are stored as written."""
    out: list[QualificationIn] = []
    for item in _split_list(value):
        category, sep, name = (part.strip() for part in _partition(item))
        if not sep or not category or not name:
            row.fail(
                "invalid_qualification",
                f"資格は「区分:名称」の形で、複数あるときは「;」で区切って入力してください"
                f"（例: 技能講習:玉掛け、入力値: {item!r}）",
            )
            continue
        try:
            registry.check_length("qualification", "category", "資格の区分", category)
            registry.check_length("qualification", "name", "資格の名称", name)
        except GenbaError as exc:
            row.error(exc)
            continue
        out.append(QualificationIn(category=category, name=name))
    return out


def _partition(item: str) -> tuple[str, str, str]:
    """Split at the first ":" or "：", whichever comes first; a name may itself contain a colon."""
    m = re.search(r"[:：]", item)
    if m is None:
        return item, "", ""
    return item[: m.start()], m.group(), item[m.end() :]


# --- rows into the services -----------------------------------------------------------------------


def _company(row: _Row) -> tuple[str | None, CompanyIn | None]:
    """The row's normalised 事業者ID (for duplicate checks) and its CompanyIn, or None if it has problems."""
    ccus = row.parse("ccus_id", _excel_safe(lambda v: ids.ccus_id("company", v)))
    if row.text("ccus_id") is None:
        row.fail("required", "事業者IDが空です")
    if row.text("name") is None:
        row.fail("required", "事業者名が空です")
    data = CompanyIn(
        ccus_id=ccus or "",
        name=row.text("name") or "",
        name_kana=row.text("name_kana"),
        permit_number=row.text("permit_number"),
        corporate_number=row.parse("corporate_number", _excel_safe(ids.corporate_number)),
        address=row.text("address"),
        representative=row.text("representative"),
    )
    labels = {c.key: c.header for c in COMPANY_COLUMNS}
    for key in ("name", "name_kana", "permit_number", "address", "representative"):
        try:
            registry.check_length("company", key, labels[key], getattr(data, key))
        except GenbaError as exc:
            row.error(exc)
    return ccus, (None if row.problems else data)


class _Employers:
    """所属事業者ID → companies.id, asked of the database (``find``) once per ID in the file."""

    def __init__(self, find: Callable[[str], int | None]) -> None:
        self._find = find
        self._known: dict[str, int | None] = {}

    def __call__(self, value: str) -> int:
        ccus = ids.ccus_id("company", value)
        if ccus not in self._known:
            self._known[ccus] = self._find(ccus)
        found = self._known[ccus]
        if found is None:
            raise InvalidInput(
                "employer_not_found",
                ja=f"所属事業者ID {ccus} の事業者が登録されていません。先に事業者のCSVを取り込んでください",
                en=f"no company with ID {ccus}; import the companies first",
            )
        return found


def _worker(row: _Row, employers: _Employers) -> tuple[str | None, WorkerIn | None]:
    """The row's normalised 技能者ID and its WorkerIn, or None if any cell is wrong (all are reported)."""
    ccus = row.parse("ccus_id", _excel_safe(lambda v: ids.ccus_id("worker", v)))
    for key, label in (("ccus_id", "技能者ID"), ("name", "氏名"), ("employer", "所属事業者ID")):
        if row.text(key) is None:
            row.fail("required", f"{label}が空です")
    employer_id = row.parse("employer", _excel_safe(employers))
    insurance = {
        c.key: row.parse(c.key, _insurance(c.header), default="unknown")
        for c in WORKER_COLUMNS
        if c.key in ("health_insurance", "pension_insurance", "employment_insurance", "kentaikyo")
    }
    data = WorkerIn(
        ccus_id=ccus or "",
        name=row.text("name") or "",
        employer_id=employer_id or 0,
        name_kana=row.text("name_kana"),
        birth_date=row.parse("birth_date", _birth_date),
        level=row.parse("level", _level),
        trades=_trades(row, row.text("trades") or ""),
        qualifications=_qualifications(row, row.text("qualifications") or ""),
        **insurance,
    )
    for key, label in (("name", "氏名"), ("name_kana", "氏名（カナ）")):
        try:
            registry.check_length("worker", key, label, getattr(data, key))
        except GenbaError as exc:
            row.error(exc)
    return ccus, (None if row.problems else data)


@dataclass(frozen=True)
class _Planned:
    """A checked row that will add or change something, and where it is in the file."""

    line: int
    data: CompanyIn | WorkerIn
    given: frozenset[str]


def _check_rows(
    ctx: Context, kind: Kind, header: _Header, records: Iterator[_Record]
) -> tuple[list[_Planned], Counter[str], list[Problem]]:
    """Parse and plan every record, reading only (``registry.plan_*``), in read transactions of
    ``ROWS_PER_CHUNK`` rows; return the rows to write, the counts a write would give, the problems.

    Rows after a bad one are still checked, so all problems are found in one run. Rows of one file
    never depend on each other (a 技能者ID once per file, employers registered beforehand), so
    planning each against the stored registry is what writing them in order would do. A quote
    that never closes ends the reading: what follows it cannot be trusted.
    """
    label = "事業者ID" if kind == "companies" else "技能者ID"
    seen: dict[str, int] = {}
    counts: Counter[str] = Counter()
    problems: list[Problem] = []
    todo: list[_Planned] = []
    current: list[Any] = [None]  # the read unit the employers' look-ups use
    employers = _Employers(lambda ccus: registry.company_id(ctx, ccus, uow=current[0]))
    more = True
    while more:
        more = False
        with ctx.read() as uow:
            current[0] = uow
            for record in itertools.islice(records, ROWS_PER_CHUNK):
                more = True
                broken = _unclosed_quote(record, header.width)
                if broken is not None:
                    problems.append(broken)
                    return todo, counts, problems
                row = _Row(record, header)
                ccus, data = _company(row) if kind == "companies" else _worker(row, employers)
                if ccus is not None and ccus in seen:
                    row.fail("duplicate_in_file", f"{label} {ccus} が同じファイルの{seen[ccus]}行目と重複しています")
                    data = None
                elif ccus is not None:
                    seen[ccus] = row.line
                try:
                    if isinstance(data, CompanyIn):
                        outcome = registry.plan_company(ctx, data, row.given(), uow=uow)
                    elif isinstance(data, WorkerIn):
                        outcome = registry.plan_worker(ctx, data, row.given(), uow=uow)
                    else:
                        outcome = None
                except GenbaError as exc:
                    row.error(exc)
                    outcome = None
                if outcome is not None and data is not None:
                    counts[outcome] += 1
                    if outcome != "unchanged":
                        todo.append(_Planned(row.line, data, frozenset(row.given())))
                problems.extend(row.problems)
    return todo, counts, problems


def _save(ctx: Context, uow: Any, row: _Planned, notes: list[UndoNote]) -> Outcome:
    before = len(notes)
    if isinstance(row.data, CompanyIn):
        outcome = registry.save_company(ctx, row.data, row.given, uow=uow, journal=notes)
    else:
        outcome = registry.save_worker(ctx, row.data, row.given, uow=uow, journal=notes)
    if len(notes) > before:
        notes[-1]["line"] = row.line  # so that a row the undo must keep can be named
    return outcome


def _when_free(call: Callable[[], T]) -> T:
    """``call`` (one unit of work), tried again while the store answers busy: an import may wait,
    where a request is better told 503 at once."""
    for attempt in itertools.count(1):
        try:
            return call()
        except Unavailable:
            if attempt >= BUSY_TRIES:
                raise
            time.sleep(min(0.1 * attempt, 1.0))
    raise AssertionError("unreachable")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settle_unfinished(ctx: Context, *, dry_run: bool = False) -> None:
    """Undo every import that stopped without finishing (see the module docstring); refuse to start
    while another is still running. Called before the file is checked: a row the dead import wrote
    would otherwise be counted ``unchanged`` and then undone, and missing after the re-run. A dry run
    writes nothing, so it cannot undo one: it refuses, saying that the real run will."""
    host = socket.gethostname()
    for run in registry.unfinished_imports(ctx):
        if run.host == host and run.pid is not None:
            alive = _process_alive(run.pid)
        else:
            alive = run.last_written is not None and ctx.now() - run.last_written < STALE_AFTER
        if alive:
            if dry_run:
                continue  # checking is always allowed (its counts may change when the other one ends)
            raise Conflict(
                "import_in_progress",
                ja="別の取り込みを実行中です。終わってからもう一度実行してください",
                en="another import is running; run this one when it has finished",
                import_id=run.id,
            )
        if dry_run:
            raise Conflict(
                "import_unfinished",
                ja="前回の取り込みが途中で止まっています。--dry-run を付けずに実行すると、先にそれを取り消してから"
                "このファイルを取り込みます",
                en="an earlier import stopped half-way; a run without --dry-run undoes it first, then imports the file",
                import_id=run.id,
            )
        _when_free(lambda run=run: registry.undo_import(ctx, run.id, "did not finish (its process ended)"))


def _write(ctx: Context, kind: Kind, todo: list[_Planned], counts: Counter[str]) -> Counter[str]:
    """Save the checked rows in short transactions, or undo them all (see the module docstring).
    Returns the counts as written (a race may have turned an add into an update, or an update into
    nothing)."""
    _settle_unfinished(ctx)
    import_id = _when_free(lambda: registry.begin_import(ctx, kind, len(todo), socket.gethostname(), os.getpid()))
    written: Counter[str] = Counter(unchanged=counts["unchanged"])
    done = 0
    try:
        while done < len(todo):
            if done and ctx.store.is_sqlite:
                time.sleep(PAUSE_SECONDS)
            done, chunk = _when_free(partial(_write_chunk, ctx, import_id, todo, done, written.copy()))
            written += chunk
    except BaseException as exc:
        reason = exc.code if isinstance(exc, GenbaError) else type(exc).__name__
        kept = _when_free(lambda: registry.undo_import(ctx, import_id, reason))
        if isinstance(exc, ImportFailed) and kept:
            raise ImportFailed([*exc.problems, *map(_kept_problem, kept)]) from exc
        raise
    return written


def _write_chunk(
    ctx: Context, import_id: int, todo: list[_Planned], start: int, written: Counter[str]
) -> tuple[int, Counter[str]]:
    """One transaction: rows from ``start`` until ``ROWS_PER_CHUNK`` or ``CHUNK_SECONDS``, with their
    journal entry (and ``import.done`` when it writes the last row). Returns where the next starts."""
    notes: list[UndoNote] = []
    chunk: Counter[str] = Counter()
    end = start
    with ctx.write() as uow:
        deadline = time.monotonic() + CHUNK_SECONDS
        while end < len(todo) and end - start < ROWS_PER_CHUNK and (end == start or time.monotonic() < deadline):
            row = todo[end]
            try:
                chunk[_save(ctx, uow, row, notes)] += 1
            except Unavailable:  # the store, not the row: the whole chunk is tried again
                raise
            except GenbaError as exc:  # the registry changed since the check (a race): refuse the file
                raise ImportFailed([Problem(row.line, exc.code, exc.message_ja)]) from exc
            end += 1
        registry.record_chunk(ctx, uow, import_id, notes)
        if end == len(todo):
            registry.finish_import(ctx, uow, import_id, written + chunk)
    return end, chunk


def _kept_problem(note: UndoNote) -> Problem:
    return Problem(
        int(note.get("line", 0)),
        "import_not_undone",
        "この行の登録・更新は、取り込み中に他の操作で使われたため取り消せませんでした（登録されたままです）",
    )


def import_csv(ctx: Context, kind: Kind, fh: TextIO, dry_run: bool = False) -> ImportResult:
    """Add or update every row of a CCUS export, or change nothing at all.

    ``fh`` is a text stream (open files with ``newline=""`` so line breaks inside quoted cells
    survive). Raises ``ImportFailed`` listing every problem by line, having written nothing (or
    undone what it wrote), so fixing the file and running it again is always safe. With
    ``dry_run`` everything is checked and counted exactly as for a real import, and nothing is
    written: a dry run never takes the database's write lock. Raises ``Conflict``
    ``import_in_progress`` while another import is writing.
    """
    if kind not in COLUMNS:
        raise ValueError(f"kind must be one of {', '.join(COLUMNS)}, not {kind!r}")
    _settle_unfinished(ctx, dry_run=dry_run)
    records = _Records(fh)
    rows = iter(records)
    header: _Header | None = None
    try:
        first = next(rows, None)
        if first is None:
            raise ImportFailed([Problem(1, "empty_file", "ファイルが空です（ヘッダー行がありません）")])
        broken = _unclosed_quote(first, None)
        if broken is not None:
            raise ImportFailed([broken])
        header = _read_header(kind, first.cells)
        todo, counts, problems = _check_rows(ctx, kind, header, rows)
    except csv.Error as exc:
        # A NUL byte, or a field past csv's size limit (a runaway quote swallowing the file does that).
        unfinished = records.unfinished()
        problem = _unclosed_quote(unfinished, None) or Problem(
            max(records.reader.line_num, 1), "csv_syntax", f"CSVの書式が正しくありません（{exc}）"
        )
        ignored, hints = (header.ignored, header.typo_hints) if header else ((), {})
        raise ImportFailed([problem], ignored, hints) from None
    if problems:
        raise ImportFailed(problems, header.ignored, header.typo_hints)
    if not dry_run and todo:
        try:
            counts = _write(ctx, kind, todo, counts)
        except ImportFailed as exc:
            raise ImportFailed(exc.problems, header.ignored, header.typo_hints) from exc
    return ImportResult(
        added=counts["added"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        ignored_columns=header.ignored,
        typo_hints=header.typo_hints,
        dry_run=dry_run,
    )
