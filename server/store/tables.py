"""The server's tables, SQLAlchemy 2 declarative.

The database enforces what it can (unique, foreign keys, checks) as a second line behind the
domain rules: a bug in a service, or two requests racing, must not leave a company twice on one
site or a placeholder that holds workers. Everything here is portable between SQLite and
PostgreSQL; JSON columns use SQLAlchemy's generic JSON type.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic migrations can refer to them on both backends.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def column_values(obj: Base) -> dict[str, Any]:
    """A row's mapped columns by attribute name (the audit log's before/after starts here)."""
    return {attr.key: getattr(obj, attr.key) for attr in inspect(obj).mapper.column_attrs}


def _ts() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False)


class Company(Base):
    """A CCUS-registered company (事業者). Placeholders are not companies: see HierarchyNode."""

    __tablename__ = "companies"
    id: Mapped[int] = mapped_column(primary_key=True)
    ccus_id: Mapped[str] = mapped_column(String(14), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    name_kana: Mapped[str | None] = mapped_column(String(200))
    permit_number: Mapped[str | None] = mapped_column(String(40))  # 建設業許可番号
    corporate_number: Mapped[str | None] = mapped_column(String(13))  # 法人番号
    address: Mapped[str | None] = mapped_column(String(300))
    representative: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _ts()
    __table_args__ = (CheckConstraint("length(ccus_id) = 14", name="ccus_id_len"),)


class Worker(Base):
    """A worker (技能者) and the personal items the disclosure settings govern."""

    __tablename__ = "workers"
    id: Mapped[int] = mapped_column(primary_key=True)
    ccus_id: Mapped[str] = mapped_column(String(14), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    name_kana: Mapped[str | None] = mapped_column(String(100))
    employer_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), nullable=False, index=True)
    birth_date: Mapped[date | None] = mapped_column(Date)
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(30))
    blood_type: Mapped[str | None] = mapped_column(String(4))
    level: Mapped[int | None] = mapped_column(Integer)  # 技能者ランク (レベル1-4)
    face_photo: Mapped[str | None] = mapped_column(String(300))  # reference to the stored photo
    health_insurance: Mapped[str] = mapped_column(String(20), nullable=False, default="unknown")
    pension_insurance: Mapped[str] = mapped_column(String(20), nullable=False, default="unknown")
    employment_insurance: Mapped[str] = mapped_column(String(20), nullable=False, default="unknown")
    kentaikyo: Mapped[str] = mapped_column(String(20), nullable=False, default="unknown")  # 建退共
    created_at: Mapped[datetime] = _ts()
    __table_args__ = (
        CheckConstraint("length(ccus_id) = 14", name="ccus_id_len"),
        CheckConstraint("level IS NULL OR (level BETWEEN 1 AND 4)", name="level_range"),
    )


class WorkerTrade(Base):
    """A trade (職種) the worker is registered with in CCUS; the roster may only pick one of these."""

    __tablename__ = "worker_trades"
    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), nullable=False)
    major_code: Mapped[str] = mapped_column(String(4), nullable=False)
    minor_code: Mapped[str] = mapped_column(String(4), nullable=False)
    years: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("worker_id", "major_code", "minor_code"),)


class Qualification(Base):
    """A qualification (資格) the worker holds: 技能士, 資格・免許, 技能講習, 特別教育 ..."""

    __tablename__ = "qualifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    number: Mapped[str | None] = mapped_column(String(60))
    acquired_on: Mapped[date | None] = mapped_column(Date)
    __table_args__ = (Index("ix_qualifications_worker", "worker_id"),)


class Card(Base):
    """A card UID linked to a worker. A lost card is revoked, not deleted, so history stays."""

    __tablename__ = "cards"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), nullable=False)
    tech: Mapped[str] = mapped_column(String(12), nullable=False)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), nullable=False, index=True)
    issued_at: Mapped[datetime] = _ts()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    __table_args__ = (
        # One active card per UID (a revoked UID may be reissued); both backends support partial indexes.
        Index(
            "uq_cards_active_uid",
            "uid",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
        CheckConstraint("tech IN ('felica', 'iso14443a', 'iso14443b')", name="tech"),
    )


class Site(Base):
    """A site (現場・契約情報), registered by its prime contractor (元請)."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    ccus_id: Mapped[str] = mapped_column(String(14), unique=True, nullable=False)  # 現場ID
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str | None] = mapped_column(String(300))
    prime_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), nullable=False, index=True)
    manager_name: Mapped[str | None] = mapped_column(String(100))  # 現場担当者名
    order_type: Mapped[str] = mapped_column(String(20), nullable=False)  # 発注区分
    period_start: Mapped[date] = mapped_column(Date, nullable=False)  # 就業履歴蓄積期間
    period_end: Mapped[date] = mapped_column(Date, nullable=False)
    disclosed_items: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    # Where one work day ends and the next begins, local "HH:MM" (see domain.attendance.DayRule).
    day_boundary: Mapped[str] = mapped_column(String(5), nullable=False, default="04:00", server_default="04:00")
    # IANA zone of the site: its work days, and every time shown about it (domain.attendance.parse_time_zone).
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="Asia/Tokyo",
                                           server_default="Asia/Tokyo")
    created_at: Mapped[datetime] = _ts()
    __table_args__ = (
        CheckConstraint("length(ccus_id) = 14", name="ccus_id_len"),
        CheckConstraint("period_start <= period_end", name="period_order"),
    )


