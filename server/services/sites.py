"""Sites (現場・契約情報) and their hierarchy (施工体制): 招待, 承認要請リスト, 承認, 置換, 削除, patterns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from server.domain import ids
from server.domain import site as site_rules
from server.domain.accounts import (
    COMPANY_ADMIN_ROLES,
    INVITE_ROLES,
    Actor,
    Role,
    require_role,
    require_site_access,
)
from server.domain.attendance import parse_boundary, parse_time_zone
from server.domain.hierarchy import (
    Status,
    Tree,
)
from server.domain.visibility import Visibility
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, site_not_found
from server.services import records
from server.services.common import audit, company_or_404, load_tree, site_or_404, snapshot
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


@dataclass
class SiteIn:
    ccus_id: str
    name: str
    order_type: str
    period_start: date
    period_end: date
    address: str | None = None
    manager_name: str | None = None
    disclosed_items: tuple[str, ...] = ()
    time_zone: str = "Asia/Tokyo"


def _site_full(site: t.Site, prime: t.Company) -> dict[str, Any]:
    return {
        "id": site.id,
        "ccus_id": site.ccus_id,
        "name": site.name,
        "address": site.address,
        "manager_name": site.manager_name,
        "order_type": site.order_type,
        "order_type_label": site_rules.ORDER_TYPES[site.order_type],
        "period": {"start": site.period_start.isoformat(), "end": site.period_end.isoformat()},
        "prime": {"id": prime.id, "ccus_id": prime.ccus_id, "name": prime.name},
        "disclosed_items": list(site.disclosed_items),
        "day_boundary": site.day_boundary,
        "time_zone": site.time_zone,
    }


def site_view_for(uow: UnitOfWork, actor: Actor, site: t.Site) -> dict[str, Any]:
    """帳票 4-1: the 元請 sees everything; anyone else on the site only what the 元請 discloses."""
    full = _site_full(site, company_or_404(uow, site.prime_id))
    if Visibility(actor).is_prime(site.id, site.prime_id):
        return full
    shown = set(site.disclosed_items)
    out = {k: full[k] for k in site_rules.ALWAYS_SHOWN}
    for item in ("address", "manager_name", "period", "prime"):
        if item in shown:
            out[item] = full[item]
    if "order_type" in shown:
        out["order_type"] = full["order_type"]
        out["order_type_label"] = full["order_type_label"]
    return out


def require_on_site(uow: UnitOfWork, actor: Actor, site_id: int) -> Tree:
    """The site's tree, for an account on it (``Visibility.on_site``); anyone else is told the site
    does not exist, the same answer as for a missing one."""
    tree = load_tree(uow, site_id)
    on_roster = actor.role == Role.WORKER and uow.roster.is_on_roster(site_id, actor.worker_id)
    if Visibility(actor).on_site(tree, on_roster=on_roster):
        return tree
    raise site_not_found()


def create_site(ctx: Context, actor: Actor, data: SiteIn, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """現場・契約情報の登録 by the 元請; its own row is the tree's root, 登録 from the start."""
    require_role(actor, COMPANY_ADMIN_ROLES, "現場の登録", "register sites")
    assert actor.company_id is not None
    ccus = ids.ccus_id("site", data.ccus_id)
    site_rules.check_order_type(data.order_type)
    site_rules.check_period(data.period_start, data.period_end)
    items = site_rules.check_disclosed_items(data.disclosed_items)
    zone = parse_time_zone(data.time_zone).key
    if not data.name.strip():
        raise InvalidInput("site_name_required", ja="現場名を入力してください", en="a site name is required")
    with ctx.write(uow) as uow:
        if uow.sites.id_of(ccus) is not None:
            raise Conflict("site_exists", ja=f"現場ID {ccus} はすでに登録されています", en="site ID taken")
        now = ctx.now()
        site = t.Site(
            ccus_id=ccus,
            name=data.name.strip(),
            address=data.address,
            prime_id=actor.company_id,
            manager_name=data.manager_name,
            order_type=data.order_type,
            period_start=data.period_start,
            period_end=data.period_end,
            disclosed_items=items,
            time_zone=zone,
            created_at=now,
        )
        uow.add(site)
        uow.flush()
        root = t.HierarchyNode(
            site_id=site.id, company_id=actor.company_id, status=Status.REGISTERED, invited_at=now, decided_at=now
        )
        uow.add(root)
        uow.flush()
        audit(ctx, uow, actor, "site.create", "site", site.id, after=snapshot(site), site_id=site.id)
        return site_view_for(uow, actor, site)


_REQUIRED_SITE_FIELDS = {
    "name": "現場名",
    "order_type": "発注区分",
    "period_start": "就業履歴蓄積期間（開始）",
    "period_end": "就業履歴蓄積期間（終了）",
    "disclosed_items": "公開設定の項目",
    "day_boundary": "日付の区切り時刻",
    "time_zone": "タイムゾーン",
}


