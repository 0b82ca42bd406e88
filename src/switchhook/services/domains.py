"""Domains and what belongs to each, its tokens and its accounts (the `/api/v2/domains` and `/accounts` routes)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from switchhook.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from switchhook.core.names import validate_domain_name as validate_domain_name  # the CLI and the import use it
from switchhook.services.access import ROOT, Caller, require
from switchhook.services.auth import AuthService
from switchhook.store.base import AccountRow, Store, TokenRow

MAX_EXPIRE_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: beyond it a BIGINT column overflows


def validate_token_role(role: Any) -> str:
    """A domain token's role: any non-empty name, as Webitel stored it (src/services/domain.js `genToken`);
    roles switchhook does not know grant nothing. `root` is refused (see Caller.is_root)."""
    if not isinstance(role, str) or not role.strip() or role == ROOT:
        raise ValidationFailed("Bad role name.")
    return role


def token_view(row: TokenRow) -> dict[str, Any]:
    """A domain token's record as the API shows it (never the JWT itself, which is shown once on create)."""
    return {
        "uuid": row.id,
        "domain": row.domain,
        "roleName": row.role,
        "expire": row.expires_ms,
        "enabled": row.enabled,
        "createdBy": row.created_by,
        "createdOn": int(row.created_at * 1000),
    }


def _validate_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < 8:
        raise ValidationFailed("Bad request: password must be at least 8 characters.")
    return password