class HierarchyNode(Base):
    """One company's place in one site's hierarchy (施工体制), or a name-only placeholder.

    A node holds either a registered company or a placeholder name, never both; the partial unique
    index keeps a company once per site (declined invitations do not count).
    """

    __tablename__ = "hierarchy_nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), nullable=False, index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("hierarchy_nodes.id"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    placeholder_name: Mapped[str | None] = mapped_column(String(200))
    replaced_placeholder_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    work_name: Mapped[str | None] = mapped_column(String(200))  # 工事名称
    work_content: Mapped[str | None] = mapped_column(Text)  # 工事内容
    invited_by_company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    invited_at: Mapped[datetime] = _ts()
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("(company_id IS NULL) <> (placeholder_name IS NULL)", name="company_xor_placeholder"),
        CheckConstraint("status IN ('pending', 'registered', 'declined')", name="status"),
        CheckConstraint("parent_id IS NOT NULL OR company_id IS NOT NULL", name="root_is_company"),
        Index(
            "uq_hierarchy_company_once_per_site",
            "site_id",
            "company_id",
            unique=True,
            sqlite_where=text("status <> 'declined' AND company_id IS NOT NULL"),
            postgresql_where=text("status <> 'declined' AND company_id IS NOT NULL"),
        ),
        Index(
            "uq_hierarchy_one_root",
            "site_id",
            unique=True,
            sqlite_where=text("parent_id IS NULL"),
            postgresql_where=text("parent_id IS NULL"),
        ),
    )


class RosterEntry(Base):
    """A worker on a site's roster (施工体制技能者登録 / 現場作業員一覧), under their employer's node."""

    __tablename__ = "roster_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), nullable=False, index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("hierarchy_nodes.id"), nullable=False, index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), nullable=False, index=True)
    trade_major: Mapped[str | None] = mapped_column(String(4))
    trade_minor: Mapped[str | None] = mapped_column(String(4))
    position: Mapped[str | None] = mapped_column(String(30))
    work_description: Mapped[str | None] = mapped_column(Text)
    hazardous: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    hazardous_other: Mapped[str | None] = mapped_column(String(200))
    health_checks: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    health_checks_other: Mapped[str | None] = mapped_column(String(200))
    qualification_ids: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    registered_by_company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), nullable=False)
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = _ts()
    __table_args__ = (
        UniqueConstraint("site_id", "worker_id"),
        CheckConstraint("(trade_major IS NULL) = (trade_minor IS NULL)", name="trade_pair"),
    )


class RosterPattern(Base):
    """A saved 作業員名簿パターン: a company's list of workers with their entry fields."""

    __tablename__ = "roster_patterns"
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    entries: Mapped[list[Any]] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = _ts()
    __table_args__ = (UniqueConstraint("company_id", "name"),)


class HierarchyPattern(Base):
    """A saved 施工体制パターン: a subtree to lay out again on another site (each invite still needs approval)."""

    __tablename__ = "hierarchy_patterns"
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    tree: Mapped[list[Any]] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = _ts()
    __table_args__ = (UniqueConstraint("company_id", "name"),)


class ProxyConsent(Base):
    """An employer's consent (代理手続きの同意) that an upper company may do its roster work."""

    __tablename__ = "proxy_consents"
    employer_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    consented: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[datetime] = _ts()
    __table_args__ = (CheckConstraint("employer_id <> agent_id", name="not_self"),)


class Disclosure(Base):
    """One personal item's disclosure: shown to other companies only when both sides agree."""

    __tablename__ = "disclosures"
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True)
    item: Mapped[str] = mapped_column(String(30), primary_key=True)
    worker_agrees: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    employer_agrees: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = _ts()


