"""Companies (事業者): registering, the 事業者検索, and the column-width check every service shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.domain import ids
from server.domain.accounts import Actor, Role, require_role
from server.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.services.common import audit, company_or_404, snapshot, worker_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

INSURANCE_STATES = {"enrolled": "加入", "not_enrolled": "未加入", "exempt": "適用除外", "unknown": "未確認"}


def too_long(label: str, value: str | None, column: Any) -> None:
    """Refuse what the column cannot hold: SQLite would store it anyway, PostgreSQL would refuse it.

    Checking here keeps both backends giving the same, readable answer (as the CSV import does).
    """
    limit = getattr(column.type, "length", None)
    if value is not None and limit is not None and len(value) > limit:
        raise InvalidInput(
            "value_too_long",
            ja=f"{label}が長すぎます（{limit}文字まで、入力は{len(value)}文字）",
            en=f"{column.key} is longer than {limit} characters",
            field=column.key,
            max_length=limit,
        )


def company_view(c: t.Company) -> dict[str, Any]:
    return {
        "id": c.id,
        "ccus_id": c.ccus_id,
        "name": c.name,
        "name_kana": c.name_kana,
        "permit_number": c.permit_number,
        "corporate_number": c.corporate_number,
        "address": c.address,
        "representative": c.representative,
    }


@dataclass
class CompanyIn:
    ccus_id: str
    name: str
    name_kana: str | None = None
    permit_number: str | None = None
    corporate_number: str | None = None
    address: str | None = None
    representative: str | None = None

    def checked(self) -> CompanyIn:
        if not self.name.strip():
            raise InvalidInput("company_name_required", ja="事業者名を入力してください", en="a name is required")
        c = t.Company.__table__.c
        too_long("事業者名", self.name.strip(), c.name)
        too_long("事業者名（カナ）", self.name_kana, c.name_kana)
        too_long("建設業許可番号", self.permit_number, c.permit_number)
        too_long("所在地", self.address, c.address)
        too_long("代表者名", self.representative, c.representative)
        return CompanyIn(
            ccus_id=ids.ccus_id("company", self.ccus_id),
            name=self.name.strip(),
            name_kana=self.name_kana,
            permit_number=self.permit_number,
            corporate_number=ids.corporate_number(self.corporate_number) if self.corporate_number else None,
            address=self.address,
            representative=self.representative,
        )


def check_new_company(uow: UnitOfWork, data: CompanyIn) -> CompanyIn:
    """The rules a new company must pass, in their normal form; reads only. ``add_company`` applies
    them, and the importer's check pass asks them of every row before anything is written."""
    data = data.checked()
    if uow.companies.id_of(data.ccus_id) is not None:
        raise Conflict(
            "company_exists",
            ja=f"事業者ID {data.ccus_id} はすでに登録されています",
            en=f"company {data.ccus_id} already exists",
            ccus_id=data.ccus_id,
        )
    return data


def add_company(ctx: Context, uow: UnitOfWork, actor: Actor | None, data: CompanyIn) -> t.Company:
    """Inside an open unit of work, so the CSV import can add many rows per transaction."""
    data = check_new_company(uow, data)
    c = t.Company(**data.__dict__, created_at=ctx.now())
    uow.add(c)
    uow.flush()
    audit(ctx, uow, actor, "company.create", "company", c.id, after=snapshot(c))
    return c


def create_company(ctx: Context, actor: Actor, data: CompanyIn, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    require_role(actor, frozenset({Role.OPERATOR}), "事業者の登録", "register companies")
    with ctx.write(uow) as uow:
        return company_view(add_company(ctx, uow, actor, data))


def search_companies(
    ctx: Context,
    actor: Actor,
    ccus_id: str | None = None,
    name: str | None = None,
    limit: int = 50,
    *,
    uow: UnitOfWork | None = None,
) -> list[dict[str, Any]]:
    """The 事業者検索 of the invitation screen: registry facts only, by ID or part of the name."""
    if not (actor.is_company or actor.role == Role.OPERATOR):
        raise Forbidden("role_not_allowed", ja="事業者の検索はできません", en="this account cannot search companies")
    if not ccus_id and not name:
        raise InvalidInput(
            "search_term_required",
            ja="事業者IDか事業者名のいずれかを入力してください",
            en="give a company ID or part of a name",
        )
    with ctx.read(uow) as uow:
        found = uow.companies.search(
            ccus_id=ids.ccus_id("company", ccus_id) if ccus_id else None,
            name_part=name.strip() if name else None,
            limit=max(1, min(limit, 200)),
        )
        return [company_view(c) for c in found]


def get_company(ctx: Context, actor: Actor, company_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    with ctx.read(uow) as uow:
        if actor.role == Role.WORKER:
            w = worker_or_404(uow, actor.worker_id or -1)
            if w.employer_id != company_id:
                raise NotFound("company_not_found", ja="事業者が見つかりません", en="no such company")
        return company_view(company_or_404(uow, company_id))
