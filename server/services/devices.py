"""Gates (入退場デバイス): registered by the site's 元請 (or the operator), moved, retired, and their
last known state from the retained status and Last Will, so staff see a gate that is offline or
has a backlog without walking to it."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from protocol.messages import DeviceConfig, DeviceStatus, SiteRef, card_digest, encode
from protocol.topics import check_device_id
from server.domain import taps
from server.domain.accounts import INVITE_ROLES, Actor, Role, require_role, require_site_access
from server.domain.visibility import Visibility
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, site_not_found
from server.services import ingest, records
from server.services.common import as_aware, audit, site_or_404, snapshot
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

DIRECTIONS = ("in", "out", "auto")
# A gate publishes its status at least every minute; past this it is shown as silent even without
# its Last Will (a broker that lost the session, a cut cable the broker has not noticed yet).
SILENT_AFTER_S = 180


def _zone(uow: UnitOfWork, site_id: int | None) -> ZoneInfo | None:
    """The zone a gate's times are shown in: its site's (None: a gate on no site, shown in UTC)."""
    site = uow.get(t.Site, site_id) if site_id is not None else None
    return records.rule_of(site).tz if site is not None else None


def _in_zone(value: datetime | str | None, tz: ZoneInfo | None) -> str | None:
    """A time as the site's staff read it: ISO 8601 in the site's zone, with its offset. A time the
    gate reported (its status) that is not a readable time is passed on as the gate sent it."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
        if value.tzinfo is None:
            return value.isoformat()
    at = as_aware(value)
    return (at.astimezone(tz) if tz is not None else at).isoformat()


def device_view(d: t.Device, now: datetime, tz: ZoneInfo | None = None) -> dict[str, Any]:
    """A gate as its site's staff see it; ``tz``: the site's zone, for every time shown."""
    st = d.status or {}
    last = as_aware(d.last_seen_at) if d.last_seen_at else None
    silent = d.online and last is not None and (now - last).total_seconds() > SILENT_AFTER_S
    return {
        "device_id": d.device_id,
        "site_id": d.site_id,
        "name": d.name,
        "location": d.location,
        "direction": d.direction,
        "retired": d.retired_at is not None,
        "online": bool(d.online and not silent),
        "state_label": "退役" if d.retired_at else ("オンライン" if d.online and not silent else "オフライン"),
        "last_seen_at": _in_zone(last, tz),
        "buffer_depth": st.get("buffer_depth"),
        "oldest_unacked_at": _in_zone(st.get("oldest_unacked_at"), tz),
        "last_tap_at": _in_zone(st.get("last_tap_at"), tz),
        "reader": st.get("reader"),
        "clock_synced": st.get("clock_synced"),
        "firmware": st.get("firmware"),
        "disk_ok": st.get("disk_ok"),
    }


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise InvalidInput(
            "invalid_direction",
            ja="方向は in（入場）・out（退場）・auto（自動判定）のいずれかです",
            en="direction is in, out or auto",
        )
    return direction


def _prime_site(uow: UnitOfWork, actor: Actor, site_id: int) -> t.Site:
    """Gates belong to the site's 元請 (事業者責任者, 階層管理者, a bound 現場管理者) or the operator."""
    site = site_or_404(uow, site_id)
    if actor.role == Role.OPERATOR:
        return site
    if actor.company_id != site.prime_id:
        raise site_not_found()
    require_role(actor, INVITE_ROLES, "入退場デバイスの管理", "manage gates")
    require_site_access(actor, site_id)
    return site


def _managed_device(uow: UnitOfWork, actor: Actor, device_id: str) -> t.Device:
    """A gate the actor manages (its site's 元請), not retired; unknown and foreign gates are not found."""
    d = uow.devices.by_device_id(device_id)
    if d is None or d.site_id is None:
        raise NotFound("device_not_found", ja="入退場デバイスが見つかりません", en="no such gate")
    _prime_site(uow, actor, d.site_id)
    if d.retired_at is not None:
        raise Conflict("device_retired", ja="このデバイスはすでに退役しています", en="the gate is retired")
    return d


