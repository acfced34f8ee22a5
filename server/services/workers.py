"""技能者: registered by their employer (or imported), their personal items shown to each viewer as
開示設定 and the roster allow (services.disclosure), updated by the employer. Cards live in services.cards."""


from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from server.domain import ids
from server.domain.accounts import COMPANY_ADMIN_ROLES, Actor, Role, require_company_member, require_role
from server.domain.consent import PERSONAL_ITEMS
from server.domain.trades import Trade, trade_table
from server.domain.visibility import Visibility
from server.errors import Conflict, Forbidden, InvalidInput, worker_not_found
from server.services.common import audit, company_or_404, snapshot, worker_or_404
from server.services.companies import INSURANCE_STATES, too_long
from server.services.context import Context
from server.services.disclosure import agreements_of, has_proxy_consent, visible_items
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


@dataclass
class QualificationIn:
    category: str
    name: str
    number: str | None = None
    acquired_on: date | None = None


@dataclass
class WorkerIn:
    ccus_id: str
    name: str
    employer_id: int
    name_kana: str | None = None
    birth_date: date | None = None
    address: str | None = None
    phone: str | None = None
    blood_type: str | None = None
    level: int | None = None
    face_photo: str | None = None
    health_insurance: str = "unknown"
    pension_insurance: str = "unknown"
    employment_insurance: str = "unknown"
    kentaikyo: str = "unknown"
    trades: Sequence[tuple[str, str]] = ()
    qualifications: Sequence[QualificationIn] = field(default_factory=list)


def _check_insurance(**states: str) -> None:
    for key, v in states.items():
        if v not in INSURANCE_STATES:
            raise InvalidInput(
                "invalid_insurance_state",
                ja=f"{key} の値が正しくありません（{'、'.join(f'{k}={v}' for k, v in INSURANCE_STATES.items())}）",
                en=f"{key} must be one of {', '.join(INSURANCE_STATES)}",
                field=key,
            )


def check_new_worker(uow: UnitOfWork, data: WorkerIn) -> tuple[str, list[Trade]]:
    """The rules a new worker must pass; reads only. Returns the normalised 技能者ID and the trades
    as the code table has them. ``add_worker`` applies them, and the importer's check pass asks them
    of every row before anything is written."""
    ccus = ids.ccus_id("worker", data.ccus_id)
    if not data.name.strip():
        raise InvalidInput("worker_name_required", ja="技能者の氏名を入力してください", en="a name is required")
    c = t.Worker.__table__.c
    too_long("氏名", data.name.strip(), c.name)
    too_long("氏名（カナ）", data.name_kana, c.name_kana)
    too_long("住所", data.address, c.address)
    too_long("電話番号", data.phone, c.phone)
    too_long("血液型", data.blood_type, c.blood_type)
    too_long("顔写真", data.face_photo, c.face_photo)
    qc = t.Qualification.__table__.c
    for q in data.qualifications:
        too_long("資格の区分", q.category, qc.category)
        too_long("資格の名称", q.name.strip(), qc.name)
        too_long("資格の番号", q.number, qc.number)
    if data.level is not None and not 1 <= data.level <= 4:
        raise InvalidInput("invalid_level", ja="技能者ランクは1〜4です", en="level is 1 to 4")
    _check_insurance(
        health_insurance=data.health_insurance,
        pension_insurance=data.pension_insurance,
        employment_insurance=data.employment_insurance,
        kentaikyo=data.kentaikyo,
    )
    company_or_404(uow, data.employer_id)
    trades = [trade_table().get(major, minor) for major, minor in data.trades]
    if uow.workers.by_ccus_id(ccus) is not None:
        raise Conflict(
            "worker_exists", ja=f"技能者ID {ccus} はすでに登録されています", en=f"worker {ccus} already exists"
        )
    _check_qualification_names(data.qualifications)
    return ccus, trades


def add_worker(ctx: Context, uow: UnitOfWork, actor: Actor | None, data: WorkerIn) -> t.Worker:
    """Inside an open unit of work, so the CSV import can add many rows per transaction."""
    ccus, trades = check_new_worker(uow, data)
    w = t.Worker(
        ccus_id=ccus,
        name=data.name.strip(),
        name_kana=data.name_kana,
        employer_id=data.employer_id,
        birth_date=data.birth_date,
        address=data.address,
        phone=data.phone,
        blood_type=data.blood_type,
        level=data.level,
        face_photo=data.face_photo,
        health_insurance=data.health_insurance,
        pension_insurance=data.pension_insurance,
        employment_insurance=data.employment_insurance,
        kentaikyo=data.kentaikyo,
        created_at=ctx.now(),
    )
    uow.add(w)
    uow.flush()
    for tr in dict.fromkeys((x.major_code, x.minor_code) for x in trades):  # in the order given, each once
        uow.add(t.WorkerTrade(worker_id=w.id, major_code=tr[0], minor_code=tr[1]))
    for q in data.qualifications:
        uow.add(
            t.Qualification(
                worker_id=w.id, category=q.category, name=q.name.strip(), number=q.number, acquired_on=q.acquired_on
            )
        )
    uow.flush()
    audit(ctx, uow, actor, "worker.create", "worker", w.id, after=snapshot(w))
    return w


