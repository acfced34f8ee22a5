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
