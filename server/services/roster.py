"""The roster (施工体制技能者登録 / 現場作業員一覧 / 作業員名簿) and its saved patterns."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from server.domain.accounts import Actor, require_site_access
from server.domain.hierarchy import Status, Tree
from server.domain.roster import (
    HAZARDOUS,
    HEALTH_CHECKS,
    POSITIONS,
    EntryFields,
    WorkerHoldings,
    check_entry,
    validity,
)
from server.domain.trades import trade_table
from server.domain.visibility import Visibility
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, site_not_found, worker_not_found
from server.services import records
from server.services.common import (
    audit,
    entry_fields,
    get,
    load_tree,
    site_or_404,
    snapshot,
    worker_or_404,
)
from server.services.companies import too_long
from server.services.context import Context
from server.services.disclosure import has_proxy_consent
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


def _holdings(uow: UnitOfWork, worker_id: int) -> WorkerHoldings:
    trades = uow.workers.trade_codes(worker_id)
    return WorkerHoldings(frozenset(trades), frozenset(uow.workers.qualification_ids(worker_id)))


def _apply_fields(e: t.RosterEntry, f: EntryFields) -> None:
    e.trade_major, e.trade_minor = f.trade if f.trade else (None, None)
    e.position = f.position
    e.work_description = (f.work_description or "").strip() or None
    e.hazardous = list(f.hazardous)
    e.hazardous_other = f.hazardous_other if "other" in f.hazardous else None
    e.health_checks = list(f.health_checks)
    e.health_checks_other = f.health_checks_other if "other" in f.health_checks else None
    e.qualification_ids = list(f.qualification_ids)


@dataclass
class _Related:
    """What entry views need besides the entry, loaded once for a whole list (no query per row)."""

    workers: dict[int, t.Worker]
    companies: dict[int, t.Company]
    qualifications: dict[int, t.Qualification]

    @classmethod
    def load(cls, uow: UnitOfWork, worker_ids: Collection[int]) -> _Related:
        workers = {w.id: w for w in uow.workers.by_ids(worker_ids)}
        companies = {c.id: c for c in uow.companies.by_ids({w.employer_id for w in workers.values()})}
        quals = {q.id: q for q in uow.workers.qualifications_of(worker_ids)}
        return cls(workers, companies, quals)


def entry_view(
    uow: UnitOfWork, e: t.RosterEntry, tree: Tree | None = None, related: _Related | None = None
) -> dict[str, Any]:
    related = related or _Related.load(uow, [e.worker_id])
    w = related.workers.get(e.worker_id) or worker_or_404(uow, e.worker_id)
    employer = related.companies.get(w.employer_id)
    f = entry_fields(e)
    v = validity(f)
    quals = {q: related.qualifications[q] for q in f.qualification_ids if q in related.qualifications}
    return {
        "id": e.id,
        "site_id": e.site_id,
        "node_id": e.node_id,
        "tier": tree.tier(e.node_id) if tree and e.node_id in tree.nodes else None,
        "worker": {"id": w.id, "ccus_id": w.ccus_id, "name": w.name, "name_kana": w.name_kana},
        "employer": {"id": employer.id, "ccus_id": employer.ccus_id, "name": employer.name} if employer else None,
        "trade": {"major": f.trade[0], "minor": f.trade[1], "label": trade_table().label_of(*f.trade)}
        if f.trade
        else None,
        "position": f.position,
        "position_label": POSITIONS.get(f.position or ""),
        "work_description": f.work_description,
        "hazardous": [{"code": c, "label": HAZARDOUS[c]} for c in f.hazardous],
        "hazardous_other": e.hazardous_other,
        "health_checks": [{"code": c, "label": HEALTH_CHECKS[c]} for c in f.health_checks],
        "health_checks_other": e.health_checks_other,
        "qualifications": [
            {"id": q, "name": quals[q].name, "category": quals[q].category} for q in f.qualification_ids if q in quals
        ],
        "social_insurance": {
            "health": w.health_insurance,
            "pension": w.pension_insurance,
            "employment": w.employment_insurance,
        },
        "valid_for_skill_evaluation": v.valid,
        "invalid_reasons": list(v.reasons),
        "registered_by_company_id": e.registered_by_company_id,
        "updated_at": records.local_time(e.updated_at, records.rule_of(site_or_404(uow, e.site_id))),
    }


def _authorize(uow: UnitOfWork, actor: Actor, tree: Tree, worker: t.Worker) -> int:
    """The employer itself, or an upper company with the employer's proxy consent. Returns the employer's node.

    Who asks is checked before anything about the worker is said: an account that may not see the
    worker gets the same 404 as for a worker that does not exist."""
    if not actor.is_company:
        raise Forbidden("role_not_allowed", ja="作業員名簿の登録はできません", en="this account cannot edit rosters")
    employer_id = worker.employer_id
    employer_node = tree.node_of_company(employer_id)
    if actor.company_id == employer_id:
        require_site_access(actor, tree.site_id)
    else:
        mine = tree.actor_node(actor)  # 404 when the actor's company is not on this site
        consent = has_proxy_consent(uow, employer_id, actor.company_id)
        below = employer_node is not None and tree.in_subtree(mine.id, employer_node.id)
        if not below and not consent:
            raise worker_not_found()
        if not below:
            raise Forbidden(
                "not_your_worker",
                ja="この技能者の所属事業者は自社より下位にいないため、代わりに登録できません",
                en="the worker's employer is not below your company on this site",
            )
    if employer_node is None or employer_node.status != Status.REGISTERED:
        raise Conflict(
            "employer_not_registered_on_site",
            ja="所属事業者がこの現場の施工体制に登録（承認済み）されていないため、技能者を登録できません",
            en="the worker's employer is not a registered (approved) company on this site",
        )
    if actor.company_id != employer_id and not has_proxy_consent(uow, employer_id, actor.company_id):
        raise Forbidden(
            "proxy_consent_required",
            ja="所属事業者の代理手続きの同意がないため、代わりに登録・編集できません。所属事業者に同意を依頼してください",
            en="the employer has not consented to proxy registration by your company",
            employer_id=employer_id,
        )
    return employer_node.id


def _checked(uow: UnitOfWork, worker_id: int, f: EntryFields) -> EntryFields:
    """The fields as stored: trade codes as the table spells them (full-width digits are tolerated),
    each checkbox item once."""
    if f.trade is not None:
        tr = trade_table().get(*f.trade)
        f = replace(f, trade=(tr.major_code, tr.minor_code))
    f = replace(
        f,
        hazardous=tuple(dict.fromkeys(f.hazardous)),
        health_checks=tuple(dict.fromkeys(f.health_checks)),
        qualification_ids=tuple(dict.fromkeys(f.qualification_ids)),
    )
    check_entry(f, _holdings(uow, worker_id))
    too_long("有害物質の取扱い（その他）", f.hazardous_other, t.RosterEntry.__table__.c.hazardous_other)
    too_long("特殊健康診断（その他）", f.health_checks_other, t.RosterEntry.__table__.c.health_checks_other)
    return f


def add_entry(
    ctx: Context, uow: UnitOfWork, actor: Actor, tree: Tree, worker_id: int, f: EntryFields
) -> t.RosterEntry:
    w = worker_or_404(uow, worker_id)
    node_id = _authorize(uow, actor, tree, w)
    f = _checked(uow, w.id, f)
    if uow.roster.is_on_roster(tree.site_id, w.id):
        raise Conflict(
            "already_on_roster",
            ja="この技能者はすでにこの現場の作業員名簿に登録されています",
            en="this worker is already on this site's roster",
            worker_id=w.id,
        )
    assert actor.company_id is not None
    now = ctx.now()
    e = t.RosterEntry(
        site_id=tree.site_id,
        node_id=node_id,
        worker_id=w.id,
        registered_by_company_id=actor.company_id,
        created_at=now,
        updated_at=now,
    )
    _apply_fields(e, f)
    uow.add(e)
    uow.flush()
    audit(ctx, uow, actor, "roster.add", "roster_entry", e.id, after=snapshot(e), site_id=tree.site_id)
    records.refresh_today(ctx, uow, tree.site_id, w.id)
    return e


def register(
    ctx: Context, actor: Actor, site_id: int, worker_id: int, f: EntryFields, *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    with ctx.write(uow) as uow:
        site_or_404(uow, site_id, lock=True)
        tree = load_tree(uow, site_id)
        e = add_entry(ctx, uow, actor, tree, worker_id, f)
        return entry_view(uow, e, tree)


def _entry(uow: UnitOfWork, entry_id: int) -> t.RosterEntry:
    ja = "作業員名簿の登録が見つかりません"
    return get(uow, t.RosterEntry, entry_id, "roster_entry_not_found", ja, "no such roster entry")


def _authorize_entry(uow: UnitOfWork, actor: Actor, tree: Tree, e: t.RosterEntry, worker: t.Worker) -> None:
    """Editing or removing an entry: refused with the reason to those who see it, as not found to the rest."""
    try:
        _authorize(uow, actor, tree, worker)
    except (Forbidden, NotFound, Conflict):
        if not Visibility(actor).roster(tree).admits(worker_id=e.worker_id, node_id=e.node_id):
            raise NotFound(
                "roster_entry_not_found", ja="作業員名簿の登録が見つかりません", en="no such roster entry"
            ) from None
        raise


def update(
    ctx: Context, actor: Actor, entry_id: int, changes: dict[str, Any], *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """編集: any subset of the fields; the rest stays."""
    with ctx.write(uow) as uow:
        e = _entry(uow, entry_id)
        site_or_404(uow, e.site_id, lock=True)
        tree = load_tree(uow, e.site_id)
        w = worker_or_404(uow, e.worker_id)
        _authorize_entry(uow, actor, tree, e, w)
        current = entry_fields(e).__dict__ | {}
        unknown = set(changes) - set(current)
        if unknown:
            raise InvalidInput(
                "unknown_field",
                ja=f"変更できない項目です: {', '.join(sorted(unknown))}",
                en=f"unknown fields: {', '.join(sorted(unknown))}",
            )
        merged = _checked(uow, w.id, EntryFields(**(current | changes)))
        before = snapshot(e)
        _apply_fields(e, merged)
        e.updated_at = ctx.now()
        audit(ctx, uow, actor, "roster.update", "roster_entry", e.id, before, snapshot(e), site_id=e.site_id)
        uow.flush()
        records.refresh_today(ctx, uow, e.site_id, w.id)
        return entry_view(uow, e, tree)


def remove(ctx: Context, actor: Actor, entry_id: int, *, uow: UnitOfWork | None = None) -> None:
    with ctx.write(uow) as uow:
        e = _entry(uow, entry_id)
        site_or_404(uow, e.site_id, lock=True)
        tree = load_tree(uow, e.site_id)
        w = worker_or_404(uow, e.worker_id)
        _authorize_entry(uow, actor, tree, e, w)
        before = snapshot(e)
        uow.delete(e)
        audit(ctx, uow, actor, "roster.remove", "roster_entry", entry_id, before, None, site_id=before["site_id"])
        uow.flush()
        records.refresh_today(ctx, uow, before["site_id"], w.id)


def list_roster(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """現場作業員一覧 as this account may see it: 元請 all; upper companies their branch; workers themselves."""
    with ctx.read(uow) as uow:
        site = site_or_404(uow, site_id)
        tree = load_tree(uow, site_id)
        policy = Visibility(actor)
        visible = uow.roster.visible_entries(site_id, policy.roster(tree))
        if not visible and policy.member_node(tree) is None:
            raise site_not_found()
        related = _Related.load(uow, {e.worker_id for e in visible})
        rows = [entry_view(uow, e, tree, related) for e in visible]
        return {
            "site": {"id": site.id, "ccus_id": site.ccus_id, "name": site.name},
            "entries": rows,
            "summary": {"total": len(rows), "invalid": sum(1 for r in rows if not r["valid_for_skill_evaluation"])},
        }


# --- patterns (作業員名簿パターン) -------------------------------------------------------------------


def _fields_json(f: EntryFields) -> dict[str, Any]:
    d = dict(f.__dict__)
    d["trade"] = list(f.trade) if f.trade else None
    for k in ("hazardous", "health_checks", "qualification_ids"):
        d[k] = list(d[k])
    return d


def fields_from_json(d: dict[str, Any]) -> EntryFields:
    return EntryFields(
        trade=tuple(d["trade"]) if d.get("trade") else None,  # type: ignore[arg-type]
        position=d.get("position"),
        work_description=d.get("work_description"),
        hazardous=tuple(d.get("hazardous", ())),
        hazardous_other=d.get("hazardous_other"),
        health_checks=tuple(d.get("health_checks", ())),
        health_checks_other=d.get("health_checks_other"),
        qualification_ids=tuple(d.get("qualification_ids", ())),
    )


def save_pattern(
    ctx: Context, actor: Actor, name: str, entries: Iterable[tuple[int, EntryFields]], *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """A company saves a list of its own workers with their fields, to register them on a site at once."""
    if not actor.is_company or actor.company_id is None:
        raise Forbidden("role_not_allowed", ja="作業員名簿パターンは事業者のIDで登録します", en="company accounts only")
    if not name.strip():
        raise InvalidInput("pattern_name_required", ja="パターン名を入力してください", en="name the pattern")
    too_long("パターン名", name.strip(), t.RosterPattern.__table__.c.name)
    with ctx.write(uow) as uow:
        stored = []
        for worker_id, f in entries:
            w = worker_or_404(uow, worker_id)
            if w.employer_id != actor.company_id:
                raise Forbidden(
                    "not_your_worker",
                    ja="自社の技能者のみパターンに登録できます",
                    en="only your own workers",
                    worker_id=worker_id,
                )
            f = _checked(uow, w.id, f)
            stored.append({"worker_id": w.id, "fields": _fields_json(f)})
        if not stored:
            raise InvalidInput("pattern_empty", ja="技能者を1名以上選択してください", en="choose at least one worker")
        if uow.roster.pattern_id_by_name(actor.company_id, name.strip()) is not None:
            raise Conflict(
                "pattern_name_taken",
                ja=f"同じ名前の作業員名簿パターン「{name.strip()}」がすでにあります",
                en=f"a roster pattern named {name.strip()!r} already exists",
            )
        p = t.RosterPattern(company_id=actor.company_id, name=name.strip(), entries=stored, created_at=ctx.now())
        uow.add(p)
        uow.flush()
        audit(ctx, uow, actor, "roster_pattern.create", "roster_pattern", p.id, after=snapshot(p))
        return {"id": p.id, "name": p.name, "entries": stored}


def list_patterns(ctx: Context, actor: Actor, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    with ctx.read(uow) as uow:
        rows = uow.roster.patterns_of_company(actor.company_id)
        return [{"id": p.id, "name": p.name, "entries": p.entries} for p in rows]


def apply_pattern(
    ctx: Context, actor: Actor, pattern_id: int, site_id: int, *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """Register the pattern's workers on a site; those already there are skipped and listed. All or nothing."""
    with ctx.write(uow) as uow:
        p = uow.get(t.RosterPattern, pattern_id)
        if p is None or p.company_id != actor.company_id:
            raise NotFound("pattern_not_found", ja="作業員名簿パターンが見つかりません", en="no such pattern")
        site_or_404(uow, site_id, lock=True)
        tree = load_tree(uow, site_id)
        added, skipped = [], []
        for item in p.entries:
            if uow.roster.is_on_roster(site_id, item["worker_id"]):
                skipped.append(item["worker_id"])
                continue
            e = add_entry(ctx, uow, actor, tree, item["worker_id"], fields_from_json(item["fields"]))
            added.append(entry_view(uow, e, tree))
        return {"added": added, "skipped_worker_ids": skipped}
