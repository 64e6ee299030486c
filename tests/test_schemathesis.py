"""Schemathesis against a live referflow (real gunicorn on 127.0.0.1), on SQLite or PostgreSQL.

Every operation is fuzzed with a fixed seed: the spec's examples, the coverage phase (boundary
and schema-violating values, unexpected methods) and REFERFLOW_FUZZ_EXAMPLES generated cases per
operation, in both positive and negative mode; then as many stateful scenarios over the links
schemathesis infers by dependency analysis (the spec declares no links). A case fails on any 5xx
and on a response whose status code, content type or body the spec does not document.

    REFERFLOW_FUZZ_EXAMPLES=50     cases per operation in the fuzzing phase, and stateful scenarios
    REFERFLOW_FUZZ_KEEP_GOING=1    record failures and carry on instead of failing (bench/fuzz.py)
    REFERFLOW_FUZZ_REPORT=path     write the figures and the distinct failures there as JSON

No operation is excluded. Program operations run with the program's API key, admin operations
(a separate test) with the admin token: each operation's security scheme picks its token.
Where the fuzz cannot go deep:
- the four ingress operations declare neither a body nor the providers' signature headers, so
  only the refusal path runs; their valid-looking cases target the fuzz program's id, so that it
  is the signature check, not the program lookup, that refuses them;
- followLink is public and answers 302 to the program's landing URL: redirects are never followed;
- most path ids (referrals, codes, gift cards, deliveries) are random, so those cases end in 404
  outside the stateful phase;
- the coverage phase is sized by the spec (about 2,400 cases), whatever REFERFLOW_FUZZ_EXAMPLES;
- Hypothesis never generates lone surrogates, so that class of hostile text is not covered here.
The server's rate limits are lifted (they would turn most cases into 429s), and the session
database is emptied afterwards, so no later server with jobs acts on fuzzed data.

Network: every request goes to 127.0.0.1 (the client session refuses any other host, follows no
redirect and ignores proxy variables). The server runs without its job runner
(REFERFLOW_START_JOBS=false), so no webhook, reward or provider call is ever made, and without
REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS. createWebhookSubscription resolves the URL's host before it
decides, so the server starts with a ``sitecustomize`` that makes name lookups numeric-only: a host
name fails as it would offline ("cannot resolve ..."), and no DNS query leaves the machine.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.core.failures import Failure, FailureGroup, ServerError

from tests.conftest import ADMIN_TOKEN, _clear
from tests.live import live_program, live_server

pytestmark = pytest.mark.slow

SEED = 20240601
STATEFUL_STEPS = 6
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
NETGUARD = '''"""Written by tests/test_schemathesis.py: no DNS from this process, lookups are numeric-only."""
import os
import socket
from pathlib import Path

_HERE = Path(__file__).parent
_getaddrinfo = socket.getaddrinfo
(_HERE / "active").write_text(str(os.getpid()))


def _refused(host):
    with (_HERE / "refused.txt").open("a") as fh:
        fh.write(repr(host)[:200] + "\\n")


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    try:
        return _getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
    except socket.gaierror:
        _refused(host)
        raise


def gethostbyname(host):
    return getaddrinfo(host, None, socket.AF_INET)[0][4][0]


def gethostbyname_ex(host):
    return host, [], [gethostbyname(host)]


socket.getaddrinfo = getaddrinfo
socket.gethostbyname = gethostbyname
socket.gethostbyname_ex = gethostbyname_ex
'''


def examples() -> int:
    """Return the number of generated cases per operation (REFERFLOW_FUZZ_EXAMPLES)."""
    return int(os.environ.get("REFERFLOW_FUZZ_EXAMPLES", "50"))


def server_env(tmp: Path) -> dict[str, str]:
    """Return the fuzz server's extra environment: no job runner, no DNS, no rate limits."""
    guard = tmp / "netguard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(NETGUARD)
    path = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH", "")) if p)
    # The limits on failed auth and on the public endpoints would turn most cases into 429s.
    lifted = {f"REFERFLOW_RATE_LIMIT_{name}": "1000000/minute"
              for name in ("AUTH_FAILURES", "PUBLIC", "INGRESS")}
    return {"REFERFLOW_START_JOBS": "false", "PYTHONPATH": path, **lifted}


