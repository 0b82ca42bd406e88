"""Sign-in and credentials: root and account logins, sessions, logout, and any credentials to a Caller.

The `/login`, `/logout` and whoami routes; what a caller may do is `access.py`, domains, their tokens and
accounts are `domains.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from switchhook.core.errors import AuthError, PermissionDenied, RateLimited, ValidationFailed
from switchhook.services.access import ROOT, Caller, acl_of, require, role_number
from switchhook.services.login_guard import LoginThrottle, PasswordChecks
from switchhook.store.base import SessionRow, Store, TokenRow, Tx

#: Safety net only: revocation is pushed at once (locally and over NOTIFY); this bounds a missed push.
TOKEN_CACHE_S = 5.0
_password_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist, so timing does not reveal account names.
_DUMMY_HASH = _password_hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def _verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def credential_of(password_hash: str) -> str:
    """Which password a session was made with: a digest of its stored hash (salted, so a new one even for the
    same password), never the password. A session whose credential is not its account's (or root's) current
    one has ended: the password changed since."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


class AuthService:
    """Logins (guarded: login_guard.py), sessions that end when their password changes, and credentials
    resolved to a Caller, with domain-token lookups cached for TOKEN_CACHE_S at most."""

    def __init__(
        self,
        store: Store,
        secret: bytes,
        session_ttl_s: float,
        clock: Callable[[], float] = time.time,
        throttle: LoginThrottle | None = None,
        checks: PasswordChecks | None = None,
    ) -> None:
        self._throttle = throttle or LoginThrottle()
        #: Every password hashed or checked on behalf of a request runs here (bounded; counted for /metrics).
        self.checks = checks or PasswordChecks()
        # Domain-token rows by (domain, id): integrations send one per request, a lookup each is a
        # round trip on the hot route. Revocation drops the entry here and, over NOTIFY, everywhere.
        self._tokens: dict[tuple[str, str], tuple[float, TokenRow | None]] = {}
        self._store = store
        self._secret = secret
        self._session_ttl_s = session_ttl_s
        self._clock = clock

    # -- bootstrap: the token secret and root's password ------------------------------------------
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
                    # A new root password ends root's sessions (their credential no longer matches either).
                    await tx.delete_sessions(None, ROOT)
                return None
            if stored is not None:
                return None
            generated = secrets.token_urlsafe(18)
            await tx.set_setting("root_password_hash", await asyncio.to_thread(hash_password, generated))
            return generated

    # -- sessions -----------------------------------------------------------------------------------
    async def login(self, username: Any, password: Any) -> dict[str, Any]:
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            raise AuthError("Invalid credentials")
        # Refused before any work while the name is slowed down: a guesser waits outside, holding nothing.
        wait_s = self._throttle.begin(username)
        if wait_s:
            self.checks.refused["slow_down"] += 1
            raise RateLimited("Too many failed logins: retry later.", wait_s)
        verdict: bool | None = None  # None: the check never ran (refused as busy, store down): counts nothing
        try:
            domain: str | None
            async with self._store.transaction() as tx:
                if username == ROOT:
                    stored = await tx.get_setting("root_password_hash")
                    role, domain, name = ROOT, None, ROOT
                else:
                    name, _, domain = username.partition("@")
                    account = await tx.get_account(domain, name) if name and domain else None
                    stored = account.password_hash if account else None
                    role = account.role if account else "user"
            ok = await self.checks.run(_verify_password, stored or _DUMMY_HASH, password)
            verdict = ok and stored is not None
        finally:
            self._throttle.end(username, verdict)
        if not verdict or stored is None:
            raise AuthError("Invalid credentials")
        now = self._clock()
        expires_ms = int((now + self._session_ttl_s) * 1000)
        key = str(uuid.uuid4())
        token = jwt.encode({"exp": expires_ms, "key": key, "u": username}, self._secret, algorithm="HS256")
        async with self._store.transaction() as tx:
            row = SessionRow(key, _token_digest(token), name, domain, role, expires_ms / 1000, credential_of(stored))
            await tx.add_session(row, now)
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
            current = await self._current_credential(tx, row) if row is not None else None
        if row is None or not hmac.compare_digest(row.token_hash, _token_digest(token)):
            raise AuthError("Invalid User")
        if current is None or not hmac.compare_digest(row.credential, current[0]):
            raise AuthError("Invalid User")  # the password changed (or the account went) since this login
        if row.expires_at <= self._clock():
            raise AuthError("Token Expired")
        username = row.username if row.domain is None else f"{row.username}@{row.domain}"
        role = current[1]  # the account's role now: a changed role applies to its sessions at once
        return Caller(
            username,
            row.username,
            row.domain,
            role,
            "root" if role == ROOT else "session",
            int(row.expires_at * 1000),
        )

    @staticmethod
    async def _current_credential(tx: Tx, row: SessionRow) -> tuple[str, str] | None:
        """(credential, role) of the session's account as stored now; None when it has none."""
        if row.domain is None:
            stored = await tx.get_setting("root_password_hash") if row.username == ROOT else None
            return None if stored is None else (credential_of(stored), ROOT)
        account = await tx.get_account(row.domain, row.username)
        return None if account is None else (credential_of(account.password_hash), account.role)

    # -- passwords on behalf of a request (bounded with the logins' checks) ----------------------------
    async def make_password_hash(self, password: str) -> str:
        """An argon2 hash of `password`, computed on the password-check threads (RateLimited when saturated)."""
        return await self.checks.run(hash_password, password)

    async def end_sessions(self, caller: Caller, domain: str | None, username: str | None) -> int:
        """End sessions now; returns how many ended. Root ends root's (`domain` None, `username` root) or any
        domain's; a domain's admin only its own domain's. `username` narrows a domain's to one account's."""
        if domain is None:
            if not caller.is_root:
                raise PermissionDenied()
            if username != ROOT:
                raise ValidationFailed("Bad request: domain is required.")
        else:
            require(caller, "account", "d")
            if not caller.is_root and caller.domain != domain:
                raise PermissionDenied()
        async with self._store.transaction() as tx:
            return await tx.delete_sessions(domain, username)

    # -- domain tokens: signing (stored and managed by domains.py) ----------------------------------
    def mint_domain_token(self, token_id: str, domain: str, expires_ms: int) -> str:
        """A domain token's JWT (Webitel's v2 payload), for a record `DomainsService` stored."""
        payload = {"id": token_id, "exp": expires_ms, "d": domain, "t": "domain", "v": 2}
        return jwt.encode(payload, self._secret, algorithm="HS256")
