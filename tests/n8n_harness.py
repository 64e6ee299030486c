"""Run workflow files in a real n8n (CLI), with provider triggers swapped for recorded payloads.

REFERFLOW_N8N_DIR names the install (``scripts/install-n8n VERSION DIR``; default
~/.cache/referflow-n8n). Both n8n 1.x (1.123.81) and 2.x (2.40.7) are supported: the version is
read from the install, a 2.x install runs with the Node named in DIR/node-path, and the CLI
differences (activation, environment) are hidden here. REFERFLOW_REQUIRE_N8N=1 turns "n8n is not
installed, skip" into failures (CI sets it where it installed n8n).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def n8n_binary() -> Path | None:
    """Return the cached n8n CLI, or None when it is not installed (or has no Node to run on)."""
    binary = N8N_DIR / "node_modules" / ".bin" / "n8n"
    node = shutil.which("node", path=_path_with_node(os.environ.get("PATH", os.defpath)))
    return binary if binary.exists() and node and n8n_version() else None


def n8n_missing() -> bool:
    """Skip condition for tests that need n8n: missing, and not required (REFERFLOW_REQUIRE_N8N)."""
    return n8n_binary() is None and not REQUIRE_N8N


MISSING_REASON = (f"n8n is not installed in {N8N_DIR} (scripts/install-n8n VERSION DIR): "
                  "the n8n end-to-end tests did NOT run")


class N8n:
    """A throwaway n8n instance (its own user folder and encryption key)."""

    version: tuple[int, ...] = n8n_version() or ()  # () when n8n is not installed

    def __init__(self, home: Path):
        binary = n8n_binary()
        assert binary is not None, (f"n8n is not installed in {N8N_DIR} or cannot run there, and "
                                    f"REFERFLOW_REQUIRE_N8N is set (see {N8N_DIR / 'install.log'})")
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

    def run(self, *args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binary), *args], env=self.env, capture_output=True,
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
        return self.run("execute", f"--id={workflow_id}", "--rawOutput")

    @contextmanager
    def serve(self, port: int, log_path: Path, **env: str) -> Iterator[str]:
        """Run ``n8n start`` (active workflows registered) and yield its base URL; stop it after."""
        env = {**self.env, "N8N_PORT": str(port), "N8N_LISTEN_ADDRESS": "127.0.0.1", **env}
        base = f"http://127.0.0.1:{port}"
        with log_path.open("w") as log:
            server = subprocess.Popen([str(self.binary), "start"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        if requests.get(f"{base}/healthz", timeout=2).ok:
                            break
                    except requests.RequestException:
                        time.sleep(1)
                yield base
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()


def _is_trigger(node: dict[str, Any]) -> bool:
    return node["type"].endswith("Trigger") or node["type"] == "n8n-nodes-base.webhook"


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
