"""Authentication and authorization (SPEC §4): logins, sessions, domain tokens, roles, domain scoping."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from switchhook.domain.errors import AuthError, Conflict, NotFound, PermissionDenied, ValidationFailed
from switchhook.services.limits import LoginThrottle
from switchhook.store.base import AccountRow, SessionRow, Store, TokenRow

ROLES = ("root", "admin", "user")
MAX_EXPIRE_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: beyond it a BIGINT column overflows
#: Safety net only: revocation is pushed at once (locally and over NOTIFY); this bounds a missed push.
TOKEN_CACHE_S = 5.0
ROOT = "root"
_DOMAIN_NAME_MAX = 253
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
_password_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist, so timing does not reveal account names.
_DUMMY_HASH = _password_hasher.hash(secrets.token_urlsafe(16))


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


def validate_token_role(role: Any) -> str:
    """A domain token's role: any non-empty name, as Webitel stored it (src/services/domain.js `genToken`);
    roles switchhook does not know grant nothing. `root` is refused (see Caller.is_root)."""
    if not isinstance(role, str) or not role.strip() or role == ROOT:
        raise ValidationFailed("Bad role name.")
    return role


def require(caller: Caller, resource: str, permission: str) -> None:
    """Raise PermissionDenied unless the caller's role grants `permission` on `resource`."""
    if caller.is_root:
        return
    if permission not in _ROLE_PERMISSIONS.get(caller.role, {}).get(resource, ""):
        raise PermissionDenied()


def effective_domain(caller: Caller, requested: str | None) -> str:
    """SPEC §4.4: a domain caller is confined to its domain (its `?domain=` is ignored); root must name one."""
    if caller.domain:
        return caller.domain
    if not requested:
        raise ValidationFailed("Bad request: domain is required.")
    return requested


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def _verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_domain_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > _DOMAIN_NAME_MAX or any(c in name for c in "/@ \t\r\n"):
        raise ValidationFailed("Bad request: domain name must be a non-empty host-like name.")
    return name