class Account(Base):
    """A login: operator, a company's 事業者責任者 / 階層管理者 / 現場管理者, or a worker."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    login_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    security_code_hash: Mapped[str | None] = mapped_column(String(200))
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed_resets: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = _ts()
    __table_args__ = (
        CheckConstraint(
            "role IN ('operator', 'company_owner', 'hierarchy_manager', 'site_manager', 'worker')", name="role"
        ),
        CheckConstraint(
            "(role = 'operator' AND company_id IS NULL AND worker_id IS NULL)"
            " OR (role = 'worker' AND worker_id IS NOT NULL AND company_id IS NULL)"
            " OR (role NOT IN ('operator', 'worker') AND company_id IS NOT NULL AND worker_id IS NULL)",
            name="role_binding",
        ),
    )


class LoginThrottle(Base):
    """Wrong passwords for one login ID from one source (an address, an IPv6 /64), and when that
    source may try again; the row with source '*' holds the ID's count across every source.

    Keyed by the login ID as typed, not the account: an ID that does not exist is slowed down just
    like one that does. Rows go when a login succeeds (the source's, and the ID-wide count back to
    0), on a reset or reissue, and a day after their last try. Before this table the count and a
    hard lock were accounts.failed_logins / locked_until, which no longer lock anything."""

    __tablename__ = "login_throttles"
    id: Mapped[int] = mapped_column(primary_key=True)
    login_id: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    # A login succeeded from this source: until then it skips the ID-wide wait (domain/accounts).
    trusted_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (UniqueConstraint("login_id", "source"),)


class AccountSite(Base):
    """Which sites a 現場管理者 account is bound to."""

    __tablename__ = "account_sites"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)


class Token(Base):
    """A bearer token, stored as its SHA-256 only; ``scope`` is 'password_change' until the first change."""

    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    scope: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = _ts()
    expires_at: Mapped[datetime] = _ts()


class AuditEntry(Base):
    """Every change: who, what, when, before and after."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = _ts()
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    company_id: Mapped[int | None] = mapped_column(Integer)
    site_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(60), nullable=False)
    entity: Mapped[str] = mapped_column(String(40), nullable=False)
    entity_id: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Device(Base):
    """A gate (入退場デバイス). The server, not the device, decides which site its taps belong to."""

    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    location: Mapped[str | None] = mapped_column(String(200))  # where on site: 正門, 東側通用口, …
    direction: Mapped[str] = mapped_column(String(4), nullable=False)
    registered_by_company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    created_at: Mapped[datetime] = _ts()
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Last known state, from the device's retained status and its Last Will.
    online: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The retained config (roster push): the key its card digests are made with, and the version
    # and content hash last computed; a process publishes when the hash moves (services/devices).
    roster_key: Mapped[str | None] = mapped_column(String(64))
    config_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    config_hash: Mapped[str | None] = mapped_column(String(64))
    # The latest synchronised reading of the device clock: (boot, wall time, monotonic ms). Taps of
    # the same boot taken before sync are re-dated from it (services/records.clock_reference).
    sync_boot_id: Mapped[str | None] = mapped_column(String(64))
    sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_mono_ms: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (CheckConstraint("direction IN ('in', 'out', 'auto')", name="direction"),)


class Tap(Base):
    """A tap as the gate sent it, stored once per (device, buffer, seq): the raw history behind 就業履歴."""

    __tablename__ = "taps"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.id"), nullable=False)
    buffer_id: Mapped[str] = mapped_column(String(32), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)  # the wire's bound: 64-bit signed
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), nullable=False)  # the device's, at receipt
    card_tech: Mapped[str] = mapped_column(String(12), nullable=False)
    card_uid: Mapped[str] = mapped_column(String(40), nullable=False)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"), index=True)  # None: card not linked (yet)
    direction: Mapped[str] = mapped_column(String(4), nullable=False)
    at: Mapped[datetime] = _ts()  # the gate's clock
    clock_synced: Mapped[bool] = mapped_column(Boolean, nullable=False)
    boot_id: Mapped[str] = mapped_column(String(64), nullable=False)
    mono_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    shown: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = _ts()
    # The time 就業履歴 uses: ``at``, or ``at`` re-dated from a later synchronised reading of the
    # same boot. ``clock_trusted`` is False while neither the gate nor the server could vouch for it.
    effective_at: Mapped[datetime] = _ts()
    clock_trusted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    __table_args__ = (
        UniqueConstraint("device_pk", "buffer_id", "seq"),
        CheckConstraint("direction IN ('in', 'out', 'auto')", name="direction"),
        # Every tap is written into each index of this table, so each is one the queries need:
        # a site's and a worker's days (ix_taps_day, also every query by site alone), a worker across
        # sites (ix_taps_worker_id). The two below hold only the few taps they are asked about:
        # a card's taps stored before it was linked, and a boot's taps waiting for a clock reading.
        Index("ix_taps_day", "site_id", "worker_id", "effective_at"),
        Index("ix_taps_unattributed", "card_uid", sqlite_where=text("worker_id IS NULL"),
              postgresql_where=text("worker_id IS NULL")),
        Index("ix_taps_waiting_clock", "device_pk", "boot_id", sqlite_where=text("clock_trusted IS 0"),
              postgresql_where=text("clock_trusted IS false")),
    )


