"""安全書類 (the seed's AZ2, AZ6-a, AZ6-b, AZ7): the data of each printed form, scoped by the one
visibility policy, handed to ``server.forms`` to lay out.

Who may open which (the seed's 帳票 table, ``REPORT_READERS`` for the 403 of a worker or the operator):

- AZ2 施工体系図: 元請、施工体系図にある事業者（自身の枝のみ）. The nodes the 施工体制 view shows
  (``Visibility.tree_nodes``): the 元請 gets the whole chart, a company its own branch (the path up to
  the 元請 and everything below it). The chart shows the rows 登録 all the way up to the 元請 only
  (``Tree.is_contracted``): an invitation not yet approved is no contract yet, and a company whose own
  invitation is still 未承認 is told so (409 ``own_invitation_pending``) rather than given an empty chart.
  作業員数 is printed for the companies of the reader's own subtree only (``Visibility.seen_nodes``), the
  site's address only where the 元請 discloses it (帳票 4-1).
- AZ6-a / AZ6-b 作業員名簿 and AZ7 社会保険加入状況: 元請、当該下請（上位は自身の下位のみ）. The company
  asked for (``company_id``, else the reader's own) must be the reader's own company or registered below
  it (``Visibility.seen_nodes``); any other company gets the same 404 as a company that is not there, so
  a sibling is not told who works beside it. The workers are the roster entries the policy's roster
  scope admits, filed under that company (AZ7: under it and the companies below it), and what each line
  shows of a worker is ``Visibility.worker_items``: its employer everything, the companies above it what
  the 作業員名簿 holds (social insurance) and the items the worker and the employer both disclosed.
  A hidden item prints as an empty box, as does everything this product does not hold.

Anyone not on the site gets the 施工体制's answer: 404 ``site_not_found``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from server.domain.accounts import Actor
from server.domain.attendance import parse_time_zone
from server.domain.consent import disclosed_items
from server.domain.hierarchy import Node, Tree
from server.domain.roster import HEALTH_CHECKS, POSITIONS
from server.domain.trades import trade_table
from server.domain.visibility import Visibility
from server.errors import Conflict, InvalidInput, NotFound
from server.forms import az2, az6, az7
from server.services.common import require_reader, site_or_404
from server.services.companies import INSURANCE_STATES
from server.services.context import Context
from server.services.disclosure import agreements_of, has_proxy_consent
from server.services.sites import require_on_site, site_view_for
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

UNREGISTERED = "CCUS未登録"


def _own_invitation_pending() -> Conflict:
    return Conflict("own_invitation_pending",
                    ja="自社への招待がまだ未承認です。承認要請リストから承認してください",
                    en="your company's invitation to this site is still pending; approve it first")


def _issued_on(ctx: Context, site: t.Site) -> date:
    """Today on the site's calendar: the form's 作成日 and the date ages are counted at."""
    return ctx.now().astimezone(parse_time_zone(site.time_zone)).date()


# -- AZ2 ------------------------------------------------------------------------------------------------


def safety_chart(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> az2.SafetyChart:
    """AZ2 工事作業所災害防止協議会兼施工体系図 as this account may see it (the 元請 all, a company its branch)."""
    require_reader(actor, "AZ2")
    with ctx.read(uow) as uow:
        site = site_or_404(uow, site_id)
        tree = require_on_site(uow, actor, site_id)  # 404 for anyone not on the site
        policy = Visibility(actor)
        if policy.member_node(tree) is None:
            raise _own_invitation_pending()
        branch, mine = policy.tree_nodes(tree), policy.seen_nodes(tree)
        nodes = [n for n in tree.walk() if n.id in branch and tree.is_contracted(n.id)]
        names = _names(uow, nodes)
        work_names = {r.id: r.work_name for r in uow.sites.nodes(site_id)}
        counts = uow.roster.counts_by_node(site_id)
        boxes = [
            az2.Box(node_id=n.id, parent_id=n.parent_id, tier=tree.tier(n.id), name=names[n.id][0],
                    ccus_id=names[n.id][1], work_name=work_names.get(n.id),
                    workers=counts.get(n.id, 0) if n.id in mine and not n.is_placeholder else None)
            for n in nodes
        ]
        shown = site_view_for(uow, actor, site)  # the address only where the 元請 discloses it (帳票 4-1)
        return az2.SafetyChart(site_name=site.name, site_ccus_id=site.ccus_id, site_address=shown.get("address"),
                               issued_on=_issued_on(ctx, site), boxes=boxes)


# -- AZ6 and AZ7: one company's workers ---------------------------------------------------------------


def _company_below(uow: UnitOfWork, actor: Actor, site_id: int, company_id: int | None) -> tuple[Tree, Node]:
    """The site's tree and the node of the company asked for (the reader's own when None), which must be
    the reader's own company or registered below it: 元請、当該下請（上位は自身の下位のみ）."""
    tree = require_on_site(uow, actor, site_id)
    policy = Visibility(actor)
    if policy.member_node(tree) is None:
        raise _own_invitation_pending()
    wanted = company_id if company_id is not None else actor.company_id
    node = tree.node_of_company(wanted)
    if node is None or node.id not in policy.seen_nodes(tree) or not tree.is_contracted(node.id):
        raise NotFound("company_not_found", ja="この現場の自社以下の施工体制に、指定の事業者は見つかりません",
                       en="no such company in your part of this site's hierarchy", company_id=wanted)
    return tree, node