def update_site(
    ctx: Context, actor: Actor, site_id: int, changes: dict[str, Any], *, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """The 元請 (事業者責任者, 階層管理者, or a 現場管理者 bound to the site) edits the site."""
    require_role(actor, INVITE_ROLES, "現場情報の変更", "edit sites")
    with ctx.write(uow) as uow:
        site = site_or_404(uow, site_id, lock=True)
        if actor.company_id != site.prime_id:
            require_on_site(uow, actor, site_id)  # a company not on the site is not told it exists
            raise Forbidden("prime_only", ja="現場情報は元請のみが変更できます", en="only the prime edits the site")
        require_site_access(actor, site_id)
        before = snapshot(site)
        for key, value in changes.items():
            if value is None and key in _REQUIRED_SITE_FIELDS:
                raise InvalidInput(
                    "site_field_required",
                    ja=f"{_REQUIRED_SITE_FIELDS[key]}は空にできません",
                    en=f"{key} cannot be cleared",
                    field=key,
                )
            if key == "order_type":
                value = site_rules.check_order_type(value)
            elif key == "disclosed_items":
                value = site_rules.check_disclosed_items(value)
            elif key == "name" and not str(value).strip():
                raise InvalidInput("site_name_required", ja="現場名を入力してください", en="a site name is required")
            elif key == "day_boundary":
                value = parse_boundary(value).strftime("%H:%M")
            elif key == "time_zone":
                value = parse_time_zone(value).key
            elif key not in ("address", "manager_name", "period_start", "period_end", "name"):
                raise InvalidInput("unknown_field", ja=f"変更できない項目です: {key}", en=f"cannot change {key}")
            setattr(site, key, value)
        site_rules.check_period(site.period_start, site.period_end)
        audit(ctx, uow, actor, "site.update", "site", site.id, before, snapshot(site), site_id=site.id)
        if {"day_boundary", "time_zone", "period_start", "period_end"} & set(changes):
            uow.flush()
            records.rebuild_site(ctx, uow, site)  # taps may fall on other days, validity may change
        return site_view_for(uow, actor, site)


def list_sites(ctx: Context, actor: Actor, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """自社が登録した現場 / 自社が施工体制に登録されている現場; for a worker, the sites they are on."""
    with ctx.read(uow) as uow:
        if actor.role == Role.WORKER:
            site_ids = uow.roster.site_ids_of_worker(actor.worker_id)
            status_by_site: dict[int, str] = {}
        elif actor.is_company:
            status_by_site = uow.sites.node_statuses_of_company(actor.company_id, except_status=Status.DECLINED)
            site_ids = Visibility(actor).sites_listed(status_by_site)
        else:
            raise Forbidden("role_not_allowed", ja="現場の一覧は見られません", en="operators see no sites")
        out = []
        for site in uow.sites.by_ids(site_ids):
            view = site_view_for(uow, actor, site)
            view["is_prime"] = Visibility(actor).is_prime(site.id, site.prime_id)
            if site.id in status_by_site:
                view["my_status"] = status_by_site[site.id]
            out.append(view)
        return out


def get_site(ctx: Context, actor: Actor, site_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    with ctx.read(uow) as uow:
        require_on_site(uow, actor, site_id)
        return site_view_for(uow, actor, site_or_404(uow, site_id))


# -- the site office (genba-server on the server itself) ---------------------------------------------
# These answer the server's own operator at its console: the process holds the database, so no
# account's visibility applies (the API never calls them; there an operator sees no sites).


def site_id_of(ctx: Context, ccus_id: str, *, uow: UnitOfWork | None = None) -> int:
    """The internal number of the site registered under this 現場ID (staff know the 現場ID from CCUS)."""
    ccus = ids.ccus_id("site", ccus_id)
    with ctx.read(uow) as uow:
        site_id = uow.sites.id_of(ccus)
    if site_id is None:
        raise NotFound("site_not_found", ja=f"現場が見つかりません（現場ID {ccus}）",
                       en=f"no site with 現場ID {ccus}", ccus_id=ccus)
    return site_id


def office_list(ctx: Context, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """Every site with its 現場ID, 元請, 工期 and gates in service, for `genba-server sites`."""
    with ctx.read(uow) as uow:
        gates = uow.sites.gates_in_service()
        return [
            {
                "id": site.id,
                "ccus_id": site.ccus_id,
                "name": site.name,
                "prime": {"id": prime.id, "ccus_id": prime.ccus_id, "name": prime.name},
                "period": {"start": site.period_start.isoformat(), "end": site.period_end.isoformat()},
                "gates": gates.get(site.id, 0),
            }
            for site, prime in uow.sites.all_with_prime()
        ]
