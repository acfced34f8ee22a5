"""Keeping the registry current from CCUS exports: one row of a file adds a company (事業者) or a
worker (技能者), or updates the registered one. server/importer.py reads the file and says what is
wrong where; this module decides what a row changes.

* **Re-importing is normal.** A row whose 事業者ID / 技能者ID is registered updates it; a new ID is
  added. Each row comes out added, updated or unchanged, so the same file twice changes nothing.
* **An empty cell never erases** what is stored: only the fields the row has a value for (``given``)
  may change. A column emptied by mistake in Excel must not wipe a registry.
* **A worker's employer is never changed by an import**: moving a worker between companies changes
  who may see their data, which is not something a file should do unnoticed.
* Trades are replaced by the row's list; qualifications the worker does not hold yet (by 区分 and
  名称, compared as a person would) are added, none removed.
* **The services decide.** New rows go through ``add_company`` / ``add_worker``, the code the API
  uses; a worker's update is checked and written by the same code as the screens' edit
  (``workers.check_changes`` / ``workers.write_changes``). Updates are audited as
  ``company.import_update`` / ``worker.import_update`` with no account.
* **Decide without writing, then write.** ``plan_company`` / ``plan_worker`` say what a row would
  do (added, updated, unchanged) by the same rules ``save_company`` / ``save_worker`` apply, reading
  only: the importer checks a whole file this way without taking the write lock, then writes it.
* **One row fails alone.** Each row is saved in a savepoint of the caller's unit of work (one chunk
  of the importer's file): a refused row, even one the database refuses, is undone alone.
* **An import can be undone.** Given a ``journal``, each save notes how to undo it; the importer
  stores a chunk's notes with the chunk (``record_chunk``, an ``import.chunk`` audit entry, same
  transaction), and ``undo_import`` reverts them newest first, one chunk per transaction, noting
  each chunk undone (``import.undo``) so that an undo cut short resumes where it stopped. An added
  company or worker is deleted (its trades and qualifications with it); an updated one gets its
  fields, trades and qualifications back. A row something else now depends on (a worker added to
  a roster meanwhile) cannot be deleted: it is kept, and said so.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from server.errors import Conflict, GenbaError
from server.services.common import as_aware, audit, company_or_404, snapshot
from server.services.companies import CompanyIn, add_company, check_new_company, too_long
from server.services.context import Context
from server.services.workers import (
    QualificationIn,
    WorkerIn,
    add_worker,
    check_changes,
    check_new_worker,
    write_changes,
)
from server.store import tables as t
from server.store.repositories import imports as journal_
from server.store.unit_of_work import UnitOfWork

Outcome = Literal["added", "updated", "unchanged"]

#: How to undo one saved row (JSON, stored in the import's journal): ``entity`` (company / worker),
#: ``id``, and either ``added`` or the ``before`` values of the fields it changed, plus for a
#: worker the ``trades`` it had (None: unchanged) and the ids of the ``qualifications`` added.
UndoNote = dict[str, Any]

#: The company fields a re-import updates (each a CompanyIn and t.Company attribute).
COMPANY_UPDATE_FIELDS = ("name", "name_kana", "permit_number", "corporate_number", "address", "representative")

#: The worker fields a re-import updates; trades and qualifications are handled apart.
WORKER_UPDATE_FIELDS = (
    "name",
    "name_kana",
    "birth_date",
    "level",
    "health_insurance",
    "pension_insurance",
    "employment_insurance",
    "kentaikyo",
)

_TABLES: dict[str, type[t.Base]] = {"company": t.Company, "worker": t.Worker, "qualification": t.Qualification}


def check_length(table: Literal["company", "worker", "qualification"], key: str, label: str, value: str | None) -> None:
    """Refuse a value longer than the column it is stored in, naming it ``label`` (see ``too_long``).

    For the importer, which checks every cell of a row before saving it so that a row reports all
    its problems at once (the services stop at the first).
    """
    too_long(label, value, _TABLES[table].__table__.c[key])


def company_id(ctx: Context, ccus_id: str, *, uow: UnitOfWork | None = None) -> int | None:
    """The id of the company registered under this (normalised) 事業者ID, if any."""
    with ctx.read(uow) as uow:
        return uow.companies.id_of(ccus_id)


def _company_changes(company: t.Company, data: CompanyIn, given: Collection[str]) -> dict[str, Any]:
    """The fields of a registered company this row changes, checked by the rules add_company applies
    (lengths, 法人番号) and in their normal forms."""
    checked = data.checked()
    return {
        key: getattr(checked, key)
        for key in COMPANY_UPDATE_FIELDS
        if key in given and getattr(company, key) != getattr(checked, key)
    }


def plan_company(ctx: Context, data: CompanyIn, given: Collection[str], *, uow: UnitOfWork | None = None) -> Outcome:
    """What ``save_company`` would do with this row, or its refusal; reads only."""
    with ctx.read(uow) as uow:
        found = uow.companies.id_of(data.ccus_id)
        if found is None:
            check_new_company(uow, data)
            return "added"
        return "updated" if _company_changes(company_or_404(uow, found), data, given) else "unchanged"


def save_company(
    ctx: Context,
    data: CompanyIn,
    given: Collection[str],
    *,
    uow: UnitOfWork | None = None,
    journal: list[UndoNote] | None = None,
) -> Outcome:
    """Add a new company through the service, or update a registered one from the fields in ``given``;
    with ``journal``, note how to undo it there (once the row's savepoint is released)."""
    with ctx.write(uow) as uow:
        with uow.savepoint():
            outcome, note = _save_company(ctx, uow, data, given)
        if journal is not None and note is not None:
            journal.append(note)
        return outcome


def _save_company(
    ctx: Context, uow: UnitOfWork, data: CompanyIn, given: Collection[str]
) -> tuple[Outcome, UndoNote | None]:
    found = uow.companies.id_of(data.ccus_id)
    if found is None:
        added = add_company(ctx, uow, None, data)
        return "added", {"entity": "company", "id": added.id, "added": True, "after": _view(uow, added)}
    company = company_or_404(uow, found)
    changes = _company_changes(company, data, given)
    if not changes:
        return "unchanged", None
    before = snapshot(company)
    for key, value in changes.items():
        setattr(company, key, value)
    uow.flush()
    audit(ctx, uow, None, "company.import_update", "company", company.id, before, snapshot(company))
    return "updated", {"entity": "company", "id": company.id, "before": {k: before[k] for k in changes},
                       "after": _view(uow, company)}


def _fold(text: str) -> str:
    """Compare qualification words as a person would: width and spacing variants are the same word."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def _worker_audit_view(uow: UnitOfWork, w: t.Worker) -> dict[str, Any]:
    """The worker row plus its trades and qualifications, for the audit entry's before and after."""
    return snapshot(w) | {
        "trades": [f"{major}-{minor}" for major, minor in uow.workers.trade_codes(w.id)],
        "qualifications": [f"{q.category}:{q.name}" for q in uow.workers.qualifications_of([w.id])],
    }


@dataclass(frozen=True)
class _WorkerChanges:
    """What a row changes of a registered worker: fields, the new trade list (None: same), new
    qualifications."""

    fields: dict[str, Any]
    trades: list[tuple[str, str]] | None
    qualifications: list[QualificationIn]

    def __bool__(self) -> bool:
        return bool(self.fields or self.trades is not None or self.qualifications)


def _worker_changes(uow: UnitOfWork, w: t.Worker, data: WorkerIn, given: Collection[str]) -> _WorkerChanges:
    """The changes a row makes to a registered worker, checked by the screens' rules; refuses a change
    of employer (see the module docstring)."""
    if w.employer_id != data.employer_id:
        registered = uow.get(t.Company, w.employer_id)
        in_file = uow.get(t.Company, data.employer_id)
        old = registered.ccus_id if registered else w.employer_id
        new = in_file.ccus_id if in_file else data.employer_id
        raise Conflict(
            "employer_change_not_allowed",
            ja=f"所属事業者の変更は取り込みではできません（登録済みの所属事業者ID {old}、ファイルでは {new}）",
            en=f"an import cannot change a worker's employer (registered {old}, file {new})",
        )
    fields = {
        key: getattr(data, key)
        for key in WORKER_UPDATE_FIELDS
        if key in given and getattr(w, key) != getattr(data, key)
    }
    new_trades: list[tuple[str, str]] | None = None
    if "trades" in given and uow.workers.trade_codes(w.id) != list(data.trades):
        new_trades = list(data.trades)
    held = {(_fold(q.category), _fold(q.name)) for q in uow.workers.qualifications_of([w.id])}
    new_quals: list[QualificationIn] = []
    for q in data.qualifications if "qualifications" in given else ():
        words = (_fold(q.category), _fold(q.name))
        if words not in held:
            held.add(words)
            new_quals.append(q)
    changes = _WorkerChanges(fields, new_trades, new_quals)
    if changes:
        check_changes(changes.fields, changes.trades, changes.qualifications)
    return changes


def plan_worker(ctx: Context, data: WorkerIn, given: Collection[str], *, uow: UnitOfWork | None = None) -> Outcome:
    """What ``save_worker`` would do with this row, or its refusal; reads only."""
    with ctx.read(uow) as uow:
        w = uow.workers.by_ccus_id(data.ccus_id)
        if w is None:
            check_new_worker(uow, data)
            return "added"
        return "updated" if _worker_changes(uow, w, data, given) else "unchanged"


def save_worker(
    ctx: Context,
    data: WorkerIn,
    given: Collection[str],
    *,
    uow: UnitOfWork | None = None,
    journal: list[UndoNote] | None = None,
) -> Outcome:
    """Add a new worker through the service, or update a registered one from the fields in ``given``
    (``trades`` and ``qualifications`` among them when the row lists any); with ``journal``, note how
    to undo it there."""
    with ctx.write(uow) as uow:
        with uow.savepoint():
            outcome, note = _save_worker(ctx, uow, data, given)
        if journal is not None and note is not None:
            journal.append(note)
        return outcome


def _save_worker(
    ctx: Context, uow: UnitOfWork, data: WorkerIn, given: Collection[str]
) -> tuple[Outcome, UndoNote | None]:
    w = uow.workers.by_ccus_id(data.ccus_id)
    if w is None:
        added = add_worker(ctx, uow, None, data)
        return "added", {"entity": "worker", "id": added.id, "added": True, "after": _view(uow, added)}
    changes = _worker_changes(uow, w, data, given)
    if not changes:
        return "unchanged", None
    before = _worker_audit_view(uow, w)
    had = set(uow.workers.qualification_ids(w.id))
    write_changes(uow, w, changes.fields, changes.trades, changes.qualifications)
    audit(ctx, uow, None, "worker.import_update", "worker", w.id, before, _worker_audit_view(uow, w))
    return "updated", {
        "entity": "worker",
        "id": w.id,
        "before": {k: before[k] for k in changes.fields},
        "trades": None if changes.trades is None else [list(p.split("-")) for p in before["trades"]],
        "qualifications": sorted(set(uow.workers.qualification_ids(w.id)) - had),
        "after": _view(uow, w),
    }


def _view(uow: UnitOfWork, row: t.Company | t.Worker) -> dict[str, Any]:
    """What the import left a row as (a worker with its trades and qualifications), JSON-shaped as the
    journal stores it: an undo reverts a row only while it still looks exactly like this."""
    uow.flush()
    view = _worker_audit_view(uow, row) if isinstance(row, t.Worker) else snapshot(row)
    return json.loads(json.dumps(view, default=str))


# --- the importer's journal ----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRun:
    """An import that neither finished nor was undone: still running, or its process died."""

    id: int
    kind: str
    host: str | None
    pid: int | None
    last_written: datetime | None


def begin_import(ctx: Context, kind: str, rows: int, host: str, pid: int, *, uow: UnitOfWork | None = None) -> int:
    """Open an import's journal; its id keys every later entry. ``host`` and ``pid`` say who runs it,
    so that a later import can tell a dead one (to undo) from a running one (to wait for)."""
    with ctx.write(uow) as uow:
        entry = t.AuditEntry(
            at=ctx.now(), action=journal_.BEGIN, entity=journal_.ENTITY,
            after={"kind": kind, "rows": rows, "host": host, "pid": pid},
        )
        uow.add(entry)
        uow.flush()
        entry.entity_id = entry.id
        return entry.id


def record_chunk(ctx: Context, uow: UnitOfWork, import_id: int, notes: list[UndoNote]) -> None:
    """Store how to undo what this unit saved, in this unit: committed with it, or not at all."""
    if notes:
        audit(ctx, uow, None, journal_.CHUNK, journal_.ENTITY, import_id, after={"undo": notes})


def finish_import(ctx: Context, uow: UnitOfWork, import_id: int, counts: Mapping[str, int]) -> None:
    """Close the journal in the unit that writes the last rows: the import is done exactly when they are."""
    audit(ctx, uow, None, "import.done", journal_.ENTITY, import_id, after=dict(counts))


def unfinished_imports(ctx: Context, *, uow: UnitOfWork | None = None) -> list[ImportRun]:
    with ctx.read(uow) as uow:
        out = []
        for e in uow.imports.unfinished():
            info = e.after or {}
            last = uow.imports.last_written(e.id)
            out.append(ImportRun(e.id, str(info.get("kind")), info.get("host"), info.get("pid"),
                                 as_aware(last) if last else None))
        return out


def undo_import(ctx: Context, import_id: int, reason: str) -> list[UndoNote]:
    """Revert everything the import committed, newest chunk first, one chunk per transaction (each as
    short as the one that wrote it); returns the notes that could not be undone (see the module
    docstring). Safe to run again after it was cut short: undone chunks are skipped."""
    with ctx.read() as uow:
        chunks = [(e.id, list((e.after or {}).get("undo", [])))
                  for e in uow.imports.entries(import_id, [journal_.CHUNK])]
        done = {(e.after or {}).get("chunk") for e in uow.imports.entries(import_id, [journal_.UNDO])}
    kept: list[UndoNote] = []
    for chunk_id, notes in reversed(chunks):
        if chunk_id in done:
            continue
        with ctx.write() as uow:
            failed = [note for note in reversed(notes) if not _undo_one(uow, note)]
            audit(ctx, uow, None, journal_.UNDO, journal_.ENTITY, import_id, after={"chunk": chunk_id, "kept": failed})
        kept.extend(failed)
    with ctx.write() as uow:
        audit(ctx, uow, None, "import.undone", journal_.ENTITY, import_id, after={"reason": reason, "kept": len(kept)})
    return kept


def _undo_one(uow: UnitOfWork, note: UndoNote) -> bool:
    """Revert one saved row in its own savepoint; False when the database refuses (a row now in use)."""
    model: type[t.Company] | type[t.Worker] = t.Company if note["entity"] == "company" else t.Worker
    try:
        with uow.savepoint():
            row = uow.get(model, note["id"], lock=True)
            if row is None:
                return True
            if "after" in note and _view(uow, row) != note["after"]:
                # Changed since the import wrote it (a screen edit, a card, a new qualification): an
                # undo would destroy work the import did not do. Kept, and named in the report.
                return False
            if note.get("added"):
                uow.delete(row)  # a worker's trades, qualifications and disclosures go with it (ON DELETE CASCADE)
                uow.flush()
                return True
            fields = {key: _from_json(model, key, value) for key, value in note.get("before", {}).items()}
            if isinstance(row, t.Worker):
                trades = note.get("trades")
                write_changes(uow, row, fields, None if trades is None else [tuple(p) for p in trades], ())
                added = set(note.get("qualifications", ()))
                for q in uow.workers.qualifications_of([row.id]):
                    if q.id in added:
                        uow.delete(q)
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
            uow.flush()
    except GenbaError:
        return False
    return True


def _from_json(model: type[t.Base], key: str, value: Any) -> Any:
    """A value from a snapshot back into its column's type (dates are stored as ISO text)."""
    if isinstance(value, str) and model.__table__.c[key].type.python_type is date:
        return date.fromisoformat(value)
    return value
