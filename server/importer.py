"""Load companies (事業者) and workers (技能者) from the CSV files CCUS exports.

A site office moves its registry into GenbaGate by exporting from CCUS and running
``genba-server import companies|workers FILE``, and keeps it current by downloading a fresh export
each month and importing it again. Four decisions shape this module:

* **Re-importing is normal.** A row whose 事業者ID / 技能者ID is already registered updates that
  company or worker from the file; a new ID is added. Each row is counted as added, updated or
  unchanged, so running the same file twice changes nothing and says so. An empty cell never erases
  what is stored (a column emptied by mistake in Excel must not wipe a registry), and a worker's
  employer is never changed by an import.
* **All or nothing.** A half-imported file is worse than none: staff cannot tell which rows made
  it. So every row is checked and written inside ONE ``ctx.store.write()`` transaction, and any
  problem rolls the whole file back. A dry run takes the same path and rolls back at the end.
* **Every problem at once.** Fixing a 2,000-row export one error per run is miserable, so a bad row
  does not stop the import: each row runs in its own SAVEPOINT (a failed flush, e.g. an
  IntegrityError, would otherwise leave the session unusable and, on PostgreSQL, abort the whole
  transaction), and all problems are reported together with their physical line numbers. The one
  exception is a quote that never closes: everything after it is misread, so reading stops there.
* **The services decide.** New rows go through ``add_company`` / ``add_worker``, the same code the
  API uses, so an import can never store something the screens would refuse; updates are checked
  by the same rules and audited (``company.import_update`` / ``worker.import_update``). This module
  turns CSV cells into ``CompanyIn`` / ``WorkerIn`` and explains, in Japanese, what is wrong where.

Headers are matched after NFKC normalisation and with spaces removed, so 「氏名(カナ)」 (half-width
parentheses, as Excel or an IME may produce) matches 「氏名（カナ）」. Columns we do not use are
ignored, because real CCUS exports carry many, but they are named in the result (with the column
each one resembles, when it looks like a misspelling) so a typo in a header can be spotted.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, Literal, TextIO

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from server.domain import ids
from server.domain.trades import trade_table
from server.errors import GenbaError, InvalidInput
from server.services.companies import INSURANCE_STATES, CompanyIn, QualificationIn, WorkerIn, add_company, add_worker
from server.services.context import Context
from server.store import tables as t

Kind = Literal["companies", "workers"]

#: The CCUS word for each insurance state, mapped to the value the services store.
INSURANCE_VALUES: dict[str, str] = {label: key for key, label in INSURANCE_STATES.items()}


# --- results and errors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file, where a person can find it: line 1 is the header."""

    line: int
    code: str
    message: str


@dataclass(frozen=True)
class ImportResult:
    """What was registered, and which header columns were not used (to catch header typos)."""

    added: int
    ignored_columns: tuple[str, ...] = ()


class ImportFailed(InvalidInput):
    """The file was refused and nothing was written; ``problems`` says where and why, in line order.

    A GenbaError so that an HTTP upload can return it as a 422 with the problems in ``details``,
    exactly as the CLI prints them.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=lambda p: p.line))
        n = len(self.problems)
        super().__init__(
            "csv_import_failed",
            ja=f"CSVに{n}件の誤りがあるため、何も登録しませんでした",
            en=f"the CSV file has {n} problem(s); nothing was imported",
            problems=[{"line": p.line, "code": p.code, "message": p.message} for p in self.problems],
        )


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
    """Which cell index holds which column, and what was left over."""

    positions: dict[str, int]
    width: int
    ignored: tuple[str, ...]


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
            problems.append(Problem(1, "duplicate_column", f"列「{col.header}」がヘッダーに2回あります"))
        else:
            positions[col.key] = i
    missing = [c.header for c in COLUMNS[kind] if c.required and c.key not in positions]
    if missing:
        message = f"必須の列がありません: {'、'.join(missing)}"
        other: Kind = "workers" if kind == "companies" else "companies"
        other_keys = {_header_key(c) for c in cells}
        if all(_header_key(c.header) in other_keys for c in COLUMNS[other] if c.required):
            label = "技能者" if other == "workers" else "事業者"
            message += f"（このファイルは{label}のCSVのようです。種類の指定を確認してください）"
        problems.append(Problem(1, "missing_columns", message))
    if problems:
        raise ImportFailed(problems)
    return _Header(positions, len(cells), tuple(ignored))


# --- reading records ------------------------------------------------------------------------------


def _records(reader: Iterator[list[str]], line_num: Callable[[], int]) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the physical line each starts on.

    ``csv.reader.line_num`` counts lines read so far, so a record starts one after where the previous
    one ended; that stays right when a quoted cell (an address, say) spans several lines.
    """
    next_line = 1
    for cells in reader:
        line = next_line
        next_line = line_num() + 1
        if any(c.strip() for c in cells):
            yield line, cells


def _too_long(label: str, value: str | None, column: ColumnElement[Any]) -> None:
    """Refuse what the column cannot hold: SQLite would store it anyway, PostgreSQL would fail.

    Checking here keeps both backends giving the same, readable answer.
    """
    limit = getattr(column.type, "length", None)
    if value is not None and limit is not None and len(value) > limit:
        raise InvalidInput(
            "value_too_long",
            ja=f"{label}が長すぎます（{limit}文字まで、入力は{len(value)}文字）",
            en=f"{label} is longer than {limit} characters",
        )


