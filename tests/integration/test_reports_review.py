"""An attacker's review of the 帳票 (issue 18): each test shows one way a report tells a party more than
the seed's table (閲覧や帳票の出力ができる者, and the 開示設定 of a worker's personal items) lets it, or
breaks on hostile input. Each reads like the flow that finds it:

    (株)審査建設 (元請) ── 審査設備(株) (1次, the employer) on レビュー本社ビル
    (株)別元請 (元請)   ── 審査設備(株) (1次) on レビュー倉庫
    審査設備(株) employs 審査 一郎 (レベル3, trades 電工 then とび工, on both rosters as とび工) and nobody
    else; its 現場管理者 is bound to レビュー倉庫 only. 一郎 tapped at the 本社ビル on 2, 3, 4 November and
    at the 倉庫 on 5 and 6 November.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from world import DENKI, TOBI, Api, Company, Session, Site

from protocol.messages import Card, TapEvent
from server import importer
from server.services import ingest

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 25, 21, 0, tzinfo=JST)
BUF = "cb" * 16
_seq = count(1)


@dataclass
class Review:
    api: Api
    prime: Company
    employer: Company
    other_prime: Company
    site: Site
    other: Site
    worker: dict[str, Any]
    manager: Session  # the employer's 現場管理者, bound to レビュー倉庫 only

    @property
    def career(self) -> str:
        return f"/workers/{self.worker['id']}/career"


def _tap(api: Api, device: str, uid: str, day: int) -> None:
    event = TapEvent(device_id=device, buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=uid),
                     direction="in", at=datetime(2026, 11, day, 7, 30, tzinfo=JST), clock_synced=True,
                     boot_id="boot-r", mono_ms=next(_seq) * 1000)
    assert ingest.ingest_taps(api.ctx, device, [event])[0].outcome == "recorded"


@pytest.fixture
def review(api: Api) -> Review:
    api.ctx.clock = lambda: NOW.astimezone(UTC)  # the server takes taps only near its own time
    prime, employer, other_prime = (api.company(n) for n in ("(株)審査建設", "審査設備(株)", "(株)別元請"))
    site = api.site(prime, name="レビュー本社ビル")
    other = api.site(other_prime, name="レビュー倉庫")
    api.registered(site, prime, site.root, employer)
    api.registered(other, other_prime, other.root, employer)
    for owner, s, device in ((prime, site, "gate-r1"), (other_prime, other, "gate-r2")):
        owner.owner.ok("POST", f"/sites/{s.id}/devices", {"device_id": device, "name": device}, status=201)
    worker = api.worker(employer, "審査 一郎", trades=[DENKI, TOBI], level=3, kentaikyo="enrolled")
    uid = "0114CB00000000B1"
    employer.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": uid}, status=201)
    api.on_roster(site, employer, worker, trade=TOBI)
    api.on_roster(other, employer, worker, trade=TOBI)
    for device, days in (("gate-r1", (2, 3, 4)), ("gate-r2", (5, 6))):
        for day in days:
            _tap(api, device, uid, day)
    manager = api.staff(employer, "site_manager", site_ids=[other.id])
    return Review(api, prime, employer, other_prime, site, other, worker, manager)


# -- 1. leaks ---------------------------------------------------------------------------------------------


def test_a_site_manager_bound_to_one_site_is_not_told_the_workers_days_on_other_sites_by_the_career(
        review: Review) -> None:
    """The employer's 現場管理者 acts only on レビュー倉庫: its 2-1 of the worker shows the 倉庫's two days.
    The career must not count the three 本社ビル days it may not read one by one."""
    totals = review.manager.ok("GET", f"/workers/{review.worker['id']}/reports/attendance-totals", month="2026-11")
    assert [s["site"]["id"] for s in totals["sites"]] == [review.other.id]
    assert totals["summary"]["work_days"] == 2
    c = review.manager.ok("GET", review.career, trade="06-01")  # his days are とび工
    assert c["work_days"] <= totals["summary"]["work_days"], c  # today: 5, "counted": "all"


def test_the_prime_is_not_told_the_workers_undisclosed_registered_trade_by_the_career(review: Review) -> None:
    """一郎's registered 職種 (電工 first, then とび工) is a personal item he has not disclosed; the 元請 sees
    only his roster entry's とび工. Asked without ?trade=, the career names the first registered trade."""
    seen = review.prime.owner.ok("GET", f"/workers/{review.worker['id']}")
    assert "trades" not in seen["visible_items"]
    c = review.prime.owner.ok("GET", review.career)
    assert c["trade"] is None or (c["trade"]["major"], c["trade"]["minor"]) == ("06", "01"), c["trade"]


