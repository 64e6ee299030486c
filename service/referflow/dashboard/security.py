"""The dashboard's browser security: session cookie, CSRF on every form, strict headers."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from referflow.config import Settings

PREFIX = "/dashboard"
# No inline script or style, nothing from another origin, no framing, forms post only here.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
SESSION_HOURS = 12
csrf = CSRFProtect()


class SessionCookies(SecureCookieSessionInterface):
    """Signed session cookies, marked Secure whenever the request came over HTTPS.

    Behind a proxy, ``request.is_secure`` is right once ProxyFix trusts X-Forwarded-Proto
    (REFERFLOW_TRUST_PROXY); SESSION_COOKIE_SECURE forces the flag regardless.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def session_key(secret: str) -> str:
    """Derive the session-signing key from an install secret (never the secret itself)."""
    return hmac.new(secret.encode(), b"referflow dashboard sessions", hashlib.sha256).hexdigest()


def init_app(app: Flask, settings: Settings) -> None:
    """Configure sessions and CSRF for the dashboard, and its headers on every response."""
    if not app.secret_key:
        current, *old = settings.secret_keys
        app.secret_key = session_key(current)
        app.config["SECRET_KEY_FALLBACKS"] = [session_key(k) for k in old]
    app.session_interface = SessionCookies()
    app.config.update(SESSION_COOKIE_NAME="referflow_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
                      WTF_CSRF_TIME_LIMIT=8 * 3600)
    csrf.init_app(app)
    # Flask-WTF checks every POST of the app by default; the JSON API under /v1 authenticates
    # with bearer keys and takes no CSRF token, so only the dashboard's requests are checked.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.after_request(_headers)


def protect() -> None:
    """Refuse (400) a dashboard form sent without this session's CSRF token."""
    csrf.protect()


def _headers(response: Response) -> Response:
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith(PREFIX + "/static/"):
            response.headers["Cache-Control"] = "no-store"
    return response
