"""The safety documents as a site office prints them: the workbooks the API serves, converted to PDF by
LibreOffice headless (tests/support/render_forms.py, the same converter that draws docs/forms/*.png), come
out on the paper they ask for, with the title, the site's 現場ID, every company and every worker readable in
the PDF's text, and a long 作業員名簿 repeats its title rows on the second page."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from render_forms import build_demo, pdf_info, pdf_text, to_pdf
from world import Api

from server.forms import az6, layout

pytestmark = pytest.mark.slow


def squeeze(text: str) -> str:
    """Text without any white space: pdftotext lays Japanese out with spaces of its own."""
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("backend", ["sqlite"])  # what is drawn does not depend on the database
def test_the_safety_chart_prints_on_one_a3_landscape_page_with_every_company(api: Api, tmp_path: Path) -> None:
    demo = build_demo(api)
    xlsx = tmp_path / "az2.xlsx"
    xlsx.write_bytes(demo.download(demo.prime.owner, "az2"))
    pdf = to_pdf(xlsx, tmp_path)
    info = pdf_info(pdf)
    assert info["Pages"] == "1" and info["Page size"].endswith("(A3)")
    width, height = (float(v) for v in re.findall(r"[\d.]+", info["Page size"])[:2])
    assert width > height  # landscape
    text = squeeze(pdf_text(pdf))
    assert "工事作業所災害防止協議会兼施工体系図" in text and demo.site.ccus_id in text
    for company in (demo.prime, *demo.firsts, demo.second, demo.third):
        assert company.name in text and company.ccus_id in text
    assert "丸山鳶工業" in text and "CCUS未登録" in text and "安全衛生責任者" in text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_worker_roster_prints_on_a4_landscape_with_each_worker(api: Api, tmp_path: Path) -> None:
    demo = build_demo(api)
    xlsx = tmp_path / "az6-a.xlsx"
    xlsx.write_bytes(demo.download(demo.second.owner, "az6-a"))
    pdf = to_pdf(xlsx, tmp_path)
    info = pdf_info(pdf)
    assert info["Pages"] == "1" and info["Page size"].endswith("(A4)")
    text = squeeze(pdf_text(pdf))
    assert "作業員名簿" in text and "全建統一様式第5号" in text and demo.site.ccus_id in text
    assert demo.second.ccus_id in text and demo.firsts[0].name in text
    mine = [w for w in demo.workers if w["employer_id"] == demo.second.id]
    assert len(mine) == 5
    for w in mine:
        assert squeeze(w["name"]) in text and w["ccus_id"] in text


def test_a_long_roster_prints_its_title_rows_again_on_the_second_page(tmp_path: Path) -> None:
    workers = [az6.WorkerLine(name=f"作業員 {n:02d}", ccus_id=f"8{n:013d}") for n in range(1, 16)]
    first_tier = az6.Party("一次工業(株)", "10000000000002", 1)
    doc = az6.WorkerRoster("a", "長い名簿の現場", "40000000000099", "元請建設(株)", first_tier, first_tier,
                           date(2026, 5, 18), workers)
    xlsx = tmp_path / "long.xlsx"
    xlsx.write_bytes(layout.to_bytes(doc.workbook()))
    pdf = to_pdf(xlsx, tmp_path)
    assert pdf_info(pdf)["Pages"] == "2"
    first, second = squeeze(pdf_text(pdf, 1)), squeeze(pdf_text(pdf, 2))
    for page in (first, second):
        assert "作業員名簿" in page and "40000000000099" in page and "技能者ID" in page
    assert "作業員12" in first and "作業員13" not in first
    assert "作業員13" in second and "作業員15" in second
