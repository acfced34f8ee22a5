"""A worker's days towards the next CCUS skill level (能力評価), from its attendance records.

The arithmetic and the thresholds are the domain's (``server.domain.career``); this loads the records,
decides who may ask and what each reader is shown:

- The readers are those of 帳票 2-1 就業履歴（月別計）: the worker itself, its employer (所属事業主, any of
  its IDs), and the 元請 and upper companies of a site where the worker is on the roster
  (``disclosure.sees_on_roster``). Anyone else is told the worker does not exist (404), as for its records.
- Who reads and what it counts is the policy's one answer (``Visibility.career_scope``): the worker and
  its employer count all its records (``counted: all``); a 現場管理者 of the employer and the 元請 and
  upper companies only those ``Visibility.records`` admits (``counted: visible``: a bound 現場管理者
  its sites', the others their subtrees'), as their 2-1 shows: a reader never learns days it could
  not read one by one.
- The current level and the registered trades are personal items (``level``, ``trades``, 開示設定):
  each used only for a reader the policy grants it (``disclosure.visible_items``). Without ``level`` no
  next level is named, every level's conditions are. Without ``trades`` the evaluated trade (and so
  the standard, which names its trades) is not the registered one: the trade of the newest roster
  entry the reader sees, or none (every day counted under the default standard, and the answer says
  ``?trade=`` picks one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from functools import cache
from typing import Any, Literal

from server.domain import career as rules
from server.domain.accounts import Actor
from server.domain.hierarchy import Tree
from server.domain.trades import trade_table
from server.domain.visibility import Visibility
from server.errors import InvalidInput, worker_not_found
from server.services import disclosure
from server.services.common import load_tree, site_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


def _trade(text: str) -> tuple[str, str]:
    """A trade given as ``MM-mm`` (大分類-小分類, e.g. 06-01), checked against the code table."""
    major, sep, minor = text.partition("-")
    if not sep:
        raise InvalidInput("invalid_trade_code", ja="職種は 大分類-小分類 で指定してください（例: 06-01）",
                           en="give the trade as major-minor, e.g. 06-01", value=text[:20])
    found = trade_table().get(major, minor)
    return found.major_code, found.minor_code


def _level_view(p: rules.LevelProgress) -> dict[str, Any]:
    req = p.requirement
    return {
        "level": req.level,
        "work_days_required": req.work_days,
        "years_required": rules.years(req.work_days),
        "leader_days_required": req.leader_days,
        "leadership": str(req.leadership),
        "leadership_label": rules.LEADERSHIP_LABELS[req.leadership],
        "work_days_short": p.work_days_short,
        "leader_days_short": p.leader_days_short,
        "days_met": p.met,
    }


TradeSource = Literal["query", "registered", "roster"] | None

# What the answer says of the evaluated trade when the reader did not name one it may see registered.
TRADE_NOTES: dict[TradeSource, str | None] = {
    "query": None,
    "registered": None,
    "roster": "閲覧できる作業員名簿の職種で評価しています。?trade=大分類-小分類（例: 06-01）で職種を指定できます。",
    None: "評価する職種が決まらないため、全職種の就業日を標準の能力評価基準で数えています。"
          "?trade=大分類-小分類（例: 06-01）で職種を指定できます。",
}


def _evaluated(uow: UnitOfWork, w: t.Worker, seer: Visibility, items: frozenset[str],
               entries: Callable[[], Sequence[t.RosterEntry]],
               tree_of: Callable[[int], Tree]) -> tuple[tuple[str, str] | None, TradeSource]:
    """The trade to evaluate in when none was asked: the first registered one only for a reader who may
    see ``trades`` (a personal item: the standard's name and trades would tell it otherwise); else the
    newest roster entry the reader sees (a 職種 it reads on the 作業員名簿 anyway); else none."""
    if "trades" in items:
        registered = next(iter(uow.workers.trade_codes(w.id)), None)
        if registered is not None:
            return registered, "registered"
    seen = [e for e in entries() if e.trade_major and e.trade_minor and seer.acts_on(e.site_id)
            and seer.roster(tree_of(e.site_id)).admits(site_id=e.site_id, worker_id=e.worker_id, node_id=e.node_id)]
    newest = max(seen, key=lambda e: e.id, default=None)
    if newest is None or not newest.trade_major or not newest.trade_minor:
        return None, None
    return (newest.trade_major, newest.trade_minor), "roster"


def career(ctx: Context, actor: Actor, worker_id: int, trade: str | None = None, *,
           uow: UnitOfWork | None = None) -> dict[str, Any]:
    """The worker's counted days, in the standards' years, its level (when the reader may see it) and
    what the next level (or each level) still asks; evaluated in ``trade`` (``MM-mm``), by default the
    worker's first registered trade when the reader may see it, else the trade of a roster entry it
    sees, else none (``trade_source`` says which, ``trade_note`` how to pick one)."""
    evaluated_given = _trade(trade) if trade else None
    with ctx.read(uow) as uow:
        w = uow.get(t.Worker, worker_id)
        if w is None:
            raise worker_not_found()
        seer = Visibility(actor)
        # Loaded once and only when asked: the worker and its employer never read the roster, and the
        # others stop at the first site that answers yes.
        entries = cache(lambda: uow.roster.entries_of_worker(w.id))
        tree_of = cache(lambda site_id: load_tree(uow, site_id))
        placements = ((tree_of(e.site_id), e.node_id) for e in entries() if seer.acts_on(e.site_id))
        counted = seer.career_scope(worker_id=w.id, employer_id=w.employer_id, placements=placements)
        if counted is None:
            raise worker_not_found()
        items = disclosure.visible_items(uow, actor, w) or frozenset()
        evaluated, source = ((evaluated_given, "query") if evaluated_given
                             else _evaluated(uow, w, seer, items, entries, tree_of))
        records = list(uow.records.of_worker_between(w.id, date.min, date.max))
        if counted == "visible":
            scopes = {}
            for site_id in {r.site_id for r in records}:
                site = site_or_404(uow, site_id)
                scopes[site_id] = seer.records(tree_of(site_id), site.prime_id)
            records = [r for r in records if scopes[r.site_id].admits(
                site_id=r.site_id, worker_id=r.worker_id, employer_id=r.employer_id, node_id=r.node_id)]
        level = (w.level or 1) if "level" in items else None  # not assessed yet: level 1 (white card)
        p = rules.progress(
            (rules.CareerDay(r.work_day, r.valid, r.position,
                             (r.trade_major, r.trade_minor) if r.trade_major and r.trade_minor else None)
             for r in records),
            evaluated, level)
        nxt = p.next
        return {
            "worker": {"id": w.id, "ccus_id": w.ccus_id, "name": w.name},
            "trade": {"major": evaluated[0], "minor": evaluated[1],
                      "label": trade_table().label_of(*evaluated)} if evaluated else None,
            "standard": {"key": p.standard.key, "name": p.standard.name, "source": p.standard.source},
            "trade_source": source,
            "trade_note": TRADE_NOTES[source],
            "counted": counted,
            "work_days": p.tally.work_days,
            "leader_days": p.tally.leader_days,
            "foreman_days": p.tally.foreman_days,
            "years": rules.years(p.tally.work_days),
            "days_per_year": rules.DAYS_PER_YEAR,
            "current_level": p.current_level,
            "next_level": p.next_level,
            "work_days_needed": nxt.work_days_short if nxt else None,
            "leader_days_needed": nxt.leader_days_short if nxt else None,
            "next": _level_view(nxt) if nxt else None,
            "levels": [_level_view(lp) for lp in p.levels],
            "note": "能力評価に有効な就業履歴のみ、1日1回（複数現場でも1日）で数えています。"
                    "レベルの判定には保有資格の要件もあり、CCUS登録前の経験は含みません。",
        }
