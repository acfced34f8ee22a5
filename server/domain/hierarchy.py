"""The site's hierarchy (施工体制) and its rules: 招待, 承認, 置換, removal, patterns.

The tree is a plain value built from the store's rows; every rule is a method that either
returns what to do or raises a typed error. The store then writes it. Tiers (次数) are never
stored: they follow from the tree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from server.domain.accounts import INVITE_ROLES, Actor, require_role, require_site_access
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, site_not_found


class Status(StrEnum):
    PENDING = "pending"  # 未承認
    REGISTERED = "registered"  # 登録
    DECLINED = "declined"  # 辞退


STATUS_LABELS = {Status.PENDING: "未承認", Status.REGISTERED: "登録", Status.DECLINED: "辞退"}


@dataclass(frozen=True)
class Node:
    id: int
    parent_id: int | None
    company_id: int | None
    placeholder_name: str | None
    status: Status

    @property
    def is_placeholder(self) -> bool:
        return self.company_id is None


class Tree:
    """One site's hierarchy. Declined nodes are kept for history but are not part of the tree."""

    def __init__(self, site_id: int, nodes: Iterable[Node]) -> None:
        self.site_id = site_id
        self.all_nodes = {n.id: n for n in nodes}
        self.nodes = {i: n for i, n in self.all_nodes.items() if n.status != Status.DECLINED}
        self._children: dict[int | None, list[Node]] = {}
        for n in sorted(self.nodes.values(), key=lambda n: n.id):
            self._children.setdefault(n.parent_id, []).append(n)
        roots = self._children.get(None, [])
        if len(roots) != 1:
            raise ValueError(f"site {site_id} has {len(roots)} roots")
        self.root = roots[0]

    # --- shape -------------------------------------------------------------------------------
    def node(self, node_id: int) -> Node:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise NotFound(
                "node_not_found",
                ja="指定の施工体制の行が見つかりません",
                en="no such hierarchy node on this site",
                node_id=node_id,
            ) from None

    def children(self, node_id: int) -> list[Node]:
        return list(self._children.get(node_id, []))

    def descendants(self, node_id: int) -> Iterator[Node]:
        stack = list(reversed(self.children(node_id)))
        while stack:
            n = stack.pop()
            yield n
            stack.extend(reversed(self.children(n.id)))

    def ancestors(self, node_id: int) -> Iterator[Node]:
        """From the parent up to the root."""
        n = self.node(node_id)
        while n.parent_id is not None:
            n = self.nodes[n.parent_id]
            yield n

    def tier(self, node_id: int) -> int:
        """次数: 0 for the 元請, 1 for a first-tier subcontractor, ..."""
        return sum(1 for _ in self.ancestors(node_id))

    def walk(self) -> Iterator[Node]:
        """Depth first from the root, children in invitation order: the order the screens list rows."""
        yield self.root
        yield from self.descendants(self.root.id)

    def node_of_company(self, company_id: int | None) -> Node | None:
        if company_id is None:
            return None
        for n in self.nodes.values():
            if n.company_id == company_id:
                return n
        return None

    def responsible_company(self, node_id: int) -> int:
        """The company that answers for a node: itself, or for a placeholder the nearest registered one above."""
        n = self.node(node_id)
        if n.company_id is not None:
            return n.company_id
        for a in self.ancestors(node_id):
            if a.company_id is not None:
                return a.company_id
        raise ValueError("a placeholder without a registered company above it")  # root is a company

    def in_subtree(self, top_id: int, node_id: int) -> bool:
        return node_id == top_id or any(a.id == top_id for a in self.ancestors(node_id))

    def is_contracted(self, node_id: int) -> bool:
        """登録, and so is every row above it up to the 元請: the chain of contracts down to this row
        stands, so it is on the 施工体系図 and the safety documents. A company may be placed, and even
        approve, below an invitation still 未承認 (the 元請 lays out a whole pattern at once), but an
        unapproved invitation is no contract yet, and neither is anything below it. Whoever reads."""
        return all(n.status == Status.REGISTERED for n in (self.node(node_id), *self.ancestors(node_id)))

    # --- who acts --------------------------------------------------------------------------
    def actor_node(self, actor: Actor) -> Node:
        """The actor's own registered node on this site, or a refusal saying why not.

        A company not on the site is told the site does not exist (the same answer as for a
        missing one); only then is a 現場管理者 of a company that is on it told it is not bound."""
        node = self.node_of_company(actor.company_id)
        if node is None:
            raise site_not_found()
        require_site_access(actor, self.site_id)
        if node.status != Status.REGISTERED:
            raise Conflict(
                "own_invitation_pending",
                ja="自社への招待がまだ未承認です。承認要請リストから承認してください",
                en="your company's invitation to this site is still pending; approve it first",
            )
        return node

    def require_manages(self, actor: Actor, node_id: int, action_ja: str, action_en: str) -> Node:
        """The actor's company is this node's company or above it (the 元請 manages everything)."""
        mine = self.actor_node(actor)
        if not self.in_subtree(mine.id, node_id):
            raise Forbidden(
                "outside_your_branch",
                ja=f"自社より上位または別系統の事業者について{action_ja}はできません",
                en=f"you can only {action_en} your own company's branch of the hierarchy",
                node_id=node_id,
            )
        return mine

    # --- rules -------------------------------------------------------------------------------
    def check_invite(self, actor: Actor, parent_id: int, company_id: int | None) -> None:
        """招待: the 元請 or an upper company adds a company (→ 未承認) or a placeholder under a node it manages."""
        require_role(actor, INVITE_ROLES, "招待", "invite")
        self.require_manages(actor, parent_id, "招待", "invite below")
        # A pending company may already have companies placed below it (the 元請 lays out the whole
        # structure at once, as a pattern does); each of them still approves on its own.
        if company_id is not None and self.node_of_company(company_id) is not None:
            raise Conflict(
                "company_already_on_site",
                ja="この事業者はすでにこの現場の施工体制に登録されています",
                en="this company is already in this site's hierarchy (once per site)",
                company_id=company_id,
            )

    def check_decide(self, actor: Actor, node_id: int) -> Node:
        """承認 / 辞退: only the invited company itself, and only while 未承認."""
        n = self.all_nodes.get(node_id)
        if n is None or n.company_id != actor.company_id:
            raise NotFound(
                "invitation_not_found",
                ja="承認要請が見つかりません",
                en="no such invitation for your company",
                node_id=node_id,
            )
        if n.status != Status.PENDING:
            raise Conflict(
                "invitation_already_decided",
                ja=f"この招待はすでに処理されています（現在: {STATUS_LABELS[n.status]}）",
                en=f"this invitation was already decided (now: {n.status})",
                node_id=node_id,
                status=str(n.status),
            )
        return n

    def check_decline(self, actor: Actor, node_id: int) -> Node:
        """辞退: as 承認, and not while companies are already placed below (they would be left orphaned)."""
        n = self.check_decide(actor, node_id)
        kids = self.children(node_id)
        if kids:
            raise Conflict(
                "node_has_children",
                ja=f"下位に{len(kids)}社が登録されているため辞退できません。招待元に下位の事業者の削除を依頼してください",
                en=f"{len(kids)} companies are placed below this invitation; ask the inviter to remove them first",
                children=[k.id for k in kids],
            )
        return n

    def check_replace(self, actor: Actor, node_id: int, company_id: int) -> None:
        """置換: only by the company directly above, irreversible, refused while anything below is 未承認."""
        n = self.node(node_id)
        if not n.is_placeholder:
            raise Conflict(
                "not_a_placeholder",
                ja="置換できるのはCCUS未登録事業者（事業者名のみ）の行だけです",
                en="only a name-only placeholder can be replaced",
                node_id=node_id,
            )
        mine = self.actor_node(actor)
        above = self.responsible_company(n.parent_id) if n.parent_id is not None else None
        if above != mine.company_id:
            raise Forbidden(
                "not_directly_above",
                ja="置換はCCUS未登録事業者の直近上位の事業者のみが行えます",
                en="only the company directly above the placeholder may replace it",
                node_id=node_id,
            )
        pending = [d.id for d in self.descendants(node_id) if d.status == Status.PENDING]
        if pending:
            raise Conflict(
                "pending_below_placeholder",
                ja="CCUS未登録事業者の下位に未承認の事業者がいるため置換登録できません。承認後に置換してください",
                en="a company below the placeholder has not approved yet; replace after it approves",
                pending_node_ids=pending,
            )
        if self.node_of_company(company_id) is not None:
            raise Conflict(
                "company_already_on_site",
                ja="この事業者はすでにこの現場の施工体制に登録されています",
                en="this company is already in this site's hierarchy",
                company_id=company_id,
            )

    def check_remove(self, actor: Actor, node_id: int, roster_count: int) -> None:
        """削除: by a company above the node, never the 元請's own row, never with children or workers."""
        n = self.node(node_id)
        if n.parent_id is None:
            raise Conflict("cannot_remove_prime", ja="元請の行は削除できません", en="the prime's row cannot be removed")
        mine = self.actor_node(actor)
        if mine.id == node_id or not self.in_subtree(mine.id, node_id):
            raise Forbidden(
                "not_above",
                ja="削除できるのは自社より下位の事業者だけです",
                en="you can only remove companies below your own",
                node_id=node_id,
            )
        kids = self.children(node_id)
        if kids:
            raise Conflict(
                "node_has_children",
                ja=f"下位に{len(kids)}社が登録されているため削除できません。先に下位の事業者を削除してください",
                en=f"it has {len(kids)} companies below it; remove those first",
                children=[k.id for k in kids],
            )
        if roster_count:
            raise Conflict(
                "node_has_workers",
                ja=f"作業員名簿に{roster_count}名が登録されているため削除できません。先に技能者の登録を外してください",
                en=f"{roster_count} workers are on the roster under it; remove them first",
                roster_count=roster_count,
            )



