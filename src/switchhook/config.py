"""Settings from SWITCHHOOK_* environment variables: loaded once by the CLI and passed down, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchhook.core.filters import RegexBudget, RegexLimits
from switchhook.core.hooks import HookLimits


class Settings(BaseSettings):
    """Every knob of switchhook. Each field is `SWITCHHOOK_<NAME>`; the README lists them all."""

    model_config = SettingsConfigDict(env_prefix="SWITCHHOOK_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".switchhook")
    database_url: str = ""  # empty: SQLite file in data_dir
    database_schema: str = ""  # PostgreSQL schema (search_path); empty: the server default
    amqp_url: str = ""
    amqp_queue: str = "switchhook.events"
    amqp_events_exchange: str = "TAP.Events"
    amqp_cc_exchange: str = "TAP.CC-Events"
    # mod_amqp's routing-key layout: `freeswitch` (stock amqp.conf.xml), `webitel`, or a format_fields value
    amqp_format_fields: str = "freeswitch"
    amqp_cc_format_fields: str = ""  # the CC exchange's layout; empty: the preset's (webitel's), `none`: unbound
    esl_url: str = ""
    esl_reconnect_max_s: float = Field(1.0, gt=0)  # longest wait between Event Socket reconnects, seconds
    root_password: str = ""
    token_secret: str = ""
    egress_deny: str = ""  # comma-separated CIDRs
    default_retries: int = Field(3, ge=0, le=100)
    retention_days: float = Field(7, gt=0)
    domain_headers: str = (
        "variable_domain_name,variable_w_domain,Channel-Presence-ID,variable_presence_id,"
        "variable_dialed_domain,Event-Domain"
    )
    # event headers that give its call id, first non-empty wins (services/events.py DEFAULT_CALL_HEADERS)
    call_headers: str = "Channel-Call-UUID,variable_call_uuid,Unique-ID"
    default_timeout_s: float = Field(15.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_in_flight: int = Field(512, ge=1)
    max_in_flight_per_hook: int = Field(32, ge=1)
    max_in_flight_per_domain: int = Field(128, ge=1)
    max_queued: int = Field(20_000, ge=1)  # deliveries a worker holds in memory; a domain at most 16 x its cap
    max_hooks_per_domain: int = Field(1000, ge=1)
    max_hooks_per_event_key: int = Field(100, ge=1)  # hooks of one domain on one event key
    max_deliveries_per_request: int = Field(50_000, ge=1)  # deliveries one POST /api/v2/events may create
    lease_s: float = Field(90.0, gt=0)
    breaker_failures: int = Field(5, ge=0)  # consecutive failed attempts that pause a hook; 0 = never
    breaker_cooldown_s: float = Field(5.0, gt=0)  # first pause; doubles per failed probe
    breaker_max_cooldown_s: float = Field(60.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    header_timeout_s: float = Field(10.0, gt=0)  # a request head must arrive whole within this, seconds
    body_timeout_s: float = Field(10.0, gt=0)  # its body within this of the head, seconds
    max_connections: int = Field(1000, ge=1)  # client connections served per process; past it only /health
    ingest_rate_per_domain: float = Field(0.0, ge=0)  # events/s per domain; 0 = unlimited
    ingest_burst_per_domain: float = Field(0.0, ge=0)  # events a domain may send at once; 0 = twice the rate
    max_hook_bytes: int = Field(64 * 1024, ge=1024)  # one hook document, as JSON
    regex_max_length: int = Field(1000, ge=1)  # characters of one filter regex
    regex_max_repeat: int = Field(1000, ge=1)  # largest count in one {n,m} repetition
    regex_max_size: int = Field(5000, ge=1)  # a hook's regexes expanded (repetitions multiplied out), units
    regex_max_per_hook: int = Field(10, ge=0)  # `reg` conditions in one hook's filter
    regex_max_per_domain: int = Field(200, ge=0)  # `reg` conditions of all a domain's hooks together
    regex_budget_ms_per_s: float = Field(50.0, gt=0)  # regex matching time a domain earns per second, ms
    regex_budget_burst_ms: float = Field(50.0, gt=0)  # matching time a domain may save up, ms
    regex_budget_per_event_ms: float = Field(10.0, gt=0)  # matching time one event may take, ms
    session_ttl_days: float = Field(100.0, gt=0)
    login_concurrency: int = Field(2, ge=1)  # password checks (argon2) run at once per process
    login_queue: int = Field(16, ge=0)  # password checks that may wait for one; more are a 429
    log_level: str = "INFO"
    log_format: str = "json"  # json | text

    @property
    def sqlite_path(self) -> Path:
        url = self.database_url
        if url.startswith("sqlite:///"):
            return Path(url[len("sqlite:///") :])
        return self.data_dir / "switchhook.db"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://"))

    @property
    def domain_header_list(self) -> tuple[str, ...]:
        return tuple(h.strip() for h in self.domain_headers.split(",") if h.strip())

    @property
    def call_header_list(self) -> tuple[str, ...]:
        return tuple(h.strip() for h in self.call_headers.split(",") if h.strip())

    @property
    def hook_limits(self) -> HookLimits:
        """What one hook document may cost: its JSON size and its regexes (RELIABILITY.md, hostile tenants)."""
        regex = RegexLimits(self.regex_max_length, self.regex_max_repeat, self.regex_max_size, self.regex_max_per_hook)
        return HookLimits(self.max_hook_bytes, regex)

    @property
    def regex_budget(self) -> RegexBudget:
        """How much time each domain's regex filters may take (docs/behaviour.md, Regex filters)."""
        return RegexBudget(self.regex_budget_ms_per_s, self.regex_budget_burst_ms, self.regex_budget_per_event_ms)

    @property
    def egress_deny_list(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.egress_deny.split(",") if c.strip())
