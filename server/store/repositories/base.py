"""What every repository shares: the unit of work's session, the backend's name, and the one
translation of the visibility policy's scopes into SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, true
from sqlalchemy.orm import Session

from server.domain.visibility import AuditScope, Scope


class Repository:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.dialect = session.get_bind().dialect.name

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"


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
