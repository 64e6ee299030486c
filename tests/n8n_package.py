"""Install the built community node package into a test n8n the way a self-hosted n8n does.

n8n loads community packages from ``<N8N_USER_FOLDER>/.n8n/nodes/node_modules`` (its
``nodesDownloadDir``; the folder holds a package.json of its own, ``installed-nodes``, which n8n
writes when it installs a package from its settings). The manual install n8n documents for
self-hosted instances is ``npm install`` in that folder; we install the ``npm pack`` tarball of
integrations/n8n-nodes-referflow (built with ``npm ci && npm run build``) there. Peer dependencies
(n8n-workflow) are not installed: n8n hands packages its own copy, and it strips them when it installs
packages itself. ``--offline``: a tarball with no dependencies needs no registry.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from referflow import nodegen

ROOT = Path(__file__).resolve().parents[1]
N8N_PACKAGE = ROOT / "integrations" / nodegen.N8N
_TARBALL: list[Path] = []


def package_built() -> bool:
    """True when the package has been built (dist/ holds both nodes)."""
    dist = N8N_PACKAGE / "dist" / "nodes"
    return (dist / "Referflow" / "Referflow.node.js").exists() and \
        (dist / "ReferflowTrigger" / "ReferflowTrigger.node.js").exists()


def packed() -> Path:
    """The package's `npm pack` tarball (made once per test process)."""
    if not _TARBALL:
        folder = Path(tempfile.mkdtemp(prefix="referflow-n8n-package-"))
        result = subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(folder)], cwd=N8N_PACKAGE,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        _TARBALL.append(folder / result.stdout.strip().splitlines()[-1])
    return _TARBALL[0]


def install_community_package(user_folder: Path) -> Path:
    """`npm install` the packed package into the n8n user folder's ``.n8n/nodes``; return where it went."""
    nodes = user_folder / ".n8n" / "nodes"
    nodes.mkdir(parents=True, exist_ok=True)
    manifest = nodes / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"name": "installed-nodes", "private": True, "dependencies": {}}, indent=2))
    result = subprocess.run(["npm", "install", str(packed()), "--offline", "--no-audit", "--no-fund",
                             "--legacy-peer-deps", "--ignore-scripts"], cwd=nodes,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    installed = nodes / "node_modules" / nodegen.N8N
    assert (installed / "dist" / "nodes" / "Referflow" / "Referflow.node.js").exists(), sorted(nodes.rglob("*"))[:20]
    return installed
