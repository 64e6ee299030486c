"""The first hour of a new user: the README walkthrough on the demo program, one set of defaults,
what `serve` prints, and validation errors that lead with the real mistake."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from referflow import cli, demo
from referflow.actions.programs import create_program, normalised_config
from referflow.contract import SchemaStore
from referflow.domain.program import ProgramConfig
from tests.conftest import Api
from tests.live import free_port, service_env

README = Path(__file__).resolve().parents[1] / "README.md"
REFERRALS_DOC = README.parent / "docs/referrals.md"  # "Program config" moved there from the README
LANDING = "https://shop.example.com/welcome"


@dataclass(frozen=True)
class Step:
    """One curl command of the README walkthrough."""

    method: str
    path: str
    body: str | None


def _block(heading: str, fence: str, source: Path = README) -> str:
    section = source.read_text().split(heading, 1)[1]
    return section.split(f"```{fence}\n", 1)[1].split("```", 1)[0]


def walkthrough() -> list[Step]:
    """Read the curl commands of README "A referral, start to finish (curl)", in order."""
    lexer = shlex.shlex(_block("## A referral, start to finish (curl)", "sh").replace("\\\n", " "),
                        posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    commands: list[list[str]] = []
    for token in lexer:
        if token == "curl":
            commands.append([])
        elif token == "|" and commands:
            commands[-1].append("|")
        elif commands and "|" not in commands[-1]:
            commands[-1].append(token)
    return [_step(words) for words in commands]


def _step(words: list[str]) -> Step:
    options = dict(zip(words, [*words[1:], ""], strict=True))
    url = next(w for w in words if w.startswith("localhost:8000"))
    body = options.get("-d")
    return Step(options.get("-X", "POST" if body else "GET"), url.removeprefix("localhost:8000"), body)


Send = Callable[[str, str, str | None], tuple[int, Any, dict[str, str]]]


def run_walkthrough(send: Send) -> dict[str, Any]:
    """Run every step, feeding each the ids the earlier ones returned; return the last answer."""
    found: dict[str, str] = {}
    data: Any = None
    for number, step in enumerate(walkthrough(), 1):
        path, body = (_fill(text, found) if text else text for text in (step.path, step.body))
        status, data, headers = send(step.method, path, body)
        assert status < 400, f"step {number}: {step.method} {path} -> {status} {data}"
        if path == "/v1/links":
            found["K7QH3MZP"] = data["code"]
        elif path == "/v1/referrals/claim":
            found["ref_..."] = data["id"]
        elif path == "/v1/gift-cards":
            found["/CODE/"] = "/" + next(c["code"] for c in data["cards"] if c["side"] == "advocate") + "/"
        elif path.startswith("/r/"):
            assert status == 302 and f"ref={found['K7QH3MZP']}" in headers["Location"]
    return data


def _fill(text: str, found: dict[str, str]) -> str:
    for placeholder, value in found.items():
        text = text.replace(placeholder, value)
    return text


def test_the_walkthrough_is_seven_steps_read_from_the_readme():
    steps = walkthrough()
    assert [(s.method, s.path.split("?")[0]) for s in steps] == [
        ("POST", "/v1/links"), ("GET", "/r/K7QH3MZP"), ("POST", "/v1/referrals/claim"),
        ("POST", "/v1/referrals/qualify"), ("POST", "/v1/gift-cards"),
        ("POST", "/v1/gift-cards/CODE/redeem"), ("GET", "/v1/referrals/ref_...")]
    assert all(json.loads(s.body) for s in steps if s.body)


def test_the_readme_walkthrough_finishes_on_the_demo_program(app, client):
    services = app.extensions["referflow"]
    with services.db.session() as session:
        _program, key = create_program(session, services.schemas, demo.DEMO_NAME, demo.DEMO_CONFIG)
    auth = Api(client, key.secret)

    def send(method: str, path: str, body: str | None) -> tuple[int, Any, dict[str, str]]:
        response = client.open(path, method=method, data=body, headers=auth.headers(
            {"Content-Type": "application/json"} if body else {}))
        return response.status_code, response.get_json(silent=True), dict(response.headers)

    referral = run_walkthrough(send)
    assert referral["status"] == "rewarded"
    moves = [entry["to_status"] for entry in referral["history"] if entry["to_status"]]
    assert moves == ["pending", "approved", "rewarded"]  # no hold: approved when qualified


def test_on_default_rules_step_five_waits_for_the_hold(app, client):
    """The demo differs from the defaults in the hold: with them, step 5 is refused until it ends."""
    services = app.extensions["referflow"]
    with services.db.session() as session:
        _program, key = create_program(session, services.schemas, "defaults", {"landing_url": LANDING})
    auth = Api(client, key.secret)
    steps = walkthrough()
    code = auth.post("/v1/links", json.loads(steps[0].body)).get_json()["code"]
    claim = auth.post("/v1/referrals/claim", json.loads(steps[2].body.replace("K7QH3MZP", code)))
    assert auth.post("/v1/referrals/qualify", json.loads(steps[3].body)).get_json()["status"] == "held"
    refused = auth.post("/v1/gift-cards", {"referral_id": claim.get_json()["id"]})
    assert refused.status_code == 409 and refused.get_json()["code"] == "referral_not_approved"


@pytest.mark.slow
def test_the_readme_walkthrough_over_http_on_a_bare_first_start(tmp_path):
    """`referflow serve` on a bare machine, then the README's steps over real HTTP."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REFERFLOW_") and k not in ("DATABASE_URL", "REDIS_URL")}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "referflow.cli", "serve", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120  # a first start migrates a new database: slow on a busy CI
        while time.monotonic() < deadline and not any("curl" in line for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"serve exited with {proc.returncode}: {''.join(lines)}"
            lines.append(line)
        found = re.search(r"^api_key: (\S+)$", "".join(lines), re.M)
        assert found, "".join(lines)
        key = found.group(1)
        base = f"http://127.0.0.1:{port}"
        _wait(base)

        def send(method: str, path: str, body: str | None) -> tuple[int, Any, dict[str, str]]:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            response = requests.request(method, base + path, data=body, headers=headers, timeout=10,
                                        allow_redirects=False)
            data = response.json() if response.headers.get("Content-Type") == "application/json" else None
            return response.status_code, data, dict(response.headers)

        assert run_walkthrough(send)["status"] == "rewarded"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def _wait(base: str) -> None:
    for _ in range(150):
        try:
            requests.get(base + "/healthz", timeout=5)
            return
        except requests.RequestException:  # not listening yet
            time.sleep(0.1)


# One set of defaults -----------------------------------------------------------------------


def test_one_set_of_defaults_for_the_api_the_cli_and_the_readme(admin, database_url, monkeypatch):
    readme = json.loads(_block("## Program config (`schemas/program.schema.json`)", "json", REFERRALS_DOC))
    domain = ProgramConfig(landing_url=readme["landing_url"]).to_dict()
    assert readme == domain == normalised_config(SchemaStore(), {"landing_url": readme["landing_url"]})
    via_api = admin.post("/v1/admin/programs", {"name": "api", "config": {"landing_url": LANDING}})
    assert via_api.status_code == 201
    for name, value in service_env(database_url).items():
        monkeypatch.setenv(name, value)
    out = CliRunner().invoke(cli.main, ["programs", "create", "--name", "cli", "--landing-url",
                                        LANDING, "--json"])
    assert out.exit_code == 0, out.output
    assert via_api.get_json()["program"]["config"] == json.loads(out.stdout)["config"] == {
        **domain, "landing_url": LANDING}


def test_the_demo_is_the_defaults_but_for_the_hold_and_the_friends_reward():
    demo_config = normalised_config(SchemaStore(), demo.DEMO_CONFIG)
    defaults = normalised_config(SchemaStore(), {"landing_url": demo.DEMO_CONFIG["landing_url"]})
    changed = {k for k in defaults if demo_config[k] != defaults[k]}
    assert changed == {"hold_days", "rewards"} and demo_config["hold_days"] == 0
    assert demo_config["rewards"]["advocate"] == defaults["rewards"]["advocate"]


# What serve prints -------------------------------------------------------------------------


def test_a_first_serve_explains_the_demo_prints_json_and_the_next_step(tmp_path, monkeypatch):
    started: list[Any] = []
    monkeypatch.setattr("referflow.server.run", lambda *args: started.append(args))
    for name in [n for n in os.environ if n.startswith("REFERFLOW_") or n in ("DATABASE_URL", "REDIS_URL")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REFERFLOW_INSTANCE_DIR", str(tmp_path))
    first = CliRunner().invoke(cli.main, ["serve", "--port", "8123"])
    assert first.exit_code == 0, first.output
    config = json.loads(re.search(r"^config: (.*)$", first.stdout, re.M).group(1))
    assert config["hold_days"] == 0
    key = re.search(r"^api_key: (rfk_\S+)$", first.stdout, re.M).group(1)
    assert "approved at once" in first.stdout and f"KEY={key}" in first.stdout
    assert "localhost:8123/v1/links" in first.stdout and started
    again = CliRunner().invoke(cli.main, ["serve", "--port", "8123"])
    assert "referflow programs list" in again.stdout and "rfk_" not in again.stdout


# Validation errors -------------------------------------------------------------------------


def test_an_unexpected_field_is_the_first_error_not_the_required_one_it_explains(api):
    response = api.post("/v1/links", {"advocate": {"externalid": "x"}})
    assert response.status_code == 422
    first, *rest = response.get_json()["errors"]
    assert first["path"] == "/advocate" and "'externalid' was unexpected" in first["message"]
    assert "did you mean 'external_id'" in first["message"]
    assert response.get_json()["message"] == f"/advocate: {first['message']}"
    assert {e["message"] for e in rest} == {"'email' is a required property",
                                            "'external_id' is a required property"}


@pytest.mark.parametrize(("body", "first"), [
    ({"advocate": {"external_id": 5, "email": "a@b.test"}}, ("/advocate/external_id", "is not of type")),
    ({"advocate": {"email": 5}}, ("/advocate/email", "is not of type")),
    ({"advocate": {"external_id": "a", "email": "a@b.test"}, "vanity": "x"}, ("/", "'vanity' was unexpected")),
    ({}, ("/", "'advocate' is a required property")),
])
def test_errors_lead_with_unexpected_fields_then_wrong_values_then_missing_ones(body, first):
    errors = SchemaStore().errors("create-link.request", body)
    assert errors[0]["path"] == first[0] and first[1] in errors[0]["message"]
