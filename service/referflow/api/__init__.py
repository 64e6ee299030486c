"""HTTP API: blueprints, the operation registry, error handling."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from referflow.jsonbody import check_text


def modules() -> tuple[Any, ...]:
    """Import the API modules (which fills the operation table) and return them."""
    # Deferred on purpose: each module imports referflow.api.operations, so importing them
    # while this package initialises would be circular.
    from referflow.api import (  # noqa: PLC0415
        admin,
        errors,
        experiments,
        giftcards,
        ingress,
        links,
        lists,
        meta,
        moments,
        portal,
        referrals,
        reviews,
        stats,
        tiers,
        webhooks,
    )

    return (errors, admin, links, referrals, giftcards, reviews, webhooks, ingress, lists, stats,
            moments, portal, experiments, tiers, meta)


def init_app(app: Flask) -> None:
    """Register every blueprint and the error handlers."""
    errors, *blueprints = modules()
    errors.init_app(app)
    app.before_request(_check_path_and_query)
    for module in blueprints:
        app.register_blueprint(module.bp)


def _check_path_and_query() -> None:
    """Refuse NUL and lone surrogates in the path and query before any view (or auth) runs."""
    check_text(request.path, "path")
    for key, value in request.args.items(multi=True):
        check_text(key, "query")
        check_text(value, f"query/{key}")
