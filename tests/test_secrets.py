"""Secrets at rest: nothing readable in the raw database, rotation, wrong keys fail loudly, and
the migration that encrypts an existing database (SQLite, or PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from referflow.app import create_app
from referflow.cli import main
from referflow.config import Settings
from referflow.errors import ConfigurationError, UnreadableSecret
from referflow.storage import db as storage_db
from referflow.storage import rekey
from referflow.storage.crypto import Keyring
from referflow.storage.db import Database
from referflow.storage.migrate import downgrade, upgrade
from referflow.storage.models import Base, ProviderConfig, WebhookSubscription
from referflow.storage.types import UTCDateTime
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Api, _postgres_database, make_program

NEW_KEY = "the-next-secret-key"


def _provider_secrets() -> dict[str, dict[str, Any]]:
    """Per provider: a configureProvider body whose every secret is unique to this test."""
    def s(prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(12)}"

    return {
        "stripe": {"webhook_secrets": [s("whsec_stripe")], "credentials": {"api_key": s("sk_live_")}},
        "shopify": {"webhook_secrets": [s("shopify-client-secret-")],
                    "credentials": {"shop": "acme.myshopify.com", "access_token": s("shpat_")}},
        "hubspot": {"webhook_secrets": [s("hubspot-app-secret-")],
                    "credentials": {"access_token": s("pat-na1-")}},
        "klaviyo": {"webhook_secrets": [s("klaviyo-signing-")], "credentials": {"api_key": s("pk_")}},
    }


def _secret_values(bodies: dict[str, dict[str, Any]]) -> list[str]:
    return [v for body in bodies.values() for v in
            [*body["webhook_secrets"], *(x for k, x in body["credentials"].items() if k != "shop")]]


def _raw_dump(url: str) -> str:
    """Every row of every table as the database returns it, without referflow's column types."""
    engine = sa.create_engine(url)
    out = []
    with engine.connect() as conn:
        for name in sa.inspect(engine).get_table_names():
            if engine.dialect.name == "postgresql":
                out += conn.execute(sa.text(f'SELECT CAST(t AS text) FROM "{name}" AS t')).scalars()
            else:
                out += (repr(tuple(r)) for r in conn.execute(sa.text(f'SELECT * FROM "{name}"')))
    engine.dispose()
    return "\n".join(out)


def _sqlite_bytes(url: str) -> bytes:
    """The bytes of a SQLite file and its WAL, read by another process: closing a descriptor of
    the file in this one would drop every POSIX lock this process holds on it (SQLite's among
    them), and the next statement of a connection still open fails with "disk I/O error"."""
    path = Path(url.split("///", 1)[1])
    return b"".join(subprocess.run(["cat", str(p)], capture_output=True, check=True).stdout
                    for p in (path, Path(f"{path}-wal")) if p.exists())


def _assert_nowhere(url: str, values: list[str]) -> None:
    dump = _raw_dump(url)
    raw = _sqlite_bytes(url) if url.startswith("sqlite") else b""
    for value in values:
        assert value not in dump, value
        assert value.encode() not in raw, value


def _configure(api: Api, bodies: dict[str, dict[str, Any]]) -> None:
    for provider, body in bodies.items():
        response = api.put(f"/v1/providers/{provider}", body)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["webhook_secrets"] == 1  # counts, never values


