"""The site's tree as a value, without a database: which rows stand as contracts all the way up to the
元請, the rows the 施工体系図 and the safety documents print (AZ1–AZ7), whoever reads them."""

from __future__ import annotations

import pytest

from server.domain.hierarchy import Node, Status, Tree
from server.errors import NotFound

# 元請 (100) ─┬ 一次 (101, 登録) ── 二次 (102, 登録) ── placeholder (103, under a registered row)
#            ├ 一次 (104, 未承認) ─┬ 二次 (105, 登録: approved below a pending invitation)
#            │                    └ placeholder (106)
#            └ 一次 (107, 辞退)
TREE = Tree(10, [
    Node(100, None, 1, None, Status.REGISTERED),
    Node(101, 100, 2, None, Status.REGISTERED),
    Node(102, 101, 3, None, Status.REGISTERED),
    Node(103, 102, None, "未定の三次", Status.REGISTERED),
    Node(104, 100, 4, None, Status.PENDING),
    Node(105, 104, 5, None, Status.REGISTERED),
    Node(106, 104, None, "未定の二次", Status.REGISTERED),
    Node(107, 100, 6, None, Status.DECLINED),
])


def test_a_row_stands_as_a_contract_only_while_every_row_above_it_is_registered() -> None:
    assert [n.id for n in TREE.walk() if TREE.is_contracted(n.id)] == [100, 101, 102, 103]
    assert not TREE.is_contracted(104)  # not approved yet: no contract
    # Approved, or placed by name, below an invitation still 未承認: no contract either until it is.
    assert not TREE.is_contracted(105) and not TREE.is_contracted(106)


def test_a_declined_row_is_no_longer_part_of_the_tree() -> None:
    with pytest.raises(NotFound):
        TREE.is_contracted(107)
