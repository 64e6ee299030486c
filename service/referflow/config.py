"""Settings: the only place that reads the environment."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from referflow.errors import ConfigurationError

DEFAULT_INSTANCE_DIR = "instance"
MIN_RETENTION_DAYS = 30
_TRUE = {"1", "true", "yes", "on"}


def _flag(env: dict[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    return default if raw is None else raw.strip().lower() in _TRUE


PLACEHOLDERS = {"change-me", "changeme", "secret", "password"}
# The secrets an operator sets by hand: none may keep .env.example's placeholder.
SECRET_VARIABLES = ("REFERFLOW_ADMIN_TOKEN", "REFERFLOW_SECRET_KEY", "REFERFLOW_HASH_KEY",
                    "REFERFLOW_METRICS_TOKEN")


@dataclass(frozen=True)
class Settings:
    """Runtime settings for one referflow process."""

    database_url: str
    redis_url: str | None
    admin_token: str
    # The key of the keyed hashes (e-mails, addresses, devices): REFERFLOW_HASH_KEY when set, else
    # REFERFLOW_SECRET_KEY. It must never change, or stored hashes stop matching.
    secret_key: str
    public_url: str | None = None
    port: int = 8000
    allow_private_webhook_urls: bool = False
    trust_proxy: bool = False
    max_body_bytes: int = 64 * 1024
    validate_responses: bool = False
    job_poll_seconds: float = 2.0
    start_jobs: bool = True
    job_lease_seconds: float = 60.0
    retention_days: int = 400
    rate_limit_auth_failures: str = "30/minute"  # per address and per key prefix
    rate_limit_public: str = "300/minute"  # share-link visits per address
    rate_limit_ingress: str = "1200/minute"  # provider deliveries per address, before signatures
    instance_dir: str = DEFAULT_INSTANCE_DIR
    generated_admin_token: bool = False  # this start created it: print it once
    stripe_api_base: str = "https://api.stripe.com"
    shopify_api_base: str | None = None
    hubspot_api_base: str = "https://api.hubapi.com"
    klaviyo_api_base: str = "https://a.klaviyo.com"
    # Observability (observability.py): gunicorn workers share request metrics through this
    # directory (prometheus_client reads the same variable); traces go out when OTLP is set.
    metrics_dir: str | None = None
    tracing: bool = False
    # A bearer token that reads /metrics and nothing else (a Prometheus scrape credential); the
    # admin token reads it too. None: only the admin token does.
    metrics_token: str | None = None
    # Secrets at rest (storage/crypto.py): REFERFLOW_SECRET_KEY encrypts ("" = secret_key), the
    # REFERFLOW_OLD_SECRET_KEYS still decrypt until `referflow secrets rotate` has run.
    encryption_key: str = ""
    old_secret_keys: tuple[str, ...] = ()

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """Return the keys of secrets at rest: the current one first, then the old ones."""
        return (self.encryption_key or self.secret_key, *self.old_secret_keys)

    @property
    def embedded(self) -> bool:
        """Tell whether this is the embedded default (SQLite, in-process jobs)."""
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from the environment; generate secrets only for the embedded default."""
        env = dict(os.environ if env is None else env)
        instance = Path(env.get("REFERFLOW_INSTANCE_DIR", DEFAULT_INSTANCE_DIR))
        database_url = env.get("DATABASE_URL") or f"sqlite:///{instance.resolve() / 'referflow.db'}"
        embedded = database_url.startswith("sqlite")
        admin_token = env.get("REFERFLOW_ADMIN_TOKEN", "")
        secret_key = env.get("REFERFLOW_SECRET_KEY", "")
        generated = False
        placeholders = [name for name in SECRET_VARIABLES
                        if env.get(name, "").strip().lower() in PLACEHOLDERS]
        if placeholders:  # .env.example's values copied as they are: refuse to run on them
            raise ConfigurationError(f"{', '.join(placeholders)} still hold the example value "
                                     "'change-me': set real secrets (docs/production.md)")
        if not (admin_token and secret_key):
            if not embedded:
                raise ConfigurationError(
                    "REFERFLOW_ADMIN_TOKEN and REFERFLOW_SECRET_KEY must be set when DATABASE_URL "
                    "is not the embedded SQLite default"
                )
            stored, created = _embedded_secrets(instance)
            generated = created and not admin_token
            admin_token = admin_token or stored["admin_token"]
            secret_key = secret_key or stored["secret_key"]
        hash_key, old_keys = _key_chain(env, secret_key)
        return cls(
            database_url=_normalise_db_url(database_url),
            redis_url=env.get("REDIS_URL") or None,
            admin_token=admin_token,
            secret_key=hash_key,
            encryption_key=secret_key,
            old_secret_keys=old_keys,
            public_url=(env.get("REFERFLOW_PUBLIC_URL") or "").rstrip("/") or None,
            port=int(env.get("PORT", "8000")),
            allow_private_webhook_urls=_flag(env, "REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS"),
            trust_proxy=_flag(env, "REFERFLOW_TRUST_PROXY"),
            max_body_bytes=int(env.get("REFERFLOW_MAX_BODY_BYTES", str(64 * 1024))),
            validate_responses=_flag(env, "REFERFLOW_VALIDATE_RESPONSES"),
            start_jobs=_flag(env, "REFERFLOW_START_JOBS", default=True),
            job_lease_seconds=float(env.get("REFERFLOW_JOB_LEASE_SECONDS", "60")),
            retention_days=_retention_days(env.get("REFERFLOW_RETENTION_DAYS", "400")),
            rate_limit_auth_failures=env.get("REFERFLOW_RATE_LIMIT_AUTH_FAILURES", "30/minute"),
            rate_limit_public=env.get("REFERFLOW_RATE_LIMIT_PUBLIC", "300/minute"),
            rate_limit_ingress=env.get("REFERFLOW_RATE_LIMIT_INGRESS", "1200/minute"),
            instance_dir=str(instance),
            generated_admin_token=generated,
            stripe_api_base=env.get("REFERFLOW_STRIPE_API_BASE", "https://api.stripe.com"),
            shopify_api_base=env.get("REFERFLOW_SHOPIFY_API_BASE") or None,
            hubspot_api_base=env.get("REFERFLOW_HUBSPOT_API_BASE", "https://api.hubapi.com"),
            klaviyo_api_base=env.get("REFERFLOW_KLAVIYO_API_BASE", "https://a.klaviyo.com"),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            tracing=_tracing(env),
            metrics_token=_metrics_token(env, admin_token),
        )


