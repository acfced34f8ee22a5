"""Queries on accounts, the sites bound to a 現場管理者, login tokens."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

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

    # -- failure counters: UPDATE … SET n = n + 1 RETURNING n, so parallel guesses on PostgreSQL
    # cannot lose increments (the account was read in an earlier, already closed transaction) ------
    def count_failed_login(self, account_id: int) -> int:
        """One more wrong password; the new count."""
        return self._increment(account_id, t.Account.failed_logins)

    def count_failed_reset(self, account_id: int) -> int:
        """One more wrong security code; the new count."""
        return self._increment(account_id, t.Account.failed_resets)

    def _increment(self, account_id: int, column: Any) -> int:
        n = self.s.execute(
            update(t.Account).where(t.Account.id == account_id).values({column: column + 1}).returning(column)
        ).scalar_one()
        return int(n)

    def lock_until(self, account_id: int, until: datetime) -> None:
        """Lock the login until ``until``; the wrong-password count starts again from zero."""
        self.s.execute(update(t.Account).where(t.Account.id == account_id).values(failed_logins=0, locked_until=until))

    def logged_in(self, account_id: int, rehashed: str | None = None) -> None:
        """A successful login: the wrong-password count back to zero, and the hash upgraded if given."""
        values: dict[str, Any] = {"failed_logins": 0}
        if rehashed:
            values["password_hash"] = rehashed
        self.s.execute(update(t.Account).where(t.Account.id == account_id).values(values))

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
