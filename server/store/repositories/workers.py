"""Queries on workers (技能者), their trades, qualifications, disclosures (開示設定) and cards."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select

from server.store import tables as t
from server.store.repositories.base import Repository


class WorkerRepository(Repository):
    # -- workers ------------------------------------------------------------------------------------
    def by_ccus_id(self, ccus_id: str) -> t.Worker | None:
        """The worker registered under this 技能者ID, if any."""
        return self.s.scalars(select(t.Worker).where(t.Worker.ccus_id == ccus_id)).one_or_none()

    def by_ids(self, worker_ids: Collection[int]) -> Sequence[t.Worker]:
        return self.s.scalars(select(t.Worker).where(t.Worker.id.in_(worker_ids))).all()

    def of_employer(self, company_id: int) -> Sequence[t.Worker]:
        """The company's workers (所属技能者), in id order."""
        return self.s.scalars(select(t.Worker).where(t.Worker.employer_id == company_id).order_by(t.Worker.id)).all()

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

    # -- cards --------------------------------------------------------------------------------------
    def active_card(self, uid: str) -> t.Card | None:
        """The card with this UID that is not revoked (there is at most one: a partial unique index)."""
        return self.s.scalar(select(t.Card).where(t.Card.uid == uid, t.Card.revoked_at.is_(None)))

    def active_cards_of(self, worker_id: int) -> Sequence[t.Card]:
        return self.s.scalars(select(t.Card).where(t.Card.worker_id == worker_id, t.Card.revoked_at.is_(None))).all()

    def cards_of(self, worker_id: int) -> Sequence[t.Card]:
        """All the worker's cards, revoked ones too (the history), in id order."""
        return self.s.scalars(select(t.Card).where(t.Card.worker_id == worker_id).order_by(t.Card.id)).all()