def _key_chain(env: dict[str, str], secret_key: str) -> tuple[str, tuple[str, ...]]:
    """Return the hashing key and the old encryption keys; a rotation must pin the hashing key."""
    old_keys = tuple(k.strip() for k in env.get("REFERFLOW_OLD_SECRET_KEYS", "").split(",") if k.strip())
    hash_key = env.get("REFERFLOW_HASH_KEY", "")
    if old_keys and not hash_key:
        raise ConfigurationError(
            "REFERFLOW_OLD_SECRET_KEYS is set: set REFERFLOW_HASH_KEY too, to the key the stored hashes "
            "were made with (the install's first REFERFLOW_SECRET_KEY), so that they keep matching")
    return hash_key or secret_key, old_keys


def _metrics_token(env: dict[str, str], admin_token: str) -> str | None:
    """Return the scrape-only token, refusing the admin token (that would grant everything)."""
    token = env.get("REFERFLOW_METRICS_TOKEN", "").strip() or None
    if token is not None and token == admin_token:
        raise ConfigurationError("REFERFLOW_METRICS_TOKEN must differ from REFERFLOW_ADMIN_TOKEN: "
                                 "it is the read-only credential for /metrics")
    return token


def _tracing(env: dict[str, str]) -> bool:
    """Trace when an OTLP endpoint is set and the OpenTelemetry SDK is not switched off."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(endpoint) and not _flag(env, "OTEL_SDK_DISABLED")


def _retention_days(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < MIN_RETENTION_DAYS:
        raise ConfigurationError(
            f"REFERFLOW_RETENTION_DAYS must be a whole number of days, at least {MIN_RETENTION_DAYS}")
    return int(raw)


def _normalise_db_url(url: str) -> str:
    """Use psycopg 3 for plain postgres URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _embedded_secrets(instance: Path) -> tuple[dict[str, str], bool]:
    """Load or create the secrets file of the embedded default (mode 0600); True if created."""
    path = instance / "secrets.json"
    if path.exists():
        return json.loads(path.read_text()), False
    instance.mkdir(parents=True, exist_ok=True)
    data = {"admin_token": "rfadm_" + secrets.token_urlsafe(24), "secret_key": secrets.token_hex(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return data, True