def fuzz_config(program_key: str, count: int) -> schemathesis.Config:
    """Return the schemathesis settings: fixed seed, bounded examples, the four checks, both tokens."""
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["all"],
        "request-timeout": 30,
        "generation": {"max-examples": count, "deterministic": True, "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        "auth": {"openapi": {"apiKey": {"bearer": program_key}, "adminToken": {"bearer": ADMIN_TOKEN}}},
    })


class LoopbackSession(requests.Session):
    """A session that sends to 127.0.0.1 only, never through a proxy."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        host = urlsplit(request.url or "").hostname
        if host != "127.0.0.1":
            raise RuntimeError(f"refusing to send a request to {host!r}: the fuzz stays on loopback")
        return super().send(request, **kwargs)


@dataclass
class Target:
    """The live server under fuzz: sends cases, checks responses, keeps the figures."""

    base: str
    log: Path
    program_key: str
    program_id: str
    keep_going: bool = False
    session: LoopbackSession = field(default_factory=LoopbackSession)
    cases: Counter = field(default_factory=Counter)  # (phase, operation) -> cases sent
    statuses: Counter = field(default_factory=Counter)  # (operation, status) -> responses
    failing: Counter = field(default_factory=Counter)  # (kind, operation) -> failing cases
    distinct: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    _offset: int = 0

    def check(self, case: schemathesis.Case) -> None:
        """Send one case and check its response."""
        self.validate(case, self.send(case))

    def send(self, case: schemathesis.Case) -> Any:
        """Send one case to the server, never following a redirect."""
        self._pin_program(case)
        self._offset = self.log.stat().st_size
        response = case.call(session=self.session, allow_redirects=False)
        self.cases[_phase(case), case.operation.label] += 1
        self.statuses[case.operation.label, response.status_code] += 1
        return response

    def validate(self, case: schemathesis.Case, response: Any) -> None:
        """Run the four checks; record failures, then re-raise unless keeping going."""
        try:
            case.validate_response(response)
        except FailureGroup as group:
            trace = self._server_trace() if response.status_code >= 500 else []
            # A 5xx also breaks status_code_conformance: count it once, as a 5xx.
            failures = [f for f in group.exceptions if isinstance(f, ServerError)] or group.exceptions
            for failure in failures:
                self._record(case, response, failure, trace)
            if self.keep_going:
                return
            if trace:  # shown by pytest under "Captured stdout call"
                print("\n".join(["server log:", *trace[-12:]]))
            raise

    def report(self) -> dict[str, Any]:
        """Return the figures and the distinct failures."""
        phases: Counter = Counter()
        per_op: dict[str, dict[str, Any]] = {}
        for (phase, op), n in sorted(self.cases.items()):
            phases[phase] += n
            per_op.setdefault(op, {"cases": 0, "5xx": self.failing["5xx", op],
                                   "schema": self.failing["schema", op], "statuses": {}})["cases"] += n
        for (op, status), n in sorted(self.statuses.items()):
            per_op[op]["statuses"][str(status)] = n
        return {
            "cases": sum(self.cases.values()),
            "failing_cases": {kind: sum(n for (k, _), n in self.failing.items() if k == kind)
                              for kind in ("5xx", "schema")},
            "per_phase": dict(phases),
            "per_operation": dict(sorted(per_op.items())),
            "distinct_failures": sorted(self.distinct.values(),
                                        key=lambda d: (d["operation"], d["kind"], d["title"])),
        }

    def _pin_program(self, case: schemathesis.Case) -> None:
        # Valid-looking cases of the program-scoped public and admin paths target the real
        # program, so they get past the program lookup; invalid ones keep their fuzzed id.
        params = case.path_parameters or {}
        if "program_id" in params and case.meta and case.meta.generation.mode.is_positive:
            params["program_id"] = self.program_id

    def _server_trace(self) -> list[str]:
        with self.log.open(errors="replace") as fh:
            fh.seek(self._offset)
            text = fh.read()
        start = text.rfind("Traceback (most recent call last):")
        return [line for line in text[start:].splitlines() if line.strip()] if start >= 0 else []

    def _record(self, case: schemathesis.Case, response: Any, failure: Failure,
                trace: list[str]) -> None:
        kind = "5xx" if isinstance(failure, ServerError) else "schema"
        op = case.operation.label
        self.failing[kind, op] += 1
        key = (op, kind, *_signature(failure, response, trace))
        curl = case.as_curl_command(headers=dict(response.request.headers))
        curl = curl.replace(self.program_key, "$REFERFLOW_KEY").replace(ADMIN_TOKEN, "$ADMIN_TOKEN")
        seen = self.distinct.get(key)
        if seen is None or len(curl) < len(seen["curl"]):  # keep the shortest reproduction
            self.distinct[key] = {"operation": op, "kind": kind, "title": failure.title,
                                  "detail": str(failure.message)[:600], "status": response.status_code,
                                  "phase": _phase(case), "curl": curl, "server": _tail(trace),
                                  "count": seen["count"] if seen else 0}
        self.distinct[key]["count"] += 1


def _phase(case: schemathesis.Case) -> str:
    return case.meta.phase.name.value if case.meta else "stateful"


def _signature(failure: Failure, response: Any, trace: list[str]) -> tuple:
    """Group duplicates: a 5xx by exception type and the frames that raised it, the rest by rule."""
    if isinstance(failure, ServerError):
        frames, exception = _frames(trace)
        ours = [f for f in frames if "referflow" in f]
        return (re.split(r"[:(]", exception, maxsplit=1)[0], ours[-1] if ours else "",
                frames[-1] if frames else "")
    return failure.code, failure.title, str(getattr(failure, "schema_path", response.status_code))


def _tail(trace: list[str]) -> list[str]:
    """Return the last frames and the exception line of a server traceback."""
    frames, exception = _frames(trace)
    return [*frames[-3:], exception] if trace else []


def _frames(trace: list[str]) -> tuple[list[str], str]:
    """Return a server traceback's frame lines and its exception line."""
    frames = [line.strip() for line in trace if line.lstrip().startswith('File "')]
    last = max((i for i, line in enumerate(trace) if line.lstrip().startswith('File "')), default=-1)
    after = [line for line in trace[last + 1:] if not line.startswith(" ")]
    return frames, (after[0] if after else "no traceback")[:300]