class DomainsService:
    """Domains (root's), their tokens and their accounts (root's and the domain's admin's).

    Tokens are signed, and forgotten from the credentials cache when revoked or disabled, by `auth`."""

    def __init__(self, store: Store, auth: AuthService, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._auth = auth
        self._clock = clock

    # -- domains --------------------------------------------------------------------------------------
    async def create_domain(self, caller: Caller, body: Any) -> dict[str, Any]:
        if not caller.is_root:
            raise PermissionDenied()
        name = validate_domain_name(body.get("name") if isinstance(body, dict) else None)
        async with self._store.transaction() as tx:
            if not await tx.add_domain(name, self._clock()):
                raise Conflict(f"Domain {name} already exists.")
        return {"name": name}

    async def list_domains(self, caller: Caller) -> list[dict[str, Any]]:
        async with self._store.transaction() as tx:
            names = await tx.list_domains()
        if not caller.is_root:
            names = [n for n in names if n == caller.domain]
        return [{"name": n} for n in names]

    async def delete_domain(self, caller: Caller, name: str) -> int:
        if not caller.is_root:
            raise PermissionDenied()
        async with self._store.transaction() as tx:
            removed = await tx.delete_domain(name)
            # Its hooks went too (even of a domain never added explicitly): other processes must drop them.
            await tx.notify_hook_changed(name, "*")
            await tx.notify_token_changed("*", "*")
        self._auth.forget_token("*", "*")
        return removed

    # -- domain tokens --------------------------------------------------------------------------------
    async def issue_domain_token(self, domain: str, role: str, lifetime_s: float, created_by: str) -> str:
        """Mint a token offline (CLI): the domain is created when missing."""
        now = self._clock()
        row = TokenRow(str(uuid.uuid4()), domain, role, int((now + lifetime_s) * 1000), True, created_by, now)
        async with self._store.transaction() as tx:
            await tx.add_domain(domain, now)
            await tx.add_token(row)
        return self._auth.mint_domain_token(row.id, domain, row.expires_ms)

    async def create_domain_token(self, caller: Caller, domain: str, body: Any) -> dict[str, Any]:
        self._require_domain_admin(caller, domain, "c")
        if not isinstance(body, dict):
            raise ValidationFailed("Bad request: body must be a JSON object.")
        expire, role = body.get("expire"), body.get("role")
        if (
            isinstance(expire, bool)
            or not isinstance(expire, int | float)
            or not self._clock() * 1000 < expire <= MAX_EXPIRE_MS
        ):
            raise ValidationFailed("Bad expire date.")
        role = validate_token_role(role)
        if not caller.is_root and role == "admin" and caller.role != "admin":
            raise PermissionDenied()
        now = self._clock()
        row = TokenRow(str(uuid.uuid4()), domain, role, int(expire), True, caller.id, now)
        async with self._store.transaction() as tx:
            if not await tx.domain_exists(domain):
                raise NotFound(f"Domain {domain} not found.")
            await tx.add_token(row)
        return {"data": token_view(row), "token": self._auth.mint_domain_token(row.id, domain, row.expires_ms)}

    async def list_domain_tokens(self, caller: Caller, domain: str) -> list[dict[str, Any]]:
        self._require_domain_admin(caller, domain, "r")
        async with self._store.transaction() as tx:
            return [token_view(r) for r in await tx.list_tokens(domain)]

    async def revoke_domain_token(self, caller: Caller, domain: str, token_id: str) -> int:
        self._require_domain_admin(caller, domain, "d")
        async with self._store.transaction() as tx:
            removed = await tx.delete_token(domain, token_id)
            await tx.notify_token_changed(domain, token_id)
        self._auth.forget_token(domain, token_id)
        return removed

    async def set_domain_token_state(self, caller: Caller, domain: str, token_id: str, body: Any) -> int:
        self._require_domain_admin(caller, domain, "u")
        state = body.get("state") if isinstance(body, dict) else None
        if not isinstance(state, bool):
            raise ValidationFailed("Bad request: state must be true or false.")
        async with self._store.transaction() as tx:
            changed = await tx.set_token_enabled(domain, token_id, state)
            await tx.notify_token_changed(domain, token_id)
        self._auth.forget_token(domain, token_id)
        return changed

    def _require_domain_admin(self, caller: Caller, domain: str, permission: str) -> None:
        require(caller, "token", permission)
        if not caller.is_root and caller.domain != domain:
            raise PermissionDenied()

    # -- accounts -------------------------------------------------------------------------------------
    async def add_account(self, caller: Caller, domain: str, body: Any) -> dict[str, Any]:
        require(caller, "account", "c")
        if not isinstance(body, dict):
            raise ValidationFailed("Bad request: body must be a JSON object.")
        username, password, role = body.get("username"), body.get("password"), body.get("role", "user")
        if not isinstance(username, str) or not username or any(c in username for c in "@:/ \t\r\n"):
            raise ValidationFailed("Bad request: username is required (no @, :, / or spaces).")
        password = _validate_password(password)
        if role not in ("admin", "user"):
            raise ValidationFailed("Bad role name.")
        password_hash = await self._auth.make_password_hash(password)
        async with self._store.transaction() as tx:
            if not await tx.domain_exists(domain):
                if not caller.is_root:
                    raise NotFound(f"Domain {domain} not found.")
                await tx.add_domain(domain, self._clock())  # root may add the first account of a new domain
            if not await tx.add_account(AccountRow(domain, username, password_hash, role), self._clock()):
                raise Conflict(f"Account {username}@{domain} already exists.")
        return {"username": username, "domain": domain, "role": role}

    async def list_accounts(self, caller: Caller, domain: str) -> list[dict[str, Any]]:
        require(caller, "account", "r")
        async with self._store.transaction() as tx:
            rows = await tx.list_accounts(domain)
        return [{"username": r.username, "domain": r.domain, "role": r.role} for r in rows]

    async def delete_account(self, caller: Caller, domain: str, username: str) -> int:
        require(caller, "account", "d")
        async with self._store.transaction() as tx:
            return await tx.delete_account(domain, username)

    async def change_account(self, caller: Caller, domain: str, username: str, body: Any) -> dict[str, Any]:
        """Set an account's password and/or role. A new password ends every session made with the old one (the
        sessions' credential no longer matches; they are deleted too); a new role applies to them at once."""
        require(caller, "account", "u")
        if not isinstance(body, dict) or not ({"password", "role"} & body.keys()):
            raise ValidationFailed("Bad request: body must be a JSON object with password and/or role.")
        password = _validate_password(body["password"]) if "password" in body else None
        role = body.get("role")
        if "role" in body and role not in ("admin", "user"):
            raise ValidationFailed("Bad role name.")
        password_hash = await self._auth.make_password_hash(password) if password is not None else None
        async with self._store.transaction() as tx:
            if not await tx.update_account(domain, username, password_hash, role):
                raise NotFound(f"Account {username}@{domain} not found.")
            ended = await tx.delete_sessions(domain, username) if password_hash is not None else 0
            account = await tx.get_account(domain, username)
        if account is None:  # deleted between the two statements
            raise NotFound(f"Account {username}@{domain} not found.")
        return {"username": username, "domain": domain, "role": account.role, "sessionsEnded": ended}
