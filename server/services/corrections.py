"""事後補正 / 直接入力: a worker or the employer asks until the end of the next month, the 元請 decides;
an approved correction is applied by rebuilding the record (services.records)."""


from __future__ import annotations

from datetime import date, datetime
from typing import Any

from server.domain import attendance as rules
from server.domain.accounts import Actor, Role
from server.domain.visibility import Visibility
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, site_not_found, worker_not_found
from server.services.common import as_aware, audit, site_or_404, snapshot, worker_or_404
from server.services.context import Context
from server.services.records import current_record, local_time, rebuild, rule_of, utc
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

STATE_LABELS = {"pending": "申請中", "approved": "承認", "rejected": "否認"}


def correction_view(uow: UnitOfWork, c: t.Correction, rule: rules.DayRule) -> dict[str, Any]:
    names = {a.id: a.display_name for a in (uow.get(t.Account, i) for i in {c.submitted_by, c.decided_by} - {None})
             if a is not None}
    return {
        "id": c.id,
        "site_id": c.site_id,
        "worker_id": c.worker_id,
        "worker": {"id": c.worker_id, "name": worker.name if (worker := uow.get(t.Worker, c.worker_id)) else None},
        "work_day": c.work_day.isoformat(),
        "entry_at": local_time(c.entry_at, rule),
        "exit_at": local_time(c.exit_at, rule),
        "reason": c.reason,
        "state": c.state,
        "state_label": STATE_LABELS[c.state],
        "submitted_by": names.get(c.submitted_by) if c.submitted_by else None,
        "submitted_at": local_time(c.submitted_at, rule),
        "decided_by": names.get(c.decided_by) if c.decided_by else None,
        "decided_at": local_time(c.decided_at, rule),
        "comment": c.comment,
        "deadline": rules.correction_deadline(c.work_day).isoformat(),
    }


def _text(label_ja: str, value: str | None, limit: int, required: bool) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise InvalidInput("text_required", ja=f"{label_ja}を入力してください", en=f"{label_ja} is required")
        return None
    if len(value) > limit:
        raise InvalidInput("text_too_long", ja=f"{label_ja}は{limit}文字以内です", en=f"at most {limit} characters")
    return value


def submit_correction(ctx: Context, actor: Actor, site_id: int, worker_id: int, day: date,
                      entry_at: datetime | None, exit_at: datetime | None, reason: str, *,
                      uow: UnitOfWork | None = None) -> dict[str, Any]:
    """The worker or the employer asks; until the end of the month after the work day."""
    reason_text = _text("補正理由", reason, 500, required=True)
    with ctx.write(uow) as uow:
        site = site_or_404(uow, site_id)
        worker = worker_or_404(uow, worker_id)
        try:
            rules.check_may_submit(actor, worker.id, worker.employer_id, site.id)
        except Forbidden:
            raise worker_not_found() from None  # a stranger is not told the worker exists
        rule = rule_of(site)
        has_record = uow.records.id_of(site.id, worker.id, day)
        if has_record is None and not uow.roster.is_on_roster(site.id, worker.id):
            raise site_not_found()  # neither a record nor a roster entry: nothing to correct on this site
        rules.check_correction_window(day, ctx.now(), rule)
        rules.check_correction(day, entry_at, exit_at, rule, ctx.now())
        rules.check_corrected_record(rules.corrected(current_record(uow, site, worker.id, day), worker.id, site.id, day,
                                                     entry_at, exit_at))
        if uow.records.pending_correction_id(site.id, worker.id, day):
            raise Conflict("correction_pending",
                           ja="この就業日には承認待ちの事後補正があります。元請の判断を待つか、取り下げてください",
                           en="a correction for this day is already waiting for a decision")
        c = t.Correction(site_id=site.id, worker_id=worker.id, work_day=day,
                         entry_at=utc(entry_at) if entry_at else None, exit_at=utc(exit_at) if exit_at else None,
                         reason=reason_text, state="pending", submitted_by=actor.account_id,
                         submitted_by_company_id=actor.company_id, submitted_at=ctx.now())
        uow.add(c)
        uow.flush()
        audit(ctx, uow, actor, "correction.submit", "correction", c.id, after=snapshot(c), site_id=site.id)
        return correction_view(uow, c, rule)


def decide_correction(ctx: Context, actor: Actor, correction_id: int, approve: bool,
                      comment: str | None, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """The 元請 approves (the record changes, keeping what the gates said) or rejects with a comment."""
    comment_text = _text("コメント", comment, 500, required=not approve)
    with ctx.write(uow) as uow:
        c = uow.get(t.Correction, correction_id, lock=True)
        if c is None:
            raise NotFound("correction_not_found", ja="事後補正が見つかりません", en="no such correction")
        site = site_or_404(uow, c.site_id)
        rules.check_may_decide(actor, site.prime_id, site.id)
        if c.state != "pending":
            raise Conflict("correction_decided", ja=f"この事後補正はすでに{STATE_LABELS[c.state]}されています",
                           en=f"this correction is already {c.state}")
        if approve:  # the record may have moved since it was asked (a later tap, another correction)
            rules.check_corrected_record(rules.corrected(
                current_record(uow, site, c.worker_id, c.work_day), c.worker_id, site.id, c.work_day,
                as_aware(c.entry_at) if c.entry_at else None, as_aware(c.exit_at) if c.exit_at else None))
        before = snapshot(c)
        c.state = "approved" if approve else "rejected"
        c.decided_by, c.decided_at, c.comment = actor.account_id, ctx.now(), comment_text
        uow.flush()
        if approve:
            rebuild(uow, site, c.worker_id, c.work_day, ctx.now())
        audit(ctx, uow, actor, f"correction.{c.state}", "correction", c.id, before, snapshot(c), site_id=site.id)
        return correction_view(uow, c, rule_of(site))


def list_corrections(ctx: Context, actor: Actor, site_id: int | None = None,
                     state: str | None = None, *, uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """The 元請 sees its sites' requests; the worker and the employer see the ones about them."""
    if state is not None and state not in STATE_LABELS:
        raise InvalidInput("invalid_state", ja="状態は pending / approved / rejected のいずれかです",
                           en="state is pending, approved or rejected")
    with ctx.read(uow) as uow:
        # Who sees which, in SQL so the limit applies to what the account may see.
        found = uow.records.corrections(Visibility(actor).corrections(), limit=2000, site_id=site_id, state=state)
        out = []
        sites: dict[int, t.Site] = {}
        for c in found:
            site = sites.setdefault(c.site_id, site_or_404(uow, c.site_id))
            out.append(correction_view(uow, c, rule_of(site)))
        if site_id is not None and not out and actor.role != Role.WORKER:
            site_or_404(uow, site_id)
        return out
