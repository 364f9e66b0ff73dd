"""One typed settings object for every environment variable of the contract (§5) and PRD 7.

A malformed value stops start-up with :class:`SettingsError`, whose message is one line naming the
variable and what it expected; secrets are held as ``SecretStr`` so they never print.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ALLOWED_SCHEMES = ("https", "http")
# Sub-steps an operator can switch off for a night with SKIP_STEPS.
SKIPPABLE_STEPS = ("tavily", "lusha", "zerobounce", "extraction", "odoo_sync")
SKIPPED = "skipped by SKIP_STEPS"
MIN_DOMAIN_INTERVAL_S = 0.5


class SettingsError(ValueError):
    """A malformed environment variable; ``str(error)`` is one line fit for an operator."""


_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#@]*@")


def redact_url(value: str) -> str:
    """``value`` with the password of a ``scheme://user:password@host`` URL replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", value)


def _csv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part).strip() for part in value if str(part).strip()]


CsvList = Annotated[list[str], NoDecode]
CsvIntList = Annotated[list[int], NoDecode]
CsvPriceMap = Annotated[dict[str, float], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Scheduling (PRD 7)
    sched_enabled: bool = True
    sched_start_cron: str = "0 1 * * *"
    sched_tenant_concurrency: int = Field(3, ge=1)
    sched_company_concurrency: int = Field(8, ge=1)
    sched_daily_cap_per_tenant: int | None = Field(None, ge=1)
    shortlist_daily_cap: int | None = Field(None, ge=1)
    sched_tenant_include: CsvIntList = []
    sched_tenant_exclude: CsvIntList = []
    default_tenant_id: int | None = Field(None, ge=1)
    # A company targeted longer ago than this is due again (complete or not).
    stale_after_days: int = Field(30, ge=0)
    skip_steps: CsvList = []

    # Crawl and extraction
    crawl_max_pages: int = Field(6, ge=0, le=50)
    crawler_timeout_s: float = Field(15.0, gt=0, le=300)
    crawler_user_agent: str = "nightly-pipeline-bot/1.0 (+https://example.invalid/bot; B2B company research)"
    crawler_proxy: str | None = None
    crawler_schemes: CsvList = list(ALLOWED_SCHEMES)
    crawler_domain_min_interval_s: float = MIN_DOMAIN_INTERVAL_S
    crawler_allow_private_networks: bool = False
    extract_corpus_char_limit: int = Field(20_000, ge=1_000)
    persist_crawl_corpus: bool = False
    # How long a public fact (a website found, a site's crawl) serves every tenant before it is fetched again.
    public_facts_max_age_hours: float = Field(20.0, gt=0, le=24 * 30)
    # Off: a run takes no public fact another run fetched (websites, crawls, extractions, address
    # verdicts) and pays for every one itself; what bench/fleet.py compares the shared night against.
    public_facts_reuse: bool = True
    langchain_model: str = "gpt-4o-mini"

    # Vendor budgets, per tenant per run (tokens per tenant per day)
    openai_daily_tokens_cap: int = Field(150_000, ge=0)
    tavily_max_queries: int = Field(800, ge=0)
    lusha_max_contact_lookups: int = Field(500, ge=0)
    zerobounce_max_verifications: int = Field(1_000, ge=0)
    enable_lusha_fallback: bool = True
    lusha_preferred_titles: CsvList = ["CEO", "Founder", "Managing Director", "CTO", "Head of Sales"]

    # Thresholds
    score_min_export: float = Field(0.66, ge=0.0, le=1.0)
    score_bucket_high: float = Field(0.66, gt=0.0, le=1.0)
    score_bucket_medium: float = Field(0.33, gt=0.0, le=1.0)
    odoo_sync_min_bucket: Literal["High", "Medium", "Low"] = "Medium"

    # Where things are
    database_url: SecretStr | None = None
    database_admin_url: SecretStr | None = None
    database_app_role: str = Field("nightly_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    dagster_home: Path = Path(".nightly_pipeline")
    # Dagster's own storage (runs, event logs, schedules) in PostgreSQL instead of SQLite files
    # under DAGSTER_HOME: what several hosts (daemon, webserver, workers) must share.
    dagster_pg_url: SecretStr | None = None
    # Where the steps of a tenant run execute: in the run's own process (one machine), or as
    # Celery tasks on `nightly-pipeline stack worker` processes on any host.
    dagster_executor: Literal["in_process", "celery"] = "in_process"
    dagster_celery_broker_url: str = "redis://127.0.0.1:6379/0"
    dagster_celery_backend_url: str = "redis://127.0.0.1:6379/1"

    # Vendors
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    tavily_api_key: SecretStr | None = None
    tavily_base_url: str = "https://api.tavily.com"
    lusha_api_key: SecretStr | None = None
    lusha_base_url: str = "https://api.lusha.com"
    zerobounce_api_key: SecretStr | None = None
    zerobounce_base_url: str = "https://api.zerobounce.net/v2"
    zerobounce_bulk_base_url: str = "https://bulkapi.zerobounce.net/v2"
    # Price of one charged unit per vendor (a query, a credit, a token), for cost per lead
    vendor_unit_costs: CsvPriceMap = {}

    # Vendor rate limits per API key, kept by every process using the key together
    zerobounce_batches_per_minute: int = Field(5, ge=1)
    zerobounce_block_s: float = Field(3600.0, ge=0)
    # How long a queued address may wait for other runs' addresses to fill its batch (a batch of 200
    # goes at once): ZeroBounce's 5 batch calls a minute are worth more than a few seconds.
    zerobounce_pool_wait_s: float = Field(10.0, ge=0)
    # Lusha's Premium plan (API access needs Premium or Scale); Pro is 50 / 150 / 1,500
    lusha_requests_per_minute: int = Field(300, ge=1)
    lusha_requests_per_hour: int | None = Field(1_800, ge=1)
    lusha_requests_per_day: int | None = Field(18_000, ge=1)
    tavily_requests_per_minute: int = Field(100, ge=1)
    openai_requests_per_minute: int = Field(500, ge=1)
    openai_tokens_per_minute: int = Field(200_000, ge=1)
    # A tenant run's lease lapses this long after its process last renewed it
    tenant_lease_ttl_s: float = Field(60.0, ge=5)
    # Alerts: a night that ends failed or partial, or is not finished by NIGHT_SLA (HH:MM, Singapore
    # time, on the night's date), is POSTed to ALERT_WEBHOOK_URL; the URL is a secret (Slack's are).
    alert_webhook_url: SecretStr | None = None
    night_sla: dt.time = dt.time(6, 0)

    # Admin API
    api_submissions_per_minute: int = Field(6, ge=1, le=10_000)

    def __repr_args__(self):
        # Plain-string URLs (CRAWLER_PROXY, the base URLs) may carry user:password@; SecretStr
        # fields already print as stars.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # load_settings() passes the environment in explicitly, so tests can hand in their own.
        return (init_settings,)

    @field_validator("sched_tenant_include", "sched_tenant_exclude", mode="before")
    @classmethod
    def _tenant_id_csv(cls, value: Any) -> list[int]:
        ids = []
        for part in _csv(value):
            if not part.isdigit() or int(part) < 1:
                raise ValueError(f"a comma-separated list of positive tenant ids, got {part!r}")
            ids.append(int(part))
        return ids

    @field_validator("skip_steps", mode="before")
    @classmethod
    def _skip_steps_csv(cls, value: Any) -> list[str]:
        steps = [step.lower() for step in _csv(value)]
        unknown = [step for step in steps if step not in SKIPPABLE_STEPS]
        if unknown:
            raise ValueError(f"a comma-separated list of {', '.join(SKIPPABLE_STEPS)}, got unknown "
                             f"{', '.join(repr(step) for step in unknown)}")
        return list(dict.fromkeys(steps))

    @field_validator("lusha_preferred_titles", mode="before")
    @classmethod
    def _titles_csv(cls, value: Any) -> list[str]:
        return _csv(value)

    @field_validator("vendor_unit_costs", mode="before")
    @classmethod
    def _price_csv(cls, value: Any) -> dict[str, float]:
        if isinstance(value, dict):
            return value
        prices = {}
        for part in _csv(value):
            vendor, _, price = part.partition("=")
            vendor = vendor.strip().lower()
            try:
                amount = float(price)
            except ValueError:
                amount = -1.0
            if not vendor.isidentifier() or not amount >= 0 or amount == float("inf"):
                raise ValueError(f"comma-separated vendor=price pairs such as 'tavily=0.008,lusha=0.1', got {part!r}")
            prices[vendor] = amount
        return prices

    @field_validator("crawler_schemes", mode="before")
    @classmethod
    def _schemes(cls, value: Any) -> list[str]:
        schemes = [s.lower() for s in _csv(value)]
        unknown = [s for s in schemes if s not in ALLOWED_SCHEMES]
        if unknown or not schemes:
            raise ValueError(f"a comma-separated list of http/https, got {value!r}")
        return schemes

    @field_validator("sched_start_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"a five-field cron expression such as '0 1 * * *', got {value!r}")
        return value

    @field_validator("crawler_domain_min_interval_s")
    @classmethod
    def _interval_floor(cls, value: float) -> float:
        if value < MIN_DOMAIN_INTERVAL_S:
            raise ValueError(f"a number of seconds >= {MIN_DOMAIN_INTERVAL_S} (our politeness floor), got {value}")
        return value

    @field_validator("dagster_pg_url")
    @classmethod
    def _psycopg2_url(cls, value: SecretStr | None) -> SecretStr | None:
        # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 picks psycopg 3 for a bare
        # postgresql:// URL, and then every event write fails.
        if value is not None and not value.get_secret_value().startswith("postgresql+psycopg2://"):
            raise ValueError("a postgresql+psycopg2:// URL (dagster-postgres needs the psycopg2 driver)")
        return value

    @field_validator("dagster_celery_broker_url", "dagster_celery_backend_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("a redis:// or rediss:// URL")
        return value

    @field_validator("dagster_home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @model_validator(mode="after")
    def _buckets_ordered(self) -> "Settings":
        if self.score_bucket_medium >= self.score_bucket_high:
            raise ValueError(f"SCORE_BUCKET_MEDIUM and SCORE_BUCKET_HIGH: expected medium < high, got "
                             f"{self.score_bucket_medium} and {self.score_bucket_high}")
        return self

    @model_validator(mode="after")
    def _include_exclude_disjoint(self) -> "Settings":
        both = set(self.sched_tenant_include) & set(self.sched_tenant_exclude)
        if both:
            raise ValueError(f"SCHED_TENANT_INCLUDE and SCHED_TENANT_EXCLUDE: expected disjoint lists, "
                             f"tenants {sorted(both)} are in both")
        return self

    def skips(self, step: str) -> bool:
        """Whether SKIP_STEPS switches ``step`` off for this run."""
        if step not in SKIPPABLE_STEPS:
            raise ValueError(f"{step!r} is not a step SKIP_STEPS can name")
        return step in self.skip_steps

    @property
    def daily_cap(self) -> int:
        """SHORTLIST_DAILY_CAP is an alias of SCHED_DAILY_CAP_PER_TENANT; the shortlist name wins."""
        return self.shortlist_daily_cap or self.sched_daily_cap_per_tenant or 20

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None


_EXPECTATIONS = {
    "int_parsing": "an integer",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
    "greater_than_equal": "a number >= {ge}",
    "greater_than": "a number > {gt}",
    "less_than_equal": "a number <= {le}",
    "string_pattern_mismatch": "a value matching {pattern}",
    "literal_error": "one of {expected}",
}


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
    if not field:
        return error["msg"].removeprefix("Value error, ")
    variable = field.upper()
    template = _EXPECTATIONS.get(error["type"])
    if template:
        expected = template.format(**error.get("ctx", {}))
    else:
        expected = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    shown = "" if given is None or isinstance(given, (dict, SecretStr)) or "url" in field or "key" in field \
        else f", got {given!r}"
    if "got " in expected:
        shown = ""
    return f"{variable}: expected {expected}{shown}"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment)."""
    source = dict(os.environ if env is None else env)
    try:
        return Settings(**{k.lower(): v for k, v in source.items() if k.lower() in Settings.model_fields})
    except ValidationError as exc:
        raise SettingsError(_describe(exc.errors()[0])) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
