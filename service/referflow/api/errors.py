"""One JSON error shape for every failure: {code, status, message, errors, request_id}."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from referflow.errors import ApiError, TooManyRequests
from referflow.logs import current_request_id

log = logging.getLogger("referflow.api")

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, errors: list | None = None) -> Response:
    """Return the one error shape as a Flask response."""
    body = {"code": code, "status": status, "message": message, "errors": errors or []}
    request_id = current_request_id()  # bound for every request (observability.py)
    if request_id:
        body["request_id"] = request_id
    response = jsonify(body)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    """Register the error handlers."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.errors)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return error_response(status, HTTP_CODES.get(status, "http_error"),
                              exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Log the type and traceback only: request bodies may carry personal data.
        log.exception("unhandled error: %s", type(exc).__name__)
        return error_response(500, "internal_error", "Something went wrong on our side.")
