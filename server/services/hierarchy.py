"""施工体制: the tree of companies on a site. 招待 by an upper company, 承認 by the invited one,
CCUS未登録 placeholders and their 置換, removal, and saved patterns (施工体制パターン) applied to a
new site. The rules are the domain's (domain.hierarchy); this applies them over one transaction."""


from __future__ import annotations

from typing import Any

from server.domain.accounts import (
    APPROVE_ROLES,
    INVITE_ROLES,
    Actor,
    Role,
    require_role,
)
from server.domain.hierarchy import (
    STATUS_LABELS,
    PatternNode,
    Status,
    check_placeholder_name,
    check_work,
    normalize_company_name,
    pattern_companies,
    pattern_from_tree,
)
from server.domain.visibility import Visibility
from server.errors import Conflict, InvalidInput, NotFound
from server.services import records
from server.services.common import audit, company_or_404, load_tree, site_or_404, snapshot, worker_or_404
from server.services.context import Context
from server.services.sites import require_on_site, site_view_for
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


def _node_row(uow: UnitOfWork, node_id: int, lock: bool = False) -> t.HierarchyNode:
    row = uow.sites.node(node_id, lock=lock)
    if row is None:
        raise NotFound("node_not_found", ja="施工体制の行が見つかりません", en="no such node")
    return row


