"""The safety documents of a demo-like site, printed the way a site office prints them: Excel → PDF with
LibreOffice headless → PNG with poppler's pdftoppm.

    python tests/support/render_forms.py docs/forms      (make forms-png)

builds the site through the real HTTP API on a throwaway SQLite database (a 元請, two 1次, 2次 and 3次
companies and a CCUS未登録 one, twelve workers with Japanese names on the roster, a gate and their first
taps), downloads AZ2 (as the 元請) and AZ6-a (as the 2次 company, its own 作業員名簿), converts both and
writes one PNG per printed page: the pictures README.md shows. tests/integration/test_forms_render.py uses
the same site and converters to check the PDFs.

LibreOffice runs with a private profile per call (``-env:UserInstallation``), so parallel runs do not
share one, and with ``FONTCONFIG_FILE`` pointing at fonts.conf beside this file, which maps the forms'
ＭＳ 明朝 to IPAex明朝.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

if __name__ == "__main__":  # run as a script: the repository and tests/support on the path, as pytest has them
    sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from world import TOBI, Api, Company, Session, Site  # noqa: E402

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 5, 18, 17, 0, tzinfo=JST)  # the demo's evening: a fixed clock, so the pictures do not move
FONTS_CONF = Path(__file__).with_name("fonts.conf")
TEKKIN = {"major": "10", "minor": "01"}  # 鉄筋工
TOSOU = {"major": "12", "minor": "01"}  # 塗装工
DENKI = {"major": "09", "minor": "01"}  # 電気工
DOKO = {"major": "01", "minor": "11"}  # 土工


@dataclass
class DemoSite:
    api: Api
    site: Site
    prime: Company
    firsts: list[Company]
    second: Company  # the 2次 under the first 1次: the company with the most workers
    third: Company
    workers: list[dict[str, Any]]

    def download(self, by: Session, form: str, **params: Any) -> bytes:
        r = by.call("GET", f"/sites/{self.site.id}/safety-documents/{form}", **params)
        assert r.status_code == 200, r.text
        return bytes(r.content)


# (employer key, name, kana, birth date, blood type, trade, position, insurance, qualifications, first day)
PEOPLE: list[tuple[str, str, str, str, str, dict[str, str], str, str, list[tuple[str, str]], str]] = [
    ("up", "上野 健一", "うえの けんいち", "1972-06-14", "A", TOBI, "foreman_safety", "enrolled",
     [("技能講習", "足場の組立て等作業主任者"), ("特別教育", "フルハーネス型墜落制止用器具")], "2026-04-06"),
    ("up", "岡田 翔太", "おかだ しょうた", "1996-11-02", "O", TOBI, "general", "enrolled",
     [("特別教育", "フルハーネス型墜落制止用器具")], "2026-04-06"),
    ("second", "佐々木 大輔", "ささき だいすけ", "1980-03-21", "B", TEKKIN, "foreman", "enrolled",
     [("技能講習", "玉掛け"), ("資格・免許", "1級鉄筋施工技能士"), ("特別教育", "職長・安全衛生責任者教育")],
     "2026-04-13"),
    ("second", "高橋 誠", "たかはし まこと", "1988-08-09", "A", TEKKIN, "safety_officer", "enrolled",
     [("技能講習", "玉掛け")], "2026-04-13"),
    ("second", "中村 優斗", "なかむら ゆうと", "2001-01-30", "AB", TEKKIN, "general", "not_enrolled",
     [("特別教育", "アーク溶接")], "2026-04-20"),
    ("second", "小林 和也", "こばやし かずや", "1975-12-05", "O", TEKKIN, "general", "exempt",
     [("技能講習", "小型移動式クレーン"), ("技能講習", "玉掛け")], "2026-05-11"),
    ("second", "伊藤 陽菜", "いとう ひな", "1999-04-17", "A", DOKO, "general", "enrolled", [], "2026-05-11"),
    ("third", "山本 隆", "やまもと たかし", "1968-09-23", "B", TOSOU, "foreman", "enrolled",
     [("資格・免許", "1級塗装技能士"), ("技能講習", "有機溶剤作業主任者")], "2026-05-07"),
    ("third", "加藤 蓮", "かとう れん", "1993-07-08", "O", TOSOU, "general", "enrolled", [], "2026-05-07"),
    ("denki", "吉田 修", "よしだ おさむ", "1970-02-11", "A", DENKI, "chief_engineer", "enrolled",
     [("資格・免許", "第一種電気工事士"), ("特別教育", "低圧電気取扱業務")], "2026-04-20"),
    ("denki", "山田 悠真", "やまだ ゆうま", "1998-10-26", "AB", DENKI, "general", "enrolled",
     [("資格・免許", "第二種電気工事士"), ("特別教育", "高所作業車（10m未満）")], "2026-04-27"),
    ("kohoku", "斎藤 剛", "さいとう つよし", "1984-05-19", "B", DENKI, "foreman", "unknown",
     [("資格・免許", "第一種電気工事士")], "2026-05-11"),
]
ADDRESSES = ["東京都江東区豊洲三丁目2番20号", "神奈川県川崎市中原区新丸子町915", "埼玉県川口市本町四丁目1番8号",
             "千葉県船橋市本町一丁目3番1号", "東京都大田区蒲田五丁目13番14号", "東京都足立区千住旭町40番"]


def build_demo(api: Api) -> DemoSite:
    """The demo site, through the API only. Sets the server's clock to ``NOW``."""
    api.ctx.clock = lambda: NOW.astimezone(UTC)
    prime = api.company("基本建設(株)")
    site = api.site(prime, "虎ノ門一丁目ビル新築工事", address="東京都港区虎ノ門一丁目17番1号")
    up = api.company("アップ一級工務店(株)")
    denki = api.company("東京電設(株)")
    second = api.company("サン二次工業(株)")
    kohoku = api.company("港北電工(有)")
    third = api.company("首都塗装(株)")
    n_up = api.invite(site, prime, site.root, up)
    api.approve(up, n_up, "躯体工事")
    n_denki = api.invite(site, prime, site.root, denki)
    api.approve(denki, n_denki, "電気設備工事")
    n_second = api.invite(site, up, n_up, second)
    api.approve(second, n_second, "鉄筋工事")
    n_third = api.invite(site, second, n_second, third)
    api.approve(third, n_third, "塗装工事")
    api.placeholder(site, up, n_up, "丸山鳶工業")
    n_kohoku = api.invite(site, denki, n_denki, kohoku)
    api.approve(kohoku, n_kohoku, "電気工事")
    employers = {"up": up, "second": second, "third": third, "denki": denki, "kohoku": kohoku}

    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-demo", "name": "正門"}, status=201)
    from protocol.messages import Card, TapEvent
    from server.services import ingest

    workers = []
    for i, (key, name, kana, birth, blood, trade, position, insured, quals, first_day) in enumerate(PEOPLE):
        employer = employers[key]
        w = api.worker(employer, name, trades=[trade], name_kana=kana, birth_date=birth, blood_type=blood,
                       address=ADDRESSES[i % len(ADDRESSES)], phone=f"090-{1200 + i * 37:04d}-{5600 + i * 91:04d}",
                       health_insurance=insured, pension_insurance=insured,
                       employment_insurance="exempt" if position == "chief_engineer" else insured,
                       kentaikyo="enrolled" if insured == "enrolled" else "not_enrolled",
                       qualifications=[{"category": c, "name": n} for c, n in quals])
        checks = ["organic_solvent"] if trade == TOSOU else (["dust"] if trade == DOKO else [])
        api.on_roster(site, employer, w, trade=trade, position=position, health_checks=checks,
                      qualification_ids=[q["id"] for q in w["qualifications"]])
        uid = f"0114D0E0F0{i:06d}"
        employer.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uid}, status=201)
        at = datetime.fromisoformat(first_day).replace(hour=7, minute=50 + i % 8, tzinfo=JST)
        event = TapEvent(device_id="gate-demo", buffer_id="de" * 16, seq=i + 1, card=Card(tech="felica", uid=uid),
                         direction="in", at=at, clock_synced=True, boot_id="demo", mono_ms=1000 + i)
        ingest.ingest_taps(api.ctx, "gate-demo", [event])
        workers.append(w)
    return DemoSite(api, site, prime, [up, denki], second, third, workers)


