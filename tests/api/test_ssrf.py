"""The outbound-URL guard: one strict parse, one resolution, a connection pinned to what was checked.

Every test here runs with a fake resolver (no DNS query leaves the machine) and a connect guard
that fails the test before any connection to an address that is not loopback.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from referflow.app import create_app
from referflow.errors import ValidationFailed
from referflow.jobs.runner import tick
from referflow.providers import safe_http
from tests.conftest import make_program
from tests.helpers import claim, link

PUBLIC = "93.184.216.34"  # resolved and checked in these tests, never connected to

NOT_PUBLIC = [  # https: plain http is refused first where these are (https_required)
    "https://0.0.0.0/", "https://[::]/", "https://100.64.0.1/", "https://127.0.0.1:8099/",
    "https://169.254.169.254/latest/meta-data", "https://10.0.0.1/", "https://172.16.0.1/",
    "https://192.168.1.1/", "https://192.0.0.8/", "https://198.18.0.1/", "https://224.0.0.1/",
    "https://239.255.255.250/", "https://240.0.0.1/", "https://255.255.255.255/",
    "https://[::1]/", "https://[fe80::1]/", "https://[fc00::1]/", "https://[fd00:ec2::254]/",
    "https://[fec0::1]/", "https://[ff02::1]/", "https://[100::1]/", "https://[2001:db8::1]/",
    # IPv4-mapped, IPv4-compatible and SIIT forms: refused outright
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[::ffff:a9fe:a9fe]/",
    "https://[::ffff:5db8:d822]/", "https://[::127.0.0.1]/", "https://[::a9fe:a9fe]/",
    "https://[::ffff:0:7f00:1]/",
    # NAT64 and 6to4 carrying a non-public IPv4; local-use NAT64 and Teredo refused outright
    "https://[64:ff9b::7f00:1]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[64:ff9b::a00:1]/",
    "https://[64:ff9b:1::5db8:d822]/", "https://[2002:7f00:1::]/", "https://[2002:a9fe:a9fe::1]/",
    "https://[2002:a00:1::1]/", "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    "https://[2001:0:4136:e378:8000:63bf:a247:27dd]/",
    # names whose answer (or one of whose answers) is not public
    "https://localhost/", "https://internal.test/", "https://mixed.test/", "https://imds6.test/",
    "https://nat64.test/",
]

MALFORMED = [
    # the attacker's probe: urlsplit sees the public host after "@", urllib3 the one before "\"
    "http://127.0.0.1:8099\\@93.184.216.34/", "http://127.0.0.1:8099\\@169.254.169.254/latest",
    "http://hook.test\\@evil.test/", "http://hook.test/\\..\\x",
    "http://user@hook.test/", "http://user:pw@hook.test/", "http://@hook.test/",
    "http://[::1", "http://hook.test:99999/", "http://hook.test:0/", "http://hook.test:-1/",
    "http://hook.test:8o/", "http://hook.test:80:80/", "http:///x", "http://:80/",
    "http://" + "a" * 64 + ".test/", "http://xn--/", "http://xn--a.test/", "http://-hook.test/",
    "http://" + "a." * 127 + "test/", "http://hook..test/", "http://hook;x.test/",
    "http://2130706433/", "http://0x7f.1/", "http://017700000001/", "http://127.1/",
    "http://0x7f000001/", "http://127.0.0.01/", "http://127.0.0.1./", "http://1.2.3.4.5/",
    "http://hook.test /x", "http://hook.test/\tx", "http://hook\n.test/", "http://hook.test/\x00",
    "http://hook.test/\x7f", "http://hoök.test/", "http://hook.test\u3002evil.test/",
    "http://ex%41mple.test/", "http://[fe80::1%25eth0]/", "http://[v1.x]/", "http://[127.0.0.1]/",
]

ACCEPTED = [
    ("https://hook.test/a", "https", "hook.test", 443, PUBLIC),
    ("HTTPS://Hook.TEST:8080/p?q=1", "https", "hook.test", 8080, PUBLIC),
    ("https://hook.test:/", "https", "hook.test", 443, PUBLIC),
    ("https://hook.test#@evil.test/", "https", "hook.test", 443, PUBLIC),
    ("https://hook.test/?next=http://127.0.0.1/", "https", "hook.test", 443, PUBLIC),
    ("https://xn--exmple-cua.test/", "https", "xn--exmple-cua.test", 443, PUBLIC),
    (f"https://{PUBLIC}/", "https", PUBLIC, 443, PUBLIC),
    ("https://[64:ff9b::5db8:d822]/", "https", "64:ff9b::5db8:d822", 443, "64:ff9b::5db8:d822"),
    ("https://[2002:5db8:d822::1]/", "https", "2002:5db8:d822::1", 443, "2002:5db8:d822::1"),
]

# Public targets over plain http: refused where private addresses are (production), before any
# DNS lookup; accepted where they are allowed (development, these tests' own listeners).
PLAIN_HTTP = ["http://hook.test/a", "HTTP://Hook.TEST:8080/p?q=1", "http://hook.test:443/",
              f"http://{PUBLIC}/", "http://[2002:5db8:d822::1]/"]


class FakeDns:
    """A resolver table: each name has a list of answers, used in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {
            "hook.test": [[PUBLIC]], "xn--exmple-cua.test": [[PUBLIC]], "evil.test": [[PUBLIC]],
            "localhost": [["127.0.0.1", "::1"]], "internal.test": [["10.0.0.5"]],
            "mixed.test": [[PUBLIC, "10.0.0.5"]], "imds6.test": [["fd00:ec2::254"]],
            "nat64.test": [["64:ff9b::a9fe:a9fe"]],
        }
        self.asked: list[str] = []

    def __call__(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                 flags: int = 0) -> list[tuple[Any, ...]]:
        try:
            return [_info(ipaddress.ip_address(host), port)]
        except ValueError:
            pass
        self.asked.append(host)
        answers = self.answers.get(host)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        ips = answers.pop(0) if len(answers) > 1 else answers[0]
        return [_info(ipaddress.ip_address(ip), port) for ip in ips]