def check_placeholder_name(name: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned or len(cleaned) > 200:
        raise InvalidInput(
            "invalid_placeholder_name",
            ja="CCUS未登録事業者の事業者名を1〜200文字で入力してください",
            en="a placeholder needs a company name of 1 to 200 characters",
        )
    return cleaned


def check_work(work_name: str | None) -> str:
    """承認 requires 工事名称・工事内容 to be entered (参考資料1 ⑦)."""
    cleaned = (work_name or "").strip()
    if not cleaned:
        raise InvalidInput(
            "work_name_required",
            ja="承認するには工事名称を入力してください",
            en="enter the work name (工事名称) to approve",
        )
    return cleaned


_LEGAL_FORMS = re.compile(r"株式会社|有限会社|合同会社|合資会社|合名会社|\(株\)|\(有\)|\(同\)|㈱|㈲")


def normalize_company_name(name: str) -> str:
    """For suggesting a 置換: ignore width, spaces and the legal form, so 「CCUS建設」 matches 「CCUS建設(株)」."""
    s = unicodedata.normalize("NFKC", name)
    s = _LEGAL_FORMS.sub("", s)
    return re.sub(r"\s+", "", s).casefold()


@dataclass(frozen=True)
class PatternNode:
    """One row of a saved 施工体制パターン: a registered company by id, or a placeholder name."""

    company_id: int | None
    placeholder_name: str | None
    children: tuple[PatternNode, ...] = ()


def pattern_from_tree(tree: Tree, top_id: int) -> tuple[PatternNode, ...]:
    """The subtree below ``top_id`` as a pattern (the top itself is whoever applies it)."""

    def build(n: Node) -> PatternNode:
        kids = tuple(build(c) for c in tree.children(n.id))
        return PatternNode(n.company_id, n.placeholder_name, kids)

    return tuple(build(c) for c in tree.children(top_id))


def pattern_companies(rows: Iterable[PatternNode]) -> Iterator[int]:
    for r in rows:
        if r.company_id is not None:
            yield r.company_id
        yield from pattern_companies(r.children)