def _names(uow: UnitOfWork, nodes: Iterable[Node]) -> dict[int, tuple[str, str]]:
    """node id → (name, 事業者ID) as printed: a placeholder by its name and CCUS未登録."""
    nodes = list(nodes)
    companies = {c.id: c for c in uow.companies.by_ids({n.company_id for n in nodes if n.company_id})}
    return {n.id: (companies[n.company_id].name, companies[n.company_id].ccus_id) if n.company_id
            else (n.placeholder_name or "", UNREGISTERED) for n in nodes}


class _Workers:
    """The visible roster entries under some nodes, their workers and what the reader sees of each."""

    def __init__(self, uow: UnitOfWork, actor: Actor, tree: Tree, node_ids: set[int]) -> None:
        policy = Visibility(actor)
        roster = policy.roster(tree)
        self.entries = [e for e in uow.roster.visible_entries(tree.site_id, roster) if e.node_id in node_ids]
        ids = [e.worker_id for e in self.entries]
        self.workers = {w.id: w for w in uow.workers.by_ids(ids)}
        agreed = agreements_of(uow, ids)
        agents = {employer: has_proxy_consent(uow, employer, actor.company_id)
                  for employer in {w.employer_id for w in self.workers.values()}}
        # sees_roster is asked of the same roster scope the entries were read through (as 2-2 asks it),
        # so it answers yes for each of them: the reader is the 元請 or at or above the entry's node.
        on_roster = {e.worker_id for e in self.entries if roster.admits(node_id=e.node_id)}
        self.items = {
            w.id: policy.worker_items(worker_id=w.id, employer_id=w.employer_id, sees_roster=w.id in on_roster,
                                      is_proxy_agent=agents[w.employer_id],
                                      disclosed=disclosed_items(agreed[w.id])) or frozenset()
            for w in self.workers.values()
        }

    def insurance(self, worker: t.Worker) -> dict[str, str | None]:
        shown = "social_insurance" in self.items[worker.id]
        return {
            "health": INSURANCE_STATES.get(worker.health_insurance) if shown else None,
            "pension": INSURANCE_STATES.get(worker.pension_insurance) if shown else None,
            "employment": INSURANCE_STATES.get(worker.employment_insurance) if shown else None,
            "kentaikyo": INSURANCE_STATES.get(worker.kentaikyo) if "kentaikyo" in self.items[worker.id] else None,
        }


