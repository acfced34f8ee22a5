"""Who acts on which site and sees what: the product's security rule, in one place.

Every service asks one ``Visibility`` (made from the signed-in ``Actor``) instead of writing the rule
again. For lists, the policy hands out a ``Scope``: plain data that a repository turns into one SQL
WHERE clause (``server.store.repositories.base.scope_clause``), so a limit or a count applies to what
the account may see and visibility is decided per node, not per row; ``Scope.admits`` is the same
rule for one row already in hand. Tests check both agree (tests/unit/test_visibility.py).

The rules (seed: 施工体制・作業員名簿・就業履歴・帳票の閲覧範囲):

- A 現場管理者 acts only on the sites bound to it; every other company account on any site its
  company is on. (``acts_on``)
- A company is *party* to a site when it has a node there that did not decline: an invitee may read
  the site it is asked to join. It is a *member* when its node is 登録 (registered): only a member
  sees anything below itself. The 元請's node is the root, registered from the start.
- A member sees the nodes of its subtree (the 元請: all). Roster entries and records filed under
  those nodes are visible to it; an employer also sees its own workers' records wherever they are
  filed; a worker sees only its own.
- What one account sees of a worker's personal items: ``worker_items``; which of a company's
  workers (所属技能者一覧) it lists: ``company_workers``, a ``WorkerScope`` the worker repository
  turns into SQL the same way.
- 参考資料6: an item both the worker and the employer agreed to disclose is seen by every
  registered company (any of its IDs), related to the worker or not; nobody else (``disclosure_grant``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from server.domain.accounts import INVITE_ROLES, Actor, Role
from server.domain.consent import PERSONAL_ITEMS
from server.domain.hierarchy import Node, Status, Tree

ROSTER_ITEMS = frozenset({"social_insurance"})
PROXY_ITEMS = frozenset({"trades", "qualifications"})


@dataclass(frozen=True)
class Scope:
    """The rows an actor sees, among rows keyed by site, worker, employer and node.

    A row is visible when its site is within ``site_ids`` (None: no restriction) and at least one
    grant matches: ``everything``, its site's 元請 is ``prime_of``, it is filed under one of
    ``node_ids``, its worker's employer is ``employer_id``, or its worker is ``worker_id``. No grant
    at all: nothing is visible.
    """

    everything: bool = False
    site_ids: frozenset[int] | None = None
    prime_of: int | None = None
    node_ids: frozenset[int] = frozenset()
    employer_id: int | None = None
    worker_id: int | None = None

    @property
    def is_empty(self) -> bool:
        if self.site_ids is not None and not self.site_ids:
            return True
        return not (self.everything or self.prime_of is not None or self.node_ids
                    or self.employer_id is not None or self.worker_id is not None)

    def admits(self, *, site_id: int | None = None, worker_id: int | None = None, employer_id: int | None = None,
               node_id: int | None = None, prime_id: int | None = None) -> bool:
        if self.is_empty:
            return False
        if self.site_ids is not None and site_id not in self.site_ids:
            return False
        return (
            self.everything
            or (self.prime_of is not None and prime_id == self.prime_of)
            or (node_id is not None and node_id in self.node_ids)
            or (self.employer_id is not None and employer_id == self.employer_id)
            or (self.worker_id is not None and worker_id == self.worker_id)
        )


NOTHING = Scope()

# How 【1-1】技能者情報 answers one account (``Visibility.profile_access``): the report, 403, or 404.
ProfileAccess = Literal["open", "refused", "hidden"]


@dataclass(frozen=True)
class WorkerScope:
    """Which of one employer's workers an actor lists (所属技能者一覧): all of them (``everything``), or
    only those with at least one item of ``disclosed`` that both the worker and the employer agreed
    to disclose. Neither: none. What each listed worker shows is ``Visibility.worker_items``."""

    everything: bool = False
    disclosed: frozenset[str] = frozenset()

    @property
    def is_empty(self) -> bool:
        return not (self.everything or self.disclosed)

    def admits(self, disclosed: Iterable[str]) -> bool:
        """The same rule for one worker in hand; ``disclosed``: its items both sides agreed to."""
        return self.everything or not self.disclosed.isdisjoint(disclosed)


NO_WORKERS = WorkerScope()


@dataclass(frozen=True)
class AuditScope:
    """Audit entries an actor sees: of one site (its 元請), of its company (restricted to ``site_ids``
    or its own actions for a 現場管理者), or only its own actions."""

    everything: bool = False
    site_id: int | None = None
    company_id: int | None = None
    site_ids: frozenset[int] | None = None
    account_id: int | None = None


# 帳票 (the seed's table of reports): which parties may open a report at all. "self": a worker its
# own; "company": an account of a registered company. Which rows each sees is the record scope
# (``records``): a company with no part in the site is not told the site exists (404). A party not
# listed is refused (403), never given an empty file.
REPORT_READERS: dict[str, frozenset[str]] = {
    # The seed's 帳票 table, 閲覧や帳票の出力ができる者: which kind of account may open a report at all
    # ("self": a worker, on itself or its employer's row; "company": an account of a company). What
    # it sees inside (the employer only, the 元請 and upper companies on their subtree, one branch) is
    # each report's scope, built from the questions below; this table only answers 403 or not.
    "1-1": frozenset({"self", "company"}),  # 技能者情報: 技能者、所属事業主（「過去の所属事業者」情報を除く）
    "1-2": frozenset({"company"}),  # 所属技能者一覧: 所属事業主（他社は双方が開示に同意した項目のみ）
    "1-3": frozenset({"self", "company"}),  # 所属技能者統計情報: 技能者、所属事業者、元請、上位下請
    "1-4": frozenset({"self", "company"}),  # 施工体制登録技能者一覧: 技能者（本人のみ）、所属事業主、元請、上位下請
    "2-1": frozenset({"self", "company"}),  # 就業履歴（月別計）: 技能者（本人のみ）、所属事業主、元請、上位下請
    "2-2": frozenset({"company"}),  # 就業履歴一覧（月別集約）: 所属事業主、元請、上位下請
    "2-3": frozenset({"self", "company"}),  # 就業履歴（月別カレンダー）: 技能者（本人のみ）、所属事業主、元請、上位下請
    "2-4": frozenset({"company"}),  # 就業履歴一覧（月別カレンダー）: 所属事業主、元請、上位下請
    "3-1": frozenset({"self", "company"}),  # 事業者情報: 技能者、所属事業主、元請、上位下請
    "3-2": frozenset({"company"}),  # 下位事業者一覧: 元請、上位下請
    "3-3": frozenset({"self", "company"}),  # 施工体制登録事業者一覧: 技能者（自社のみ）、元請、上位下請
    "4-1": frozenset({"self", "company"}),  # 現場・契約情報: 技能者・上位下請は元請の公開設定項目のみ、元請
    "4-2": frozenset({"company"}),  # 自社に関する現場一覧: 元請、上位下請（元請の公開設定項目のみ）
    "AZ1": frozenset({"company"}),  # 施工体制台帳: 元請、1次下請
    "AZ2": frozenset({"company"}),  # 工事作業所災害防止協議会兼施工体系図: 元請、施工体系図にある事業者（自身の枝のみ）
    "AZ3": frozenset({"company"}),  # 施工体制台帳（工事担当技術者）: 元請、施工体系図にある事業者（自身の枝のみ）
    "AZ4": frozenset({"company"}),  # 下請負業者編成表: 元請、施工体系図にある事業者（自身の枝のみ）
    "AZ5": frozenset({"company"}),  # 再下請負通知書（変更届）: 元請、当該下請（上位は自身の下位のみ）
    "AZ6-a": frozenset({"company"}),  # 作業員名簿: 元請、当該下請（上位は自身の下位のみ）
    "AZ6-b": frozenset({"company"}),  # 作業員名簿（社会保険加入状況について組込版）: 同上
    "AZ7": frozenset({"company"}),  # 社会保険加入状況: 元請、当該下請（上位は自身の下位のみ）
}


class Visibility:
    """One actor's view. Cheap to make; holds no state but the actor."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    # -- sites ---------------------------------------------------------------------------------------
    def acts_on(self, site_id: int) -> bool:
        """A 現場管理者 only on its bound sites; no other account is restricted by binding (what it
        may see there is decided by the questions below)."""
        return self.actor.bound_to(site_id)

    @property
    def bound_sites(self) -> frozenset[int] | None:
        """The sites a 現場管理者 is restricted to (None: no restriction)."""
        return self.actor.site_ids if self.actor.role == Role.SITE_MANAGER else None

    def party_node(self, tree: Tree) -> Node | None:
        """The actor's company's node on the site unless it declined (invited or registered)."""
        if not self.actor.is_company or self.actor.company_id is None or not self.acts_on(tree.site_id):
            return None
        node = tree.node_of_company(self.actor.company_id)
        return node if node is not None and node.status != Status.DECLINED else None

    def member_node(self, tree: Tree) -> Node | None:
        """The actor's company's registered node: the one from which it sees its subtree."""
        node = self.party_node(tree)
        return node if node is not None and node.status == Status.REGISTERED else None

    def on_site(self, tree: Tree, *, on_roster: bool = False) -> bool:
        """The one meaning of "on the site" (may read the site itself): a worker on its roster
        (``on_roster``), a company party to it (an invitee may read what it is asked to join)."""
        if self.actor.role == Role.WORKER:
            return on_roster
        return self.party_node(tree) is not None

    def is_prime(self, site_id: int, prime_id: int) -> bool:
        """Acting as the site's 元請 (a bound 現場管理者 of the 元請 included)."""
        return self.actor.is_company and self.actor.company_id == prime_id and self.acts_on(site_id)

    def sees_held_taps(self, prime_sites: Iterable[int]) -> bool:
        """Which gates have taps held (not registered or on no site) and how many: the operator, and a
        元請's gate managers (事業者責任者, 階層管理者, 現場管理者 acting on one of its sites) who may
        register them. Only counts and times, never whose cards: the taps belong to no site yet."""
        if self.actor.role == Role.OPERATOR:
            return True
        return (self.actor.is_company and self.actor.role in INVITE_ROLES
                and any(self.acts_on(s) for s in prime_sites))

    def sites_listed(self, party_sites: Iterable[int]) -> set[int]:
        """Of the sites the company is party to (or a worker is on), the ones this account lists."""
        bound = self.bound_sites
        return {s for s in party_sites if bound is None or s in bound}

    # -- nodes, roster entries, records ----------------------------------------------------------------
    def tree_nodes(self, tree: Tree, *, employer_id: int | None = None) -> frozenset[int]:
        """The 施工体制 as shown: the 元請 everything; a company its own subtree and the path above it
        (who invited whom); an invitee its own node and the path above (what it is asked to join); a
        worker (on the site's roster) only its employer's node, ``employer_id`` (seed 3-3: 自社のみ)."""
        if self.actor.role == Role.WORKER:
            node = tree.node_of_company(employer_id)
            return frozenset({node.id}) if node is not None and node.status != Status.DECLINED else frozenset()
        mine = self.party_node(tree)
        if mine is None:
            return frozenset()
        if mine.parent_id is None:
            return frozenset(tree.nodes)
        below = {d.id for d in tree.descendants(mine.id)}
        return frozenset({mine.id} | below | {a.id for a in tree.ancestors(mine.id)})

    def seen_nodes(self, tree: Tree) -> frozenset[int]:
        """The nodes a member sees: its own and everything below (the 元請: the whole tree)."""
        mine = self.member_node(tree)
        if mine is None:
            return frozenset()
        return frozenset(n for n in tree.nodes if tree.in_subtree(mine.id, n))

    def roster(self, tree: Tree) -> Scope:
        """現場作業員一覧: a member its subtree's entries, a worker its own."""
        if self.actor.role == Role.WORKER:
            return Scope(worker_id=self.actor.worker_id)
        nodes = self.seen_nodes(tree)
        return Scope(node_ids=nodes) if nodes else NOTHING

    def records(self, tree: Tree, prime_id: int) -> Scope:
        """就業履歴 of one site: the 元請 all, a member its subtree's, an employer its own workers'
        (wherever they are filed), a worker its own."""
        a = self.actor
        if a.role == Role.WORKER:
            return Scope(worker_id=a.worker_id)
        if not a.is_company or a.company_id is None or not self.acts_on(tree.site_id):
            return NOTHING
        if a.company_id == prime_id:
            return Scope(everything=True)
        return Scope(node_ids=self.seen_nodes(tree), employer_id=a.company_id)

    def corrections(self) -> Scope:
        """Correction requests across sites: the 元請 its sites' requests, the employer and the
        worker the ones about them."""
        a = self.actor
        if a.role == Role.WORKER:
            return Scope(worker_id=a.worker_id)
        if not a.is_company or a.company_id is None:
            return NOTHING
        return Scope(prime_of=a.company_id, employer_id=a.company_id, site_ids=self.bound_sites)

    def audit(self, *, site_id: int | None = None, prime_id: int | None = None) -> AuditScope | None:
        """The audit log: the operator everything (or one site's); a site's log only its 元請 (None:
        refused); otherwise a company its own entries (a 現場管理者: of its sites, or its own
        actions); anyone else only its own actions."""
        a = self.actor
        if a.role == Role.OPERATOR:
            return AuditScope(everything=site_id is None, site_id=site_id)
        if a.is_company and site_id is not None:
            return AuditScope(site_id=site_id) if prime_id is not None and self.is_prime(site_id, prime_id) else None
        if a.is_company:
            return AuditScope(company_id=a.company_id, site_ids=self.bound_sites, account_id=a.account_id)
        return AuditScope(account_id=a.account_id)

    # -- workers ----------------------------------------------------------------------------------------
    def sees_on_roster(self, placements: Iterable[tuple[Tree, int | None]]) -> bool:
        """Whether the actor's company is the 元請 or above the worker on a site where the worker is
        on the roster; ``placements``: (the site's tree, the entry's node) for each roster entry."""
        return any(self.roster(tree).admits(node_id=node_id) for tree, node_id in placements
                   if self.actor.is_company)

    def reads_report(self, report: str) -> bool:
        """Whether this account may open report ``report`` (its 帳票NO) at all (``REPORT_READERS``)."""
        readers = REPORT_READERS[report]
        if self.actor.role == Role.WORKER:
            return "self" in readers
        return self.actor.is_company and "company" in readers

    @property
    def disclosure_grant(self) -> frozenset[str]:
        """The items this account sees of any worker once both the worker and its employer agreed to
        disclose them (参考資料6): every item for an account of a registered company (事業者, whichever
        of its IDs: the seed asks only that it be registered and signed in), none for anyone else
        (another worker, the operator). No site relation is needed."""
        a = self.actor
        return frozenset(PERSONAL_ITEMS) if a.is_company and a.company_id is not None else frozenset()

    def sees_everything_of(self, *, worker_id: int, employer_id: int) -> bool:
        """The worker itself and its employer (所属事業者, any of its IDs) see every personal item,
        whatever the settings: nothing else needs to be asked."""
        a = self.actor
        if a.role == Role.WORKER:
            return a.worker_id == worker_id
        return a.is_company and a.company_id is not None and a.company_id == employer_id

    def worker_items(self, *, worker_id: int, employer_id: int, sees_roster: bool, is_proxy_agent: bool,
                     disclosed: set[str]) -> frozenset[str] | None:
        """The personal items visible, or None when the worker is not visible at all.

        - The employer (所属事業者) and the worker see everything.
        - Every registered company sees the items both sides disclosed (参考資料6), whatever its relation.
        - The 元請 and upper companies of a site where the worker is on the roster see what the
          作業員名簿 holds (social insurance) as well.
        - A company the employer gave proxy consent sees what registering needs (trades,
          qualifications) as well.
        - Nobody else sees the worker at all, not even that it exists: a company with no relation sees
          it only while at least one item is disclosed.
        """
        if self.sees_everything_of(worker_id=worker_id, employer_id=employer_id):
            return frozenset(PERSONAL_ITEMS)
        if not self.actor.is_company or self.actor.company_id is None:
            return None
        items = set(self.disclosure_grant & disclosed)
        if sees_roster:
            items |= ROSTER_ITEMS
        if is_proxy_agent:
            items |= PROXY_ITEMS
        return frozenset(items) or None

    def company_workers(self, employer_id: int, *, is_proxy_agent: bool) -> WorkerScope:
        """【1-2】所属技能者一覧 of one employer: the employer and a company it gave proxy consent list
        every worker; any other registered company the workers with an item both sides disclosed
        (the seed: 双方が開示に同意した情報のみ所属事業主以外も閲覧可能); anyone else none. A site's
        roster is no grant here: it has its own list (``roster``)."""
        a = self.actor
        if not a.is_company or a.company_id is None:
            return NO_WORKERS
        if a.company_id == employer_id or is_proxy_agent:
            return WorkerScope(everything=True)
        return WorkerScope(disclosed=self.disclosure_grant)

    def relates_to_company(self, company_id: int, *, own_employer_id: int | None, trees: Iterable[Tree]) -> bool:
        """The parties the seed names 技能者、所属事業者、元請、上位下請 for a company (【1-3】所属技能者統計情報):
        the company itself (any of its IDs), a worker it employs (``own_employer_id``: the signed-in
        worker's employer), and a company whose registered node is above the company's registered node
        (the 元請: anywhere) on one of ``trees``, the sites the company is registered on. Only 登録 rows
        count: an invitation not yet approved puts nobody's workers under anyone. ``trees`` is read
        lazily, so the sites after the first that answers yes are never loaded."""
        a = self.actor
        if a.role == Role.WORKER:
            return own_employer_id is not None and own_employer_id == company_id
        if not a.is_company or a.company_id is None:
            return False
        if a.company_id == company_id:
            return True
        for tree in trees:
            node = tree.node_of_company(company_id)
            if node is not None and node.status == Status.REGISTERED and node.id in self.seen_nodes(tree):
                return True
        return False

    # -- 安全書類 (the seed's AZ rows): which companies' blocks a form shows ------------------------------
    def ledger_nodes(self, tree: Tree) -> frozenset[int] | None:
        """AZ1 施工体制台帳 (元請、1次下請): the 元請 its own block and every 1次's; a registered 1次 the
        元請's block and its own; None (refused) for anyone else, a 2次 or lower included."""
        mine = self.member_node(tree)
        if mine is None:
            return None
        if mine.parent_id is None:
            return frozenset({mine.id} | {n.id for n in tree.children(mine.id)})
        if mine.parent_id == tree.root.id:
            return frozenset({tree.root.id, mine.id})
        return None

    def branch(self, tree: Tree) -> frozenset[int]:
        """施工体系図にある事業者（自身の枝のみ） (AZ2–AZ4): a registered company its node, the path up to the
        元請 and its subtree; the 元請 the whole tree. Nothing for anyone else: an invitee is not on the
        施工体系図 until it approves."""
        mine = self.member_node(tree)
        if mine is None:
            return frozenset()
        below = {d.id for d in tree.descendants(mine.id)}
        return frozenset({mine.id} | below | {a.id for a in tree.ancestors(mine.id)})

    def subcontractor_nodes(self, tree: Tree) -> frozenset[int]:
        """元請、当該下請（上位は自身の下位のみ） (AZ5–AZ7): the subcontractors whose documents the account
        opens. The 元請 every one; a registered subcontractor itself and those below it; never a company
        above or beside (the 元請 has no such document of its own)."""
        return self.seen_nodes(tree) - {tree.root.id}

    # -- what is a company's own; a worker's profile ---------------------------------------------------------
    def is_own_company(self, company_id: int) -> bool:
        """An account of the company itself (any of its IDs, a 現場管理者 included): what is the company's
        own, like 【4-2】自社に関する現場一覧, opens to it alone. A worker is not its employer's account."""
        a = self.actor
        return a.is_company and a.company_id is not None and a.company_id == company_id

    def profile_access(self, *, worker_id: int, employer_id: int,
                       seen_items: frozenset[str] | None) -> ProfileAccess:
        """【1-1】技能者情報 (技能者、所属事業主): "open" for the worker itself and its employer; "refused" (403)
        for an account that sees the worker some other way (``seen_items``: what ``worker_items`` grants
        it, through a roster or a disclosure), which already knows the worker exists; "hidden" (404) for
        anyone else, who must not learn from the answer that the worker exists."""
        if self.sees_everything_of(worker_id=worker_id, employer_id=employer_id):
            return "open"
        return "refused" if seen_items is not None else "hidden"

    # -- 能力評価 (GET /workers/{id}/career) --------------------------------------------------------------
    def career_scope(self, *, worker_id: int, employer_id: int,
                     placements: Iterable[tuple[Tree, int | None]]) -> Literal["all", "visible"] | None:
        """Who may ask a worker's days towards the next level, and over which of its records: the readers
        of 2-1 就業履歴（月別計）, each counting what its 2-1 shows, so no reader learns days it could not
        read one by one. "all": the worker itself and its employer (所属事業主, any of its IDs) unbound,
        every record. "visible" (only what ``records`` admits, site by site): a 現場管理者 of the employer,
        bound to some sites (its 2-1 shows only those), and the 元請 and upper companies of a site where
        the worker is on the roster (``placements`` as for ``sees_on_roster``, read only when asked).
        None: anyone else, who is not told the worker exists."""
        if self.sees_everything_of(worker_id=worker_id, employer_id=employer_id):
            return "all" if self.bound_sites is None else "visible"
        if self.actor.is_company and self.sees_on_roster(placements):
            return "visible"
        return None

    # -- a site's month reports (2-1, 2-2, 2-4) ------------------------------------------------------------
    def is_member(self, tree: Tree, *, on_roster: bool = False) -> bool:
        """A member of the site: a worker on its roster (``on_roster``), a company registered on it
        (``member_node``: an invitee is party to the site, not yet a member). A site's month report opens
        to a member even when the month holds no record it sees; anyone else is told the site exists only
        when its ``records`` scope admits a record there (an employer's workers filed under another
        company's branch), else 404."""
        if self.actor.role == Role.WORKER:
            return on_roster
        return self.member_node(tree) is not None
