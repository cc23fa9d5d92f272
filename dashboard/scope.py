"""Who is asking and what they may see: the principal and its scope, in SQL and in Python.

Every query that returns alarms, tags or readings is filtered by ``scope_sql``; live pushes
are filtered by ``Principal.can_see`` — the two must agree (tests check both).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    DUTY_OFFICER = "duty_officer"
    ENTERPRISE = "enterprise"
    REGULATOR = "regulator"
    SYSADMIN = "sysadmin"
    SECADMIN = "secadmin"
    AUDITOR = "auditor"


REGIONAL_ROLES = frozenset({Role.DUTY_OFFICER, Role.REGULATOR})
ADMIN_ROLES = frozenset({Role.SYSADMIN, Role.SECADMIN, Role.AUDITOR})
ACK_ROLES = frozenset({Role.DUTY_OFFICER, Role.ENTERPRISE})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user, as one request or socket sees it."""

    user_id: int
    username: str
    role: Role
    division: str = ""  # prefix of the 6-digit administrative division code; "" = whole country
    enterprise_id: int | None = None
    display_name: str = ""

    @property
    def sees_alarms(self) -> bool:
        return self.role not in ADMIN_ROLES

    @property
    def can_acknowledge(self) -> bool:
        return self.role in ACK_ROLES

    def can_see(self, enterprise_id: int, division: str) -> bool:
        """The Python twin of ``scope_sql`` for a row of this enterprise and division."""
        if self.role == Role.ENTERPRISE:
            return self.enterprise_id is not None and enterprise_id == self.enterprise_id
        if self.role in REGIONAL_ROLES:
            return division.startswith(self.division)
        return False

    def public(self) -> dict[str, object]:
        return {
            "id": self.user_id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "division": self.division,
            "enterprise_id": self.enterprise_id,
            "can_acknowledge": self.can_acknowledge,
        }


def scope_sql(principal: Principal, enterprise: str = "e") -> tuple[str, list[object]]:
    """A WHERE fragment (and its parameters) limiting rows to the principal's scope.

    ``enterprise`` is the alias of the joined ``enterprises`` table (a constant, never input).
    """
    if principal.role == Role.ENTERPRISE and principal.enterprise_id is not None:
        return f"{enterprise}.id = %s", [principal.enterprise_id]
    if principal.role in REGIONAL_ROLES:
        return f"{enterprise}.division LIKE %s", [principal.division + "%"]
    return "false", []