def register(ctx: Context, actor: Actor, site_id: int, device_id: str, name: str, direction: str,
             location: str | None = None, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    try:
        check_device_id(device_id)
    except ValueError:
        raise InvalidInput(
            "invalid_device_id",
            ja="デバイスIDは英小文字・数字・ハイフンの3〜63文字です（例: gate-01）",
            en="a device ID is 3 to 63 lower-case letters, digits and hyphens (e.g. gate-01)",
        ) from None
    if not name.strip():
        raise InvalidInput("device_name_required", ja="デバイス名を入力してください", en="name the gate")
    with ctx.write(uow) as uow:
        _prime_site(uow, actor, site_id)
        if uow.devices.id_of(device_id):
            raise Conflict("device_exists", ja=f"デバイスID {device_id} はすでに登録されています",
                           en=f"gate {device_id} is already registered")
        d = t.Device(device_id=device_id, site_id=site_id, name=name.strip(), location=location,
                     direction=_check_direction(direction), registered_by_company_id=actor.company_id,
                     created_at=ctx.now(), online=False)
        uow.add(d)
        uow.flush()
        audit(ctx, uow, actor, "device.register", "device", d.id, after=snapshot(d), site_id=site_id)
        # Taps the gate took before it was registered (held) become taps and records of this site,
        # in this transaction: the registration and its records commit together.
        released = ingest.release_held(ctx, device_id, uow=uow)
        return {**device_view(d, ctx.now(), _zone(uow, d.site_id)), "held_taps_stored": released}


def list_for_site(ctx: Context, actor: Actor, site_id: int, include_retired: bool = False, *,
                  uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    with ctx.read(uow) as uow:
        _prime_site(uow, actor, site_id)
        now, tz = ctx.now(), _zone(uow, site_id)
        return [device_view(d, now, tz) for d in uow.devices.of_site(site_id, include_retired=include_retired)]


def _tap_version(tech: str, uid: str, direction: str, at: datetime, clock_synced: bool, boot_id: str,
                 mono_ms: int, tz: ZoneInfo | None) -> dict[str, Any]:
    return {"card": {"tech": tech, "uid": uid}, "direction": direction, "at": _in_zone(at, tz),
            "clock_synced": clock_synced, "boot_id": boot_id, "mono_ms": mono_ms}


def tap_conflicts(ctx: Context, actor: Actor, site_id: int, *,
                  uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """Taps whose (gate, buffer, seq) arrived twice with different content: the version stored
    (the one 就業履歴 uses) and the other one, for the 元請 to judge (a restored SD card image
    repeats seqs; a forged tap in a gate's name is refused by the broker, but not by us alone)."""
    with ctx.read(uow) as uow:
        _prime_site(uow, actor, site_id)
        rows, tz = uow.taps.conflicts_of_site(site_id), _zone(uow, site_id)
        return [{
            "device_id": device_id, "buffer_id": c.buffer_id, "seq": c.seq,
            "received_at": _in_zone(c.received_at, tz),
            "stored": _tap_version(tap.card_tech, tap.card_uid, tap.direction, tap.at, tap.clock_synced, tap.boot_id,
                                   tap.mono_ms, tz),
            "other": _tap_version(c.card_tech, c.card_uid, c.direction, c.at, c.clock_synced, c.boot_id, c.mono_ms,
                                  tz),
        } for c, tap, device_id in rows]


def held_taps(ctx: Context, actor: Actor, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """Gates whose taps are held because the server could not place them (not registered, or on no
    site): per device ID and reason, how many taps, from when to when, and when the last arrived.
    Registering the gate (or placing it on a site) stores them as taps and records of that site.

    The operator sees every gate; a 元請's gate managers see the gates where workers on the rosters
    of their sites tapped (the gate they are mounting), counted by those taps, not another company's."""
    with ctx.read(uow) as uow:
        prime_sites = uow.sites.ids_of_prime(actor.company_id) if actor.company_id is not None else []
        policy = Visibility(actor)
        if not policy.sees_held_taps(prime_sites):
            raise Forbidden("held_taps_forbidden", ja="保留中のタップを見られるのは元請と運用管理者です",
                            en="only a 元請's gate managers and the operator see held taps")
        sites = None if actor.role == Role.OPERATOR else [s for s in prime_sites if policy.acts_on(s)]
        return [{"device_id": d, "reason": r, "reason_label": taps.REASON_JA.get(r, r), "taps": n,
                 "first_at": as_aware(lo).isoformat(),
                 "last_at": as_aware(hi).isoformat(), "last_received_at": as_aware(last).isoformat()}
                for d, r, n, lo, hi, last in uow.taps.held_summary(sites)]


def update(ctx: Context, actor: Actor, device_id: str, changes: dict[str, Any], *,
           uow: UnitOfWork | None = None) -> dict[str, Any]:
    """Rename, re-place, change direction, or move to another site of the same 元請."""
    with ctx.write(uow) as uow:
        d = _managed_device(uow, actor, device_id)
        before = snapshot(d)
        for key, value in changes.items():
            if key == "direction":
                value = _check_direction(value)
            elif key == "site_id":
                _prime_site(uow, actor, int(value))  # moving only between the same 元請's sites
            elif key == "name" and not str(value).strip():
                raise InvalidInput("device_name_required", ja="デバイス名を入力してください", en="name the gate")
            elif key not in ("name", "location"):
                raise InvalidInput("unknown_field", ja=f"変更できない項目です: {key}", en=f"cannot change {key}")
            setattr(d, key, value)
        audit(ctx, uow, actor, "device.update", "device", d.id, before, snapshot(d), site_id=d.site_id)
        uow.flush()
        released = ingest.release_held(ctx, d.device_id, uow=uow) if d.site_id is not None else 0
        return {**device_view(d, ctx.now(), _zone(uow, d.site_id)), "held_taps_stored": released}


def retire(ctx: Context, actor: Actor, device_id: str, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """A retired gate's taps are refused from then on (its history stays)."""
    with ctx.write(uow) as uow:
        d = _managed_device(uow, actor, device_id)
        before = snapshot(d)
        d.retired_at = ctx.now()
        audit(ctx, uow, actor, "device.retire", "device", d.id, before, snapshot(d), site_id=d.site_id)
        return device_view(d, ctx.now(), _zone(uow, d.site_id))


def record_status(ctx: Context, status: DeviceStatus, *, uow: UnitOfWork | None = None) -> bool:
    """The device's retained status or Last Will, from the broker: kept as its last known state.
    Returns False for an unknown device (counted and logged by the caller, never stored)."""
    with ctx.write(uow) as uow:
        # Locked like the ingest locks it (services/ingest): the clock reference and the taps it
        # re-dates change together.
        d = uow.devices.by_device_id(status.device_id, lock=True)
        if d is None:
            return False
        d.online = status.state == "online"
        d.last_seen_at = ctx.now()
        d.status = status.model_dump(mode="json")
        if (status.state == "online" and status.clock_synced and status.boot_id
                and taps.plausible_reading(status.at, status.mono_ms, ctx.now())):
            records.clock_reference(ctx, uow, d, status.boot_id, status.at, status.mono_ms)
            ingest.release_clock_held(ctx, d.device_id, {status.boot_id}, uow=uow)
        return True


# --- roster push: the retained config each gate keeps for offline feedback ------------------------


def _roster_statuses(uow: UnitOfWork, site_id: int) -> dict[str, str]:
    """Card UID → ok | incomplete | not_on_roster for every active card the site knows.

    ok: on the roster with 職種 and 立場; incomplete: on it without them; not_on_roster: a worker of
    a company on the site (not declined) who is not on the roster. Any other card is unknown to
    the gate, which says so at the gate (and the server lists it as an unlinked card)."""
    status: dict[int, str] = {}
    companies = uow.sites.companies_on_site(site_id)
    if companies:
        for wid in uow.workers.of_employers(companies):
            status[wid] = "not_on_roster"
    for worker_id, complete in uow.roster.completeness_of_site(site_id):
        status[worker_id] = "ok" if complete else "incomplete"
    if not status:
        return {}
    cards = uow.workers.active_card_uids_of_site(site_id, companies)
    return {uid: status[wid] for uid, wid in sorted(cards) if wid in status}


def _config_for(uow: UnitOfWork, d: t.Device, cache: dict[int, tuple[t.Site, dict[str, str]]]) -> DeviceConfig:
    if d.roster_key is None:
        d.roster_key = secrets.token_hex(16)  # per gate: a stolen SD card tells nothing of another site
    site = None
    roster: dict[str, str] = {}
    if d.site_id is not None and d.retired_at is None:
        if d.site_id not in cache:
            cache[d.site_id] = (site_or_404(uow, d.site_id), _roster_statuses(uow, d.site_id))
        site, by_uid = cache[d.site_id]
        # Sorted: the content hash (and so the version) must not move with row order.
        roster = dict(sorted((card_digest(d.roster_key, uid), st) for uid, st in by_uid.items()))
    return DeviceConfig(
        device_id=d.device_id, version=0, site=SiteRef(id=site.id, name=site.name[:200]) if site else None,
        direction=d.direction,  # type: ignore[arg-type]
        name=d.name[:100], roster_key=d.roster_key, roster=roster,  # type: ignore[arg-type]
    )


def unregistered_config(device_id: str) -> DeviceConfig:
    """What a gate the server does not know is told when it reports in: no site, no roster. The gate
    then shows 未登録 at once (not only after its first tap's `held` answer) and records every card
    without judging it; the server holds those taps until the 元請 registers the gate, and then the
    config pusher sends the real one (retained), which replaces this."""
    return DeviceConfig(device_id=device_id, version=0, site=None, roster_key="", roster={})


def change_marker(ctx: Context, *, uow: UnitOfWork | None = None) -> int | None:
    """Moves whenever anything a gate's config is made of may have changed: every edit (roster,
    cards, devices, sites) writes the audit log, so its newest id is the marker the pusher watches."""
    with ctx.read(uow) as uow:
        return uow.audit.newest_id()


def configs_to_publish(ctx: Context, published: dict[str, int], *,
                       uow: UnitOfWork | None = None) -> list[DeviceConfig]:
    """Every gate whose config changed, or that this process has not published yet, with its version.

    The version moves only when the content moves (a hash stored with the device), so several
    server processes computing the same roster agree on one version, and a restart republishes the
    same retained message rather than a new version. ``published`` is this process's memory of
    what it sent (device_id → version)."""
    out: list[DeviceConfig] = []
    with ctx.write(uow) as uow:
        cache: dict[int, tuple[t.Site, dict[str, str]]] = {}
        for d in uow.devices.all():
            cfg = _config_for(uow, d, cache)
            digest = hashlib.sha256(encode(cfg)).hexdigest()
            if digest != d.config_hash:
                d.config_version += 1
                d.config_hash = digest
            if published.get(d.device_id) != d.config_version:
                out.append(cfg.model_copy(update={"version": d.config_version}))
    return out
