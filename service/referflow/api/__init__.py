"""HTTP API: blueprints, the operation registry, error handling."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register every blueprint and the error handlers."""
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

    errors.init_app(app)
    for module in (admin, links, referrals, giftcards, reviews, webhooks, ingress, meta):
        app.register_blueprint(module.bp)
