"""Moving hooks in and out of switchhook: importing a Webitel `mongoexport`, exporting full hook documents.

Import keeps Webitel's ids, so integrations keep their URLs (`/api/v2/hooks/<ObjectId>`) and their domain
tokens (with SWITCHHOOK_TOKEN_SECRET set to Webitel's secret, the JWTs it minted verify unchanged). It is
idempotent: a hook or token already here under the same id in the same domain is replaced by the imported one;
an id held by another domain is refused, never moved. Documents that break the hook rules are reported and
skipped; the rest are imported in one transaction. See docs/webitel.md "Migrating from Webitel".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switchhook.core.errors import SwitchhookError, ValidationFailed
from switchhook.core.hooks import STORED_KEYS, validate_hook
from switchhook.core.webitel import WebitelHook, WebitelToken, documents, read_domain, read_hook
from switchhook.services.access import ROOT
from switchhook.services.domains import MAX_EXPIRE_MS, validate_domain_name
from switchhook.store.base import HookRow, Store, TokenRow


@dataclass
class ImportReport:
    """What an import did, and what it refused (where and why)."""

    hooks_created: int = 0
    hooks_replaced: int = 0
    domains_added: int = 0
    tokens_created: int = 0
    tokens_replaced: int = 0
    rejected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"hooks: {self.hooks_created} created, {self.hooks_replaced} replaced; "
            f"domains: {self.domains_added} added; "
            f"tokens: {self.tokens_created} created, {self.tokens_replaced} replaced; "
            f"rejected: {len(self.rejected)}"
        )


def _hooks(text: str, report: ImportReport) -> list[tuple[WebitelHook, dict[str, Any]]]:
    hooks: dict[str, tuple[WebitelHook, dict[str, Any]]] = {}
    for line, doc in documents(text):
        try:
            if isinstance(doc, SwitchhookError):
                raise doc
            hook = read_hook(doc)
            validate_domain_name(hook.domain)
            hooks[hook.id] = (hook, validate_hook(hook.body))  # a later line of the same id wins
        except SwitchhookError as exc:
            report.rejected.append(f"hooks line {line}: {exc.message}")
    return list(hooks.values())


def _domains(text: str, report: ImportReport) -> list[tuple[str, list[WebitelToken]]]:
    domains = []
    for line, doc in documents(text):
        try:
            if isinstance(doc, SwitchhookError):
                raise doc
            name, entries = read_domain(doc)
            validate_domain_name(name)
        except SwitchhookError as exc:
            report.rejected.append(f"domains line {line}: {exc.message}")
            continue
        tokens = []
        for entry in entries:
            if isinstance(entry, ValidationFailed):
                report.rejected.append(f"domains line {line} ({name}): {entry.message}")
            else:
                tokens.append(entry)
                if entry.role == ROOT:
                    report.warnings.append(
                        f"token {entry.id} of {name} has role root: switchhook gives domain tokens no root "
                        "power, so it is imported but every call with it is refused (403)"
                    )
        domains.append((name, tokens))
    return domains


async def import_webitel(
    store: Store, hooks_text: str, domains_text: str, clock: Callable[[], float] = time.time
) -> ImportReport:
    """Import Webitel's `hook` and `domains` collections (mongoexport text) into the store."""
    report = ImportReport()
    hooks = _hooks(hooks_text, report)
    domains = _domains(domains_text, report)
    now = clock()
    async with store.transaction() as tx:
        owner_of_hook = {row.id: row.domain for row in await tx.all_hooks()}
        owner_of_token = {row.id: row.domain for name in await tx.list_domains() for row in await tx.list_tokens(name)}
        for name in sorted({hook.domain for hook, _ in hooks} | {name for name, _ in domains}):
            if await tx.add_domain(name, now):
                report.domains_added += 1
        for name, tokens in domains:
            for token in tokens:
                owner = owner_of_token.get(token.id)
                if owner is not None and owner != name:
                    report.rejected.append(f"token {token.id} of {name}: that id belongs to domain {owner} here")
                    continue
                if owner == name:
                    await tx.delete_token(name, token.id)
                await tx.add_token(_token_row(name, token, now))
                await tx.notify_token_changed(name, token.id)
                owner_of_token[token.id] = name
                if owner is None:
                    report.tokens_created += 1
                else:
                    report.tokens_replaced += 1
        for hook, doc in hooks:
            owner = owner_of_hook.get(hook.id)
            row = HookRow(hook.id, hook.domain, doc)
            if owner is None:
                await tx.insert_hook(row, now)
                report.hooks_created += 1
            elif owner == hook.domain:
                await tx.replace_hook(row, now)
                report.hooks_replaced += 1
            else:
                report.rejected.append(f"hook {hook.id} of {hook.domain}: that id belongs to domain {owner} here")
                continue
            await tx.notify_hook_changed(hook.domain, hook.id)
    return report


def _token_row(domain: str, token: WebitelToken, now: float) -> TokenRow:
    return TokenRow(
        id=token.id,
        domain=domain,
        role=token.role,
        expires_ms=min(token.expires_ms, MAX_EXPIRE_MS) if token.expires_ms is not None else MAX_EXPIRE_MS,
        enabled=token.enabled,
        created_by=token.created_by,
        created_at=token.created_ms / 1000 if token.created_ms is not None else now,
    )


async def export_hooks(store: Store, domain: str | None = None) -> list[dict[str, Any]]:
    """Every hook (or one domain's) as a full document: secrets and credentials in clear, `_id` and `domain`
    first, so `switchhook import webitel --hooks` reads the file back. For an operator's file, never HTTP."""
    async with store.transaction() as tx:
        rows = await tx.all_hooks()
    out = []
    for row in rows:
        if domain is not None and row.domain != domain:
            continue
        doc = {"_id": row.id, "domain": row.domain, **{k: row.doc[k] for k in STORED_KEYS if k in row.doc}}
        if row.disabled_reason:
            doc["disabledReason"] = row.disabled_reason
        out.append(doc)
    return out