class _Row:
    """One record's cells by column key, collecting problems so a row reports all it has wrong."""

    def __init__(self, line: int, cells: list[str], header: _Header) -> None:
        self.line = line
        self.problems: list[Problem] = []
        self._cells = cells
        self._header = header
        if len(cells) < header.width or any(c.strip() for c in cells[header.width :]):
            # A short row is usually a record broken by an unquoted line break; guessing which cells
            # moved would store data under the wrong column.
            self.fail("column_count", f"列の数がヘッダー（{header.width}列）と合いません（{len(cells)}列）")

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
    """「06-01;09-01」 into code pairs, each checked against the trade table now.

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
    return pairs


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
            _too_long("資格の区分", category, t.Qualification.__table__.c.category)
            _too_long("資格の名称", name, t.Qualification.__table__.c.name)
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
    ccus = row.parse("ccus_id", lambda v: ids.ccus_id("company", v))
    if row.text("ccus_id") is None:
        row.fail("required", "事業者IDが空です")
    if row.text("name") is None:
        row.fail("required", "事業者名が空です")
    data = CompanyIn(
        ccus_id=ccus or "",
        name=row.text("name") or "",
        name_kana=row.text("name_kana"),
        permit_number=row.text("permit_number"),
        corporate_number=row.parse("corporate_number", ids.corporate_number),
        address=row.text("address"),
        representative=row.text("representative"),
    )
    labels = {c.key: c.header for c in COMPANY_COLUMNS}
    for key in ("name", "name_kana", "permit_number", "address", "representative"):
        try:
            _too_long(labels[key], getattr(data, key), t.Company.__table__.c[key])
        except GenbaError as exc:
            row.error(exc)
    return ccus, (None if row.problems else data)


class _Employers:
    """所属事業者ID → companies.id, asked of the database once per ID in the file."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._known: dict[str, int | None] = {}

    def __call__(self, value: str) -> int:
        ccus = ids.ccus_id("company", value)
        if ccus not in self._known:
            self._known[ccus] = self._session.scalar(select(t.Company.id).where(t.Company.ccus_id == ccus))
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
    ccus = row.parse("ccus_id", lambda v: ids.ccus_id("worker", v))
    for key, label in (("ccus_id", "技能者ID"), ("name", "氏名"), ("employer", "所属事業者ID")):
        if row.text(key) is None:
            row.fail("required", f"{label}が空です")
    employer_id = row.parse("employer", employers)
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
            _too_long(label, getattr(data, key), t.Worker.__table__.c[key])
        except GenbaError as exc:
            row.error(exc)
    return ccus, (None if row.problems else data)


def _add(session: Session, row: _Row, add: Callable[[], object]) -> bool:
    """Run one service call in a SAVEPOINT, turning its refusal into the row's problem.

    The savepoint is what lets the next row be checked after this one failed in the database: the
    rollback undoes just this row's flushes and leaves the outer transaction usable (on PostgreSQL a
    failed statement otherwise aborts everything that follows).
    """
    try:
        with session.begin_nested():
            add()
    except GenbaError as exc:
        row.error(exc)
        return False
    except (IntegrityError, DataError) as exc:
        detail = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        row.fail("database_refused", f"データベースに登録できません（{detail}）")
        return False
    return True


def _import_rows(
    ctx: Context, session: Session, kind: Kind, header: _Header, records: Iterator[tuple[int, list[str]]]
) -> tuple[int, list[Problem]]:
    """Check and add every record inside the caller's transaction; count the added, collect the problems.

    Rows after a bad one are still added (in their savepoints) so that their own problems, such as
    an ID already in the database, are found in the same run.
    """
    label = "事業者ID" if kind == "companies" else "技能者ID"
    employers = _Employers(session)
    seen: dict[str, int] = {}
    added = 0
    problems: list[Problem] = []
    for line, cells in records:
        row = _Row(line, cells, header)
        ccus, data = _company(row) if kind == "companies" else _worker(row, employers)
        if ccus is not None and ccus in seen:
            row.fail("duplicate_in_file", f"{label} {ccus} が同じファイルの{seen[ccus]}行目と重複しています")
            data = None
        elif ccus is not None:
            seen[ccus] = line
        if isinstance(data, CompanyIn):
            added += _add(session, row, partial(add_company, ctx, session, None, data))
        elif isinstance(data, WorkerIn):
            added += _add(session, row, partial(add_worker, ctx, session, None, data))
        problems.extend(row.problems)
    return added, problems


def import_csv(ctx: Context, kind: Kind, fh: TextIO) -> ImportResult:
    """Register every row of a CCUS export, or nothing at all.

    ``fh`` is a text stream (open files with ``newline=""`` so line breaks inside quoted cells
    survive). Raises ``ImportFailed`` listing every problem by line; the transaction is then rolled
    back, so fixing the file and running it again is always safe. The header is checked before the
    write transaction opens, so a wrong file never takes the database's write lock.
    """
    if kind not in COLUMNS:
        raise ValueError(f"kind must be one of {', '.join(COLUMNS)}, not {kind!r}")
    reader = csv.reader(fh)
    records = _records(reader, lambda: reader.line_num)
    problems: list[Problem] = []
    try:
        first = next(records, None)
        if first is None:
            raise ImportFailed([Problem(1, "empty_file", "ファイルが空です（ヘッダー行がありません）")])
        header = _read_header(kind, first[1])
        with ctx.store.write() as session:
            added, problems = _import_rows(ctx, session, kind, header, records)
            if problems:
                raise ImportFailed(problems)  # leaving the block with an error rolls everything back
    except csv.Error as exc:
        # Typically an unterminated quote or a NUL byte: the rest of the file cannot be trusted.
        line = max(reader.line_num, 1)
        raise ImportFailed([Problem(line, "csv_syntax", f"CSVの書式が正しくありません（{exc}）")]) from None
    return ImportResult(added=added, ignored_columns=header.ignored)
