"""Queries on workers (技能者), their trades, qualifications, disclosures (開示設定) and cards."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, exists, false, select, true

from server.domain.visibility import WorkerScope
from server.store import tables as t
from server.store.repositories.base import Repository


def worker_scope_clause(scope: WorkerScope) -> ColumnElement[bool]:
    """``WorkerScope.admits`` as a WHERE clause on ``workers``: every row, or the rows with a
    disclosure row of one of the scope's items that both the worker and the employer agreed to."""
    if scope.everything:
        return true()
    if not scope.disclosed:
        return false()
    d = t.Disclosure
    return exists().where(d.worker_id == t.Worker.id, d.worker_agrees.is_(True), d.employer_agrees.is_(True),
                          d.item.in_(sorted(scope.disclosed)))


class WorkerRepository(Repository):
    # -- workers ------------------------------------------------------------------------------------
    def by_ccus_id(self, ccus_id: str) -> t.Worker | None:
        """The worker registered under this 技能者ID, if any."""
        return self.s.scalars(select(t.Worker).where(t.Worker.ccus_id == ccus_id)).one_or_none()

    def by_ids(self, worker_ids: Collection[int]) -> Sequence[t.Worker]:
        return self.s.scalars(select(t.Worker).where(t.Worker.id.in_(worker_ids))).all()

    def of_employer(self, company_id: int, scope: WorkerScope | None = None) -> Sequence[t.Worker]:
        """The company's workers (所属技能者), in id order; with ``scope``, only those it admits."""
        where = t.Worker.employer_id == company_id
        if scope is not None:
            where = where & worker_scope_clause(scope)
        return self.s.scalars(select(t.Worker).where(where).order_by(t.Worker.id)).all()

    # -- trades and qualifications ------------------------------------------------------------------
    def trades_of(self, worker_ids: Collection[int]) -> Sequence[t.WorkerTrade]:
        """The workers' trades, in the order they were registered (id order)."""
        return self.s.scalars(
            select(t.WorkerTrade).where(t.WorkerTrade.worker_id.in_(worker_ids)).order_by(t.WorkerTrade.id)
        ).all()

    def trade_codes(self, worker_id: int) -> list[tuple[str, str]]:
        """The worker's trades as (大分類, 小分類) code pairs, in the order they were registered."""
        return [(r.major_code, r.minor_code) for r in self.trades_of([worker_id])]

    def qualifications_of(self, worker_ids: Collection[int]) -> Sequence[t.Qualification]:
        """The workers' qualifications, in the order they were added (id order)."""
        return self.s.scalars(
            select(t.Qualification).where(t.Qualification.worker_id.in_(worker_ids)).order_by(t.Qualification.id)
        ).all()

    def qualification_ids(self, worker_id: int) -> list[int]:
        return list(self.s.scalars(select(t.Qualification.id).where(t.Qualification.worker_id == worker_id)))

    # -- disclosures (開示設定) -----------------------------------------------------------------------
    def disclosures(self, worker_id: int) -> Sequence[t.Disclosure]:
        """The worker's per-item disclosure rows (an item without a row was never set)."""
        return self.s.scalars(select(t.Disclosure).where(t.Disclosure.worker_id == worker_id)).all()

    def disclosures_of(self, worker_ids: Collection[int]) -> Sequence[t.Disclosure]:
        """The disclosure rows of many workers in one query (a list)."""
        if not worker_ids:
            return []
        return self.s.scalars(select(t.Disclosure).where(self.among(t.Disclosure.worker_id, worker_ids))).all()

    # -- cards --------------------------------------------------------------------------------------
    def active_card(self, uid: str) -> t.Card | None:
        """The card with this UID that is not revoked (there is at most one: a partial unique index)."""
        return self.s.scalar(select(t.Card).where(t.Card.uid == uid, t.Card.revoked_at.is_(None)))

    def active_cards_of(self, worker_id: int) -> Sequence[t.Card]:
        return self.s.scalars(select(t.Card).where(t.Card.worker_id == worker_id, t.Card.revoked_at.is_(None))).all()

    def cards_of(self, worker_id: int) -> Sequence[t.Card]:
        """All the worker's cards, revoked ones too (the history), in id order."""
        return self.s.scalars(select(t.Card).where(t.Card.worker_id == worker_id).order_by(t.Card.id)).all()

    def card_holders(self, uids: Collection[str]) -> dict[str, int]:
        """Card UID → the worker holding it now (revoked cards hold nothing), for the UIDs given."""
        if not uids:
            return {}
        rows = self.s.execute(
            select(t.Card.uid, t.Card.worker_id).where(self.among(t.Card.uid, uids), t.Card.revoked_at.is_(None))).all()
        return {uid: wid for uid, wid in rows}

    def last_revoked_card(self, uid: str) -> t.Card | None:
        """The card of this UID revoked last (a card reported lost), if any."""
        return self.s.scalars(select(t.Card).where(t.Card.uid == uid, t.Card.revoked_at.is_not(None))
                              .order_by(t.Card.revoked_at.desc()).limit(1)).first()

    def of_employers(self, company_ids: Collection[int]) -> Sequence[int]:
        """The ids of the workers these companies employ."""
        return self.s.scalars(select(t.Worker.id).where(t.Worker.employer_id.in_(company_ids))).all()

    def active_card_uids_of_site(self, site_id: int, company_ids: Collection[int]) -> list[tuple[str, int]]:
        """(UID, worker id) of every card held now (not revoked) by a worker on the site's roster or
        employed by one of ``company_ids``. Selected in the database (a 10,000-worker roster is not
        sent back as 10,000 parameters, which SQLite would also refuse past 32,766)."""
        on_roster = select(t.RosterEntry.worker_id).where(t.RosterEntry.site_id == site_id)
        employed = select(t.Worker.id).where(t.Worker.employer_id.in_(sorted(company_ids)))
        rows = self.s.execute(select(t.Card.uid, t.Card.worker_id).where(
            t.Card.revoked_at.is_(None), t.Card.worker_id.in_(on_roster) | t.Card.worker_id.in_(employed))).all()
        return [(uid, wid) for uid, wid in rows]

    def employers_of(self, worker_ids: Collection[int]) -> dict[int, int | None]:
        """worker id → its employer's id, for the workers that exist."""
        return {wid: emp for wid, emp in self.s.execute(
            select(t.Worker.id, t.Worker.employer_id).where(self.among(t.Worker.id, worker_ids))).all()}

    def people(self, worker_ids: Collection[int]) -> tuple[dict[int, t.Worker], dict[int, t.Company]]:
        """The workers of these ids and their employers (two queries, whatever the number of records)."""
        workers = {w.id: w for w in self.s.scalars(select(t.Worker).where(t.Worker.id.in_(set(worker_ids))))}
        companies = {c.id: c for c in self.s.scalars(
            select(t.Company).where(t.Company.id.in_({w.employer_id for w in workers.values()})))}
        return workers, companies
