"""The application factory: settings -> storage -> jobs -> api -> dashboard."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import Flask, g
from werkzeug.middleware.proxy_fix import ProxyFix

from referflow import api, dashboard, observability, portal
from referflow.api.keycache import KeyCache
from referflow.api.ratelimit import RateLimits
from referflow.config import Settings
from referflow.contract import SchemaStore
from referflow.jobs import runner
from referflow.jsonout import OrjsonProvider
from referflow.services import Services
from referflow.storage.crypto import Keyring
from referflow.storage.db import Database


@dataclass
class WebServices(Services):
    """The services of a web process: the shared ones plus the API-key cache and rate limits."""

    keys: KeyCache = field(default_factory=KeyCache)
    limits: RateLimits | None = None


def create_app(settings: Settings | None = None) -> Flask:
    """Build the referflow Flask app."""
    settings = settings or Settings.from_env()
    app = Flask("referflow")
    app.json = OrjsonProvider(app)  # response bodies by orjson (jsonout.py)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    if settings.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    database = Database(settings.database_url, Keyring(settings.secret_keys))
    services = WebServices(settings, database, SchemaStore(),
                           keys=KeyCache(), limits=RateLimits(settings))
    app.extensions["referflow"] = services
    app.teardown_appcontext(_close_session)
    observability.init_app(app)  # first: the request id is bound before any other hook
    api.init_app(app)
    dashboard.init_app(app)
    portal.init_app(app)  # the advocate page at /p/<token>
    services.jobs = runner.init_app(app)
    logging.getLogger("referflow").setLevel(logging.INFO)
    return app


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
