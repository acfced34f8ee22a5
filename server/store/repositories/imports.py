"""The CSV importer's journal: its entries in the audit log (entity ``import``).

An import writes a file in several short transactions (server/importer.py). Each one records, in
the same transaction, what it changed and how to undo it (``import.chunk``), so the journal is
exactly what is committed, whatever happens to the process. These queries find an import's
entries and the imports that neither finished nor were undone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from server.store import tables as t
from server.store.repositories.base import Repository

ENTITY = "import"
BEGIN = "import.begin"
CHUNK = "import.chunk"
UNDO = "import.undo"
ENDED = ("import.done", "import.undone")


class ImportJournalRepository(Repository):
    def entries(self, import_id: int, actions: Sequence[str]) -> Sequence[t.AuditEntry]:
        """This import's entries of these kinds, oldest first."""
        a = t.AuditEntry
        q = select(a).where(a.entity == ENTITY, a.entity_id == import_id, a.action.in_(list(actions)))
        return self.s.scalars(q.order_by(a.id)).all()

    def unfinished(self) -> Sequence[t.AuditEntry]:
        """The ``import.begin`` entries of imports with no ``import.done`` / ``import.undone``."""
        a, ended = t.AuditEntry, aliased(t.AuditEntry)
        over = exists().where(ended.entity == ENTITY, ended.entity_id == a.entity_id, ended.action.in_(ENDED))
        return self.s.scalars(select(a).where(a.entity == ENTITY, a.action == BEGIN, ~over).order_by(a.id)).all()

    def last_written(self, import_id: int) -> datetime | None:
        """When this import last wrote to its journal (its heartbeat)."""
        a = t.AuditEntry
        return self.s.scalar(select(func.max(a.at)).where(a.entity == ENTITY, a.entity_id == import_id))
