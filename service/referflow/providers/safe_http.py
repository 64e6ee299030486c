"""Outbound HTTP to URLs that users supply (webhooks): refuse inside targets, connect to what was checked.

One strict parse, one DNS resolution, one connection: the address that passed the check is the
address the socket connects to, so a later DNS answer cannot swap it. The request still carries
the URL's Host header, and for https the URL's hostname as SNI and in certificate verification.
No proxies (a proxy would resolve the name itself), no ~/.netrc credentials, no redirects.
Where inside addresses are refused (production), plain http is refused too (``https_required``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any, NoReturn

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url

from referflow.domain.urls import DEFAULT_PORTS, BadUrl, parse_http_url
from referflow.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED = "url_not_allowed"
HTTPS_REQUIRED = "https_required"
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")

# Never public, whatever the running Python's ipaddress tables say. IPv4-mapped, IPv4-compatible,
# SIIT, local-use NAT64 and Teredo (inside 2001::/23) are refused outright.
_NOT_PUBLIC = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
    "2001:db8::/32", "3fff::/20", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

if not hasattr(HTTPAdapter, "build_connection_pool_key_attributes"):  # requests < 2.32.2
    raise ImportError("referflow needs requests>=2.32.2 to pin outbound connections to the checked IP")


@dataclass(frozen=True)
class CheckedTarget:
    """A URL that passed the guard, and the one address its host resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress

    @property
    def host_header(self) -> str:
        """Return the Host header the URL implies (port only when not the scheme's default)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"


def check(url: str, allow_private: bool) -> CheckedTarget:
    """Parse the URL strictly, resolve its host once and refuse non-public addresses unless allowed.

    Where private addresses are refused (production), so is plain http: events and their
    signatures would cross the internet readable and alterable. Refused before any DNS lookup.
    """
    scheme, host, port = parse(url)
    if _plain_http_refused(scheme, allow_private):
        raise ValidationFailed("the URL must use https (plain http is refused in production)",
                               code=HTTPS_REQUIRED)
    return CheckedTarget(url, scheme, host, port, _resolve(host, port, allow_private))


def _plain_http_refused(scheme: str, allow_private: bool) -> bool:
    return scheme != "https" and not allow_private


def refused_for_plain_http(url: str, allow_private: bool) -> bool:
    """Whether ``check`` refuses this (stored, once accepted) URL for its scheme alone: an http
    endpoint subscribed before https was required, whose every delivery now fails."""
    try:
        scheme = parse(url)[0]
    except ValidationFailed:
        return False  # refused for another reason, shown by its failing deliveries
    return _plain_http_refused(scheme, allow_private)


def post(url: str, body: bytes, headers: dict[str, str], timeout: Any,
         allow_private: bool) -> requests.Response:
    """Check the URL, then POST to exactly the address that was checked."""
    return send(check(url, allow_private), body, headers, timeout)


def send(target: CheckedTarget, body: bytes, headers: dict[str, str], timeout: Any,
         verify: bool | str = True) -> requests.Response:
    """POST to the checked address: no proxy, no netrc, no redirects."""
    adapter = PinnedAdapter(target)
    with requests.Session() as session:
        session.trust_env = False
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session.post(target.url, data=body, headers=headers, timeout=timeout,
                            allow_redirects=False, verify=verify)


class PinnedAdapter(HTTPAdapter):
    """Connect to the target's checked IP; keep its Host header, SNI and certificate hostname."""

    def __init__(self, target: CheckedTarget):
        self.target = target
        super().__init__()

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[Any, Any]:
        """Point the pool at the checked IP; refuse a request that is not for the checked target."""
        host_params, kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs: dict[str, Any] = dict(kwargs)  # urllib3 takes more keys than requests types
        target, scheme = self.target, host_params["scheme"]
        asked = (scheme, host_params["host"], host_params["port"] or DEFAULT_PORTS.get(scheme))
        if asked != (target.scheme, target.host, target.port):
            raise ValueError("the request is not for the checked URL")  # requests: InvalidURL
        host_params["host"] = str(target.ip)
        if scheme == "https":
            name = target.host.rstrip(".")
            pool_kwargs["server_hostname"] = pool_kwargs["assert_hostname"] = name
        return host_params, pool_kwargs

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        """Send the URL's Host header, not the IP the connection goes to."""
        request.headers["Host"] = self.target.host_header


def parse(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of an absolute http(s) URL that both URL parsers read alike.

    The syntax every URL of ours keeps is ``domain.urls.parse_http_url``; an outbound URL must in
    addition be ASCII, carry no user info for urllib3 either, and name the same target to urllib3.
    """
    if not url.isascii():
        _refuse("the URL must be ASCII (punycode the host, percent-encode the rest)")
    try:
        parts = parse_http_url(url)
        other = parse_url(url)
    except BadUrl as exc:
        _refuse(str(exc), exc)
    except ValueError as exc:  # urllib3's LocationParseError
        _refuse(f"the URL cannot be parsed: {exc}", exc)
    if other.auth is not None:
        _refuse("the URL must not carry a user name or password")
    host, port = parts.hostname or "", parts.port
    if (other.scheme, (other.host or "").strip("[]"), other.port) != (parts.scheme, host, port):
        _refuse("URL parsers disagree about the scheme, host or port of this URL")
    _check_host(host, bracketed="[" in parts.netloc)
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme]


def _check_host(host: str, bracketed: bool) -> None:
    name = host.removesuffix(".")
    try:
        if bracketed:
            ipaddress.IPv6Address(host)  # a zone id ("%25eth0") is refused here too
        elif _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
            # Resolvers read 2130706433, 0x7f.1 or 127.1 as IPv4: only the plain form is allowed.
            if str(ipaddress.IPv4Address(host)) != host:
                raise ValueError(host)
        elif len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
            raise ValueError(host)
        else:
            name.encode("ascii").decode("idna")  # "xn--" labels must be valid punycode
    except ValueError as exc:  # also UnicodeError
        _refuse(f"{host!r} is not a valid host name or IP address", exc)


def _resolve(host: str, port: int, allow_private: bool) -> IPAddress:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        _refuse(f"cannot resolve {host}", exc)
    ips = [ipaddress.ip_address(info[4][0]) for info in infos
           if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not ips:
        _refuse(f"cannot resolve {host}")
    if not allow_private and not all(map(is_public, ips)):
        _refuse(f"{host} resolves to a non-public address")
    return ips[0]


def is_public(ip: IPAddress) -> bool:
    """Tell whether an address is public; NAT64 and 6to4 addresses by the IPv4 address they carry."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return is_public(ip.sixtofour)
    if any(ip in net for net in _NOT_PUBLIC):
        return False
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified or site_local)


def _refuse(message: str, cause: BaseException | None = None) -> NoReturn:
    raise ValidationFailed(message, code=REFUSED) from cause