def test_statistics_do_not_tell_the_prime_an_undisclosed_level_of_a_one_worker_subcontractor(
        review: Review) -> None:
    """1-3 所属技能者統計情報 is the 元請's to open, but 審査設備 has one worker: a count of 1 under
    レベル3 (and under 建退共 加入, 電工) is 一郎's undisclosed level (and 建退共, trades) by name."""
    seen = review.prime.owner.ok("GET", f"/workers/{review.worker['id']}")
    assert not {"level", "kentaikyo", "trades"} & set(seen["visible_items"])
    stats = review.prime.owner.ok("GET", f"/companies/{review.employer.id}/reports/worker-statistics")
    assert stats["summary"]["workers"] == 1
    groups = {g["key"]: {c["value"]: c["workers"] for c in g["counts"]} for g in stats["groups"]}
    revealed = {key: values for key, values in groups.items()
                if key in ("level", "kentaikyo", "trades")
                and any(n and value not in ("非開示", "レベル未登録", "職種未登録") for value, n in values.items())}
    assert revealed == {}, revealed  # today: レベル3: 1, 建退共 加入: 1, 電工 / 電気工: 1


# -- 3. hostile input -------------------------------------------------------------------------------------


def test_a_name_imported_from_a_ccus_csv_with_a_control_character_still_exports_to_excel(review: Review) -> None:
    """The API refuses control characters in names, and so does the CCUS CSV import now; but a worker
    imported before it did keeps his vertical tab (0x0B), and openpyxl refuses to write it
    (IllegalCharacterError): the employer's 1-2 所属技能者一覧 in Excel was a 200 whose body was no file, and
    the AZ6 作業員名簿 a server error. Every Excel file shows the name with 〓 where the control was."""
    text = ("技能者ID,氏名,氏名（カナ）,所属事業者ID,生年月日,レベル,健康保険,年金保険,雇用保険,建退共,職種,資格\n"
            f"20000000000777,\"審査\x0b二郎\",シンサ ジロウ,{review.employer.ccus_id},1990-01-01,,,,,,06-01,\n")
    with pytest.raises(importer.ImportFailed) as refused:
        importer.import_csv(review.api.ctx, "workers", io.StringIO(text, newline=""))
    assert [(p.line, p.code) for p in refused.value.problems] == [(2, "control_character")]
    assert "氏名" in refused.value.problems[0].message and "U+000B" in refused.value.problems[0].message

    # The name as an import before the rule stored it: straight into the worker's row.
    jiro = review.api.worker(review.employer, "審査 二郎", trades=[TOBI])
    review.api.on_roster(review.site, review.employer, jiro, trade=TOBI)
    with review.api.ctx.write() as uow:
        (row,) = uow.workers.by_ids([jiro["id"]])
        row.name = "審査\x0b二郎"
    listed = review.employer.owner.ok("GET", f"/companies/{review.employer.id}/reports/workers")
    assert any("\x0b" in w["name"] for w in listed["workers"])  # stored as the CSV gave it
    r = review.employer.owner.call("GET", f"/companies/{review.employer.id}/reports/workers", format="xlsx")
    assert r.status_code == 200, f"{r.status_code}: {r.text[:200]}"
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert sheet is not None
    names = [row[2] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert "審査〓二郎" in names, names
    r = review.employer.owner.call("GET", f"/sites/{review.site.id}/safety-documents/az6-a")
    assert r.status_code == 200, f"{r.status_code}: {r.text[:200]}"
    form = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert form is not None
    assert "審査〓二郎" in [c for line in form.iter_rows(values_only=True) for c in line], "no 二郎 on the roster"


def test_the_cli_report_file_with_personal_items_follows_the_umask(tmp_path: Path) -> None:
    """`genba-server report` writes 生年月日, 住所 and the like; with umask 077 the office expects a file
    only its own user reads. The atomic writer chmods every report to 0644 (world-readable)."""
    from server.cli import _write_atomically

    out = tmp_path / "技能者情報_80000000000001.csv"
    old = os.umask(0o077)
    try:
        _write_atomically(str(out), iter([b"\xef\xbb\xbf\xe9\xa0\x85\xe7\x9b\xae\r\n"]))
    finally:
        os.umask(old)
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)  # today: 0o644
