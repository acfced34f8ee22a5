"""Who may do what: roles as the CCUS screens name them, and the password rules.

事業者責任者 (company_owner) and 階層管理者 (hierarchy_manager) act for their whole company;
現場管理者 (site_manager) acts for their company on the sites the account is bound to; a worker
acts only on their own data; the operator runs the server (creates companies and their first
account) and has no view into a company's sites through that role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from server.errors import Forbidden, InvalidInput


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
