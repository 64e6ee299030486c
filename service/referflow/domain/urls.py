"""Absolute http(s) URLs that every parser reads the same way."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

# Whitespace, controls and backslashes are read differently by browsers, urllib and urllib3.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
DEFAULT_PORTS = {"http": 80, "https": 443}


class BadUrl(ValueError):
    """A URL that is not an absolute http(s) URL with a host, or that parsers may disagree on."""


def parse_http_url(url: str) -> SplitResult:
    """Return the parts of an absolute http(s) URL; raise BadUrl with the reason otherwise."""
    if _FORBIDDEN.search(url):
        raise BadUrl("the URL holds whitespace, a control character or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise BadUrl(f"the URL cannot be parsed: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUrl("the URL must be absolute http(s) with a host")
    if "@" in parts.netloc:
        raise BadUrl("the URL must not carry a user name or password")
    if port == 0:
        raise BadUrl("the URL's port must be 1-65535")
    if ":" not in parts.hostname:  # an IPv6 literal is no domain name
        try:
            parts.hostname.encode("idna")
        except UnicodeError as exc:
            raise BadUrl(f"the host is not a valid domain name: {exc}") from exc
    return parts


def is_http_url(url: str) -> bool:
    """Tell whether ``url`` is an absolute http(s) URL that parsers agree on."""
    try:
        parse_http_url(url)
    except BadUrl:
        return False
    return True


def normal_url(url: str) -> str:
    """Return the form two URLs of one endpoint share; raise BadUrl for a URL that is not http(s).

    The scheme and host are lower case (``urlsplit`` reads them so), the scheme's default port
    is dropped, an IPv6 host keeps its brackets. The path and query stay exactly as given (the
    receiver may tell ``/A`` from ``/a``), except that an empty path is ``/``, the path that is
    sent for it. The fragment is dropped: it is never sent.

    Stored: ``webhook_subscriptions.url_key`` (migration 0022) holds this form, and the unique
    index compares it; a change to it comes with a migration that recomputes the stored keys.
    """
    parts = parse_http_url(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = "" if parts.port in (None, DEFAULT_PORTS[parts.scheme]) else f":{parts.port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}{query}"
