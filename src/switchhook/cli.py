"""The `switchhook` command: serve, migrate, token, accounts (add, password), import (from Webitel), hooks export,
and for development listen (a local receiver) and send (a catalogue sample)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from switchhook.config import Settings

app = typer.Typer(help="switchhook: webhooks for FreeSWITCH/Webitel telephony events.", no_args_is_help=True)
token_app = typer.Typer(help="Domain tokens.", no_args_is_help=True)
accounts_app = typer.Typer(help="Domain accounts.", no_args_is_help=True)
import_app = typer.Typer(help="Import hooks and tokens from another system.", no_args_is_help=True)
hooks_app = typer.Typer(help="Hooks, offline.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(accounts_app, name="accounts")
app.add_typer(import_app, name="import")
app.add_typer(hooks_app, name="hooks")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address [env SWITCHHOOK_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="listen port [env SWITCHHOOK_PORT]")] = None,
    api: Annotated[bool, typer.Option("--api", help="serve the REST API only (no delivery)")] = False,
    worker: Annotated[bool, typer.Option("--worker", help="deliver and consume sources only")] = False,
) -> None:
    """Serve the API and deliver (default), or one of the two roles."""
    import uvicorn

    from switchhook.api.connections import connection_limits, guarded_protocol
    from switchhook.runtime import Runtime
    from switchhook.telemetry import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    both = api == worker  # neither flag, or both: run everything in this process
    runtime = Runtime(settings, api=both or api, worker=both or worker)
    # Slow or half-sent requests and idle connections are bounded per connection (api/connections.py).
    limits = connection_limits(
        settings.header_timeout_s,
        settings.body_timeout_s,
        settings.max_connections,
        other_fds=settings.max_in_flight if both or worker else 0,
    )
    config = uvicorn.Config(
        runtime.app(),
        host=host or settings.host,
        port=port or settings.port,
        loop="uvloop",
        http=guarded_protocol(limits),
        ws="none",  # no WebSocket routes: an Upgrade request is an ordinary request
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


@app.command()
def migrate() -> None:
    """Apply database migrations and exit."""
    from switchhook.runtime import build_store

    async def run() -> list[str]:
        store = build_store(Settings())
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = asyncio.run(run())
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@token_app.command("create")
def token_create(
    domain: Annotated[str, typer.Option(help="the domain the token acts for")],
    role: Annotated[str, typer.Option(help="admin, user, or any other name (which grants nothing)")] = "admin",
    expires: Annotated[str, typer.Option(help="lifetime: 30d, 12h, 90m (default 365d)")] = "365d",
) -> None:
    """Mint a domain token offline (the domain is created when missing)."""
    from switchhook.core.errors import ValidationFailed
    from switchhook.runtime import build_store
    from switchhook.services.auth import AuthService
    from switchhook.services.domains import DomainsService, validate_domain_name, validate_token_role

    try:
        validate_token_role(role)
    except ValidationFailed:
        raise typer.BadParameter("role must be a non-empty name other than root (admin, user, ...)") from None
    validate_domain_name(domain)
    lifetime_s = _duration_s(expires)
    settings = Settings()

    async def run() -> str:
        store = build_store(settings)
        try:
            await store.migrate()
            secret = await AuthService.load_token_secret(store, settings.token_secret)
            domains = DomainsService(store, AuthService(store, secret, 0))
            return await domains.issue_domain_token(domain, role, lifetime_s, "cli")
        finally:
            await store.close()

    typer.echo(asyncio.run(run()))


@accounts_app.command("add")
def accounts_add(
    user: Annotated[str, typer.Argument(help="USER@DOMAIN")],
    role: Annotated[str, typer.Option(help="admin or user")] = "user",
) -> None:
    """Add a domain account; the password comes from SWITCHHOOK_ACCOUNT_PASSWORD or a prompt."""
    from switchhook.runtime import build_store
    from switchhook.services.access import Caller
    from switchhook.services.auth import AuthService
    from switchhook.services.domains import DomainsService

    name, _, domain = user.partition("@")
    if not name or not domain:
        raise typer.BadParameter("expected USER@DOMAIN")
    password = os.environ.get("SWITCHHOOK_ACCOUNT_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    settings = Settings()

    async def run() -> None:
        store = build_store(settings)
        try:
            await store.migrate()
            service = DomainsService(store, AuthService(store, b"", 0))
            root = Caller("root", "root", None, "root", "root")
            await service.add_account(root, domain, {"username": name, "password": password, "role": role})
        finally:
            await store.close()

    from switchhook.core.errors import SwitchhookError

    try:
        asyncio.run(run())
    except SwitchhookError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"added {name}@{domain} ({role})")


@accounts_app.command("password")
def accounts_password(user: Annotated[str, typer.Argument(help="USER@DOMAIN")]) -> None:
    """Give an existing account a new password, ending its sessions; from SWITCHHOOK_ACCOUNT_PASSWORD or a prompt."""
    from switchhook.core.errors import SwitchhookError
    from switchhook.runtime import build_store
    from switchhook.services.access import Caller
    from switchhook.services.auth import AuthService
    from switchhook.services.domains import DomainsService

    name, _, domain = user.partition("@")
    if not name or not domain:
        raise typer.BadParameter("expected USER@DOMAIN")
    password = os.environ.get("SWITCHHOOK_ACCOUNT_PASSWORD") or typer.prompt(
        "new password", hide_input=True, confirmation_prompt=True
    )
    settings = Settings()

    async def run() -> dict[str, object]:
        store = build_store(settings)
        try:
            await store.migrate()
            service = DomainsService(store, AuthService(store, b"", 0))
            root = Caller("root", "root", None, "root", "root")
            return await service.change_account(root, domain, name, {"password": password})
        finally:
            await store.close()

    try:
        changed = asyncio.run(run())
    except SwitchhookError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"changed the password of {name}@{domain}; {changed['sessionsEnded']} session(s) ended")


@import_app.command("webitel")
def import_webitel(
    hooks: Annotated[Path | None, typer.Option(help="mongoexport (JSON lines) of Webitel's hook collection")] = None,
    domains: Annotated[
        Path | None, typer.Option(help="mongoexport (JSON lines) of Webitel's domains collection (tokens)")
    ] = None,
) -> None:
    """Import Webitel hooks (their ids kept) and domain tokens; safe to run again (see docs/webitel.md)."""
    from switchhook.runtime import build_store
    from switchhook.services.migration import ImportReport, import_webitel

    if hooks is None and domains is None:
        raise typer.BadParameter("give --hooks, --domains or both")
    hooks_text = hooks.read_text("utf-8") if hooks else ""
    domains_text = domains.read_text("utf-8") if domains else ""
    settings = Settings()

    async def run() -> ImportReport:
        store = build_store(settings)
        try:
            await store.migrate()
            return await import_webitel(store, hooks_text, domains_text)
        finally:
            await store.close()

    report = asyncio.run(run())
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for rejected in report.rejected:
        typer.echo(f"rejected: {rejected}", err=True)
    typer.echo(report.summary())
    if report.rejected:
        typer.echo("the rest was imported; fix the rejected documents and run it again (it is idempotent)", err=True)
        raise typer.Exit(1)


@hooks_app.command("export")
def hooks_export(
    out: Annotated[Path, typer.Option(help="file to write (mode 0600): it holds hook secrets in clear")],
    domain: Annotated[str | None, typer.Option(help="only this domain's hooks")] = None,
) -> None:
    """Write every hook as a full document, secrets included, one JSON object per line."""
    import orjson

    from switchhook.runtime import build_store
    from switchhook.services.migration import export_hooks

    settings = Settings()

    async def run() -> list[dict[str, object]]:
        store = build_store(settings)
        try:
            await store.migrate()
            return await export_hooks(store, domain)
        finally:
            await store.close()

    docs = asyncio.run(run())
    # Created 0600 before a byte is written, and narrowed again if the file was already there.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        for doc in docs:
            file.write(orjson.dumps(doc) + b"\n")
    typer.echo(f"exported {len(docs)} hooks to {out}")


@app.command()
def listen(
    port: Annotated[int, typer.Option(help="port to listen on (0: any free one)")] = 9000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    secret: Annotated[
        str | None, typer.Option(help="the hook's whsec_... secret: check each request's Standard Webhooks signature")
    ] = None,
    status: Annotated[
        int, typer.Option(help="HTTP status to answer (e.g. 503 to watch retries)", min=200, max=599)
    ] = 200,
) -> None:
    """A local receiver for development: prints every request it gets and answers 200 (or --status)."""
    from switchhook.core.errors import InvalidHook
    from switchhook.tools.listen import listen as serve_listener

    try:
        serve_listener(host, port, secret, status)
    except InvalidHook:
        raise typer.BadParameter("--secret must look like whsec_<base64>, as the hook's secret") from None
    except OSError as exc:
        typer.echo(f"cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def send(
    key: Annotated[str | None, typer.Argument(help="a catalogue event key, e.g. CHANNEL_HANGUP_COMPLETE")] = None,
    domain: Annotated[str | None, typer.Option(help="the domain the event belongs to")] = None,
    url: Annotated[str | None, typer.Option(help="switchhook's base URL [default http://SWITCHHOOK_HOST:PORT]")] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="SWITCHHOOK_TOKEN", help="a token of the domain (or root's) [env SWITCHHOOK_TOKEN]"),
    ] = None,
    key_header: Annotated[str | None, typer.Option("--key", help="a /login session's key, with its token")] = None,
    list_keys: Annotated[bool, typer.Option("--list", help="list the catalogue's keys and exit")] = False,
) -> None:
    """Post the event catalogue's real sample of KEY, rewritten to --domain, to POST /api/v2/events."""
    from switchhook.services.domains import validate_domain_name
    from switchhook.tools.send import SendError, catalogue_keys, post_event, sample_event

    if list_keys or key is None:
        for name, description, has_sample in catalogue_keys():
            typer.echo(f"{name:40} {description}{'' if has_sample else ' (no sample yet)'}")
        return
    if not domain or not token:
        raise typer.BadParameter("--domain and --token (or SWITCHHOOK_TOKEN) are needed to send")
    validate_domain_name(domain)
    settings = Settings()
    try:
        event = sample_event(key, domain, settings.domain_header_list)
        status, answer = post_event(url or f"http://{settings.host}:{settings.port}", event, token, key_header)
    except SendError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{status} {answer}")
    if not 200 <= status < 300:
        raise typer.Exit(1)


def _duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise typer.BadParameter("use a number with s, m, h or d, e.g. 30d")
    return float(number) * units[unit]


def main() -> None:
    app()
