"""Settings come from the environment; production refuses to start without secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from referflow.config import Settings
from referflow.errors import ConfigurationError


def test_embedded_default_generates_and_keeps_secrets(tmp_path):
    env = {"REFERFLOW_INSTANCE_DIR": str(tmp_path)}
    first = Settings.from_env(env)
    second = Settings.from_env(env)
    assert first.embedded and first.database_url.startswith("sqlite:///")
    assert first.admin_token == second.admin_token and len(first.secret_key) == 64
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0
    assert json.loads((tmp_path / "secrets.json").read_text())["admin_token"] == first.admin_token


def test_only_a_token_this_start_generated_is_flagged_for_printing(tmp_path):
    env = {"REFERFLOW_INSTANCE_DIR": str(tmp_path / "inst")}
    assert Settings.from_env(env).generated_admin_token
    assert not Settings.from_env(env).generated_admin_token  # second start: kept, not shown
    from_env = Settings.from_env({"REFERFLOW_INSTANCE_DIR": str(tmp_path / "other"),
                                  "REFERFLOW_ADMIN_TOKEN": "rfadm_from_env"})
    assert from_env.admin_token == "rfadm_from_env" and not from_env.generated_admin_token
    assert from_env.instance_dir == str(tmp_path / "other")


def test_production_without_secrets_fails_clearly(tmp_path):
    with pytest.raises(ConfigurationError, match="REFERFLOW_ADMIN_TOKEN"):
        Settings.from_env({"DATABASE_URL": "postgresql://db/x",
                           "REFERFLOW_INSTANCE_DIR": str(tmp_path)})


def test_postgres_urls_use_psycopg3():
    settings = Settings.from_env({"DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://r",
                                  "REFERFLOW_ADMIN_TOKEN": "a", "REFERFLOW_SECRET_KEY": "s",
                                  "REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS": "true"})
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.redis_url == "redis://r" and not settings.embedded
    assert settings.allow_private_webhook_urls


@pytest.mark.parametrize("raw", ["10", "29", "abc", "-400", "1.5"])
def test_retention_shorter_than_a_month_or_not_a_number_is_refused(tmp_path, raw):
    env = {"REFERFLOW_INSTANCE_DIR": str(tmp_path), "REFERFLOW_RETENTION_DAYS": raw}
    with pytest.raises(ConfigurationError, match="REFERFLOW_RETENTION_DAYS"):
        Settings.from_env(env)


def test_retention_defaults_to_400_days(tmp_path):
    assert Settings.from_env({"REFERFLOW_INSTANCE_DIR": str(tmp_path)}).retention_days == 400
    env = {"REFERFLOW_INSTANCE_DIR": str(tmp_path), "REFERFLOW_RETENTION_DAYS": "90"}
    assert Settings.from_env(env).retention_days == 90


def _documented_variables() -> set[str]:
    page = (Path(__file__).resolve().parents[1] / "docs/configuration.md").read_text()
    section = page.split("# Configuration (environment)", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_the_readme_configuration_table_names_every_variable_settings_read():
    source = (Path(__file__).resolve().parents[1] / "service/referflow/config.py").read_text()
    read = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', source))  # config.py: the one reader of env
    documented = _documented_variables()
    assert read - documented == set(), "add these to docs/configuration.md"
    assert documented - read == set(), "docs/configuration.md documents variables config.py never reads"


PRODUCTION = {"DATABASE_URL": "postgresql://db/referflow", "REFERFLOW_ADMIN_TOKEN": "rfadm_real_token_value",
              "REFERFLOW_SECRET_KEY": "a" * 64}


@pytest.mark.parametrize("name", ["REFERFLOW_ADMIN_TOKEN", "REFERFLOW_SECRET_KEY", "REFERFLOW_METRICS_TOKEN"])
def test_the_example_env_files_placeholders_are_refused(name):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({**PRODUCTION, name: "change-me"})


def test_the_metrics_token_is_read_when_set_and_none_otherwise(tmp_path):
    assert Settings.from_env(PRODUCTION).metrics_token is None
    assert Settings.from_env({**PRODUCTION, "REFERFLOW_METRICS_TOKEN": " "}).metrics_token is None
    settings = Settings.from_env({**PRODUCTION, "REFERFLOW_METRICS_TOKEN": "scrape-token-value\n"})
    assert settings.metrics_token == "scrape-token-value"
    embedded = Settings.from_env({"REFERFLOW_INSTANCE_DIR": str(tmp_path)})
    assert embedded.metrics_token is None  # never generated: no default


def test_a_metrics_token_equal_to_the_admin_token_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="REFERFLOW_METRICS_TOKEN must differ"):
        Settings.from_env({**PRODUCTION, "REFERFLOW_METRICS_TOKEN": PRODUCTION["REFERFLOW_ADMIN_TOKEN"]})
    generated = Settings.from_env({"REFERFLOW_INSTANCE_DIR": str(tmp_path)}).admin_token
    with pytest.raises(ConfigurationError, match="REFERFLOW_METRICS_TOKEN must differ"):
        Settings.from_env({"REFERFLOW_INSTANCE_DIR": str(tmp_path), "REFERFLOW_METRICS_TOKEN": generated})
