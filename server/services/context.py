"""What every service needs: the store, a clock, the password hasher and the settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from server.store.database import Store
from server.store.unit_of_work import UnitOfWork


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    store: Store
    token_ttl: timedelta = timedelta(hours=12)
    clock: Callable[[], datetime] = _utcnow
    # Tests may trade hashing cost for speed; production keeps RFC 9106's low-memory profile.
    fast_hashing: bool = False
    max_failed_logins: int = 10
    lock_duration: timedelta = timedelta(minutes=15)
    # CCUS 現場利用料 per 人日 (one worker, site and day with a record), in yen: 10 since CCUS's fee
    # revision of 2020-10-01 (https://ccus.jp/p/announce20201001full). Only the 元請's estimate reads it.
    site_fee_per_worker_day: int = 10
    hasher: PasswordHasher = field(init=False)

    def __post_init__(self) -> None:
        self.hasher = PasswordHasher.from_parameters(CHEAPEST if self.fast_hashing else RFC_9106_LOW_MEMORY)

    def now(self) -> datetime:
        return self.clock()

    # Every service opens its unit of work through these two, the same way: with ``uow`` given
    # (one of the importer's bounded transactions, a service calling another) it works inside
    # the caller's unit, which commits or rolls back everything; without, it opens its own.
    @contextmanager
    def write(self, uow: UnitOfWork | None = None) -> Iterator[UnitOfWork]:
        if uow is None:
            with self.store.write() as own:
                yield own
            return
        if not uow.writable:
            raise RuntimeError("a writing service was given a read-only unit of work")
        yield uow

    @contextmanager
    def read(self, uow: UnitOfWork | None = None) -> Iterator[UnitOfWork]:
        if uow is None:
            with self.store.read() as own:
                yield own
            return
        yield uow
