"""What of a worker an actor may see: the inputs the visibility policy (server.domain.visibility) needs
about a worker, loaded here once for every service that shows one (the worker's page, lists, career,
reports): the worker's and the employer's 開示設定, the employer's 代行 consents, and whether the actor is
the 元請 or above the worker on a site's roster."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from server.domain.accounts import Actor
from server.domain.consent import PERSONAL_ITEMS, ItemAgreement, disclosed_items
from server.domain.visibility import Visibility
from server.services.common import load_tree
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


def agreements(uow: UnitOfWork, worker_id: int) -> dict[str, ItemAgreement]:
    return {d.item: ItemAgreement(d.worker_agrees, d.employer_agrees) for d in uow.workers.disclosures(worker_id)}


def agreements_of(uow: UnitOfWork, worker_ids: Iterable[int]) -> dict[int, dict[str, ItemAgreement]]:
    """``agreements`` of many workers in one query, for a list."""
    ids = list(worker_ids)
    out: dict[int, dict[str, ItemAgreement]] = {i: {} for i in ids}
    for d in uow.workers.disclosures_of(ids):
        out[d.worker_id][d.item] = ItemAgreement(d.worker_agrees, d.employer_agrees)
    return out


def has_proxy_consent(uow: UnitOfWork, employer_id: int, agent_id: int | None) -> bool:
    if agent_id is None:
        return False
    row = uow.get(t.ProxyConsent, (employer_id, agent_id))
    return _consents(row)


def proxy_principals(uow: UnitOfWork, agent_id: int | None) -> frozenset[int]:
    """The employers for which ``has_proxy_consent(uow, employer, agent_id)`` holds, in one query: for a
    report that streams many employers' workers and cannot ask per employer once it is under way."""
    if agent_id is None:
        return frozenset()
    return frozenset(c.employer_id for c in uow.companies.proxy_consents_of(agent_id)
                     if c.agent_id == agent_id and _consents(c))


def _consents(row: t.ProxyConsent | None) -> bool:
    """A consent counts while it stands: a withdrawn one keeps its row with ``consented`` False."""
    return bool(row and row.consented)


def sees_on_roster(uow: UnitOfWork, actor: Actor, worker_id: int) -> bool:
    """Whether the actor's company is the 元請 or above the worker on a site where the worker is on the roster."""
    if actor.company_id is None:
        return False
    seer = Visibility(actor)
    # Lazily, so the trees of sites after the first that answers yes (or that a 現場管理者 is not
    # bound to) are never loaded.
    placements = (
        (load_tree(uow, e.site_id), e.node_id)
        for e in uow.roster.entries_of_worker(worker_id)
        if seer.acts_on(e.site_id)
    )
    return seer.sees_on_roster(placements)


def visible_items(
    uow: UnitOfWork,
    actor: Actor,
    w: t.Worker,
    *,
    is_proxy_agent: bool | None = None,
    agreed: Mapping[str, ItemAgreement] | None = None,
) -> frozenset[str] | None:
    """What the policy lets ``actor`` see of ``w`` (None: not the worker at all). A list passes what
    it loaded once for all its rows (``is_proxy_agent``, ``agreed``); the employer and the worker
    themselves see everything, so nothing is loaded for them."""
    seer = Visibility(actor)
    if seer.sees_everything_of(worker_id=w.id, employer_id=w.employer_id):
        return frozenset(PERSONAL_ITEMS)
    return seer.worker_items(
        worker_id=w.id,
        employer_id=w.employer_id,
        sees_roster=sees_on_roster(uow, actor, w.id),
        is_proxy_agent=(has_proxy_consent(uow, w.employer_id, actor.company_id)
                        if is_proxy_agent is None else is_proxy_agent),
        disclosed=disclosed_items(agreements(uow, w.id) if agreed is None else agreed),
    )