@pytest.fixture(autouse=True)
def _schemathesis_nodeid(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schema reads and rewrites `item._nodeid`, which pytest 9.2 dropped.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def fuzz_target(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Run a live server (no jobs, no DNS) with one program; yield it as the fuzz target."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with live_server(database_url, tmp, **server_env(tmp)) as base:
        assert (tmp / "netguard" / "active").exists(), "the server did not load the DNS guard"
        key, session = live_program(base, name="fuzz")
        program_id = session.get(f"{base}/v1/program", timeout=10).json()["id"]
        target = Target(base, tmp / f"server-{urlsplit(base).port}.log", key, program_id,
                        keep_going=os.environ.get("REFERFLOW_FUZZ_KEEP_GOING") == "1")
        yield target
    # Later servers in this session share the database and run jobs: leave them no fuzzed
    # webhook subscriptions, provider settings or outbox events to act on.
    _clear(database_url)
    if report := os.environ.get("REFERFLOW_FUZZ_REPORT"):
        refused = tmp / "netguard" / "refused.txt"
        lookups = len(refused.read_text().splitlines()) if refused.exists() else 0
        Path(report).write_text(json.dumps({**target.report(), "refused_dns_lookups": lookups,
                                            "server_log": str(target.log)}, indent=1))


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_target: Target) -> Any:
    """Load the OpenAPI document from the live server."""
    return schemathesis.openapi.from_url(f"{fuzz_target.base}/openapi.json", timeout=10,
                                         config=fuzz_config(fuzz_target.program_key, examples()))


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.exclude(tag="admin").parametrize()
def test_program_and_public_operations(case: schemathesis.Case, fuzz_target: Target) -> None:
    fuzz_target.check(case)


@schema.include(tag="admin").parametrize()
def test_admin_operations(case: schemathesis.Case, fuzz_target: Target) -> None:
    fuzz_target.check(case)


def test_stateful_inferred_links(fuzz_schema: Any, fuzz_target: Target) -> None:
    class Machine(fuzz_schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: schemathesis.Case, **kwargs: Any) -> Any:
            return fuzz_target.send(case)

        def validate_response(self, response: Any, case: schemathesis.Case, *args: Any,
                              **kwargs: Any) -> None:
            fuzz_target.validate(case, response)

    Machine.run(settings=hypothesis.settings(
        max_examples=examples(), stateful_step_count=STATEFUL_STEPS, derandomize=True,
        database=None, deadline=None, suppress_health_check=list(hypothesis.HealthCheck),
        phases=[p for p in hypothesis.Phase if p is not hypothesis.Phase.explain]))
