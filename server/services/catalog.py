"""The 帳票 by the names the site office types: ``genba-server report NAME --site 現場ID …``.

Each entry names a report once (its slug, the seed's 帳票NO and title), says what it is about (a site,
a worker or a company, named by the CCUS ID staff know), whether it needs a month and whether it
takes a company on the site (the safety documents of one subcontractor), and calls the report's own
service, so the CLI and the API open the same reports through the same visibility policy. A tabular
report comes back as a ``Tabular`` (``server.exports.report``: JSON, CSV or Excel), a safety document
as a ``Form`` (``server.forms.layout``: Excel laid out as the printed form only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from server.domain import ids
from server.domain.accounts import Actor
from server.errors import NotFound
from server.exports.report import Tabular
from server.forms.layout import Form
from server.services import (
    attendance_reports,
    calendars,
    company_reports,
    ledgers,
    safety_documents,
    site_reports,
    sites,
    worker_reports,
)
from server.services.context import Context
from server.store.unit_of_work import UnitOfWork

Subject = Literal["site", "worker", "company"]
SUBJECT_LABELS: dict[Subject, str] = {"site": "現場ID", "worker": "技能者ID", "company": "事業者ID"}


@dataclass(frozen=True)
class Asked:
    """What the caller named: the subject's internal number, the month, a company on the site."""

    subject_id: int
    month: str = ""
    company_id: int | None = None


@dataclass(frozen=True)
class ReportSpec:
    """One report as the CLI offers it."""

    name: str  # what staff type: "attendance-calendar"
    number: str  # the seed's 帳票NO ("-" for what the seed's table does not number)
    title: str
    subject: Subject
    make: Callable[[Context, Actor, Asked], Tabular | Form]
    needs_month: bool = False
    takes_company: bool = False  # a safety document of one company on the site (default: the caller's)

    @property
    def is_form(self) -> bool:
        return self.number.startswith("AZ")


REPORTS: dict[str, ReportSpec] = {
    spec.name: spec for spec in (
        ReportSpec("worker-profile", "1-1", "技能者情報", "worker",
                   lambda ctx, actor, a: worker_reports.worker_profile(ctx, actor, a.subject_id)),
        ReportSpec("company-workers", "1-2", "所属技能者一覧", "company",
                   lambda ctx, actor, a: worker_reports.company_workers(ctx, actor, a.subject_id)),
        ReportSpec("worker-statistics", "1-3", "所属技能者統計情報", "company",
                   lambda ctx, actor, a: worker_reports.company_statistics(ctx, actor, a.subject_id)),
        ReportSpec("roster", "1-4", "施工体制登録技能者一覧", "site",
                   lambda ctx, actor, a: worker_reports.site_workers(ctx, actor, a.subject_id)),
        ReportSpec("attendance-totals", "2-1", attendance_reports.TOTALS_TITLE, "site",
                   lambda ctx, actor, a: attendance_reports.site_totals(ctx, actor, a.subject_id, a.month),
                   needs_month=True),
        ReportSpec("worker-totals", "2-1", attendance_reports.TOTALS_TITLE, "worker",
                   lambda ctx, actor, a: attendance_reports.worker_totals(ctx, actor, a.subject_id, a.month),
                   needs_month=True),
        ReportSpec("attendance-list", "2-2", attendance_reports.LIST_TITLE, "site",
                   lambda ctx, actor, a: attendance_reports.site_list(ctx, actor, a.subject_id, a.month),
                   needs_month=True),
        ReportSpec("attendance-calendar", "2-4", calendars.SITE_TITLE, "site",
                   lambda ctx, actor, a: calendars.site_calendar(ctx, actor, a.subject_id, a.month), needs_month=True),
        ReportSpec("worker-calendar", "2-3", calendars.WORKER_TITLE, "worker",
                   lambda ctx, actor, a: calendars.worker_calendar(ctx, actor, a.subject_id, a.month),
                   needs_month=True),
        ReportSpec("company-profile", "3-1", site_reports.PROFILE_TITLE, "company",
                   lambda ctx, actor, a: site_reports.company_profile(ctx, actor, a.subject_id)),
        ReportSpec("subcontractors", "3-2", company_reports.TITLES["3-2"], "site",
                   lambda ctx, actor, a: company_reports.subcontractors(ctx, actor, a.subject_id)),
        ReportSpec("companies", "3-3", company_reports.TITLES["3-3"], "site",
                   lambda ctx, actor, a: company_reports.companies(ctx, actor, a.subject_id)),
        ReportSpec("site", "4-1", site_reports.SITE_TITLE, "site",
                   lambda ctx, actor, a: site_reports.site_info(ctx, actor, a.subject_id)),
        ReportSpec("company-sites", "4-2", site_reports.SITES_TITLE, "company",
                   lambda ctx, actor, a: site_reports.company_sites(ctx, actor, a.subject_id)),
        ReportSpec("site-fee", "-", site_reports.FEE_TITLE, "site",
                   lambda ctx, actor, a: site_reports.site_fee(ctx, actor, a.subject_id, a.month), needs_month=True),
        ReportSpec("az1", "AZ1", "施工体制台帳", "site",
                   lambda ctx, actor, a: ledgers.construction_ledger(ctx, actor, a.subject_id)),
        ReportSpec("az2", "AZ2", "工事作業所災害防止協議会兼施工体系図", "site",
                   lambda ctx, actor, a: safety_documents.safety_chart(ctx, actor, a.subject_id)),
        ReportSpec("az3", "AZ3", "施工体制台帳（工事担当技術者）", "site",
                   lambda ctx, actor, a: ledgers.ledger_engineers(ctx, actor, a.subject_id)),
        ReportSpec("az4", "AZ4", "下請負業者編成表", "site",
                   lambda ctx, actor, a: ledgers.subcontractor_chart(ctx, actor, a.subject_id)),
        ReportSpec("az5", "AZ5", "再下請負通知書（変更届）", "site",
                   lambda ctx, actor, a: ledgers.subcontract_notices(ctx, actor, a.subject_id, a.company_id),
                   takes_company=True),
        ReportSpec("az6-a", "AZ6-a", "作業員名簿", "site",
                   lambda ctx, actor, a: safety_documents.worker_roster(ctx, actor, a.subject_id, a.company_id,
                                                                        variant="a"), takes_company=True),
        ReportSpec("az6-b", "AZ6-b", "作業員名簿（社会保険加入状況について組込版）", "site",
                   lambda ctx, actor, a: safety_documents.worker_roster(ctx, actor, a.subject_id, a.company_id,
                                                                        variant="b"), takes_company=True),
        ReportSpec("az7", "AZ7", "社会保険加入状況", "site",
                   lambda ctx, actor, a: safety_documents.social_insurance(ctx, actor, a.subject_id, a.company_id),
                   takes_company=True),
    )
}


def subject_id(ctx: Context, subject: Subject, ccus: str, *, uow: UnitOfWork | None = None) -> int:
    """The internal number of the site, worker or company registered under this CCUS ID."""
    if subject == "site":
        return sites.site_id_of(ctx, ccus, uow=uow)
    code = ids.ccus_id(subject, ccus)
    with ctx.read(uow) as uow:
        if subject == "worker":
            worker = uow.workers.by_ccus_id(code)
            found = worker.id if worker is not None else None
        else:
            found = uow.companies.id_of(code)
    if found is None:
        label = SUBJECT_LABELS[subject]
        raise NotFound(f"{subject}_not_found", ja=f"{label} {code} は登録されていません",
                       en=f"no {subject} with CCUS ID {code}", ccus_id=code)
    return found
