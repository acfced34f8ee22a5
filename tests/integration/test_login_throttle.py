"""Wrong passwords slow down the one who sends them, never lock the ID for its holder (issue 17).

Wrong passwords are counted per login ID and per address they come from: after
``max_failed_logins`` of them from one address, each further try from there waits 1 s, 2 s, 4 s …
up to ``lock_minutes``, refused without the password being checked (``login_throttled``, with
``retry_after_s``). Another address is not slowed down by them, so a stranger who knows a 現場管理者's
ID cannot keep them out; a successful login, a reset by security code or a reissued initial
password starts the count again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from world import NEW_PASSWORD, PASSWORD, SECURITY_CODE, Api

from server.domain.accounts import LoginThrottlePolicy
from server.errors import GenbaError
from server.services import logins

WRONG = "genba-Wrong-0000"
STRANGER = "198.51.100.7"
OFFICE = "203.0.113.20"


class Clock:
    """The service's clock, moved by hand: a wait passes only when the test says so."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _clock(api: Api) -> Clock:
    clock = Clock()
    api.ctx.clock = clock
    return clock


def _try(api: Api, login_id: str, password: str, source: str) -> tuple[str, int | None]:
    """One login through the service: ("ok", None) or the refusal's code and retry_after_s."""
    try:
        logins.login(api.ctx, login_id, password, source=source)
    except GenbaError as exc:
        return exc.code, exc.details.get("retry_after_s")
    return "ok", None


def _client_at(api: Api, host: str) -> TestClient:
    """The same server, reached from another address (the peer address the API sees)."""
    return TestClient(api.client.app, client=(host, 50000), raise_server_exceptions=False)


def _post_login(client: TestClient, login_id: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"login_id": login_id, "password": password})


def _assert_throttled(r: httpx.Response) -> int:
    """Refused because of the wait: 429, saying when to come back."""
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == "login_throttled", body
    assert "後にもう一度" in body["message"] and body["message_en"]
    wait: int = body["details"]["retry_after_s"]
    assert wait >= 1 and r.headers["Retry-After"] == str(wait)
    return wait


