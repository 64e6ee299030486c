"""HTTP API: blueprints, the operation registry, error handling."""

from __future__ import annotations

from typing import Any

from flask import Flask


def modules() -> tuple[Any, ...]:
    """Import the API modules (which fills the operation table) and return them."""
    from referflow.api import (
        admin,
        errors,
        giftcards,
        ingress,
        links,
        meta,
        referrals,
        reviews,
        webhooks,
    )

    return (errors, admin, links, referrals, giftcards, reviews, webhooks, ingress, meta)


def init_app(app: Flask) -> None:
    """Register every blueprint and the error handlers."""
    errors, *blueprints = modules()
    errors.init_app(app)
    for module in blueprints:
        app.register_blueprint(module.bp)