# -- converting ------------------------------------------------------------------------------------------


def to_pdf(xlsx: Path, outdir: Path) -> Path:
    """The workbook as LibreOffice prints it (print area, paper, scaling, repeated rows as set in the file)."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise RuntimeError("LibreOffice (soffice) is not installed: run `make system-deps` as root")
    with tempfile.TemporaryDirectory(prefix="genba-soffice-") as profile:
        env = dict(os.environ, FONTCONFIG_FILE=str(FONTS_CONF), HOME=profile)
        subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
                        "--convert-to", "pdf", "--outdir", str(outdir), str(xlsx)],
                       check=True, capture_output=True, env=env, timeout=180)
    pdf = outdir / (xlsx.stem + ".pdf")
    if not pdf.exists():
        raise RuntimeError(f"LibreOffice wrote no PDF for {xlsx}")
    return pdf


def pdf_info(pdf: Path) -> dict[str, str]:
    """pdfinfo's fields (Pages, Page size, …)."""
    out = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def pdf_text(pdf: Path, page: int | None = None) -> str:
    """The PDF's text (one page's when ``page`` is given), as pdftotext lays it out: a cell's text stays
    on its line (without ``-layout`` the spaced title 作　業　員　名　簿 comes out scattered)."""
    pages = ["-f", str(page), "-l", str(page)] if page is not None else []
    return subprocess.run(["pdftotext", "-layout", *pages, str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def to_pngs(pdf: Path, outdir: Path, stem: str, dpi: int) -> list[Path]:
    """One PNG per page: ``stem-1.png``, ``stem-2.png``, …"""
    for old in outdir.glob(f"{stem}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(outdir / stem)], check=True)
    pages = sorted(outdir.glob(f"{stem}-*.png"))
    for p in pages:  # pdftoppm pads the page number to the count's width: az2-01 when 10+ pages
        p.rename(outdir / f"{stem}-{int(p.stem.rsplit('-', 1)[1])}.png")
    return sorted(outdir.glob(f"{stem}-*.png"))


# Resolution per form: A3 (AZ2) at 110 dpi and A4 (AZ6-a) at 150 dpi come out at about the same pixel
# size (1,800 × 1,250), large enough to read the small print and under 300 KB a page for the README.
FORMS = (("az2", "az2", "A3", 110), ("az6-a", "az6-a", "A4", 150))


def render(out: Path, work: Path) -> list[Path]:
    """Build the demo site on a fresh database under ``work`` and write the forms' PNGs into ``out``."""
    from fastapi.testclient import TestClient

    from server.api.app import create_app
    from server.services.context import Context
    from server.store import migrate
    from server.store.database import Store

    url = f"sqlite:///{work / 'genba.db'}"
    migrate.upgrade(url)
    ctx = Context(Store(url), fast_hashing=True)
    written: list[Path] = []
    try:
        with TestClient(create_app(ctx)) as client:
            demo = build_demo(Api.bootstrap(client, ctx))
            files = {"az2": demo.download(demo.prime.owner, "az2"),
                     "az6-a": demo.download(demo.second.owner, "az6-a")}
        out.mkdir(parents=True, exist_ok=True)
        for form, stem, _paper, dpi in FORMS:
            xlsx = work / f"{stem}.xlsx"
            xlsx.write_bytes(files[form])
            written += to_pngs(to_pdf(xlsx, work), out, stem, dpi)
    finally:
        ctx.store.dispose()
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "docs/forms")
    with tempfile.TemporaryDirectory(prefix="genba-forms-") as work:
        for p in render(out, Path(work)):
            print(f"{p}  {p.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
