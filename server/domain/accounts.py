"""Who may do what: roles as the CCUS screens name them, and the password rules.

事業者責任者 (company_owner) and 階層管理者 (hierarchy_manager) act for their whole company;
現場管理者 (site_manager) acts for their company on the sites the account is bound to; a worker
acts only on their own data; the operator runs the server (creates companies and their first
account) and has no view into a company's sites through that role.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from server.errors import Forbidden, InvalidInput, Throttled


class Role(StrEnum):
    OPERATOR = "operator"
    COMPANY_OWNER = "company_owner"  # 事業者責任者
    HIERARCHY_MANAGER = "hierarchy_manager"  # 階層管理者
    SITE_MANAGER = "site_manager"  # 現場管理者
    WORKER = "worker"  # 技能者


ROLE_LABELS = {
    Role.OPERATOR: "運用管理者",
    Role.COMPANY_OWNER: "事業者責任者",
    Role.HIERARCHY_MANAGER: "階層管理者",
    Role.SITE_MANAGER: "現場管理者",
    Role.WORKER: "技能者",
}

COMPANY_ROLES = frozenset({Role.COMPANY_OWNER, Role.HIERARCHY_MANAGER, Role.SITE_MANAGER})
# 参考資料1: 招待 can be done by 事業者責任者, 階層管理者 or 現場管理者; 承認 only by the first two.
INVITE_ROLES = COMPANY_ROLES
APPROVE_ROLES = frozenset({Role.COMPANY_OWNER, Role.HIERARCHY_MANAGER})
# Company-wide settings (consents, disclosure, accounts) follow the approval roles.
COMPANY_ADMIN_ROLES = APPROVE_ROLES


@dataclass(frozen=True)
class Actor:
    """The logged-in account as the rules see it."""

    account_id: int
    role: Role
    company_id: int | None = None
    worker_id: int | None = None
    site_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_company(self) -> bool:
        return self.role in COMPANY_ROLES

    def bound_to(self, site_id: int) -> bool:
        """The one home of the binding rule: a 現場管理者 only on the sites bound to it; no other
        account is restricted by binding (what it may do there is decided elsewhere)."""
        return self.role != Role.SITE_MANAGER or site_id in self.site_ids


def require_role(actor: Actor, roles: frozenset[Role], action_ja: str, action_en: str) -> None:
    if actor.role not in roles:
        allowed = "・".join(ROLE_LABELS[r] for r in Role if r in roles)
        raise Forbidden(
            "role_not_allowed",
            ja=f"{action_ja}は{allowed}のみが行えます（現在: {ROLE_LABELS[actor.role]}）",
            en=f"only {', '.join(sorted(roles))} may {action_en} (this account: {actor.role})",
            role=str(actor.role),
        )


def require_site_access(actor: Actor, site_id: int) -> None:
    """A 現場管理者 bound to other sites is refused here even when their company is on this site."""
    if not actor.bound_to(site_id):
        raise Forbidden(
            "site_not_assigned",
            ja="この現場はこの現場管理者IDに割り当てられていません。事業者責任者に割り当てを依頼してください",
            en="this site manager account is not bound to this site; ask the company owner to bind it",
            site_id=site_id,
        )


def require_company_member(actor: Actor, company_id: int) -> None:
    if actor.company_id != company_id or not actor.is_company:
        raise Forbidden(
            "not_your_company",
            ja="他の事業者の操作はできません",
            en="this account cannot act for another company",
            company_id=company_id,
        )


MIN_PASSWORD = 10


def check_new_password(password: str, login_id: str) -> None:
    """Length and variety, and never the login ID: the initial password is handed over on paper."""
    problems: list[tuple[str, str]] = []
    if len(password) < MIN_PASSWORD:
        problems.append((f"{MIN_PASSWORD}文字以上にしてください", f"use at least {MIN_PASSWORD} characters"))
    if not re.search(r"[A-Za-z]", password) or not re.search(r"\d", password):
        problems.append(("英字と数字の両方を含めてください", "mix letters and digits"))
    if login_id and login_id.lower() in password.lower():
        problems.append(("ログインIDを含めないでください", "do not include the login ID"))
    if problems:
        raise InvalidInput(
            "weak_password",
            ja="パスワードが条件を満たしていません: " + "、".join(ja for ja, _ in problems),
            en="weak password: " + "; ".join(en for _, en in problems),
        )


def check_security_code(code: str) -> None:
    if not re.fullmatch(r"\d{6,12}", code or ""):
        raise InvalidInput(
            "invalid_security_code",
            ja="セキュリティコードは6〜12桁の数字で設定してください",
            en="a security code is 6 to 12 digits",
        )


# --- wrong passwords: a growing wait per login ID and source, never a lock anyone can trigger -----------
#
# A hard lock after N wrong passwords let anyone who knew an ID keep its holder out. Instead wrong
# passwords are counted per (login ID, source address): after ``free_failures`` of them, each further
# try from that source waits 1 s, 2 s, 4 s … up to ``max_delay``, refused unchecked meanwhile. Another
# source, the holder's, is not slowed down. A guesser with many addresses is bounded by the ID-wide
# count: past ``account_free_failures`` wrong passwords from all sources together, the ID itself waits
# after each wrong try (up to ``account_max_delay``) for every source but the trusted ones (a source
# the ID logged in from within ``TRUST_SOURCE_FOR``: the office, the holder's phone), so extra
# addresses stop buying tries while the holder's usual place is not slowed down by strangers.

ACCOUNT_WIDE = "*"  # the source under which the ID-wide count is kept (no address looks like it)
TRUST_SOURCE_FOR = timedelta(days=30)  # a source a login succeeded from skips the ID-wide wait this long


@dataclass(frozen=True)
class LoginThrottlePolicy:
    """How long a source waits after a wrong password, from the counts that include it."""

    free_failures: int = 10
    max_delay: timedelta = timedelta(minutes=15)
    account_free_failures: int = 50
    account_max_delay: timedelta = timedelta(minutes=1)
    first_delay: timedelta = timedelta(seconds=1)

    @classmethod
    def of(cls, max_failed_logins: int, longest_wait: timedelta) -> LoginThrottlePolicy:
        """From the settings ([auth] max_failed_logins, lock_minutes): the ID-wide allowance is five
        sources' worth, and its wait at most a minute."""
        return cls(
            free_failures=max_failed_logins,
            max_delay=longest_wait,
            account_free_failures=5 * max_failed_logins,
            account_max_delay=min(timedelta(minutes=1), longest_wait),
        )

    def source_wait(self, source_failures: int) -> timedelta:
        """The wait of one source after its own wrong passwords (this failure included)."""
        return self._doubling(source_failures, self.free_failures, self.max_delay)

    def account_wait(self, account_failures: int) -> timedelta:
        """The wait of the ID, for every source not trusted, after the wrong passwords from all."""
        return self._doubling(account_failures, self.account_free_failures, self.account_max_delay)

    def _doubling(self, failures: int, free: int, cap: timedelta) -> timedelta:
        if failures < free:
            return timedelta(0)
        steps = min(failures - free, 40)  # 2**40 s is past any cap; keeps the arithmetic small
        doubled: timedelta = self.first_delay * (1 << steps)
        return min(doubled, cap)


