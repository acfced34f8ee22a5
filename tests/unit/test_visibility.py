"""The visibility policy on one site's tree, without a database: who is on the site, which nodes,
roster entries and records each account sees, and that a Scope admits exactly what the policy says
row by row (the repositories turn the same Scope into SQL: tests/integration/test_scopes.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.domain.accounts import Actor, Role
from server.domain.consent import PERSONAL_ITEMS
from server.domain.hierarchy import Node, Status, Tree
from server.domain.visibility import NO_WORKERS, NOTHING, Scope, Visibility, WorkerScope

SITE, OTHER_SITE = 10, 11
PRIME, FIRST, SECOND, INVITED, DECLINED, STRANGER = 1, 2, 3, 4, 5, 6
# 元請 (root, node 100) ─┬ 一次 FIRST (101) ── 二次 SECOND (102)
#                       ├ 一次 INVITED (103, 未承認)
#                       ├ DECLINED (104, 辞退)
#                       └ placeholder (105) under the root
TREE = Tree(SITE, [
    Node(100, None, PRIME, None, Status.REGISTERED),
    Node(101, 100, FIRST, None, Status.REGISTERED),
    Node(102, 101, SECOND, None, Status.REGISTERED),
    Node(103, 100, INVITED, None, Status.PENDING),
    Node(104, 100, DECLINED, None, Status.DECLINED),
    Node(105, 100, None, "未定の一次", Status.PENDING),
])


def owner(company: int) -> Visibility:
    return Visibility(Actor(1, Role.COMPANY_OWNER, company_id=company))


def manager(company: int, *sites: int) -> Visibility:
    return Visibility(Actor(2, Role.SITE_MANAGER, company_id=company, site_ids=frozenset(sites)))


def worker(worker_id: int) -> Visibility:
    return Visibility(Actor(3, Role.WORKER, worker_id=worker_id))


def test_a_company_is_on_the_site_when_invited_or_registered_but_not_after_declining() -> None:
    assert owner(PRIME).on_site(TREE) and owner(SECOND).on_site(TREE)
    assert owner(INVITED).on_site(TREE)  # may read what it is asked to join
    assert not owner(DECLINED).on_site(TREE) and not owner(STRANGER).on_site(TREE)


def test_a_site_manager_acts_only_on_its_bound_sites() -> None:
    assert manager(PRIME, SITE).on_site(TREE) and not manager(PRIME, OTHER_SITE).on_site(TREE)
    assert manager(PRIME, OTHER_SITE).records(TREE, PRIME) == NOTHING
    assert manager(PRIME, OTHER_SITE).roster(TREE) == NOTHING
    assert manager(PRIME, SITE).is_prime(SITE, PRIME) and not manager(PRIME, OTHER_SITE).is_prime(SITE, PRIME)


def test_a_worker_is_on_a_site_only_through_the_roster() -> None:
    assert worker(7).on_site(TREE, on_roster=True) and not worker(7).on_site(TREE)


def test_the_prime_sees_the_whole_tree_and_a_subcontractor_its_branch_and_the_path_above() -> None:
    assert owner(PRIME).tree_nodes(TREE) == {100, 101, 102, 103, 105}
    assert owner(FIRST).tree_nodes(TREE) == {100, 101, 102}
    assert owner(SECOND).tree_nodes(TREE) == {100, 101, 102}
    assert owner(INVITED).tree_nodes(TREE) == {100, 103}
    assert owner(DECLINED).tree_nodes(TREE) == set()


def test_only_a_registered_member_sees_below_itself() -> None:
    assert owner(PRIME).seen_nodes(TREE) == {100, 101, 102, 103, 105}
    assert owner(FIRST).seen_nodes(TREE) == {101, 102}
    assert owner(SECOND).seen_nodes(TREE) == {102}
    assert owner(INVITED).seen_nodes(TREE) == set()  # not yet approved: sees no roster or record


@pytest.mark.parametrize(("who", "node", "employer", "seen"), [
    ("prime", 102, SECOND, True),
    ("first", 102, SECOND, True),      # upper company: its subtree
    ("second", 101, FIRST, False),     # never above itself
    ("second", None, SECOND, True),    # the employer: its own workers, even off the roster
    ("first", None, SECOND, False),    # not the employer, not filed under its subtree
    ("invited", 103, INVITED, True),   # its own workers as employer
    ("invited", 102, SECOND, False),
    ("stranger", 100, PRIME, False),
])
def test_records_follow_the_tree_and_the_employer(who: str, node: int | None, employer: int, seen: bool) -> None:
    company = {"prime": PRIME, "first": FIRST, "second": SECOND, "invited": INVITED, "stranger": STRANGER}[who]
    scope = owner(company).records(TREE, PRIME)
    assert scope.admits(site_id=SITE, worker_id=9, employer_id=employer, node_id=node) is seen


def test_a_worker_sees_its_own_records_and_roster_entry_only() -> None:
    assert worker(7).records(TREE, PRIME).admits(worker_id=7, employer_id=SECOND, node_id=102)
    assert not worker(7).records(TREE, PRIME).admits(worker_id=8, employer_id=SECOND, node_id=102)
    assert worker(7).roster(TREE) == Scope(worker_id=7)


def test_roster_entries_are_seen_from_the_registered_node_down() -> None:
    assert owner(FIRST).roster(TREE).admits(node_id=102)
    assert not owner(SECOND).roster(TREE).admits(node_id=101)
    assert owner(INVITED).roster(TREE) == NOTHING


def test_corrections_go_to_the_prime_the_employer_and_the_worker() -> None:
    scope = manager(PRIME, SITE).corrections()
    assert scope.admits(site_id=SITE, prime_id=PRIME, employer_id=SECOND, worker_id=9)
    assert not scope.admits(site_id=OTHER_SITE, prime_id=PRIME, employer_id=SECOND, worker_id=9)
    assert owner(SECOND).corrections().admits(site_id=SITE, prime_id=PRIME, employer_id=SECOND)
    assert not owner(FIRST).corrections().admits(site_id=SITE, prime_id=PRIME, employer_id=SECOND)


def test_a_sites_audit_log_is_the_primes_alone() -> None:
    assert owner(PRIME).audit(site_id=SITE, prime_id=PRIME) is not None
    assert owner(FIRST).audit(site_id=SITE, prime_id=PRIME) is None
    assert manager(PRIME, OTHER_SITE).audit(site_id=SITE, prime_id=PRIME) is None
    own = manager(FIRST, SITE).audit()
    assert own is not None and own.company_id == FIRST and own.site_ids == {SITE} and own.account_id == 2


def _items(v: Visibility, disclosed: set[str], *, roster: bool = False, proxy: bool = False) -> frozenset[str] | None:
    return v.worker_items(worker_id=9, employer_id=SECOND, sees_roster=roster, is_proxy_agent=proxy,
                          disclosed=disclosed)


def test_personal_items_by_relation() -> None:
    assert _items(owner(PRIME), {"blood_type"}, roster=True) == {"social_insurance", "blood_type"}
    assert _items(owner(FIRST), {"blood_type"}, proxy=True) == {"trades", "qualifications", "blood_type"}
    assert _items(owner(PRIME), set(), roster=True) == {"social_insurance"}
    assert _items(owner(SECOND), set()) == _items(worker(9), set()) == set(PERSONAL_ITEMS)
    assert _items(manager(SECOND, OTHER_SITE), set()) == set(PERSONAL_ITEMS)  # its employer, wherever bound


OPERATOR = Visibility(Actor(9, Role.OPERATOR))


def test_a_company_with_no_relation_sees_a_worker_only_through_what_both_sides_disclosed() -> None:
    # 参考資料6: nothing disclosed, nothing at all, not even the worker's existence.
    assert _items(owner(STRANGER), set()) is None
    # Both sides agreed: exactly those items, for every ID of any registered company.
    for company in (owner(STRANGER), manager(STRANGER, OTHER_SITE), manager(PRIME, OTHER_SITE), owner(INVITED)):
        assert _items(company, {"level", "blood_type"}) == {"level", "blood_type"}
    # Not a company: another worker, the operator.
    assert _items(worker(8), {"level"}) is None and _items(OPERATOR, {"level"}) is None
    assert owner(STRANGER).disclosure_grant == set(PERSONAL_ITEMS)
    assert worker(8).disclosure_grant == OPERATOR.disclosure_grant == set()


@pytest.mark.parametrize("disclosed", [set(), {"level"}, {"blood_type", "qualifications"}, set(PERSONAL_ITEMS)])
@pytest.mark.parametrize("proxy", [False, True])
def test_the_list_of_an_employers_workers_admits_whom_the_record_shows(disclosed: set[str], proxy: bool) -> None:
    """【1-2】所属技能者一覧 (a WorkerScope, SQL in the repository) and the worker's record agree for
    every company and the operator; a worker account lists nobody (the list is for companies)."""
    for v in (owner(PRIME), owner(SECOND), manager(SECOND, OTHER_SITE), owner(STRANGER), manager(STRANGER), OPERATOR):
        scope = v.company_workers(SECOND, is_proxy_agent=proxy)
        assert scope.admits(disclosed) is (_items(v, disclosed, proxy=proxy) is not None), (v.actor, scope)
    assert owner(SECOND).company_workers(SECOND, is_proxy_agent=False) == WorkerScope(everything=True)
    assert owner(STRANGER).company_workers(SECOND, is_proxy_agent=False) == WorkerScope(
        disclosed=frozenset(PERSONAL_ITEMS))
    assert worker(9).company_workers(SECOND, is_proxy_agent=proxy) == NO_WORKERS and NO_WORKERS.is_empty


def test_an_empty_scope_admits_nothing() -> None:
    assert NOTHING.is_empty and not NOTHING.admits(site_id=SITE, worker_id=1, employer_id=1, node_id=100)
    assert Scope(everything=True, site_ids=frozenset()).is_empty


def test_held_taps_are_seen_by_the_operator_and_a_primes_gate_managers_only() -> None:
    operator = Visibility(Actor(9, Role.OPERATOR))
    assert operator.sees_held_taps([])
    assert owner(PRIME).sees_held_taps([SITE])  # a 元請 somewhere may register the waiting gate
    assert manager(PRIME, SITE).sees_held_taps([SITE])
    assert not manager(PRIME, OTHER_SITE).sees_held_taps([SITE])  # bound elsewhere: not its sites' gates
    assert not owner(FIRST).sees_held_taps([])  # a subcontractor registers no gates
    assert not worker(7).sees_held_taps([SITE])


def test_reports_open_to_the_parties_of_the_seeds_table() -> None:
    # 2-3: 技能者（本人のみ）、所属事業主、元請、上位下請; 2-4: 所属事業主、元請、上位下請.
    assert owner(10).reads_report("2-3") and owner(10).reads_report("2-4")
    assert manager(10, 1).reads_report("2-4")
    assert worker(5).reads_report("2-3") and not worker(5).reads_report("2-4")
    assert not Visibility(Actor(9, Role.OPERATOR)).reads_report("2-4")


def test_a_companys_worker_statistics_are_for_itself_its_workers_and_the_companies_above_it() -> None:
    """【1-3】所属技能者統計情報: 技能者、所属事業者、元請、上位下請 of SECOND (registered under FIRST)."""
    for v in (owner(SECOND), manager(SECOND, OTHER_SITE), owner(PRIME), owner(FIRST), manager(FIRST, SITE)):
        assert v.relates_to_company(SECOND, own_employer_id=None, trees=[TREE]), v.actor
    assert worker(9).relates_to_company(SECOND, own_employer_id=SECOND, trees=[])
    # Not above it: a sibling's invitee, a stranger, a 現場管理者 bound elsewhere, another company's worker.
    for v in (owner(INVITED), owner(STRANGER), manager(PRIME, OTHER_SITE), OPERATOR):
        assert not v.relates_to_company(SECOND, own_employer_id=None, trees=[TREE]), v.actor
    assert not worker(9).relates_to_company(SECOND, own_employer_id=FIRST, trees=[TREE])
    # Below is not above: SECOND does not read FIRST's, nor the 元請's.
    assert not owner(SECOND).relates_to_company(FIRST, own_employer_id=None, trees=[TREE])
    assert not owner(SECOND).relates_to_company(PRIME, own_employer_id=None, trees=[TREE])
    # A pending invitation or a declined one puts nobody under anyone.
    assert not owner(PRIME).relates_to_company(INVITED, own_employer_id=None, trees=[TREE])
    assert not owner(PRIME).relates_to_company(DECLINED, own_employer_id=None, trees=[TREE])


def test_the_construction_ledger_is_the_primes_and_the_first_tiers_and_each_first_tier_sees_only_its_block() -> None:
    """AZ1 施工体制台帳 (元請、1次下請): which companies' blocks each party's ledger holds."""
    assert owner(PRIME).ledger_nodes(TREE) == {100, 101, 103, 105}  # the 元請 and every 1次 row (not 辞退)
    assert owner(FIRST).ledger_nodes(TREE) == {100, 101} == manager(FIRST, SITE).ledger_nodes(TREE)
    for v in (owner(SECOND), owner(INVITED), owner(STRANGER), manager(FIRST, OTHER_SITE), worker(7), OPERATOR):
        assert v.ledger_nodes(TREE) is None, v.actor


def test_a_company_on_the_safety_chart_sees_its_own_branch_and_the_path_to_the_prime() -> None:
    """AZ2–AZ4: 元請、施工体系図にある事業者（自身の枝のみ）."""
    assert owner(PRIME).branch(TREE) == {100, 101, 102, 103, 105}
    assert owner(FIRST).branch(TREE) == {100, 101, 102} == owner(SECOND).branch(TREE)
    for v in (owner(INVITED), owner(DECLINED), owner(STRANGER), manager(SECOND, OTHER_SITE), worker(7), OPERATOR):
        assert v.branch(TREE) == set(), v.actor


def test_a_subcontractors_own_documents_are_for_the_prime_itself_and_the_companies_above_it() -> None:
    """AZ5–AZ7: 元請、当該下請（上位は自身の下位のみ）."""
    assert owner(PRIME).subcontractor_nodes(TREE) == {101, 102, 103, 105}
    assert owner(FIRST).subcontractor_nodes(TREE) == {101, 102}
    assert owner(SECOND).subcontractor_nodes(TREE) == {102}  # never the company above it
    for v in (owner(INVITED), owner(STRANGER), manager(FIRST, OTHER_SITE), worker(7), OPERATOR):
        assert v.subcontractor_nodes(TREE) == set(), v.actor


def test_a_workers_career_counts_all_its_days_only_for_itself_and_its_unbound_employer() -> None:
    """GET /workers/{id}/career: the readers of 2-1, each counting what its 2-1 shows. The worker 7 of
    SECOND is on SITE's roster under SECOND's node (102)."""
    on_site = [(TREE, 102)]

    def unread() -> Iterator[tuple[Tree, int | None]]:
        raise AssertionError("the worker and its employer need no roster")
        yield TREE, 102

    for v in (worker(7), owner(SECOND)):
        assert v.career_scope(worker_id=7, employer_id=SECOND, placements=unread()) == "all", v.actor
    # The employer's 現場管理者 counts only its bound sites' records, as its 2-1 shows: none on SITE when
    # bound elsewhere, yet it is still told the worker exists (its own company's worker).
    for v in (manager(SECOND, OTHER_SITE), manager(SECOND, SITE)):
        assert v.career_scope(worker_id=7, employer_id=SECOND, placements=unread()) == "visible", v.actor
    assert not manager(SECOND, OTHER_SITE).records(TREE, PRIME).admits(site_id=SITE, worker_id=7,
                                                                        employer_id=SECOND, node_id=102)
    # The 元請 and the companies above the worker's node on a roster count their subtrees' records.
    for v in (owner(PRIME), owner(FIRST), manager(FIRST, SITE)):
        assert v.career_scope(worker_id=7, employer_id=SECOND, placements=iter(on_site)) == "visible", v.actor
    # Anyone else is not told the worker exists: another worker, a company beside or not registered,
    # the 元請's 現場管理者 bound elsewhere, the operator, or the 元請 of a site it is not on the roster of.
    for v in (worker(8), owner(INVITED), owner(STRANGER), manager(PRIME, OTHER_SITE), OPERATOR):
        assert v.career_scope(worker_id=7, employer_id=SECOND, placements=iter(on_site)) is None, v.actor
    assert owner(PRIME).career_scope(worker_id=7, employer_id=SECOND, placements=iter([])) is None


def test_a_companys_own_list_of_sites_opens_to_its_own_accounts_only() -> None:
    """【4-2】自社に関する現場一覧: any ID of the company itself, a 現場管理者 bound elsewhere included."""
    for v in (owner(SECOND), manager(SECOND, OTHER_SITE)):
        assert v.is_own_company(SECOND), v.actor
    # Not its own: the 元請 and the company above it, a worker it employs, the operator.
    for v in (owner(PRIME), owner(FIRST), worker(9), OPERATOR):
        assert not v.is_own_company(SECOND), v.actor


def test_a_workers_profile_opens_to_itself_and_its_employer_and_refuses_openly_only_who_sees_the_worker() -> None:
    """【1-1】技能者情報 of the worker 9 of SECOND: 技能者、所属事業主. ``seen_items`` is what ``worker_items``
    grants the account; one that sees the worker otherwise is told 403, anyone else 404."""
    for v in (worker(9), owner(SECOND), manager(SECOND, OTHER_SITE)):
        assert v.profile_access(worker_id=9, employer_id=SECOND, seen_items=_items(v, set())) == "open", v.actor
    # The 元請 on the roster, a company the employer gave proxy consent, a stranger after a disclosure.
    for v, seen in ((owner(PRIME), _items(owner(PRIME), set(), roster=True)),
                    (owner(FIRST), _items(owner(FIRST), set(), proxy=True)),
                    (owner(STRANGER), _items(owner(STRANGER), {"level"}))):
        assert seen is not None and v.profile_access(worker_id=9, employer_id=SECOND, seen_items=seen) == "refused"
    # Who may not see the worker at all: a stranger with nothing disclosed, another worker, the operator.
    for v in (owner(STRANGER), worker(8), OPERATOR):
        seen = _items(v, set())
        assert seen is None and v.profile_access(worker_id=9, employer_id=SECOND, seen_items=seen) == "hidden"


def test_a_sites_month_report_opens_to_a_registered_company_and_a_worker_on_the_roster() -> None:
    """2-1, 2-2, 2-4 of a site: a member opens it even with no record to show; anyone else only through
    a record its scope admits. An invitee is party to the site (it reads the site) but no member."""
    for v in (owner(PRIME), owner(FIRST), owner(SECOND), manager(FIRST, SITE)):
        assert v.is_member(TREE) and v.is_member(TREE, on_roster=True), v.actor
    assert owner(INVITED).on_site(TREE) and not owner(INVITED).is_member(TREE)
    # A company's standing is its node's, whatever ``on_roster`` says (it is about workers).
    for v in (owner(INVITED), owner(DECLINED), owner(STRANGER), manager(FIRST, OTHER_SITE), OPERATOR):
        assert not v.is_member(TREE, on_roster=True), v.actor
    assert worker(7).is_member(TREE, on_roster=True) and not worker(7).is_member(TREE)
