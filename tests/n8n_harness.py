"""Run workflow files in a real n8n (CLI), with provider triggers swapped for recorded payloads.

REFERFLOW_N8N_DIR names the install (``scripts/install-n8n VERSION DIR``; default
~/.cache/referflow-n8n). Both n8n 1.x (1.123.81) and 2.x (2.40.7) are supported: the version is
read from the install, a 2.x install runs with the Node named in DIR/node-path, and the CLI
differences (activation, environment) are hidden here. REFERFLOW_REQUIRE_N8N=1 turns "n8n is not
installed, skip" into failures (CI sets it where it installed n8n).
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import requests

from referflow.workflows import set_settings

N8N_DIR = Path(os.environ.get("REFERFLOW_N8N_DIR", Path.home() / ".cache" / "referflow-n8n")).expanduser()
REQUIRE_N8N = os.environ.get("REFERFLOW_REQUIRE_N8N", "") not in ("", "0")
TRIGGERS = ("Trigger", "n8n-nodes-base.webhook")


def node_bin_dir() -> Path | None:
    """The Node bin folder this install runs with (DIR/node-path, written by scripts/install-n8n), if any."""
    path = N8N_DIR / "node-path"
    text = path.read_text().strip() if path.is_file() else ""
    return Path(text) if text else None


def _path_with_node(path: str) -> str:
    node_dir = node_bin_dir()
    return os.pathsep.join([str(node_dir), path]) if node_dir else path


@functools.cache
def n8n_version() -> tuple[int, ...] | None:
    """The installed n8n's version, e.g. (2, 40, 7); None when it is not installed."""
    try:
        version = json.loads((N8N_DIR / "node_modules" / "n8n" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return tuple(int(part) for part in version.split("-")[0].split("."))


def _installed_binary() -> Path | None:
    binary = N8N_DIR / "node_modules" / ".bin" / "n8n"
    node = shutil.which("node", path=_path_with_node(os.environ.get("PATH", os.defpath)))
    return binary if binary.exists() and node and n8n_version() else None


def n8n_binary() -> Path | None:
    """Return the cached n8n CLI, or None when it is not installed (or has no Node to run on).

    With REFERFLOW_REQUIRE_N8N set it is never None: tests that skip without n8n run, and fail
    in ``N8n()``, which checks the install itself.
    """
    binary = _installed_binary()
    return N8N_DIR / "node_modules" / ".bin" / "n8n" if binary is None and REQUIRE_N8N else binary


def n8n_missing() -> bool:
    """Skip condition for tests that need n8n: missing, and not required (REFERFLOW_REQUIRE_N8N)."""
    return n8n_binary() is None


MISSING_REASON = (f"n8n is not installed in {N8N_DIR} (scripts/install-n8n VERSION DIR): "
                  "the n8n end-to-end tests did NOT run")


class N8n:
    """A throwaway n8n instance (its own user folder and encryption key)."""

    version: tuple[int, ...] = n8n_version() or ()  # () when n8n is not installed

    def __init__(self, home: Path, *, _started: bool = True):
        binary = _installed_binary()
        assert binary is not None, (f"n8n is not installed in {N8N_DIR} or cannot run there "
                                    f"(scripts/install-n8n VERSION DIR; see {N8N_DIR / 'install.log'})")
        self.binary = binary
        self.env = {**os.environ, "PATH": _path_with_node(os.environ.get("PATH", os.defpath)),
                    "N8N_USER_FOLDER": str(home), "N8N_ENCRYPTION_KEY": "e2e-key",
                    "N8N_DIAGNOSTICS_ENABLED": "false", "N8N_PERSONALIZATION_ENABLED": "false",
                    "N8N_VERSION_NOTIFICATIONS_ENABLED": "false", "N8N_TEMPLATES_ENABLED": "false"}
        if self.version < (2,):
            # 1.123 was installed without isolated-vm (it needs Node 22): the legacy expression
            # engine, and no task runner process. 2.x needs neither setting.
            self.env.update(N8N_RUNNERS_ENABLED="false", N8N_EXPRESSION_ENGINE="legacy")
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        if self.version >= (2,) and _started and not (home / ".n8n").exists():
            # n8n 2.x writes its roles' permission scopes into the database only in `n8n start`.
            # Without them the owner of a fresh instance is no owner: every credential a workflow
            # names, on any node, must exist, or `execute` fails ("Node ... does not have access
            # to the credential"). Real instances have started; so do ours (one start, copied).
            shutil.copytree(_started_user_folder() / ".n8n", home / ".n8n")

    def _process_env(self) -> dict[str, str]:
        # Each n8n 2.x process (CLI commands too) opens a task broker, on 127.0.0.1:5679 unless
        # told otherwise: two at once (a test's `start` and a command, parallel test runs) collide.
        return {**self.env, "N8N_RUNNERS_BROKER_PORT": str(_free_port())} if self.version >= (2,) else self.env

    def run(self, *args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binary), *args], env=self._process_env(), capture_output=True,
                              text=True, timeout=timeout)

    def import_credentials(self, credentials: list[dict[str, Any]]) -> None:
        path = self.home / "credentials.json"
        path.write_text(json.dumps(credentials))
        result = self.run("import:credentials", f"--input={path}")
        assert result.returncode == 0, result.stderr[-2000:]

    def import_workflow(self, workflow: dict[str, Any], workflow_id: str) -> None:
        path = self.home / f"{workflow_id}.json"
        path.write_text(json.dumps({**workflow, "id": workflow_id}))
        result = self.run("import:workflow", f"--input={path}")
        assert result.returncode == 0, result.stderr[-2000:]

    def activate(self, workflow_id: str) -> None:
        """Make an imported workflow active for the next ``serve``: ``update:workflow --active=true``
        on 1.x, ``publish:workflow`` on 2.x (which activates the workflow's current version)."""
        if self.version >= (2,):
            result = self.run("publish:workflow", f"--id={workflow_id}")
        else:
            result = self.run("update:workflow", f"--id={workflow_id}", "--active=true")
        assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])

    def execute(self, workflow_id: str) -> subprocess.CompletedProcess[str]:
        result = self.run("execute", f"--id={workflow_id}", "--rawOutput")
        if result.returncode != 0 and "No active execution found" in result.stdout:
            # n8n 2.x: an execution that fails before its first node (e.g. a credential check)
            # ends before `execute` waits for it, which prints only this; the error is stored.
            result.stdout += f"\nThe execution's stored error: {self.last_execution_error()}\n"
        return result

    def last_execution_error(self) -> str | None:
        """The error of the instance's latest execution, read from its SQLite database."""
        with closing(sqlite3.connect(self.home / ".n8n" / "database.sqlite")) as db:
            row = db.execute('SELECT data FROM execution_data ORDER BY CAST("executionId" AS INTEGER) DESC '
                             "LIMIT 1").fetchone()
        error = _unflatten(json.loads(row[0]))["resultData"].get("error") if row else None
        if not error:
            return None
        node = (error.get("node") or {}).get("name")
        return " ".join(filter(None, [f"{node}:" if node else None, error.get("message"), error.get("description")]))

    @contextmanager
    def serve(self, port: int, log_path: Path, **env: str) -> Iterator[str]:
        """Run ``n8n start`` (active workflows registered) and yield its base URL; stop it after."""
        env = {**self._process_env(), "N8N_PORT": str(port), "N8N_LISTEN_ADDRESS": "127.0.0.1", **env}
        base = f"http://127.0.0.1:{port}"
        with log_path.open("w") as log:
            server = subprocess.Popen([str(self.binary), "start"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
            try:
                # /healthz/readiness: migrated and initialised (2.x answers /healthz while it migrates).
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and server.poll() is None:
                    try:
                        if requests.get(f"{base}/healthz/readiness", timeout=2).ok:
                            break
                    except requests.RequestException:
                        pass
                    time.sleep(0.5)
                yield base
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()


def _unflatten(items: list[Any]) -> Any:
    """Decode n8n's stored execution data (the `flatted` format: strings and objects by index)."""
    decoded: dict[int, Any] = {}

    def value(index: int) -> Any:
        item = items[index]
        if not isinstance(item, (list, dict)):
            return item
        if index not in decoded:
            decoded[index] = out = [] if isinstance(item, list) else {}
            pairs = enumerate(item) if isinstance(item, list) else item.items()
            for key, raw in pairs:
                resolved = value(int(raw)) if isinstance(raw, str) else raw
                if isinstance(out, list):
                    out.append(resolved)
                else:
                    out[key] = resolved
        return decoded[index]

    return value(0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_STARTED_FOLDER: list[Path] = []


def _started_user_folder() -> Path:
    """A user folder of a fresh n8n that ran `n8n start` once (made once per test process)."""
    if not _STARTED_FOLDER:
        folder = Path(tempfile.mkdtemp(prefix="referflow-n8n-started-"))
        atexit.register(shutil.rmtree, folder, True)
        n8n = N8n(folder, _started=False)
        with n8n.serve(_free_port(), folder / "start.log"):
            pass
        with closing(sqlite3.connect(folder / ".n8n" / "database.sqlite")) as db:
            scopes = db.execute("SELECT count(*) FROM role_scope").fetchone()[0]
        assert scopes > 0, ("`n8n start` did not set up the roles", (folder / "start.log").read_text()[-3000:])
        _STARTED_FOLDER.append(folder)
    return _STARTED_FOLDER[0]


def _is_trigger(node: dict[str, Any]) -> bool:
    return node["type"].endswith("Trigger") or node["type"] == "n8n-nodes-base.webhook"


# What n8n's HubSpot Trigger hands on for each HubSpot webhook event: ``objectId`` renamed by the
# subscription type (n8n 1.123, packages/nodes-base/nodes/Hubspot/HubspotTrigger.node.ts webhook()).
HUBSPOT_TRIGGER_IDS = (("contact", "contactId"), ("company", "companyId"), ("deal", "dealId"),
                       ("ticket", "ticketId"))


def hubspot_trigger_output(event: dict[str, Any]) -> dict[str, Any]:
    """Return a HubSpot webhook event as n8n's HubSpot Trigger outputs it (no ``objectId``)."""
    out = dict(event)
    kind = str(out.get("subscriptionType", ""))
    for word, field in HUBSPOT_TRIGGER_IDS:
        if word in kind:
            out[field] = event.get("objectId")
    out.pop("objectId", None)
    return out


def with_recorded_trigger(workflow: dict[str, Any], payload: Any, base_url: str,
                          trigger: str | None = None,
                          settings: dict[str, str] | None = None) -> dict[str, Any]:
    """Swap one trigger for a Manual Trigger + Set (raw JSON) of the same name; point at base_url.

    ``trigger`` names the trigger that fires (default: the first); the workflow's other triggers
    are removed. ``settings`` overrides values of the workflow's Settings node.
    """
    workflow = copy.deepcopy(workflow)
    triggers = [n for n in workflow["nodes"] if _is_trigger(n)]
    fired = next(n for n in triggers if trigger in (None, n["name"]))
    downstream = workflow["connections"].get(fired["name"], {"main": [[]]})
    for node in triggers:
        workflow["nodes"].remove(node)
        workflow["connections"].pop(node["name"], None)
    name = fired["name"]
    if fired["type"] == "n8n-nodes-base.hubspotTrigger":
        payload = hubspot_trigger_output(payload)
    workflow["nodes"] += [
        {"parameters": {}, "id": "00000000-0000-4000-8000-000000000001", "name": "Start",
         "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [-200, 0]},
        {"parameters": {"mode": "raw", "jsonOutput": json.dumps(payload), "options": {}},
         "id": fired["id"], "name": name, "type": "n8n-nodes-base.set", "typeVersion": 3.4,
         "position": fired["position"]}]
    workflow["connections"]["Start"] = {"main": [[{"node": name, "type": "main", "index": 0}]]}
    workflow["connections"][name] = downstream
    set_settings(workflow, {"referflow_base_url": base_url, **(settings or {})})
    return workflow
