"""The unit of work: one transaction and the repositories that work inside it.

Services never see a Session or build SQL. They open a unit of work (``Context.write()`` /
``Context.read()``), or take the caller's one to run inside a larger transaction (the importer runs
a chunk of a file's rows in one: short, so that other writers get the lock in between), ask its
repositories for rows, change the ORM objects they get back and add new ones. Everything is
committed once, when the outermost ``with`` ends without an error, and rolled back as a whole
otherwise (``Store.write`` maps the database's errors).

Repositories are made on first use and share the unit's session, so an object loaded by one
repository is the same object another one sees (the session's identity map).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from server.errors import InvalidInput
from server.store import tables as t
from server.store.repositories.accounts import AccountRepository
from server.store.repositories.audit import AuditRepository
from server.store.repositories.companies import CompanyRepository
from server.store.repositories.devices import DeviceRepository
from server.store.repositories.imports import ImportJournalRepository
from server.store.repositories.ledgers import LedgerRepository
from server.store.repositories.records import RecordRepository
from server.store.repositories.roster import RosterRepository
from server.store.repositories.safety import SafetyRepository
from server.store.repositories.sites import SiteRepository
from server.store.repositories.taps import TapRepository
from server.store.repositories.workers import WorkerRepository

M = TypeVar("M", bound=t.Base)


class UnitOfWork:
    """What ``Store.write()`` and ``Store.read()`` hand out."""

    def __init__(self, session: Session, *, writable: bool) -> None:
        self._session = session
        self.writable = writable
        self.dialect = session.get_bind().dialect.name

    # -- repositories: every query lives in one of these ------------------------------------------
    @cached_property
    def accounts(self) -> AccountRepository:
        return AccountRepository(self._session)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self._session)

    @cached_property
    def companies(self) -> CompanyRepository:
        return CompanyRepository(self._session)

    @cached_property
    def workers(self) -> WorkerRepository:
        return WorkerRepository(self._session)

    @cached_property
    def sites(self) -> SiteRepository:
        return SiteRepository(self._session)

    @cached_property
    def roster(self) -> RosterRepository:
        return RosterRepository(self._session)

    @cached_property
    def devices(self) -> DeviceRepository:
        return DeviceRepository(self._session)

    @cached_property
    def taps(self) -> TapRepository:
        return TapRepository(self._session)

    @cached_property
    def records(self) -> RecordRepository:
        return RecordRepository(self._session)

    @cached_property
    def imports(self) -> ImportJournalRepository:
        return ImportJournalRepository(self._session)

    @cached_property
    def safety(self) -> SafetyRepository:
        return SafetyRepository(self._session)

    @cached_property
    def ledgers(self) -> LedgerRepository:
        return LedgerRepository(self._session)

    # -- the unit itself ----------------------------------------------------------------------------
    def get(self, model: type[M], ident: Any, *, lock: bool = False) -> M | None:
        """A row by primary key; ``lock`` takes its row lock on PostgreSQL (SQLite's BEGIN IMMEDIATE
        already serialises writers)."""
        return self._session.get(model, ident, with_for_update=lock or None)

    def add(self, obj: t.Base) -> None:
        self._session.add(obj)

    def add_all(self, objs: list[t.Base]) -> None:
        self._session.add_all(objs)

    def delete(self, obj: t.Base) -> None:
        self._session.delete(obj)

    def flush(self) -> None:
        """Send what is pending (new rows get their ids) without ending the transaction."""
        self._session.flush()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the unit that fails alone (a SAVEPOINT): an error inside undoes just that part
        and leaves the unit usable, so the caller can go on (the importer saves and undoes each row
        this way; on PostgreSQL a failed statement would otherwise abort the whole transaction).

        The database refusing what was written inside (a unique index, a value its column cannot
        hold) comes out as InvalidInput ``database_refused`` naming what it refused: the caller goes
        on, so it is that part's input that was wrong, not a race to retry (``Store.write``'s 409).
        """
        try:
            with self._session.begin_nested():
                yield
        except (IntegrityError, DataError) as exc:
            detail = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            raise InvalidInput(
                "database_refused",
                ja=f"データベースに登録できません（{detail}）",
                en=f"the database refused this ({detail})",
                detail=detail,
            ) from exc
