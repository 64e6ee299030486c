"""The image's inputs, checked fast (scripts/check-image, run by .ci/run, builds and runs them)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _check_image():
    """Import scripts/check-image (a script without a .py suffix) as a module."""
    if "check_image" not in sys.modules:
        loader = importlib.machinery.SourceFileLoader("check_image", str(ROOT / "scripts" / "check-image"))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader("check_image", loader))
        sys.modules["check_image"] = module  # its dataclasses look their module up there
        loader.exec_module(module)
    return sys.modules["check_image"]


def test_the_lock_pins_every_runtime_dependency_within_its_range():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M))
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    wanted += [Requirement(r) for r in pyproject["build-system"]["requires"]]
    stale = [str(r) for r in wanted if not r.specifier.contains(pins.get(canonicalize_name(r.name), "0"),
                                                                prereleases=True)]
    assert stale == [], "requirements.lock is stale: run scripts/lock"


def test_the_dockerfile_copies_everything_the_wheel_is_built_from():
    check = _check_image()
    dockerfile = check.parse_dockerfile(ROOT / "Dockerfile")
    copied = {source for sources, _dest, _workdir in dockerfile.copies for source in sources}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", pyproject["project"]["readme"], "requirements.lock",
              *wheel.get("force-include", {}), *(Path(p).parts[0] for p in wheel["packages"])}
    assert needed - copied == set()
    assert "/livez" in " ".join(dockerfile.healthcheck)
    assert dockerfile.cmd[-1].startswith("referflow migrate && exec referflow serve")


def test_dockerignore_rules_read_like_dockers():
    check = _check_image()
    rules = check.ignore_rules(ROOT / ".dockerignore")
    assert check.ignored("service/referflow/__pycache__/app.cpython-311.pyc", rules)
    assert check.ignored(".env", rules) and check.ignored(".venv/bin/python", rules)
    assert not check.ignored(".env.example", rules)
    assert not check.ignored("service/referflow/app.py", rules)
    assert not check.ignored("workflows/pack.json", rules)