def login_source(host: str | None) -> str:
    """The source a login is counted under: the client's address, an IPv6 client by its /64 (one
    client holds a whole /64, and must not get new free tries from each address in it)."""
    if not host or host == ACCOUNT_WIDE:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        # Not an address (a test client, a socket path, a forwarded header nobody checked): one
        # source for all of them, so a made-up name cannot buy fresh tries.
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def login_key(login_id: str) -> str:
    """The login ID as counted. IDs that do not exist are counted too (same waits, so the wait does
    not tell which IDs exist); one too long to exist is stored as its digest, within the column."""
    if len(login_id) <= 64:
        return login_id
    return "#" + hashlib.sha256(login_id.encode()).hexdigest()[:63]


def login_throttled(wait: timedelta) -> Throttled:
    """Refused unchecked: this source must wait ``wait`` before its next try at this ID."""
    seconds = max(1, math.ceil(wait.total_seconds()))
    ja_wait = f"{seconds}秒" if seconds < 60 else f"約{math.ceil(seconds / 60)}分"
    return Throttled(
        "login_throttled",
        ja=f"パスワードの誤りが続いたため、この接続元からのログインを一時的に止めています。{ja_wait}後にもう一度"
        "お試しください。パスワードを忘れた場合はセキュリティコードで再設定できます",
        en=f"too many wrong passwords from this address; try again in {seconds} s "
        "(or reset the password with the security code)",
        retry_after_s=seconds,
    )