def _run_at_once(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Every job in its own thread, released together."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def test_parallel_guesses_get_no_more_password_checks_than_the_free_tries(api: Api) -> None:
    """25 wrong passwords at once: only the free tries are checked, the rest are told to wait, and
    so is the right password sent after them."""
    api.ctx.max_failed_logins = 5
    _clock(api)  # time stands still: nobody's wait ends during the test
    login_id = api.company("(株)基本建設").owner.account["login_id"]

    outcomes = _run_at_once([lambda: _try(api, login_id, WRONG, STRANGER)] * 25)

    assert sorted(outcomes, key=str) == [("login_failed", None)] * 5 + [("login_throttled", 1)] * 20
    assert _try(api, login_id, PASSWORD, STRANGER) == ("login_throttled", 1)


def test_the_right_password_among_parallel_guesses_gets_in_only_as_one_of_the_free_tries(api: Api) -> None:
    api.ctx.max_failed_logins = 5
    _clock(api)
    login_id = api.company("(株)基本建設").owner.account["login_id"]

    outcomes = _run_at_once([lambda pw=pw: _try(api, login_id, pw, STRANGER) for pw in [WRONG] * 25 + [PASSWORD]])

    right, failed = outcomes[-1], outcomes.count(("login_failed", None))
    assert outcomes.count(("login_throttled", 1)) == len(outcomes) - failed - (right == ("ok", None))
    if right == ("ok", None):
        # It was one of the five checked; its success started the count again for the guesses still
        # on their way, which get five new tries: at most four wrong ones before it, five after.
        assert failed <= 9
    else:
        assert right == ("login_throttled", 1) and failed == 5


def test_a_stranger_cannot_lock_a_site_manager_out(api: Api) -> None:
    company = api.company("(株)基本建設")
    manager = api.staff(company, "site_manager")
    login_id = manager.account["login_id"]
    stranger, office = _client_at(api, STRANGER), _client_at(api, OFFICE)
    _clock(api)  # time stands still: the stranger's wait cannot run out during the test

    for _ in range(api.ctx.max_failed_logins):
        assert _post_login(stranger, login_id, WRONG).json()["code"] == "login_failed"
    for _ in range(20):
        _assert_throttled(_post_login(stranger, login_id, WRONG))
    # While the stranger waits, even the right password from there is not checked.
    _assert_throttled(_post_login(stranger, login_id, PASSWORD))

    # The 現場管理者 at the site office is not affected: the right password works at once…
    r = _post_login(office, login_id, PASSWORD)
    assert r.status_code == 200, r.text
    # …and so do a few typos before it.
    for _ in range(3):
        assert _post_login(office, login_id, WRONG).json()["code"] == "login_failed"
    assert _post_login(office, login_id, PASSWORD).status_code == 200
    _assert_throttled(_post_login(stranger, login_id, PASSWORD))  # and the stranger still waits


def test_the_wait_doubles_with_each_further_wrong_password_and_a_success_ends_it(api: Api) -> None:
    api.ctx.max_failed_logins = 3
    api.ctx.lock_duration = timedelta(seconds=10)  # the longest wait
    clock = _clock(api)
    login_id = api.company("(株)基本建設").owner.account["login_id"]

    assert [_try(api, login_id, WRONG, STRANGER) for _ in range(3)] == [("login_failed", None)] * 3
    waits = []
    for _ in range(5):
        code, wait = _try(api, login_id, PASSWORD, STRANGER)  # refused unchecked while it waits
        assert code == "login_throttled" and wait is not None
        waits.append(wait)
        clock.advance(wait - 0.5)
        assert _try(api, login_id, WRONG, STRANGER) == ("login_throttled", 1)  # not yet
        clock.advance(0.5)
        assert _try(api, login_id, WRONG, STRANGER) == ("login_failed", None)
    assert waits == [1, 2, 4, 8, 10]  # doubling, up to the longest wait
    assert _try(api, login_id, PASSWORD, STRANGER) == ("login_throttled", 10)

    clock.advance(10)
    assert _try(api, login_id, PASSWORD, STRANGER) == ("ok", None)
    # The success started the count again: the free tries are back.
    assert [_try(api, login_id, WRONG, STRANGER) for _ in range(3)] == [("login_failed", None)] * 3
    assert _try(api, login_id, WRONG, STRANGER) == ("login_throttled", 1)


def test_a_day_without_tries_forgets_the_count(api: Api) -> None:
    api.ctx.max_failed_logins = 3
    clock = _clock(api)
    login_id = api.company("(株)基本建設").owner.account["login_id"]
    for _ in range(8):  # a guess a minute: each one checked, the wait after it doubling
        clock.advance(60)
        assert _try(api, login_id, WRONG, STRANGER) == ("login_failed", None)
    assert _try(api, login_id, WRONG, STRANGER) == ("login_throttled", 32)

    clock.advance(24 * 3600 + 1)  # a day after the last try
    assert [_try(api, login_id, WRONG, STRANGER) for _ in range(3)] == [("login_failed", None)] * 3
    assert _try(api, login_id, WRONG, STRANGER) == ("login_throttled", 1)


def test_an_unknown_login_id_is_slowed_down_exactly_like_a_real_one(api: Api) -> None:
    """Otherwise the wait would tell a stranger which IDs exist."""
    api.ctx.max_failed_logins = 3
    clock = _clock(api)
    login_id = api.company("(株)基本建設").owner.account["login_id"]

    def answers(who: str) -> list[tuple[str, int | None]]:
        out = []
        for step in range(8):
            out.append(_try(api, who, WRONG, STRANGER))
            clock.advance(1 if step % 2 else 0)
        return out

    real, unknown = answers(login_id), answers("nobody-here")
    assert real == unknown
    assert ("login_throttled", 1) in real


def test_addresses_of_one_ipv6_network_count_as_one_source(api: Api) -> None:
    """One IPv6 client owns a whole /64: a new address from it must not buy new free tries."""
    login_id = api.company("(株)基本建設").owner.account["login_id"]
    free = api.ctx.max_failed_logins
    _clock(api)
    for i in range(free):
        r = _post_login(_client_at(api, f"2001:db8:1:2::{i + 1:x}"), login_id, WRONG)
        assert r.json()["code"] == "login_failed"
    _assert_throttled(_post_login(_client_at(api, "2001:db8:1:2:ffff::99"), login_id, PASSWORD))
    # A neighbouring network is another source, and the holder's IPv4 address too.
    assert _post_login(_client_at(api, "2001:db8:1:3::1"), login_id, PASSWORD).status_code == 200
    assert _post_login(_client_at(api, OFFICE), login_id, PASSWORD).status_code == 200


def test_guessing_from_many_addresses_is_bounded_for_the_id_but_not_for_the_holders_usual_place(
        api: Api) -> None:
    """The bound on a guesser with many addresses: past the ID's own limit, the ID waits after each
    wrong try for every address, even one that never tried (review: the wait was set only on the
    address that failed, so N addresses got N free guesses); the place the holder logged in from
    before is trusted and not slowed down."""
    api.ctx.max_failed_logins = 2
    clock = _clock(api)
    login_id = api.company("(株)基本建設").owner.account["login_id"]
    assert _try(api, login_id, PASSWORD, OFFICE) == ("ok", None)  # the office: trusted from now on
    account_free = LoginThrottlePolicy.of(api.ctx.max_failed_logins, api.ctx.lock_duration).account_free_failures
    assert account_free > api.ctx.max_failed_logins

    for i in range(account_free):  # one wrong try each: no address reaches its own limit
        assert _try(api, login_id, WRONG, f"192.0.2.{i + 1}") == ("login_failed", None)
    # The ID's limit is reached: a fresh address waits before its very first try.
    assert _try(api, login_id, WRONG, "198.51.100.7") == ("login_throttled", 1)
    assert _try(api, login_id, PASSWORD, "198.51.100.8") == ("login_throttled", 1)  # unchecked, too
    # The holder at the office is not slowed down by the strangers.
    assert _try(api, login_id, PASSWORD, OFFICE) == ("ok", None)
    # That success gave the ID its allowance back: an address has its own free tries again.
    clock.advance(2)
    assert _try(api, login_id, WRONG, "192.0.2.201") == ("login_failed", None)
    assert _try(api, login_id, WRONG, "192.0.2.201") == ("login_failed", None)
    assert _try(api, login_id, WRONG, "192.0.2.201") == ("login_throttled", 1)


def test_the_security_code_reset_ends_the_wait(api: Api) -> None:
    company = api.company("(株)基本建設")
    login_id = company.owner.account["login_id"]
    _clock(api)
    for _ in range(api.ctx.max_failed_logins):
        _post_login(api.client, login_id, WRONG)
    _assert_throttled(_post_login(api.client, login_id, PASSWORD))

    reset = {"login_id": login_id, "security_code": SECURITY_CODE, "new_password": NEW_PASSWORD}
    api.anonymous.fail("POST", "/auth/reset", reset | {"security_code": "999999"}, status=401, code="reset_failed")
    _assert_throttled(_post_login(api.client, login_id, NEW_PASSWORD))  # a wrong code changed nothing
    api.anonymous.ok("POST", "/auth/reset", reset, status=204)
    company.owner.fail("GET", "/me", status=401, code="invalid_token")  # the reset ends old sessions
    assert _post_login(api.client, login_id, PASSWORD).json()["code"] == "login_failed"
    assert Api.login_as(api.client, login_id, NEW_PASSWORD).ok("GET", "/me")["login_id"] == login_id


def test_a_reissued_initial_password_works_at_once(api: Api) -> None:
    company = api.company("(株)基本建設")
    staff = api.staff(company, "hierarchy_manager")
    login_id = staff.account["login_id"]
    _clock(api)
    for _ in range(api.ctx.max_failed_logins + 3):
        _post_login(api.client, login_id, WRONG)
    _assert_throttled(_post_login(api.client, login_id, PASSWORD))

    reissued = company.owner.ok("POST", f"/accounts/{staff.account['id']}/reissue")
    fresh = api.activate(reissued | {"login_id": login_id})  # from the same address, without waiting
    assert fresh.ok("GET", "/me")["login_id"] == login_id