class TapConflict(Base):
    """A tap whose (device, buffer, seq) was already stored with other content: a gate that reused a
    seq (a restored SD card image) or someone sending in its name. Kept, never answered as a plain
    duplicate, so the 元請 sees both versions; never made into a record by itself."""

    __tablename__ = "tap_conflicts"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.id"), nullable=False)
    buffer_id: Mapped[str] = mapped_column(String(32), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), nullable=False, index=True)
    stored_tap_id: Mapped[int] = mapped_column(ForeignKey("taps.id"), nullable=False)
    content: Mapped[str] = mapped_column(String(64), nullable=False)  # a digest: re-sends are kept once
    card_tech: Mapped[str] = mapped_column(String(12), nullable=False)
    card_uid: Mapped[str] = mapped_column(String(40), nullable=False)
    direction: Mapped[str] = mapped_column(String(4), nullable=False)
    at: Mapped[datetime] = _ts()
    clock_synced: Mapped[bool] = mapped_column(Boolean, nullable=False)
    boot_id: Mapped[str] = mapped_column(String(64), nullable=False)
    mono_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    received_at: Mapped[datetime] = _ts()
    __table_args__ = (UniqueConstraint("device_pk", "buffer_id", "seq", "content"),)


class HeldTap(Base):
    """A tap from a gate the server could not place when it arrived (its device ID not registered, or
    the gate on no site): kept as the gate sent it, acknowledged ``held``, and made into a tap of the
    gate's site when the 元請 registers or places the gate (services/devices). The gate showed the
    worker that the tap was recorded, so a tap is never refused for something the 元請 can fix."""

    __tablename__ = "held_taps"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(63), nullable=False)  # the topic's: no device row may exist
    buffer_id: Mapped[str] = mapped_column(String(32), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    card_tech: Mapped[str] = mapped_column(String(12), nullable=False)
    card_uid: Mapped[str] = mapped_column(String(40), nullable=False)
    direction: Mapped[str] = mapped_column(String(4), nullable=False)
    at: Mapped[datetime] = _ts()
    clock_synced: Mapped[bool] = mapped_column(Boolean, nullable=False)
    boot_id: Mapped[str] = mapped_column(String(64), nullable=False)
    mono_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    shown: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    received_at: Mapped[datetime] = _ts()
    __table_args__ = (UniqueConstraint("device_id", "buffer_id", "seq"),)


class Attendance(Base):
    """就業履歴: one per worker, site and work day, rebuilt from all of the day's taps and the approved
    correction (services/records.rebuild), so a re-sent tap or a second ingest worker cannot add
    a second record. ``device_*`` keep what the gates said next to any corrected time."""

    __tablename__ = "attendance"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), nullable=False)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), nullable=False, index=True)
    work_day: Mapped[date] = mapped_column(Date, nullable=False)
    entry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    device_entry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    device_exit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    entry_tap_id: Mapped[int | None] = mapped_column(ForeignKey("taps.id"))
    exit_tap_id: Mapped[int | None] = mapped_column(ForeignKey("taps.id"))
    tap_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    clock_unverified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # From the roster entry in force when the record was (re)built; None: not on the roster.
    employer_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("hierarchy_nodes.id"))
    tier: Mapped[int | None] = mapped_column(Integer)
    on_roster: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    trade_major: Mapped[str | None] = mapped_column(String(4))
    trade_minor: Mapped[str | None] = mapped_column(String(4))
    position: Mapped[str | None] = mapped_column(String(30))
    valid: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    reasons: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    correction_id: Mapped[int | None] = mapped_column(Integer)  # the approved correction applied, if any
    updated_at: Mapped[datetime] = _ts()
    __table_args__ = (
        UniqueConstraint("site_id", "worker_id", "work_day"),
        Index("ix_attendance_site_day", "site_id", "work_day"),
    )


class Correction(Base):
    """事後補正 / 直接入力: times for a work day asked by the worker or the employer, decided by the 元請."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), nullable=False)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), nullable=False, index=True)
    work_day: Mapped[date] = mapped_column(Date, nullable=False)
    entry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    submitted_by_company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    submitted_at: Mapped[datetime] = _ts()
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str | None] = mapped_column(String(500))
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'approved', 'rejected')", name="state"),
        CheckConstraint("entry_at IS NOT NULL OR exit_at IS NOT NULL", name="some_time"),
        Index("ix_corrections_site_state", "site_id", "state"),
        # One open request per worker, site and day: a second one would race the first's decision.
        Index(
            "uq_corrections_one_pending",
            "site_id",
            "worker_id",
            "work_day",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )
