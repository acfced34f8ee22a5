"""What one account may see of a worker. One place, so every read path applies the same rule.

- The employer (所属事業者) and the worker see everything.
- The 元請 and upper companies of a site where the worker is on the roster see what the 作業員名簿
  holds (name, social insurance, the roster entry) plus the items both sides disclosed.
- A company the employer gave proxy consent sees what registering needs (trades, qualifications).
- Nobody else sees the worker at all, not even that it exists.
"""

from __future__ import annotations

from server.domain.accounts import Actor, Role
from server.domain.consent import PERSONAL_ITEMS

ROSTER_ITEMS = frozenset({"social_insurance"})
PROXY_ITEMS = frozenset({"trades", "qualifications"})


def worker_items(
    actor: Actor,
    *,
    worker_id: int,
    employer_id: int,
    sees_roster: bool,
    is_proxy_agent: bool,
    disclosed: set[str],
) -> frozenset[str] | None:
    """The personal items visible to ``actor``, or None when the worker is not visible at all."""
    if actor.role == Role.WORKER:
        return frozenset(PERSONAL_ITEMS) if actor.worker_id == worker_id else None
    if not actor.is_company:
        return None
    if actor.company_id == employer_id:
        return frozenset(PERSONAL_ITEMS)
    items: set[str] = set()
    if sees_roster:
        items |= ROSTER_ITEMS | disclosed
    if is_proxy_agent:
        items |= PROXY_ITEMS | disclosed
    if not (sees_roster or is_proxy_agent):
        return None
    return frozenset(items)


def sees_attendance(
    actor: Actor, *, worker_id: int, employer_id: int | None, site_id: int, prime_id: int,
    actor_node: int | None, record_node: int | None, in_subtree: bool,
) -> bool:
    """Who sees one 就業履歴: the 元請 the whole site, an upper company its subtree, the employer its
    own workers (on any site), the worker themselves. A 現場管理者 only on the sites bound to it.

    ``actor_node`` is the actor's company's registered node on the site (None: not on it),
    ``record_node`` the node the record was filed under (None: the worker was not on the roster),
    ``in_subtree`` whether record_node lies under actor_node (the caller asks the Tree).
    """
    if actor.role == Role.WORKER:
        return actor.worker_id == worker_id
    if not actor.is_company or actor.company_id is None:
        return False
    if actor.role == Role.SITE_MANAGER and site_id not in actor.site_ids:
        return False
    if actor.company_id == employer_id or actor.company_id == prime_id:
        return True
    return actor_node is not None and record_node is not None and in_subtree
