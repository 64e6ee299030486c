"""The exception tree of referflow.

    ReferflowError
    ├── ConfigurationError            settings missing or invalid at start-up
    │   └── UnreadableSecret          a stored secret the configured keys cannot decrypt
    ├── ApiError                      a request that gets a 4xx JSON error
    │   ├── BadRequest                400 malformed input (invalid_json, too_deep, ...)
    │   ├── Unauthorized              401 missing or wrong credentials
    │   ├── Forbidden                 403 credentials valid but not for this
    │   ├── NotFound                  404 unknown object, or another program's object
    │   ├── Conflict                  409 state forbids the request (idempotency, balance, ...)
    │   ├── PayloadTooLarge           413 body over the limit
    │   ├── UnsupportedMediaType      415 not application/json
    │   ├── ValidationFailed          422 schema or business-rule violation
    │   └── TooManyRequests           429 over a rate limit (with Retry-After)
    └── ProviderError                 a call to Stripe, Shopify, HubSpot, Klaviyo... failed
        ├── RetryableProviderError    timeouts, 5xx, 429: try again later
        └── PermanentProviderError    4xx, rejected: never retry
"""

from __future__ import annotations

from typing import Any


class ReferflowError(Exception):
    """Base class of every referflow error."""


class ConfigurationError(ReferflowError):
    """Settings are missing or invalid."""


class UnreadableSecret(ConfigurationError):
    """A stored secret cannot be decrypted: no key, a wrong key, or a value never encrypted."""


class ApiError(ReferflowError):
    """An error answered to the client as JSON with a stable code."""

    status = 400
    default_code = "bad_request"

    def __init__(self, message: str, code: str | None = None, errors: list[Any] | None = None,
                 *, ordinary: str | None = None, referral: Any = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.errors = errors or []
        # An ordinary event with nothing to do (no code, a customer nobody referred): asked with
        # ``Prefer: outcome=explicit``, it is answered 200 with this outcome code instead.
        self.ordinary = ordinary
        self.referral = referral  # the referral it concerns, if any (id and status are shown)

    def to_dict(self) -> dict[str, Any]:
        """Return the one JSON error shape."""
        return {"code": self.code, "status": self.status, "message": self.message,
                "errors": self.errors}


class BadRequest(ApiError):
    """The request is malformed."""

    status = 400


class Unauthorized(ApiError):
    """Credentials are missing or wrong."""

    status = 401
    default_code = "unauthorized"


class Forbidden(ApiError):
    """Credentials are valid but do not allow this."""

    status = 403
    default_code = "forbidden"


class NotFound(ApiError):
    """The object does not exist for this caller."""

    status = 404
    default_code = "not_found"


class Conflict(ApiError):
    """The current state forbids the request."""

    status = 409
    default_code = "conflict"


class PayloadTooLarge(ApiError):
    """The body is larger than the configured limit."""

    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    """The body is not JSON."""

    status = 415
    default_code = "unsupported_media_type"


class ValidationFailed(ApiError):
    """The body breaks the schema or a business rule."""

    status = 422
    default_code = "validation_failed"


class TooManyRequests(ApiError):
    """Too many requests (or failed authentications) from one address or for one key."""

    status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, retry_after: int, code: str | None = None):
        super().__init__(message, code)
        self.retry_after = retry_after


class ProviderError(ReferflowError):
    """A call to an outside provider failed."""


class RetryableProviderError(ProviderError):
    """A provider failure worth retrying later (timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """A provider rejected the call; retrying will not help."""
