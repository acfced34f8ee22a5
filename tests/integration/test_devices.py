"""入退場デバイス: the 元請 registers its gates, moves and retires them, and sees their state."""

from __future__ import annotations

from datetime import timedelta

from world import Api

from protocol.messages import DeviceStatus
from server.services import devices as svc


def test_the_prime_registers_its_gates_and_nobody_else_can(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    sub = api.company("一次(株)")
    api.registered(site, prime, site.root, sub)
    body = {"device_id": "gate-01", "name": "正門ゲート", "direction": "in", "location": "正門"}
    created = prime.owner.ok("POST", f"/sites/{site.id}/devices", body, status=201)
    assert created["state_label"] == "オフライン" and created["direction"] == "in"
    prime.owner.fail("POST", f"/sites/{site.id}/devices", body, status=409, code="device_exists")
    sub.owner.fail("POST", f"/sites/{site.id}/devices", body | {"device_id": "gate-02"}, status=404,
                   code="site_not_found")
    sub.owner.fail("GET", f"/sites/{site.id}/devices", status=404, code="site_not_found")
    prime.owner.fail("POST", f"/sites/{site.id}/devices", body | {"device_id": "Gate 02"}, status=422,
                     code="invalid_device_id")
    prime.owner.fail("POST", f"/sites/{site.id}/devices", body | {"device_id": "gate-02", "direction": "up"},
                     status=422, code="invalid_direction")
    bound = api.staff(prime, "site_manager", site_ids=[site.id])
    bound.ok("POST", f"/sites/{site.id}/devices", body | {"device_id": "gate-02", "direction": "out"}, status=201)
    other_site = api.site(prime, "別現場")
    bound.fail("POST", f"/sites/{other_site.id}/devices", body | {"device_id": "gate-03"}, status=403,
               code="site_not_assigned")
    assert [d["device_id"] for d in prime.owner.ok("GET", f"/sites/{site.id}/devices")] == ["gate-01", "gate-02"]


def test_a_gate_is_moved_between_the_primes_sites_and_retired(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site, second = api.site(prime), api.site(prime, "第二現場")
    other = api.company("他社建設(株)")
    foreign = api.site(other, "他社の現場")
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-01", "name": "正門"}, status=201)
    moved = prime.owner.ok("PATCH", "/devices/gate-01", {"site_id": second.id, "direction": "out"})
    assert moved["site_id"] == second.id and moved["direction"] == "out"
    prime.owner.fail("PATCH", "/devices/gate-01", {"site_id": foreign.id}, status=404)
    other.owner.fail("PATCH", "/devices/gate-01", {"name": "盗む"}, status=404)
    prime.owner.ok("POST", "/devices/gate-01/retire")
    prime.owner.fail("POST", "/devices/gate-01/retire", status=409, code="device_retired")
    assert prime.owner.ok("GET", f"/sites/{second.id}/devices") == []
    retired = prime.owner.ok("GET", f"/sites/{second.id}/devices", include_retired="true")
    assert retired[0]["retired"] is True and retired[0]["state_label"] == "退役"


def test_staff_see_a_gate_offline_or_with_a_backlog_without_walking_to_it(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-01", "name": "正門"}, status=201)
    now = api.ctx.now()
    online = DeviceStatus(device_id="gate-01", state="online", at=now, buffer_depth=12, oldest_unacked_at=now,
                          reader="missing", clock_synced=False, firmware="0.1.0")
    assert svc.record_status(api.ctx, online) is True
    assert svc.record_status(api.ctx, online.model_copy(update={"device_id": "gate-99"})) is False
    [gate] = prime.owner.ok("GET", f"/sites/{site.id}/devices")
    assert gate["online"] and gate["buffer_depth"] == 12 and gate["reader"] == "missing"
    assert gate["clock_synced"] is False
    # Silent for too long counts as offline even without the Last Will.
    later = now + timedelta(seconds=svc.SILENT_AFTER_S + 1)
    api.ctx.clock = lambda: later
    [gate] = prime.owner.ok("GET", f"/sites/{site.id}/devices")
    assert gate["online"] is False and gate["state_label"] == "オフライン"
    svc.record_status(api.ctx, online.model_copy(update={"state": "offline"}))  # the Last Will
    [gate] = prime.owner.ok("GET", f"/sites/{site.id}/devices")
    assert gate["online"] is False
