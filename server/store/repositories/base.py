"""What every repository shares: the unit of work's session, the backend's name, and the one
translation of the visibility policy's scopes into SQL."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, false, func, or_, select, true, tuple_
from sqlalchemy.orm import Session

from server.domain.visibility import AuditScope, Scope
from server.store.repositories.bulk import BinaryArray


class Repository:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.dialect = session.get_bind().dialect.name

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    # Membership in a set of values. On PostgreSQL as one array parameter (``col = ANY(:values)``,
    # ``(a, b) IN (SELECT * FROM unnest(:a, :b))``), so the statement's text is the same whatever the
    # number of values: the tap path sends these per batch, and a text that does not change is
    # converted once by the driver and prepared by the server after a few runs, where an IN list of
    # hundreds of parameters was parsed and planned anew for every batch size. SQLite, in-process,
    # gets the plain IN list.

    def among(self, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
        """``column IN values``."""
        if self.is_postgresql:
            return column == any_(bindparam(None, list(values), type_=BinaryArray(column.type)))
        return column.in_(list(values))  # type: ignore[no-any-return]

    def among_keys(self, columns: Sequence[Any], keys: Collection[tuple[Any, ...]]) -> ColumnElement[bool]:
        """``(columns…) IN keys``, each key a tuple of the columns' values."""
        if self.is_postgresql:
            arrays = [bindparam(None, [k[i] for k in keys], type_=BinaryArray(c.type))
                      for i, c in enumerate(columns)]
            return tuple_(*columns).in_(select(func.unnest(*arrays).table_valued(
                *(f"k{i}" for i in range(len(columns)))).render_derived()))
        return tuple_(*columns).in_(list(keys))


def scope_clause(scope: Scope, *, site: Any = None, worker: Any = None, employer: Any = None, node: Any = None,
                 prime: Any = None) -> ColumnElement[bool]:
    """``Scope.admits`` as a WHERE clause over the given columns (a grant whose column the query does
    not have is left out, so pass every column the scope may name: unknown grants admit nothing)."""
    if scope.is_empty:
        return false()
    grants: list[ColumnElement[bool]] = []
    if scope.everything:
        grants.append(true())
    if scope.prime_of is not None and prime is not None:
        grants.append(prime == scope.prime_of)
    if scope.node_ids and node is not None:
        grants.append(node.in_(sorted(scope.node_ids)))
    if scope.employer_id is not None and employer is not None:
        grants.append(employer == scope.employer_id)
    if scope.worker_id is not None and worker is not None:
        grants.append(worker == scope.worker_id)
    clause: ColumnElement[bool] = or_(*grants) if grants else false()
    if scope.site_ids is not None:
        clause = clause & site.in_(sorted(scope.site_ids))
    return clause


def audit_clause(scope: AuditScope, *, site: Any, company: Any, account: Any) -> ColumnElement[bool]:
    """``AuditScope`` as a WHERE clause over the audit log's columns."""
    if scope.everything:
        return true()
    if scope.site_id is not None:
        return site == scope.site_id
    if scope.company_id is not None:
        clause: ColumnElement[bool] = company == scope.company_id
        if scope.site_ids is not None:
            clause = clause & or_(site.in_(sorted(scope.site_ids)), account == scope.account_id)
        return clause
    return account == scope.account_id
