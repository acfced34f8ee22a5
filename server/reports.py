"""Text reports for the site office and the demo: the day's 就業履歴 as a fixed-width table.

Japanese is double width in a terminal, so columns are padded by display width (East Asian
Width), not by len()."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date, datetime

from server.domain.accounts import Actor, Role
from server.domain.attendance import parse_time_zone
from server.services import attendance, corrections, devices
from server.services.common import site_or_404
from server.services.context import Context


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, cells: int) -> str:
    return text + " " * max(0, cells - width(text))


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(pad(h, w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(pad(c, w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(x.rstrip() for x in out)


def zone_label(name: str, day: date) -> str:
    """The site's zone as staff read it: its name and the offset on that day ("Asia/Tokyo UTC+09:00")."""
    offset = datetime.combine(day, datetime.min.time(), parse_time_zone(name)).strftime("%z")
    return f"{name} UTC{offset[:3]}:{offset[3:]}"


def _hm(iso: str | None, day: date) -> str:
    if iso is None:
        return "--:--"
    at = datetime.fromisoformat(iso)  # the services give times in the site's zone, with its offset
    return at.strftime("%H:%M") if at.date() == day else at.strftime("%m/%d %H:%M")


def attendance_table(ctx: Context, site_id: int, day: date | None = None) -> str:
    """The whole site's day, as the 元請 sees it (this runs on the server, with its database)."""
    as_prime = _prime_actor(ctx, site_id)
    data = attendance.site_day(ctx, as_prime, site_id, day)  # no day: the site's current work day
    day = date.fromisoformat(data["work_day"])
    rows = []
    for r in data["records"]:
        reasons = "、".join(x["message"] for x in r["invalid_reasons"])
        rows.append([
            r["worker"]["name"],
            (r["employer"] or {}).get("name", ""),
            "" if r["tier"] is None else str(r["tier"]),
            r["trade"]["label"] if r["trade"] else "-",
            r["position_label"] or "-",
            _hm(r["entry_at"], day),
            _hm(r["exit_at"], day) + ("*" if r["corrected"] else ""),
            str(r["tap_count"]),
            "有効" if r["valid_for_skill_evaluation"] else f"無効（{reasons}）",
        ])
    head = (f"就業履歴 {data['site']['name']}  就業日 {day.isoformat()}（日付の区切り {data['site']['day_boundary']}、"
            f"時刻は {zone_label(data['site']['time_zone'], day)}）")
    body = table(["技能者", "所属", "次", "職種", "立場", "入場", "退場", "打刻", "能力評価"], rows) if rows \
        else "（記録なし）"
    summary = data["summary"]
    total = (f"計 {summary['workers']}名（有効 {summary['valid']}、無効 {summary['invalid']}、"
             f"退場なし {summary['no_exit']}）")
    lines = [head, "", body, "", total]
    if any(r["corrected"] for r in data["records"]):
        lines.append("* 事後補正（承認済み）による時刻")
    unlinked = data.get("unlinked_cards") or []
    if unlinked:
        lines += ["", "未登録カード（技能者に紐付いていないカードの打刻。カードを登録すると就業履歴になります）:"]
        lines += [f"  {c['card_uid']} ({c['tech']})  {c['taps']}回  {_hm(c['first_at'], day)}〜{_hm(c['last_at'], day)}"
                  for c in unlinked]
    if data.get("pending_corrections"):
        lines.append(f"承認待ちの事後補正: {data['pending_corrections']}件")
    return "\n".join(lines)


def _prime_actor(ctx: Context, site_id: int) -> Actor:
    with ctx.read() as uow:
        return Actor(account_id=0, role=Role.COMPANY_OWNER, company_id=site_or_404(uow, site_id).prime_id)


def month_table(ctx: Context, site_id: int, month: str) -> str:
    """A month on the site: per worker the days on site, the days that count, the leader days."""
    data = attendance.site_month(ctx, _prime_actor(ctx, site_id), site_id, month)
    rows = [[w["worker"]["name"], (w["employer"] or {}).get("name", ""),
             "" if w["tier"] is None else str(w["tier"]), str(w["days"]), str(w["valid_days"]), str(w["leader_days"])]
            for w in data["workers"]]
    body = table(["技能者", "所属", "次", "就業日数", "うち有効", "職長・班長"], rows) if rows else "（記録なし）"
    return (f"就業履歴 {data['site']['name']}  {data['month']}\n\n{body}\n\n"
            f"計 {data['summary']['workers']}名、現場利用料の対象 {data['summary']['site_fee_days']}人日")


def devices_table(ctx: Context, site_id: int) -> str:
    """The site's gates and what each last said: online, unsent taps, reader, clock."""
    rows = []
    for d in devices.list_for_site(ctx, _prime_actor(ctx, site_id), site_id, include_retired=True):
        rows.append([d["device_id"], d["name"], {"in": "入場", "out": "退場", "auto": "自動"}[d["direction"]],
                     d["state_label"], _hm(d["last_seen_at"], date.min) if d["last_seen_at"] else "-",
                     "-" if d["buffer_depth"] is None else str(d["buffer_depth"]),
                     d["reader"] or "-", {True: "同期", False: "未同期", None: "-"}[d["clock_synced"]]])
    if not rows:
        return "入退場デバイスは登録されていません"
    return table(["デバイス", "名前", "方向", "状態", "最終受信", "未送信", "リーダー", "時刻"], rows)


def corrections_table(ctx: Context, site_id: int, state: str | None = "pending") -> str:
    """事後補正 on the site (pending by default): what the 元請 has to decide."""
    rows = []
    for c in corrections.list_corrections(ctx, _prime_actor(ctx, site_id), site_id, state):
        day = date.fromisoformat(c["work_day"])
        rows.append([str(c["id"]), c["work_day"], c["worker"]["name"],
                     _hm(c["entry_at"], day) if c["entry_at"] else "-", _hm(c["exit_at"], day) if c["exit_at"] else "-",
                     c["state_label"], c["reason"], c["submitted_by"] or "-"])
    if not rows:
        return "該当する事後補正はありません"
    return table(["番号", "就業日", "技能者", "入場", "退場", "状態", "理由", "申請者"], rows)
