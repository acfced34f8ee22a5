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
* **One row fails alone.** Each row runs in a savepoint of the caller's unit of work (the importer's
  one transaction for the whole file): a refused row, even one the database refuses, is undone and
  the next row is still checked, so a file's problems are all found in one run.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from typing import Any, Literal

from server.errors import Conflict
from server.services.common import audit, company_or_404, snapshot
from server.services.companies import CompanyIn, add_company, too_long
from server.services.context import Context
from server.services.workers import QualificationIn, WorkerIn, add_worker, check_changes, write_changes
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

Outcome = Literal["added", "updated", "unchanged"]

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


def save_company(ctx: Context, data: CompanyIn, given: Collection[str], *, uow: UnitOfWork | None = None) -> Outcome:
    """Add a new company through the service, or update a registered one from the fields in ``given``."""
    with ctx.write(uow) as uow, uow.savepoint():
        found = uow.companies.id_of(data.ccus_id)
        if found is None:
            add_company(ctx, uow, None, data)
            return "added"
        company = company_or_404(uow, found)
        checked = data.checked()  # the rules add_company applies (lengths, 法人番号), and their normal forms
        changes = {
            key: getattr(checked, key)
            for key in COMPANY_UPDATE_FIELDS
            if key in given and getattr(company, key) != getattr(checked, key)
        }
        if not changes:
            return "unchanged"
        before = snapshot(company)
        for key, value in changes.items():
            setattr(company, key, value)
        uow.flush()
        audit(ctx, uow, None, "company.import_update", "company", company.id, before, snapshot(company))
        return "updated"


def _fold(text: str) -> str:
    """Compare qualification words as a person would: width and spacing variants are the same word."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def _worker_audit_view(uow: UnitOfWork, w: t.Worker) -> dict[str, Any]:
    """The worker row plus its trades and qualifications, for the audit entry's before and after."""
    return snapshot(w) | {
        "trades": [f"{major}-{minor}" for major, minor in uow.workers.trade_codes(w.id)],
        "qualifications": [f"{q.category}:{q.name}" for q in uow.workers.qualifications_of([w.id])],
    }


def save_worker(ctx: Context, data: WorkerIn, given: Collection[str], *, uow: UnitOfWork | None = None) -> Outcome:
    """Add a new worker through the service, or update a registered one from the fields in ``given``
    (``trades`` and ``qualifications`` among them when the row lists any)."""
    with ctx.write(uow) as uow, uow.savepoint():
        w = uow.workers.by_ccus_id(data.ccus_id)
        if w is None:
            add_worker(ctx, uow, None, data)
            return "added"
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
        changes = {
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
        if not (changes or new_trades is not None or new_quals):
            return "unchanged"
        check_changes(changes)
        before = _worker_audit_view(uow, w)
        write_changes(uow, w, changes, new_trades, new_quals)
        audit(ctx, uow, None, "worker.import_update", "worker", w.id, before, _worker_audit_view(uow, w))
        return "updated"