def create_worker(ctx: Context, actor: Actor, data: WorkerIn, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """The operator, or the employer's 事業者責任者 / 階層管理者, registers its worker."""
    if actor.role != Role.OPERATOR:
        require_role(actor, COMPANY_ADMIN_ROLES, "技能者の登録", "register workers")
        require_company_member(actor, data.employer_id)
    with ctx.write(uow) as uow:
        w = add_worker(ctx, uow, actor, data)
        return _worker_full(uow, w)


@dataclass
class _Holdings:
    """Trades and qualifications of many workers, loaded in two queries for a list."""

    trades: dict[int, list[dict[str, str]]]
    qualifications: dict[int, list[dict[str, Any]]]

    @classmethod
    def load(cls, uow: UnitOfWork, worker_ids: Iterable[int]) -> _Holdings:
        ids = list(worker_ids)
        trades: dict[int, list[dict[str, str]]] = {i: [] for i in ids}
        for r in uow.workers.trades_of(ids):
            label = trade_table().label_of(r.major_code, r.minor_code)
            trades[r.worker_id].append({"major": r.major_code, "minor": r.minor_code, "label": label})
        quals: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for q in uow.workers.qualifications_of(ids):
            quals[q.worker_id].append(
                {
                    "id": q.id,
                    "category": q.category,
                    "name": q.name,
                    "number": q.number,
                    "acquired_on": q.acquired_on.isoformat() if q.acquired_on else None,
                }
            )
        return cls(trades, quals)


def _trades(uow: UnitOfWork, worker_id: int) -> list[dict[str, str]]:
    return _Holdings.load(uow, [worker_id]).trades[worker_id]


def _personal(uow: UnitOfWork, w: t.Worker, items: Iterable[str], held: _Holdings | None = None) -> dict[str, Any]:
    items = set(items)
    if held is None and items & {"trades", "qualifications"}:
        held = _Holdings.load(uow, [w.id])
    out: dict[str, Any] = {}
    if "face_photo" in items:
        out["face_photo"] = w.face_photo
    if "level" in items:
        out["level"] = w.level
    if "trades" in items:
        assert held is not None
        out["trades"] = held.trades[w.id]
    if "qualifications" in items:
        assert held is not None
        out["qualifications"] = held.qualifications[w.id]
    if "social_insurance" in items:
        out["social_insurance"] = {
            "health": w.health_insurance,
            "pension": w.pension_insurance,
            "employment": w.employment_insurance,
        }
    if "kentaikyo" in items:
        out["kentaikyo"] = w.kentaikyo
    if "birth_date" in items:
        out["birth_date"] = w.birth_date.isoformat() if w.birth_date else None
    for key in ("address", "phone", "blood_type"):
        if key in items:
            out[key] = getattr(w, key)
    return out


def _base(w: t.Worker) -> dict[str, Any]:
    return {"id": w.id, "ccus_id": w.ccus_id, "name": w.name, "name_kana": w.name_kana, "employer_id": w.employer_id}


def _worker_full(uow: UnitOfWork, w: t.Worker) -> dict[str, Any]:
    return _base(w) | _personal(uow, w, PERSONAL_ITEMS) | {"visible_items": sorted(PERSONAL_ITEMS)}


def get_worker(ctx: Context, actor: Actor, worker_id: int, *, uow: UnitOfWork | None = None) -> dict[str, Any]:
    """A worker as this account may see it: the employer and the worker everything; the companies
    above it on a roster, its employer's proxy agents and every other registered company what the
    policy grants each (参考資料6: the items both sides disclosed). Not visible: the same 404 as a
    worker that does not exist."""
    with ctx.read(uow) as uow:
        w = uow.get(t.Worker, worker_id)
        items = visible_items(uow, actor, w) if w is not None else None
        if w is None or items is None:
            raise worker_not_found()
        return _base(w) | _personal(uow, w, items) | {"visible_items": sorted(items)}


def list_company_workers(
    ctx: Context, actor: Actor, company_id: int, *, uow: UnitOfWork | None = None
) -> list[dict[str, Any]]:
    """【1-2】所属技能者一覧: the employer and its proxy agents list every worker; any other registered
    company the workers with an item both the worker and the employer disclosed, showing those items
    (the rows chosen in SQL from the policy's WorkerScope, the items per row by the same policy)."""
    if not actor.is_company:
        raise Forbidden(
            "role_not_allowed",
            ja="所属技能者一覧は事業者のIDで表示します",
            en="the list of a company's workers is for company accounts",
        )
    with ctx.read(uow) as uow:
        company_or_404(uow, company_id)
        agent = has_proxy_consent(uow, company_id, actor.company_id)
        rows = uow.workers.of_employer(company_id, Visibility(actor).company_workers(company_id, is_proxy_agent=agent))
        ids = [w.id for w in rows]
        held = _Holdings.load(uow, ids)
        agreed = agreements_of(uow, ids)
        out = []
        for w in rows:
            items = visible_items(uow, actor, w, is_proxy_agent=agent, agreed=agreed[w.id])
            if items is None:  # the scope and the policy agree (tests/unit/test_visibility.py): never here
                continue
            out.append(_base(w) | _personal(uow, w, items, held) | {"visible_items": sorted(items)})
        return out


WORKER_FIELDS = frozenset(
    {
        "name",
        "name_kana",
        "birth_date",
        "address",
        "phone",
        "blood_type",
        "level",
        "face_photo",
        "health_insurance",
        "pension_insurance",
        "employment_insurance",
        "kentaikyo",
    }
)


def _check_qualification_names(qualifications: Iterable[QualificationIn]) -> None:
    for q in qualifications:
        if not q.name.strip():
            raise InvalidInput("qualification_name_required", ja="資格名を入力してください", en="name a qualification")


def check_changes(
    changes: Mapping[str, Any],
    trades: Sequence[tuple[str, str]] | None = None,
    add_qualifications: Sequence[QualificationIn] = (),
) -> None:
    """The rules a change to a registered worker keeps, whether typed on a screen (update_worker)
    or read from a CCUS export (services.registry; its check pass decides without writing, so the
    trades and qualifications ``write_changes`` would check are checked here too)."""
    if "name" in changes and not (changes["name"] or "").strip():
        raise InvalidInput("worker_name_required", ja="技能者の氏名を入力してください", en="a name is required")
    level = changes.get("level")
    if level is not None and not 1 <= level <= 4:
        raise InvalidInput("invalid_level", ja="技能者ランクは1〜4です", en="level is 1 to 4")
    _check_insurance(**{k: v for k, v in changes.items() if k.endswith("insurance") or k == "kentaikyo"})
    for major, minor in trades or ():
        trade_table().get(major, minor)
    _check_qualification_names(add_qualifications)


def write_changes(
    uow: UnitOfWork,
    w: t.Worker,
    changes: Mapping[str, Any],
    trades: Sequence[tuple[str, str]] | None,
    add_qualifications: Sequence[QualificationIn],
) -> None:
    """Write a change ``check_changes`` let through: the fields set, the trades replaced by ``trades``
    (checked against the code table, each once; None keeps them) and ``add_qualifications`` added.
    The one write path for an edit and an import."""
    for key, value in changes.items():
        setattr(w, key, value)
    if trades is not None:
        checked = list(dict.fromkeys((x.major_code, x.minor_code) for x in (trade_table().get(*tr) for tr in trades)))
        for row in uow.workers.trades_of([w.id]):
            uow.delete(row)
        uow.flush()  # the unique (worker, trade) index must see the old rows gone before the new ones
        for major, minor in checked:
            uow.add(t.WorkerTrade(worker_id=w.id, major_code=major, minor_code=minor))
    _check_qualification_names(add_qualifications)
    for q in add_qualifications:
        uow.add(
            t.Qualification(
                worker_id=w.id, category=q.category, name=q.name.strip(), number=q.number, acquired_on=q.acquired_on
            )
        )
    uow.flush()


def update_worker(
    ctx: Context,
    actor: Actor,
    worker_id: int,
    changes: dict[str, Any],
    trades: Sequence[tuple[str, str]] | None = None,
    add_qualifications: Sequence[QualificationIn] = (),
    *,
    uow: UnitOfWork | None = None,
) -> dict[str, Any]:
    """The employer keeps its worker's CCUS data current: personal items, insurance, 建退共, trades
    (the list is replaced) and new qualifications. Roster entries keep what they recorded."""
    if actor.role != Role.OPERATOR:
        require_role(actor, COMPANY_ADMIN_ROLES, "技能者情報の変更", "edit workers")
    unknown = set(changes) - WORKER_FIELDS
    if unknown:
        raise InvalidInput(
            "unknown_field",
            ja=f"変更できない項目です: {', '.join(sorted(unknown))}",
            en=f"cannot change {', '.join(sorted(unknown))}",
        )
    with ctx.write(uow) as uow:
        w = worker_or_404(uow, worker_id)
        if actor.role != Role.OPERATOR and actor.company_id != w.employer_id:
            raise worker_not_found()
        check_changes(changes)
        before = snapshot(w) | {"trades": _trades(uow, w.id)}
        write_changes(uow, w, changes, trades, add_qualifications)
        audit(ctx, uow, actor, "worker.update", "worker", w.id, before, snapshot(w) | {"trades": _trades(uow, w.id)})
        return _worker_full(uow, w)