def _info(ip: Any, port: Any) -> tuple[Any, ...]:
    if ip.version == 4:
        return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(ip), int(port)))
    return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(ip), int(port), 0, 0))


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Record every connect; refuse (before connecting) any that is not to loopback."""
    seen: list[Any] = []
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        seen.append(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            assert ipaddress.ip_address(address[0]).is_loopback, f"connect to {address}"
        real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield seen
    outside = [a for a in seen if isinstance(a, tuple) and not ipaddress.ip_address(a[0]).is_loopback]
    assert outside == []


@pytest.fixture()
def strict_app(settings: Any) -> Any:
    application = create_app(settings.with_overrides(allow_private_webhook_urls=False))
    application.testing = True
    yield application
    application.extensions["referflow"].db.dispose()


@pytest.fixture()
def strict_api(strict_app: Any) -> Any:
    return make_program(strict_app.test_client())


class Listener:
    """A loopback HTTP(S) server recording each request's path and Host, and the TLS server names."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None,
                 status: int = 204, headers: dict[str, str] | None = None):
        self.requests: list[dict[str, str]] = []
        self.server_names: list[str | None] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                listener.requests.append({"path": self.path, "host": self.headers["Host"]})
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self.server = server_class((host, 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _tick(app: Any) -> None:
    services = app.extensions["referflow"]
    tick(services, services.queue)


def _refused(url: str, allow_private: bool) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        safe_http.check(url, allow_private)
    assert caught.value.code == "url_not_allowed"
    return caught.value


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_guard_refuses_non_public_addresses(url):
    _refused(url, allow_private=False)


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", MALFORMED)
def test_guard_refuses_malformed_and_ambiguous_urls_in_any_mode(url, allow_private, dns):
    _refused(url, allow_private)
    assert dns.asked == []  # refused before any resolution


@pytest.mark.parametrize(("url", "scheme", "host", "port", "ip"), ACCEPTED)
def test_guard_accepts_public_targets(url, scheme, host, port, ip):
    target = safe_http.check(url, allow_private=False)
    assert (target.url, target.scheme, target.host, target.port) == (url, scheme, host, port)
    assert target.ip == ipaddress.ip_address(ip)


def test_private_mode_skips_only_the_address_and_https_checks():
    assert safe_http.check("http://internal.test:8080/x", True).ip == ipaddress.ip_address("10.0.0.5")
    assert str(safe_http.check("http://[::127.0.0.1]/", True).ip) == "::7f00:1"
    assert "non-public" in str(_refused("https://internal.test:8080/x", allow_private=False))


@pytest.mark.parametrize("url", PLAIN_HTTP)
def test_plain_http_is_refused_in_production_before_any_lookup(url, dns):
    with pytest.raises(ValidationFailed) as caught:
        safe_http.check(url, allow_private=False)
    assert caught.value.code == "https_required" and "https" in caught.value.message
    assert dns.asked == []
    assert safe_http.check(url, allow_private=True).scheme == "http"


@pytest.mark.parametrize("url", [u for u in PLAIN_HTTP if u.startswith("http:")])  # the schema's case
def test_api_answers_422_https_required_for_plain_http_in_production(strict_api, api, url, dns):
    refused = strict_api.post("/v1/webhooks", {"url": url, "events": ["*"]})
    assert refused.status_code == 422, refused.get_data(as_text=True)
    body = refused.get_json()
    assert body["code"] == "https_required" and "https" in body["message"]
    assert strict_api.get("/v1/webhooks").get_json()["items"] == [] and dns.asked == []
    assert api.post("/v1/webhooks", {"url": url, "events": ["*"]}).status_code == 201  # development


def test_plain_http_made_in_development_is_refused_at_send_time_without_connecting(
        settings, api, dns, connects):
    # A subscription the guard let through where http was allowed (or before the rule), sent by
    # a production sender: a failed attempt, refused before any lookup or connection.
    sub = api.post("/v1/webhooks", {"url": "http://hook.test/hook", "events": ["referral.claimed"]})
    assert sub.status_code == 201, sub.get_json()
    claim(api, link(api)["code"])
    # made after the permissive app: the in-process jobs run with the last app's settings
    strict = create_app(settings.with_overrides(allow_private_webhook_urls=False))
    assert strict.extensions["referflow"].settings.allow_private_webhook_urls is False
    _tick(strict)
    strict.extensions["referflow"].db.dispose()
    got = api.get(f"/v1/webhooks/{sub.get_json()['id']}/deliveries").get_json()["items"][0]
    assert got["status"] == "pending" and got["last_status_code"] is None
    assert got["last_error"] == ("ValidationFailed: the URL must use https "
                                 "(plain http is refused in production)")
    assert dns.asked == ["hook.test"] and connects == []  # the one lookup: at subscription


def test_unresolvable_names_are_refused():
    assert "cannot resolve" in str(_refused("https://nowhere.test/", allow_private=True))


@pytest.mark.parametrize("url", NOT_PUBLIC + MALFORMED)
def test_api_answers_422_json_for_refused_urls(strict_api, url):
    _assert_refused(strict_api.post("/v1/webhooks", {"url": url, "events": ["*"]}), url)


@pytest.mark.parametrize("url", MALFORMED)
def test_api_answers_422_json_for_malformed_urls_when_private_allowed(api, url):
    _assert_refused(api.post("/v1/webhooks", {"url": url, "events": ["*"]}), url)


def _assert_refused(response: Any, url: str) -> None:
    assert response.status_code == 422, response.get_data(as_text=True)
    # The JSON body layer refuses NUL in any text before the URL guard sees it.
    assert response.get_json()["code"] == ("invalid_text" if "\x00" in url else "url_not_allowed")


def test_answer_turned_private_at_send_time_is_a_failed_attempt_without_connecting(
        strict_app, strict_api, dns, connects):
    dns.answers["hook.test"] = [[PUBLIC], ["127.0.0.1"]]
    sub = strict_api.post("/v1/webhooks", {"url": "https://hook.test/hook", "events": ["referral.claimed"]})
    assert sub.status_code == 201, sub.get_json()
    claim(strict_api, link(strict_api)["code"])
    _tick(strict_app)
    got = strict_api.get(f"/v1/webhooks/{sub.get_json()['id']}/deliveries").get_json()["items"][0]
    assert got["status"] == "pending" and got["last_status_code"] is None
    assert got["last_error"] == "ValidationFailed: hook.test resolves to a non-public address"
    assert dns.asked == ["hook.test", "hook.test"] and connects == []


def test_connection_goes_to_the_checked_address_with_the_urls_host_header(dns, connects):
    with Listener() as listener:
        dns.answers["hook.test"] = [["127.0.0.1"], ["127.0.0.2"]]  # a second lookup would miss
        response = safe_http.post(f"http://hook.test:{listener.port}/hook", b"{}",
                                  {"content-type": "application/json"}, 5, allow_private=True)
    assert response.status_code == 204
    assert listener.requests == [{"path": "/hook", "host": f"hook.test:{listener.port}"}]
    assert dns.asked == ["hook.test"] and connects == [("127.0.0.1", listener.port)]


def test_webhook_delivery_is_pinned_end_to_end(api, app, dns):
    with Listener() as listener:
        dns.answers["hook.test"] = [["127.0.0.1"], ["127.0.0.1"], ["127.0.0.2"]]
        url = f"http://hook.test:{listener.port}/hook"
        assert api.post("/v1/webhooks", {"url": url, "events": ["referral.claimed"]}).status_code == 201
        claim(api, link(api)["code"])
        _tick(app)
    assert listener.requests == [{"path": "/hook", "host": f"hook.test:{listener.port}"}]
    assert dns.asked == ["hook.test", "hook.test"]  # once at subscription, once for the send


def test_redirects_are_not_followed(connects):
    location = {"Location": "http://169.254.169.254/latest/meta-data"}
    with Listener(status=302, headers=location) as listener:
        response = safe_http.post(f"http://127.0.0.1:{listener.port}/hook", b"{}", {}, 5, True)
    assert response.status_code == 302 and len(listener.requests) == 1
    assert connects == [("127.0.0.1", listener.port)]


def test_proxies_from_the_environment_are_not_used(monkeypatch, connects):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://10.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Listener() as listener:
        response = safe_http.post(f"http://127.0.0.1:{listener.port}/hook", b"{}", {}, 5, True)
    assert response.status_code == 204 and connects == [("127.0.0.1", listener.port)]


def test_ipv6_targets_are_pinned_too(dns):
    try:
        listener = Listener(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    with listener:
        dns.answers["hook6.test"] = [["::1"]]
        response = safe_http.post(f"http://hook6.test:{listener.port}/hook", b"{}", {}, 5, True)
        literal = safe_http.post(f"http://[::1]:{listener.port}/x", b"{}", {}, 5, True)
    assert response.status_code == literal.status_code == 204
    assert [r["host"] for r in listener.requests] == [f"hook6.test:{listener.port}", f"[::1]:{listener.port}"]


def test_the_adapter_refuses_a_request_for_another_target():
    target = safe_http.check("http://127.0.0.1:9/hook", allow_private=True)
    with requests.Session() as session:
        session.mount("http://", safe_http.PinnedAdapter(target))
        with pytest.raises(requests.exceptions.InvalidURL):
            session.post("http://127.0.0.1:10/hook", timeout=5)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Return (certificate, key) files of a self-signed certificate for hook.test."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=hook.test",
                    "-addext", "subjectAltName=DNS:hook.test"], check=True, capture_output=True)
    return cert, key


def _tls_listener(certificate: tuple[str, str]) -> Listener:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return Listener(tls=context)


def test_https_sends_the_hostname_as_sni_and_verifies_the_certificate_against_it(certificate, dns):
    with _tls_listener(certificate) as listener:
        dns.answers["hook.test"] = [["127.0.0.1"]]
        target = safe_http.check(f"https://hook.test:{listener.port}/hook", allow_private=True)
        response = safe_http.send(target, b"{}", {}, 5, verify=certificate[0])
    assert response.status_code == 204
    assert listener.server_names == ["hook.test"]
    assert listener.requests == [{"path": "/hook", "host": f"hook.test:{listener.port}"}]


def test_https_refuses_a_certificate_for_another_name(certificate, dns):
    with _tls_listener(certificate) as listener:
        dns.answers["other.test"] = [["127.0.0.1"]]
        target = safe_http.check(f"https://other.test:{listener.port}/hook", allow_private=True)
        with pytest.raises(requests.exceptions.SSLError):
            safe_http.send(target, b"{}", {}, 5, verify=certificate[0])
    assert listener.requests == []
