"""Who is calling and what they may do: the caller, roles and their grants, domain scoping. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from switchhook.core.errors import PermissionDenied, ValidationFailed

ROOT = "root"
_ROLE_PERMISSIONS: dict[str, dict[str, str]] = {
    # resource -> letters (c r u d); root is allowed everything and is not listed.
    "admin": {
        "hook": "crud",
        "event": "c",
        "delivery": "ru",
        "account": "crud",
        "token": "crud",
        "domain": "r",
    },
    "user": {"domain": "r"},
}
#: Webitel's numeric `role` of a login (src/const/index.js `ACCOUNT_ROLE.getRoleFromName`): any other name is -1.
ROLE_NUMBERS = {"root": 2, "admin": 1, "user": 0}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: root (no domain), a domain account's session, or a domain token."""

    id: str
    username: str
    domain: str | None
    role: str
    kind: str  # root | session | domain_token
    expires_ms: int | None = None

    @property
    def is_root(self) -> bool:
        # Never a domain token: Webitel let a domain admin mint a token with role "root" (src/services/domain.js
        # `genToken` took any role name); switchhook refuses that role and grants domain callers no root power.
        return self.role == ROOT and self.domain is None


def role_number(role: str) -> int:
    return ROLE_NUMBERS.get(role.lower(), -1)


def acl_of(caller: Caller) -> dict[str, list[str]]:
    """The caller's permissions in Webitel's `acl` shape (resource -> letters), as /login and whoami show them."""
    if caller.is_root:
        resources = sorted({r for grants in _ROLE_PERMISSIONS.values() for r in grants})
        return {resource: ["*"] for resource in resources}
    return {resource: list(letters) for resource, letters in _ROLE_PERMISSIONS.get(caller.role, {}).items()}


def require(caller: Caller, resource: str, permission: str) -> None:
    """Raise PermissionDenied unless the caller's role grants `permission` on `resource`."""
    if caller.is_root:
        return
    if permission not in _ROLE_PERMISSIONS.get(caller.role, {}).get(resource, ""):
        raise PermissionDenied()


def effective_domain(caller: Caller, requested: str | None) -> str:
    """A domain caller is confined to its domain (its `?domain=` is ignored); root must name one (README, API)."""
    if caller.domain:
        return caller.domain
    if not requested:
        raise ValidationFailed("Bad request: domain is required.")
    return requested
