"""The advocate page at /p/<token>: a customer's link, referrals, rewards and tier, no login.

The token is the secret: a permanent one per advocate (``portal_url``, rotatable), or a
short-lived one for embedding (createPortalToken). Pages call use cases (``actions/portal.py``),
never SQL. No inline script runs (the CSP has no 'unsafe-inline'); the brand colours come in
one ``<style>`` with this response's nonce; the page may be framed only by the program's
``portal.allowed_origins``; no Referer leaves it (the URL carries the token).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, render_template, request
from werkzeug.wrappers import Response

from referflow.actions import portal
from referflow.api.operations import db_session, limit_public
from referflow.api.payloads import base_url
from referflow.domain import portal as rules
from referflow.domain.program import Portal
from referflow.domain.timeutil import utcnow
from referflow.errors import ApiError, TooManyRequests
from referflow.portal import page
from referflow.portal.i18n import Texts, choose, languages

bp = Blueprint("portal", __name__, url_prefix="/p", template_folder="templates",
               static_folder="static", static_url_path="/static")
THEMES = ("light", "dark")


def init_app(app: Flask) -> None:
    """Register the advocate page."""
    app.register_blueprint(bp)


@bp.route("/<token>")
def show(token: str) -> Any:
    """Render an advocate's page for a permanent or short-lived token."""
    limit_public("public")
    session = db_session()
    opened = portal.open_page(session, _secret(), token)
    g.portal = opened.ctx.config.portal
    view = portal.view(session, opened.ctx, opened.advocate, base_url())
    texts = _texts(opened.ctx.config.portal)
    share = view.share_url or ""
    return render_template("portal/page.html", view=view, texts=texts, page=page, now=utcnow(),
                           links=page.share_links(texts, view), **_chrome(texts),
                           copy_url=rules.tagged(share, rules.COPY_CHANNEL),
                           qr_url=rules.tagged(share, rules.QR_CHANNEL))


def _secret() -> str:
    return str(current_app.extensions["referflow"].settings.secret_key)


def _texts(config: Portal | None) -> Texts:
    best = request.accept_languages.best_match(languages())
    return Texts(choose(request.args.get("lang"), config.language if config else None, best))


def _chrome(texts: Texts) -> dict[str, Any]:
    """The page's frame: language, theme, embedding, brand colours and the style nonce."""
    config: Portal = g.get("portal") or Portal()
    theme = request.args.get("theme")
    return {"_": texts.gettext, "ngettext": texts.ngettext, "lang": texts.language,
            "theme": theme if theme in THEMES else None, "embed": request.args.get("embed") == "1",
            "colours": config.colours, "on_primary": rules.readable_on(config.colours.primary),
            "nonce": _nonce(), "brand_logo": config.logo_url}


def _nonce() -> str:
    if "portal_nonce" not in g:
        g.portal_nonce = secrets.token_urlsafe(18)
    return str(g.portal_nonce)


@bp.errorhandler(ApiError)
def _error(exc: ApiError) -> Any:
    texts = _texts(g.get("portal"))
    message = {404: texts.gettext("This page does not exist, or its link has expired or was "
                                  "replaced. Ask the shop for your current link."),
               429: texts.gettext("Too many requests. Wait a minute and try again.")}
    body = render_template("portal/error.html", status=exc.status,
                           message=message.get(exc.status, exc.message), **_chrome(texts))
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else {}
    return body, exc.status, headers


@bp.after_request
def _headers(response: Response) -> Response:
    config: Portal = g.get("portal") or Portal()
    images = " ".join(["'self'", "data:", *_origin_of(config.logo_url)])
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{_nonce()}'; "
        f"img-src {images}; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {rules.frame_ancestors(config.allowed_origins)}")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.endpoint != "portal.static":
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    if not config.allowed_origins:
        response.headers["X-Frame-Options"] = "DENY"
    return response


def _origin_of(url: str | None) -> list[str]:
    """The logo's origin, for img-src (the config admits https URLs only)."""
    if not url:
        return []
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"]