def _trade(e: t.RosterEntry) -> str | None:
    """The entry's 職種 as the form prints it: the 小分類's name (its 大分類 adds nothing on paper)."""
    if not (e.trade_major and e.trade_minor):
        return None
    try:
        return trade_table().get(e.trade_major, e.trade_minor).minor_name
    except InvalidInput:
        return trade_table().label_of(e.trade_major, e.trade_minor)


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def worker_roster(ctx: Context, actor: Actor, site_id: int, company_id: int | None = None, *,
                  variant: az6.Variant = "a", uow: UnitOfWork | None = None) -> az6.WorkerRoster:
    """AZ6-a 作業員名簿 (``variant`` "a") or AZ6-b, its version with the social-insurance columns ("b"),
    of one company on the site: the workers of its roster entries, in the order they were registered."""
    require_reader(actor, f"AZ6-{variant}")
    with ctx.read(uow) as uow:
        site = site_or_404(uow, site_id)
        tree, node = _company_below(uow, actor, site_id, company_id)
        issued = _issued_on(ctx, site)
        path = [node, *tree.ancestors(node.id)]  # the company, then up to the 元請
        names = _names(uow, path)
        tier = tree.tier(node.id)
        first = next(n for n in path if tree.tier(n.id) == 1) if tier >= 1 else None
        seen = _Workers(uow, actor, tree, {node.id})
        quals = {q.id: q for q in uow.workers.qualifications_of(list(seen.workers))}
        first_days = uow.safety.first_days(site_id, list(seen.workers))
        lines = []
        for e in seen.entries:
            w = seen.workers[e.worker_id]
            items = seen.items[w.id]
            birth = w.birth_date if "birth_date" in items else None
            checks = tuple((e.health_checks_other or HEALTH_CHECKS[c]) if c == "other" else HEALTH_CHECKS.get(c, c)
                           for c in e.health_checks)
            lines.append(az6.WorkerLine(
                name=w.name, ccus_id=w.ccus_id, name_kana=w.name_kana, trade=_trade(e), position=e.position,
                position_label=POSITIONS.get(e.position or ""), birth_date=birth, age=_age(birth, issued),
                address=w.address if "address" in items else None, phone=w.phone if "phone" in items else None,
                blood_type=w.blood_type if "blood_type" in items else None, special_checks=checks,
                **seen.insurance(w),
                qualifications=tuple((quals[q].category, quals[q].name) for q in e.qualification_ids if q in quals),
                first_day=first_days.get(w.id),
            ))
        return az6.WorkerRoster(
            variant=variant, site_name=site.name, site_ccus_id=site.ccus_id, prime_name=names[path[-1].id][0],
            company=az6.Party(*names[node.id], tier=tier),
            first_tier=az6.Party(*names[first.id], tier=1) if first is not None else None,
            issued_on=issued, workers=lines,
        )


def social_insurance(ctx: Context, actor: Actor, site_id: int, company_id: int | None = None, *,
                     uow: UnitOfWork | None = None) -> az7.InsuranceStatus:
    """AZ7 社会保険加入状況 of one company and the companies registered below it on the site (the 元請's
    own: the whole site), each with its workers' statuses."""
    require_reader(actor, "AZ7")
    with ctx.read(uow) as uow:
        site = site_or_404(uow, site_id)
        tree, node = _company_below(uow, actor, site_id, company_id)
        nodes = [n for n in (node, *tree.descendants(node.id)) if tree.is_contracted(n.id)]
        parents = [tree.nodes[n.parent_id] for n in nodes if n.parent_id is not None]
        names = _names(uow, [*nodes, *parents])
        seen = _Workers(uow, actor, tree, {n.id for n in nodes})
        by_node: dict[int, list[az7.InsuredWorker]] = {}
        for e in seen.entries:
            w = seen.workers[e.worker_id]
            by_node.setdefault(e.node_id, []).append(
                az7.InsuredWorker(name=w.name, ccus_id=w.ccus_id, trade=_trade(e), **seen.insurance(w)))
        companies = [
            az7.CompanyInsurance(tier=tree.tier(n.id), name=names[n.id][0], ccus_id=names[n.id][1],
                                 upper_name=names[n.parent_id][0] if n.parent_id is not None else None,
                                 workers=by_node.get(n.id, []))
            for n in nodes
        ]
        return az7.InsuranceStatus(site_name=site.name, site_ccus_id=site.ccus_id, company_name=names[node.id][0],
                                   company_ccus_id=names[node.id][1], issued_on=_issued_on(ctx, site),
                                   companies=companies)