class AuthService:
    def __init__(
        self,
        store: Store,
        secret: bytes,
        session_ttl_s: float,
        clock: Callable[[], float] = time.time,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._throttle = throttle or LoginThrottle()
        # Domain-token rows by (domain, id): integrations send one per request, a lookup each is a
        # round trip on the hot route. Revocation drops the entry here and, over NOTIFY, everywhere.
        self._tokens: dict[tuple[str, str], tuple[float, TokenRow | None]] = {}
        self._store = store
        self._secret = secret
        self._session_ttl_s = session_ttl_s
        self._clock = clock

    # -- bootstrap (SPEC §4.5) --------------------------------------------------------------------
    @staticmethod
    async def load_token_secret(store: Store, configured: str) -> bytes:
        """The configured secret, else one generated once and kept with the data."""
        if configured:
            return configured.encode()
        async with store.transaction() as tx:
            return (await tx.put_setting_if_absent("token_secret", secrets.token_urlsafe(48))).encode()

    @staticmethod
    async def bootstrap_root(store: Store, configured: str) -> str | None:
        """Keep root's password hash in step with the configuration; return a generated password to print once."""
        async with store.transaction() as tx:
            stored = await tx.get_setting("root_password_hash")
            if configured:
                if stored is None or not await asyncio.to_thread(_verify_password, stored, configured):
                    await tx.set_setting("root_password_hash", await asyncio.to_thread(hash_password, configured))
                return None
            if stored is not None:
                return None
            generated = secrets.token_urlsafe(18)
            await tx.set_setting("root_password_hash", await asyncio.to_thread(hash_password, generated))
            return generated

    # -- sessions (SPEC §4.2) ---------------------------------------------------------------------
    async def login(self, username: Any, password: Any) -> dict[str, Any]:
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            raise AuthError("Invalid credentials")
        domain: str | None
        if username == ROOT:
            async with self._store.transaction() as tx:
                stored = await tx.get_setting("root_password_hash")
            role, domain, name = ROOT, None, ROOT
        else:
            name, _, domain = username.partition("@")
            account = None
            if name and domain:
                async with self._store.transaction() as tx:
                    account = await tx.get_account(domain, name)
            stored = account.password_hash if account else None
            role = account.role if account else "user"
        delay_s = self._throttle.delay_s(username)
        if delay_s:  # brute-force slow-down: a guesser pays seconds per try, a user barely notices
            await asyncio.sleep(delay_s)
        ok = await asyncio.to_thread(_verify_password, stored or _DUMMY_HASH, password)
        if not ok or stored is None:
            self._throttle.failed(username)
            raise AuthError("Invalid credentials")
        self._throttle.succeeded(username)
        now = self._clock()
        expires_ms = int((now + self._session_ttl_s) * 1000)
        key = str(uuid.uuid4())
        token = jwt.encode({"exp": expires_ms, "key": key, "u": username}, self._secret, algorithm="HS256")
        async with self._store.transaction() as tx:
            await tx.add_session(SessionRow(key, _token_digest(token), name, domain, role, expires_ms / 1000), now)
        # Webitel's answer, in its key order (src/services/auth.js `validate`): `role` is the number.
        return {
            "key": key,
            "domain": domain,
            "username": username,
            "expires": expires_ms,
            "token": token,
            "role": role_number(role),
            "roleName": role,
            "acl": acl_of(Caller(username, name, domain, role, "session")),
        }

    async def logout(self, key: str | None, token: str | None) -> None:
        caller = await self.authenticate(token, key)
        if caller.kind == "domain_token" or key is None:  # root's session (kind "root") logs out too
            raise AuthError("Invalid Token or Key")
        async with self._store.transaction() as tx:
            await tx.delete_session(key, self._clock())

    async def authenticate(self, token: str | None, key: str | None) -> Caller:
        """Resolve credentials to a Caller (Webitel's decision flow) or raise AuthError."""
        if not token:
            raise AuthError("Invalid token")
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_signature": True},
            )
        except jwt.PyJWTError:
            raise AuthError("Invalid token") from None
        exp = payload.get("exp")
        now_ms = self._clock() * 1000
        if isinstance(exp, int | float) and exp <= now_ms:  # exp is in milliseconds (Webitel)
            raise AuthError("Token Expired")
        if payload.get("v") == 2 and payload.get("t") == "domain":
            return await self._domain_token_caller(payload)
        if key:
            return await self._session_caller(key, token)
        raise AuthError("Invalid Token or Key")

    async def _domain_token_caller(self, payload: dict[str, Any]) -> Caller:
        domain, token_id = payload.get("d"), payload.get("id")
        if not isinstance(domain, str) or not isinstance(token_id, str):
            raise AuthError("Invalid token")
        row = await self._token_row(domain, token_id)
        if row is None or not row.enabled:
            raise AuthError("Not found token")
        if row.expires_ms <= self._clock() * 1000:
            raise AuthError("Token Expired")
        return Caller(f"{token_id}@{domain}", token_id, domain, row.role, "domain_token", row.expires_ms)

    async def _token_row(self, domain: str, token_id: str) -> TokenRow | None:
        now = time.monotonic()
        cached = self._tokens.get((domain, token_id))
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._store.transaction() as tx:
            row = await tx.get_token(domain, token_id)
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[(domain, token_id)] = (now + TOKEN_CACHE_S, row)
        return row

    def forget_token(self, domain: str, token_id: str) -> None:
        """Drop a cached token ("*" forgets all): it was revoked, disabled or enabled somewhere."""
        if domain == "*" or token_id == "*":  # noqa: S105 - a wildcard, not a password
            self._tokens.clear()
        else:
            self._tokens.pop((domain, token_id), None)

    async def _session_caller(self, key: str, token: str) -> Caller:
        async with self._store.transaction() as tx:
            row = await tx.get_session(key)
        if row is None or not hmac.compare_digest(row.token_hash, _token_digest(token)):
            raise AuthError("Invalid User")
        if row.expires_at <= self._clock():
            raise AuthError("Token Expired")
        username = row.username if row.domain is None else f"{row.username}@{row.domain}"
        return Caller(
            username,
            row.username,
            row.domain,
            row.role,
            "root" if row.role == ROOT else "session",
            int(row.expires_at * 1000),
        )

    # -- domain tokens (SPEC §4.3) ----------------------------------------------------------------
    def mint_domain_token(self, token_id: str, domain: str, expires_ms: int) -> str:
        payload = {"id": token_id, "exp": expires_ms, "d": domain, "t": "domain", "v": 2}
        return jwt.encode(payload, self._secret, algorithm="HS256")

    async def issue_domain_token(self, domain: str, role: str, lifetime_s: float, created_by: str) -> str:
        """Mint a token offline (CLI): the domain is created when missing."""
        now = self._clock()
        row = TokenRow(str(uuid.uuid4()), domain, role, int((now + lifetime_s) * 1000), True, created_by, now)
        async with self._store.transaction() as tx:
            await tx.add_domain(domain, now)
            await tx.add_token(row)
        return self.mint_domain_token(row.id, domain, row.expires_ms)

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
        return {"data": token_view(row), "token": self.mint_domain_token(row.id, domain, row.expires_ms)}

    async def list_domain_tokens(self, caller: Caller, domain: str) -> list[dict[str, Any]]:
        self._require_domain_admin(caller, domain, "r")
        async with self._store.transaction() as tx:
            return [token_view(r) for r in await tx.list_tokens(domain)]

    async def revoke_domain_token(self, caller: Caller, domain: str, token_id: str) -> int:
        self._require_domain_admin(caller, domain, "d")
        async with self._store.transaction() as tx:
            removed = await tx.delete_token(domain, token_id)
            await tx.notify_token_changed(domain, token_id)
        self.forget_token(domain, token_id)
        return removed

    async def set_domain_token_state(self, caller: Caller, domain: str, token_id: str, body: Any) -> int:
        self._require_domain_admin(caller, domain, "u")
        state = body.get("state") if isinstance(body, dict) else None
        if not isinstance(state, bool):
            raise ValidationFailed("Bad request: state must be true or false.")
        async with self._store.transaction() as tx:
            changed = await tx.set_token_enabled(domain, token_id, state)
            await tx.notify_token_changed(domain, token_id)
        self.forget_token(domain, token_id)
        return changed

    def _require_domain_admin(self, caller: Caller, domain: str, permission: str) -> None:
        require(caller, "token", permission)
        if not caller.is_root and caller.domain != domain:
            raise PermissionDenied()

    # -- domains and accounts (SPEC §4.4) ---------------------------------------------------------
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
        self.forget_token("*", "*")
        return removed

    async def add_account(self, caller: Caller, domain: str, body: Any) -> dict[str, Any]:
        require(caller, "account", "c")
        if not isinstance(body, dict):
            raise ValidationFailed("Bad request: body must be a JSON object.")
        username, password, role = body.get("username"), body.get("password"), body.get("role", "user")
        if not isinstance(username, str) or not username or any(c in username for c in "@:/ \t\r\n"):
            raise ValidationFailed("Bad request: username is required (no @, :, / or spaces).")
        if not isinstance(password, str) or len(password) < 8:
            raise ValidationFailed("Bad request: password must be at least 8 characters.")
        if role not in ("admin", "user"):
            raise ValidationFailed("Bad role name.")
        password_hash = await asyncio.to_thread(hash_password, password)
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