def test_no_secret_is_readable_in_the_raw_database(app, client, admin, settings):
    created = admin.post("/v1/admin/programs", {"name": "Acme", "config": {"landing_url": "https://a.test"}},
                         **{"Idempotency-Key": "create-acme"}).get_json()
    api = Api(client, created["api_key"]["key"])
    bodies = _provider_secrets()
    _configure(api, bodies)
    sub = api.post("/v1/webhooks", {"url": "https://127.0.0.1/hook", "events": ["*"]},
                   **{"Idempotency-Key": "subscribe-1"}).get_json()
    replayed = api.post("/v1/webhooks", {"url": "https://127.0.0.1/hook", "events": ["*"]},
                        **{"Idempotency-Key": "subscribe-1"}).get_json()
    assert replayed["secret"] == sub["secret"]  # the encrypted first answer replays as it was
    with app.extensions["referflow"].db.session() as session:  # reads stay transparent
        stored = session.get(ProviderConfig, (created["program"]["id"], "stripe"))
        assert stored.credentials == bodies["stripe"]["credentials"]
        assert stored.webhook_secrets == bodies["stripe"]["webhook_secrets"]
        assert session.get(WebhookSubscription, sub["id"]).secret == sub["secret"]
    app.extensions["referflow"].db.dispose()
    # The API key only ever had its hash stored, but the idempotent createProgram answer held it.
    _assert_nowhere(settings.database_url, [*_secret_values(bodies), sub["secret"],
                                            sub["secret"].removeprefix("whsec_"), created["api_key"]["key"]])


def test_each_column_has_its_own_key():
    keyring = Keyring([SECRET_KEY])
    token = keyring.encrypt("provider_configs.credentials", '{"api_key": "sk_live_x"}')
    assert keyring.decrypt("provider_configs.credentials", token) == '{"api_key": "sk_live_x"}'
    with pytest.raises(UnreadableSecret, match="provider_configs.webhook_secrets cannot be decrypted"):
        keyring.decrypt("provider_configs.webhook_secrets", token)


@pytest.mark.parametrize("keys", [[], [""]])
def test_a_keyring_needs_a_key(keys):
    with pytest.raises(UnreadableSecret, match="REFERFLOW_SECRET_KEY"):
        Keyring(keys)


def _seed(app: Any) -> tuple[str, dict[str, dict[str, Any]], dict[str, Any]]:
    api = make_program(app.test_client())
    bodies = _provider_secrets()
    _configure(api, bodies)
    sub = api.post("/v1/webhooks", {"url": "https://127.0.0.1/hook", "events": ["*"]}).get_json()
    return api.program_id, bodies, sub


def _read_back(url: str, keys: list[str], program_id: str) -> dict[str, Any]:
    db = Database(url, Keyring(keys))
    try:
        with db.session() as session:
            rows = session.scalars(sa.select(ProviderConfig).where(ProviderConfig.program_id == program_id))
            found = {row.provider: {"webhook_secrets": row.webhook_secrets, "credentials": row.credentials}
                     for row in rows}
            found["subscriptions"] = [s.secret for s in session.scalars(sa.select(WebhookSubscription))]
            return found
    finally:
        db.dispose()


def test_a_wrong_key_fails_loudly_never_with_garbage(app, settings):
    program_id, bodies, _ = _seed(app)
    assert _read_back(settings.database_url, [SECRET_KEY], program_id)["stripe"] == bodies["stripe"]
    with pytest.raises(UnreadableSecret, match=r"cannot be decrypted with the configured keys.*"
                                               r"REFERFLOW_OLD_SECRET_KEYS"):
        _read_back(settings.database_url, ["some-other-key"], program_id)


def test_a_database_without_a_key_refuses_to_read_secrets(app, settings):
    program_id, _, _ = _seed(app)
    db = Database(settings.database_url)
    try:
        with db.session() as session, pytest.raises(UnreadableSecret, match="no secret key"):
            session.get(ProviderConfig, (program_id, "stripe"))
    finally:
        db.dispose()