def hierarchy(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """施工体制: rows in screen order with 次数 and status; placeholders show 置換 suggestions to the company above.
    A worker on the site's roster sees its employer's row only (seed 3-3: 技能者（自社のみ）)."""
    with ctx.read(uow) as uow:
        tree = require_on_site(uow, actor, site_id)
        employer_id = (worker_or_404(uow, actor.worker_id).employer_id
                       if actor.role == Role.WORKER and actor.worker_id is not None else None)
        visible = Visibility(actor).tree_nodes(tree, employer_id=employer_id)
        rows = {r.id: r for r in uow.sites.nodes(site_id)}
        companies = {c.id: c for c in uow.companies.by_ids({r.company_id for r in rows.values() if r.company_id})}
        roster_counts = uow.roster.counts_by_node(site_id)
        zone = records.rule_of(site_or_404(uow, site_id))
        mine = tree.node_of_company(actor.company_id)
        by_name: dict[str, list[dict[str, Any]]] | None = None
        out = []
        for n in tree.walk():
            if n.id not in visible:
                continue
            r = rows[n.id]
            c = companies.get(r.company_id) if r.company_id else None
            row: dict[str, Any] = {
                "node_id": n.id,
                "parent_id": n.parent_id,
                "tier": tree.tier(n.id),
                "tier_label": "元請" if n.parent_id is None else str(tree.tier(n.id)),
                "company_id": r.company_id,
                "ccus_id": c.ccus_id if c else "CCUS未登録",
                "name": c.name if c else r.placeholder_name,
                "placeholder": c is None,
                "replaced_placeholder_name": r.replaced_placeholder_name,
                "work_name": r.work_name,
                "work_content": r.work_content,
                "status": r.status,
                "status_label": STATUS_LABELS[Status(r.status)],
                "invited_at": records.local_time(r.invited_at, zone),
                "roster_count": roster_counts.get(n.id, 0),
            }
            if (
                c is None
                and mine is not None
                and n.parent_id is not None
                and tree.responsible_company(n.parent_id) == mine.company_id
            ):
                by_name = _companies_by_name(uow) if by_name is None else by_name
                key = normalize_company_name(r.placeholder_name or "")
                row["replacement_candidates"] = by_name.get(key, []) if key else []
            out.append(row)
        return {"site": site_view_for(uow, actor, site_or_404(uow, site_id)), "rows": out}


def _companies_by_name(uow: UnitOfWork) -> dict[str, list[dict[str, Any]]]:
    """Registered companies by normalised name: 置換 suggestions for placeholders, never done automatically.

    Matched in Python: the normalisation (width, case, spaces, legal form) cannot be done by a
    LIKE that works the same on SQLite and PostgreSQL (PostgreSQL's LIKE is case-sensitive, and
    neither folds full-width letters), so a fragment filter in SQL missed real matches.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for company_id, ccus_id, name in uow.companies.names_in_id_order():
        out.setdefault(normalize_company_name(name), []).append({"id": company_id, "ccus_id": ccus_id, "name": name})
    return out


def invite(
    ctx: Context,
    actor: Actor,
    site_id: int,
    parent_node_id: int,
    company_id: int | None = None,
    placeholder_name: str | None = None,
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """招待 (→ 未承認) of a registered company, or a name-only placeholder (登録 at once: it has nobody to approve)."""
    if (company_id is None) == (placeholder_name is None):
        raise InvalidInput(
            "company_or_placeholder",
            ja="招待する事業者（company_id）か、CCUS未登録事業者の事業者名（placeholder_name）のどちらか一方を指定してください",
            en="give either company_id or placeholder_name",
        )
    with ctx.write(uow) as uow:
        site_or_404(uow, site_id, lock=True)  # serialises hierarchy changes per site on PostgreSQL
        tree = load_tree(uow, site_id)
        if company_id is not None:
            company_or_404(uow, company_id)
        name = check_placeholder_name(placeholder_name) if placeholder_name is not None else None
        tree.check_invite(actor, parent_node_id, company_id)
        now = ctx.now()
        node = t.HierarchyNode(
            site_id=site_id,
            parent_id=parent_node_id,
            company_id=company_id,
            placeholder_name=name,
            status=Status.PENDING if company_id is not None else Status.REGISTERED,
            invited_by_company_id=actor.company_id,
            invited_at=now,
            decided_at=None if company_id else now,
        )
        uow.add(node)
        uow.flush()
        audit(ctx, uow, actor, "hierarchy.invite", "hierarchy_node", node.id, after=snapshot(node), site_id=site_id)
        return snapshot(node) | {"tier": tree.tier(parent_node_id) + 1}


def approval_requests(ctx: Context, actor: Actor, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """承認要請リスト: the invitations waiting for this company, with 依頼日 and 依頼元."""
    require_role(actor, APPROVE_ROLES, "承認要請リストの表示", "see approval requests")
    with ctx.read(uow) as uow:
        rows = uow.sites.nodes_of_company(actor.company_id, Status.PENDING)
        out = []
        for r in rows:
            site = site_or_404(uow, r.site_id)
            inviter = company_or_404(uow, r.invited_by_company_id) if r.invited_by_company_id else None
            tree = load_tree(uow, r.site_id)
            out.append(
                {
                    "node_id": r.id,
                    "requested_at": records.local_time(r.invited_at, records.rule_of(site)),
                    "requester": {"id": inviter.id, "ccus_id": inviter.ccus_id, "name": inviter.name}
                    if inviter
                    else None,
                    "tier": tree.tier(r.id),
                    "site": site_view_for(uow, actor, site),
                }
            )
        return out


def _decide(
    ctx: Context,
    actor: Actor,
    node_id: int,
    approve: bool,
    work_name: str | None,
    work_content: str | None,
    uow: UnitOfWork | None,
) -> dict[str, Any]:
    require_role(actor, APPROVE_ROLES, "承認" if approve else "辞退", "approve" if approve else "decline")
    with ctx.write(uow) as uow:
        row = _node_row(uow, node_id)
        # Lock the site row first (as every hierarchy change does), then the node: on PostgreSQL a
        # second approval of the same invitation waits here and then sees it decided → Conflict.
        site_or_404(uow, row.site_id, lock=True)
        row = _node_row(uow, node_id, lock=True)  # read again under the lock
        tree = load_tree(uow, row.site_id)
        if approve:
            tree.check_decide(actor, node_id)
        else:
            tree.check_decline(actor, node_id)
        before = snapshot(row)
        if approve:
            row.work_name = check_work(work_name)
            row.work_content = (work_content or "").strip() or None
            row.status = Status.REGISTERED
        else:
            row.status = Status.DECLINED
        row.decided_at = ctx.now()
        audit(
            ctx,
            uow,
            actor,
            "hierarchy.approve" if approve else "hierarchy.decline",
            "hierarchy_node",
            row.id,
            before,
            snapshot(row),
            site_id=row.site_id,
        )
        return snapshot(row)


def approve(
    ctx: Context,
    actor: Actor,
    node_id: int,
    work_name: str | None,
    work_content: str | None,
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    return _decide(ctx, actor, node_id, True, work_name, work_content, uow)


def decline(ctx: Context, actor: Actor, node_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    return _decide(ctx, actor, node_id, False, None, None, uow)


def edit_work(
    ctx: Context,
    actor: Actor,
    node_id: int,
    work_name: str | None,
    work_content: str | None,
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """工事内容編集: the company itself or one above it."""
    require_role(actor, INVITE_ROLES, "工事内容の編集", "edit work")
    with ctx.write(uow) as uow:
        row = _node_row(uow, node_id)
        site_or_404(uow, row.site_id, lock=True)
        tree = load_tree(uow, row.site_id)
        tree.require_manages(actor, node_id, "工事内容の編集", "edit work of")
        before = snapshot(row)
        row.work_name = check_work(work_name)
        row.work_content = (work_content or "").strip() or None
        audit(
            ctx, uow, actor, "hierarchy.edit_work", "hierarchy_node", row.id, before, snapshot(row), site_id=row.site_id
        )
        return snapshot(row)


def replace(
    ctx: Context, actor: Actor, node_id: int, company_id: int, *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """置換: a placeholder becomes a registered company, keeping its subtree. Irreversible."""
    require_role(actor, INVITE_ROLES, "置換", "replace placeholders")
    with ctx.write(uow) as uow:
        row = _node_row(uow, node_id)
        site_or_404(uow, row.site_id, lock=True)
        company_or_404(uow, company_id)
        tree = load_tree(uow, row.site_id)
        tree.check_replace(actor, node_id, company_id)
        before = snapshot(row)
        row.replaced_placeholder_name = row.placeholder_name
        row.placeholder_name = None
        row.company_id = company_id
        audit(
            ctx, uow, actor, "hierarchy.replace", "hierarchy_node", row.id, before, snapshot(row), site_id=row.site_id
        )
        return snapshot(row)


def remove(ctx: Context, actor: Actor, node_id: int, *, uow: UnitOfWork | None = None) -> None:
    """削除 (also withdraws a pending invitation): refused with children or roster entries."""
    require_role(actor, INVITE_ROLES, "削除", "remove companies")
    with ctx.write(uow) as uow:
        row = _node_row(uow, node_id)
        site_or_404(uow, row.site_id, lock=True)
        tree = load_tree(uow, row.site_id)
        tree.check_remove(actor, node_id, uow.roster.count_on_node(node_id))
        before = snapshot(row)
        # Declined invitations below it are history, not children: they go with it (and are logged),
        # or the foreign key would refuse the removal forever.
        for declined in uow.sites.children(node_id):
            audit(ctx, uow, actor, "hierarchy.remove", "hierarchy_node", declined.id, snapshot(declined), None,
                  site_id=declined.site_id)
            uow.delete(declined)
        uow.flush()
        uow.delete(row)
        audit(ctx, uow, actor, "hierarchy.remove", "hierarchy_node", node_id, before, None, site_id=before["site_id"])


# --- hierarchy patterns (施工体制パターン) ---------------------------------------------------------


def _pattern_json(rows: tuple[PatternNode, ...]) -> list[dict[str, Any]]:
    return [
        {"company_id": r.company_id, "placeholder_name": r.placeholder_name, "children": _pattern_json(r.children)}
        for r in rows
    ]


def _pattern_rows(data: list[dict[str, Any]]) -> tuple[PatternNode, ...]:
    return tuple(
        PatternNode(d.get("company_id"), d.get("placeholder_name"), _pattern_rows(d.get("children", []))) for d in data
    )


def save_pattern(
    ctx: Context, actor: Actor, site_id: int, name: str, *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """Save the subtree below the actor's company on a site."""
    require_role(actor, INVITE_ROLES, "施工体制パターンの登録", "save hierarchy patterns")
    if not name.strip():
        raise InvalidInput("pattern_name_required", ja="パターン名を入力してください", en="name the pattern")
    with ctx.write(uow) as uow:
        tree = load_tree(uow, site_id)
        mine = tree.actor_node(actor)
        rows = pattern_from_tree(tree, mine.id)
        if not rows:
            raise InvalidInput(
                "pattern_empty", ja="自社の下位に事業者がいないため保存できません", en="nothing below your company"
            )
        assert actor.company_id is not None
        if uow.sites.pattern_id_by_name(actor.company_id, name.strip()) is not None:
            raise Conflict(
                "pattern_name_taken",
                ja="同じ名前の施工体制パターンがすでにあります。別の名前を付けてください",
                en="a hierarchy pattern with this name already exists",
            )
        p = t.HierarchyPattern(
            company_id=actor.company_id, name=name.strip(), tree=_pattern_json(rows), created_at=ctx.now()
        )
        uow.add(p)
        uow.flush()
        audit(ctx, uow, actor, "hierarchy_pattern.create", "hierarchy_pattern", p.id, after=snapshot(p))
        return {"id": p.id, "name": p.name, "tree": p.tree}


def list_patterns(ctx: Context, actor: Actor, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    with ctx.read(uow) as uow:
        rows = uow.sites.patterns_of_company(actor.company_id)
        return [{"id": p.id, "name": p.name, "tree": p.tree} for p in rows]


def apply_pattern(
    ctx: Context, actor: Actor, pattern_id: int, site_id: int, *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """Lay a saved subtree under the actor's company on another site. Every company is invited again
    (未承認: approval is never carried over); placeholders come in as they were. All or nothing."""
    require_role(actor, INVITE_ROLES, "施工体制パターンの適用", "apply hierarchy patterns")
    with ctx.write(uow) as uow:
        p = uow.get(t.HierarchyPattern, pattern_id)
        if p is None or p.company_id != actor.company_id:
            raise NotFound("pattern_not_found", ja="施工体制パターンが見つかりません", en="no such pattern")
        site_or_404(uow, site_id, lock=True)
        tree = load_tree(uow, site_id)
        mine = tree.actor_node(actor)
        rows = _pattern_rows(p.tree)
        present = [c for c in pattern_companies(rows) if tree.node_of_company(c) is not None]
        if present:
            raise Conflict(
                "company_already_on_site",
                ja="パターン内の事業者がすでにこの現場の施工体制に登録されています",
                en="companies of the pattern are already on this site",
                company_ids=present,
            )
        now = ctx.now()
        created: list[int] = []

        def lay(parent_id: int, nodes: tuple[PatternNode, ...]) -> None:
            for n in nodes:
                if n.company_id is not None and uow.get(t.Company, n.company_id) is None:
                    raise NotFound("company_not_found", ja="パターン内の事業者が見つかりません", en="company gone")
                row = t.HierarchyNode(
                    site_id=site_id,
                    parent_id=parent_id,
                    company_id=n.company_id,
                    placeholder_name=n.placeholder_name,
                    status=Status.PENDING if n.company_id is not None else Status.REGISTERED,
                    invited_by_company_id=actor.company_id,
                    invited_at=now,
                )
                uow.add(row)
                uow.flush()
                created.append(row.id)
                audit(
                    ctx, uow, actor, "hierarchy.invite", "hierarchy_node", row.id, after=snapshot(row), site_id=site_id
                )
                lay(row.id, n.children)

        lay(mine.id, rows)
        return {"site_id": site_id, "created_node_ids": created}
