"""Queries on accounts, the sites bound to a 現場管理者, login tokens, wrong-password counts."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.domain.accounts import ACCOUNT_WIDE
from server.store import tables as t
from server.store.repositories.base import Repository


class AccountRepository(Repository):
    # -- accounts -----------------------------------------------------------------------------------
    def by_login_id(self, login_id: str) -> t.Account | None:
        return self.s.scalar(select(t.Account).where(t.Account.login_id == login_id))

    def of_worker(self, worker_id: int) -> t.Account | None:
        """The worker's own login, if one was issued (a worker has at most one)."""
        return self.s.scalar(select(t.Account).where(t.Account.worker_id == worker_id))

    def of_company(self, company_id: int) -> Sequence[t.Account]:
        """The company's logins in id order (its workers' logins carry no company_id)."""
        return self.s.scalars(select(t.Account).where(t.Account.company_id == company_id).order_by(t.Account.id)).all()

    # -- wrong security codes: UPDATE … SET n = n + 1 RETURNING n, so parallel guesses on PostgreSQL
    # cannot lose increments (the account was read in an earlier, already closed transaction) ------
    def count_failed_reset(self, account_id: int) -> int:
        """One more wrong security code; the new count."""
        return self._increment(account_id, t.Account.failed_resets)

    def _increment(self, account_id: int, column: Any) -> int:
        n = self.s.execute(
            update(t.Account).where(t.Account.id == account_id).values({column: column + 1}).returning(column)
        ).scalar_one()
        return int(n)

    # -- wrong passwords per (login ID, source) and per login ID ('*'): see tables.LoginThrottle.
    # Every writer takes the ID's '*' row lock first (then the source's), so the check "may this
    # source try now?" and the count it then takes cannot interleave with another try of the same ID
    # (PostgreSQL; SQLite's writers are serialised by BEGIN IMMEDIATE anyway), and no two writers
    # wait on each other's rows in opposite orders. ------------------------------------------------
    def login_throttle(self, login_id: str, source: str) -> t.LoginThrottle | None:
        """The source's count for the ID as last committed (no lock: a fast refusal, re-checked)."""
        return self.s.scalar(self._row(login_id, source))

    def lock_login_throttles(self, login_id: str, source: str, now: datetime) -> tuple[t.LoginThrottle,
                                                                                        t.LoginThrottle]:
        """The ID-wide row and the source's row, created at zero if missing, locked in that order."""
        everyone = self._lock_or_create(login_id, ACCOUNT_WIDE, now)
        return everyone, self._lock_or_create(login_id, source, now)

    def forget_login_failures(self, login_id: str) -> None:
        """A new password was set: every count of the ID goes (trusted sources too)."""
        self.s.execute(delete(t.LoginThrottle).where(t.LoginThrottle.login_id == login_id))

    def login_succeeded(self, login_id: str, source: str, now: datetime, trusted_until: datetime) -> None:
        """A success from ``source``: its count goes and it is trusted until ``trusted_until``; the
        ID-wide count and wait are back to zero."""
        everyone, mine = self.lock_login_throttles(login_id, source, now)
        everyone.failures, everyone.not_before = 0, None
        mine.failures, mine.not_before, mine.trusted_until, mine.updated_at = 0, None, trusted_until, now

    def prune_login_throttles(self, before: datetime, now: datetime, limit: int = 100) -> None:
        """Forget counts whose last try is older than ``before`` (nobody's wait is still running then)
        and whose trust has ended. Rows another transaction holds are skipped, not waited for:
        pruning never blocks a login."""
        stale = (
            select(t.LoginThrottle.id)
            .where(t.LoginThrottle.updated_at < before,
                   or_(t.LoginThrottle.trusted_until.is_(None), t.LoginThrottle.trusted_until < now))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        self.s.execute(delete(t.LoginThrottle).where(t.LoginThrottle.id.in_(stale)))

    def _row(self, login_id: str, source: str) -> Select[tuple[t.LoginThrottle]]:
        return select(t.LoginThrottle).where(t.LoginThrottle.login_id == login_id, t.LoginThrottle.source == source)

    def _lock_or_create(self, login_id: str, source: str, now: datetime) -> t.LoginThrottle:
        # A row can go between the insert and the lock (a success, a reset, the pruning in another
        # transaction: PostgreSQL's next statement sees their commit); then it is made again.
        for _ in range(10):
            self._insert_or_skip(login_id, source, now)
            # populate_existing: the caller's unit may have read the row before it was locked.
            row = self.s.scalars(
                self._row(login_id, source).with_for_update().execution_options(populate_existing=True)
            ).one_or_none()
            if row is not None:
                return row
        raise RuntimeError(f"the login count of {login_id!r} from {source!r} vanished ten times in a row")

    def _insert_or_skip(self, login_id: str, source: str, now: datetime) -> None:
        """A zero count, unless the row exists (on PostgreSQL this waits for another transaction
        inserting the same row, then skips)."""
        dialect: Any = postgresql if self.is_postgresql else sqlite
        stmt = dialect.insert(t.LoginThrottle).values(login_id=login_id, source=source, failures=0, updated_at=now)
        self.s.execute(stmt.on_conflict_do_nothing(index_elements=["login_id", "source"]))

    def rehashed(self, account_id: int, password_hash: str) -> None:
        """The password's hash upgraded to the current argon2 parameters at a successful login."""
        self.s.execute(update(t.Account).where(t.Account.id == account_id).values(password_hash=password_hash))

    # -- sites bound to a 現場管理者 -----------------------------------------------------------------
    def site_ids(self, account_id: int) -> list[int]:
        return list(self.s.scalars(select(t.AccountSite.site_id).where(t.AccountSite.account_id == account_id)))

    def site_ids_of(self, account_ids: Collection[int]) -> dict[int, list[int]]:
        """Bound site ids per account, for the accounts given (those with none are absent)."""
        out: dict[int, list[int]] = {}
        for b in self.s.scalars(select(t.AccountSite).where(t.AccountSite.account_id.in_(account_ids))):
            out.setdefault(b.account_id, []).append(b.site_id)
        return out

    def unbind_sites(self, account_id: int) -> None:
        self.s.execute(delete(t.AccountSite).where(t.AccountSite.account_id == account_id))

    # -- tokens (stored as their SHA-256) -----------------------------------------------------------
    def token(self, token_hash: str) -> t.Token | None:
        return self.s.get(t.Token, token_hash)

    def end_session(self, token_hash: str) -> None:
        self.s.execute(delete(t.Token).where(t.Token.token_hash == token_hash))

    def end_sessions(self, account_id: int) -> None:
        """Every token of the account."""
        self.s.execute(delete(t.Token).where(t.Token.account_id == account_id))