def test_an_app_with_a_wrong_key_answers_500_and_logs_why(app, settings, caplog):
    program_id, _, _ = _seed(app)
    wrong = create_app(settings.with_overrides(encryption_key="some-other-key"))
    response = wrong.test_client().post(f"/v1/ingress/{program_id}/stripe", data=b"{}",
                                        headers={"Content-Type": "application/json",
                                                 "Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 500 and response.get_json()["code"] == "internal_error"
    assert "UnreadableSecret" in caplog.text
    wrong.extensions["referflow"].db.dispose()


@pytest.fixture()
def insecure_delete(monkeypatch):
    """Make SQLite keep deleted bytes, as most builds do (Debian's zeroes them: SECURE_DELETE)."""
    pragmas = storage_db._sqlite_pragmas

    def keep_deleted_bytes(conn: Any, record: Any) -> None:
        pragmas(conn, record)
        conn.execute("PRAGMA secure_delete=OFF")

    monkeypatch.setattr(storage_db, "_sqlite_pragmas", keep_deleted_bytes)


def _env(url: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "REFERFLOW_ADMIN_TOKEN": ADMIN_TOKEN, "REFERFLOW_SECRET_KEY": SECRET_KEY,
            "REDIS_URL": "", "REFERFLOW_OLD_SECRET_KEYS": "", "REFERFLOW_HASH_KEY": "", **extra}


ROTATING = {"REFERFLOW_SECRET_KEY": NEW_KEY, "REFERFLOW_OLD_SECRET_KEYS": SECRET_KEY,
            "REFERFLOW_HASH_KEY": SECRET_KEY}


def _raw_tokens(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tokens = list(conn.execute(sa.text("SELECT credentials FROM provider_configs")).scalars())
    engine.dispose()
    return tokens


def test_rotation_moves_every_secret_to_the_new_key(insecure_delete, app, settings):
    program_id, bodies, sub = _seed(app)
    app.extensions["referflow"].db.dispose()
    url = settings.database_url
    under_the_old_key = _raw_tokens(url)
    # During the rotation both keys read; the app writes under the new one.
    rotating = Settings.from_env(_env(url, **ROTATING))
    assert rotating.secret_keys == (NEW_KEY, SECRET_KEY) and rotating.secret_key == SECRET_KEY
    assert _read_back(url, list(rotating.secret_keys), program_id)["klaviyo"] == bodies["klaviyo"]
    result = CliRunner().invoke(main, ["secrets", "rotate", "--batch-size", "2"], env=_env(url, **ROTATING))
    assert result.exit_code == 0, result.output
    assert "provider_configs.credentials: 4 re-encrypted" in result.output
    assert "webhook_subscriptions.secret: 1 re-encrypted" in result.output
    after = _read_back(url, [NEW_KEY], program_id)  # the old key is no longer needed
    assert {p: after[p] for p in bodies} == bodies and after["subscriptions"] == [sub["secret"]]
    with pytest.raises(UnreadableSecret):
        _read_back(url, [SECRET_KEY], program_id)
    _assert_nowhere(url, under_the_old_key)  # nor left behind in a SQLite file's free pages
    again = CliRunner().invoke(main, ["secrets", "rotate"], env=_env(url, **ROTATING))
    assert again.exit_code == 0 and "provider_configs.credentials: 0 re-encrypted" in again.output


def test_an_interrupted_rotation_reads_fine_and_finishes_on_the_next_run(app, settings):
    program_id, bodies, _ = _seed(app)
    app.extensions["referflow"].db.dispose()
    url, keyring = settings.database_url, Keyring([NEW_KEY, SECRET_KEY])
    columns = rekey.secret_columns(Base.metadata)

    def interrupt(_seen: int) -> None:
        raise KeyboardInterrupt

    db = Database(url)
    with pytest.raises(KeyboardInterrupt):
        rekey.rotate(db.engine, keyring, columns, interrupt, batch_size=1)
    assert _read_back(url, [NEW_KEY, SECRET_KEY], program_id)["shopify"] == bodies["shopify"]
    done = rekey.rotate(db.engine, keyring, columns)
    db.dispose()
    assert sum(done.rotated.values()) == 9 - 1  # 4 + 4 provider values, 1 subscription; 1 done before
    assert _read_back(url, [NEW_KEY], program_id)["shopify"] == bodies["shopify"]


def test_rotation_names_a_row_no_key_can_read(app, settings):
    _seed(app)
    app.extensions["referflow"].db.dispose()
    env = _env(settings.database_url, REFERFLOW_SECRET_KEY=NEW_KEY, REFERFLOW_OLD_SECRET_KEYS="not-it",
               REFERFLOW_HASH_KEY=SECRET_KEY)
    result = CliRunner().invoke(main, ["secrets", "rotate"], env=env)
    assert result.exit_code == 1
    assert "provider_configs (program_id=prg_" in result.output and "cannot be decrypted" in result.output


def test_old_keys_need_the_hashing_key_pinned():
    env = {"DATABASE_URL": "postgresql://db/x", "REFERFLOW_ADMIN_TOKEN": "t",
           "REFERFLOW_SECRET_KEY": NEW_KEY, "REFERFLOW_OLD_SECRET_KEYS": f" {SECRET_KEY} , older ,"}
    with pytest.raises(ConfigurationError, match="REFERFLOW_HASH_KEY"):
        Settings.from_env(env)
    settings = Settings.from_env({**env, "REFERFLOW_HASH_KEY": "first"})
    assert settings.secret_keys == (NEW_KEY, SECRET_KEY, "older") and settings.secret_key == "first"
    plain = Settings.from_env({**env, "REFERFLOW_OLD_SECRET_KEYS": ""})
    assert plain.secret_keys == (NEW_KEY,) and plain.secret_key == NEW_KEY


# -- the migration: an existing database at the previous head, with plain-text secrets ------------

PREVIOUS_HEAD = "0007"
LEGACY = sa.MetaData()
LEGACY_TABLES = {
    "programs": sa.Table("programs", LEGACY, sa.Column("id", sa.String), sa.Column("name", sa.String),
                         sa.Column("config", sa.JSON), sa.Column("config_version", sa.Integer),
                         sa.Column("created_at", UTCDateTime)),
    "api_keys": sa.Table("api_keys", LEGACY, sa.Column("id", sa.String), sa.Column("program_id", sa.String),
                         sa.Column("key_hash", sa.String), sa.Column("prefix", sa.String),
                         sa.Column("label", sa.String), sa.Column("created_at", UTCDateTime)),
    "provider_configs": sa.Table("provider_configs", LEGACY, sa.Column("program_id", sa.String),
                                 sa.Column("provider", sa.String), sa.Column("webhook_secrets", sa.JSON),
                                 sa.Column("credentials", sa.JSON), sa.Column("settings", sa.JSON),
                                 sa.Column("updated_at", UTCDateTime)),
    "webhook_subscriptions": sa.Table("webhook_subscriptions", LEGACY, sa.Column("id", sa.String),
                                      sa.Column("program_id", sa.String), sa.Column("url", sa.String),
                                      sa.Column("events", sa.JSON), sa.Column("secret", sa.String),
                                      sa.Column("active", sa.Boolean), sa.Column("created_at", UTCDateTime)),
    "idempotency_keys": sa.Table("idempotency_keys", LEGACY, sa.Column("scope", sa.String),
                                 sa.Column("key", sa.String), sa.Column("request_hash", sa.String),
                                 sa.Column("status_code", sa.Integer), sa.Column("response", sa.JSON),
                                 sa.Column("created_at", UTCDateTime)),
}


@pytest.fixture()
def empty_url(tmp_path):
    """Return the URL of an empty database on the backend under test."""
    base = os.environ.get("TEST_DATABASE_URL", "")
    if base.startswith("postgres"):
        url, drop = _postgres_database(base.replace("postgresql://", "postgresql+psycopg://", 1))
        yield url
        drop()
    else:
        yield f"sqlite:///{tmp_path / 'before.db'}"


def _legacy_rows(url: str) -> dict[str, Any]:
    """Write a program, a key and plain-text secrets as referflow did at the previous head."""
    now = datetime.now(UTC)
    key = "rfk_" + secrets.token_urlsafe(32)
    providers = _provider_secrets()
    sub_secret = "whsec_" + secrets.token_urlsafe(32)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(LEGACY_TABLES["programs"].insert(), [{
            "id": "prg_legacy", "name": "Legacy", "config": {"landing_url": "https://a.test"},
            "config_version": 1, "created_at": now}])
        conn.execute(LEGACY_TABLES["api_keys"].insert(), [{
            "id": "key_legacy", "program_id": "prg_legacy", "key_hash": hashlib.sha256(key.encode()).hexdigest(),
            "prefix": key[:10], "label": "default", "created_at": now}])
        conn.execute(LEGACY_TABLES["provider_configs"].insert(), [
            {"program_id": "prg_legacy", "provider": p, "settings": {}, "updated_at": now, **body}
            for p, body in providers.items()])
        conn.execute(LEGACY_TABLES["webhook_subscriptions"].insert(), [{
            "id": "whk_legacy", "program_id": "prg_legacy", "url": "https://127.0.0.1/hook",
            "events": ["*"], "secret": sub_secret, "active": True, "created_at": now}])
        conn.execute(LEGACY_TABLES["idempotency_keys"].insert(), [{
            "scope": "admin", "key": "k1", "request_hash": "0" * 64, "status_code": 201,
            "response": {"api_key": {"key": key}}, "created_at": now}])
    engine.dispose()
    return {"key": key, "providers": providers, "sub_secret": sub_secret}


def test_migrate_encrypts_an_existing_database_and_the_downgrade_decrypts_it(empty_url, insecure_delete):
    upgrade(empty_url, PREVIOUS_HEAD)
    legacy = _legacy_rows(empty_url)
    plain = [*_secret_values(legacy["providers"]), legacy["sub_secret"], legacy["key"]]
    assert plain[0] in _raw_dump(empty_url)  # the starting point really is in the clear

    result = CliRunner().invoke(main, ["migrate"], env=_env(empty_url))
    assert result.exit_code == 0, result.output
    _assert_nowhere(empty_url, plain)  # on SQLite: no plain text left in free pages or the WAL
    found = _read_back(empty_url, [SECRET_KEY], "prg_legacy")
    assert {p: found[p] for p in legacy["providers"]} == legacy["providers"]
    assert found["subscriptions"] == [legacy["sub_secret"]]

    app = create_app(Settings.from_env(_env(empty_url)))
    owner = Api(app.test_client(), legacy["key"])  # an existing key keeps what it could do
    keys = owner.get("/v1/api-keys")
    assert keys.status_code == 200 and keys.get_json()["items"][0]["scopes"] == ["admin-of-program"]
    assert owner.put("/v1/providers/stripe", {"settings": {}}).status_code == 200
    app.extensions["referflow"].db.dispose()

    downgrade(empty_url, PREVIOUS_HEAD, secret_keys=[SECRET_KEY])
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(LEGACY_TABLES["provider_configs"])).mappings().all()
        assert {r["provider"]: {"webhook_secrets": r["webhook_secrets"], "credentials": r["credentials"]}
                for r in rows} == legacy["providers"]
        response = conn.execute(sa.select(LEGACY_TABLES["idempotency_keys"].c.response)).scalar_one()
        assert response == {"api_key": {"key": legacy["key"]}}
    engine.dispose()


def test_the_migration_of_a_fresh_database_needs_no_key(tmp_path, monkeypatch):
    for name in ("REFERFLOW_SECRET_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # Settings.from_env is never asked: no instance/ appears
    upgrade(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert not (tmp_path / "instance").exists()


def test_configuration_secrets_are_kept_open_bearer_values_never(monkeypatch):
    """A delivery's webhook secret is opened once per token; gift-card codes on every read."""
    ring = Keyring(["k1"])
    opened: list[str] = []
    real_open = Keyring._open

    def counting_open(self: Keyring, purpose: str, stored: str, fernet: Any) -> bytes:
        opened.append(purpose)
        return real_open(self, purpose, stored, fernet)

    monkeypatch.setattr(Keyring, "_open", counting_open)
    secret = ring.encrypt("provider_configs.webhook_secrets", '["whsec_1"]')
    code = ring.encrypt("gift_cards.code", "GIFT-1234")
    for _ in range(3):
        assert ring.decrypt("provider_configs.webhook_secrets", secret) == '["whsec_1"]'
        assert ring.decrypt("gift_cards.code", code) == "GIFT-1234"
    assert opened.count("provider_configs.webhook_secrets") == 1
    assert opened.count("gift_cards.code") == 3
    with pytest.raises(UnreadableSecret):  # a token of another keyring is refused, cached or not
        Keyring(["k2"]).decrypt("provider_configs.webhook_secrets", secret)
