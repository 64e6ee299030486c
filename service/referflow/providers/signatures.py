"""Verify provider webhook signatures on the raw body, before anything is parsed.

Each function raises ``Unauthorized`` with a stable code (``missing_signature``,
``invalid_signature``, ``stale_timestamp``) and never anything else for bad input: a malformed
or non-ASCII header is an invalid signature, not a 500. Several secrets may be active at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from referflow.domain.timeutil import parse_rfc3339
from referflow.errors import Unauthorized
from referflow.jsonbody import ascii_digits

TOLERANCE_SECONDS = 300


def _missing(what: str) -> Unauthorized:
    return Unauthorized(f"missing {what}", code="missing_signature")


def _invalid() -> Unauthorized:
    return Unauthorized("the signature does not match", code="invalid_signature")


def _stale() -> Unauthorized:
    return Unauthorized("the timestamp is outside the tolerance", code="stale_timestamp")


def _same(expected: bytes, given: str) -> bool:
    try:
        return hmac.compare_digest(expected, given.encode("ascii"))
    except UnicodeEncodeError:
        return False


def _hmac(secret: str, message: bytes) -> hmac.HMAC:
    return hmac.new(secret.encode(), message, hashlib.sha256)


def verify_stripe(raw: bytes, header: str | None, secrets: list[str], now: float,
                  tolerance: int = TOLERANCE_SECONDS) -> None:
    """Stripe-Signature ``t=...,v1=...``: HMAC-SHA256 hex of ``t.body``; any v1 may match."""
    if not header:
        raise _missing("Stripe-Signature header")
    pairs = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [v for k, v in pairs if k.strip() == "t"]
    signatures = [v.strip() for k, v in pairs if k.strip() == "v1"]
    if len(timestamps) != 1 or not ascii_digits(timestamps[0].strip()) or not signatures:
        raise _invalid()
    timestamp = timestamps[0].strip()
    signed = timestamp.encode() + b"." + raw
    if not any(_same(_hmac(s, signed).hexdigest().encode(), sig)
               for s in secrets for sig in signatures):
        raise _invalid()
    if abs(now - int(timestamp)) > tolerance:
        raise _stale()


def verify_shopify(raw: bytes, header: str | None, secrets: list[str]) -> None:
    """X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body with the app's client secret."""
    if not header:
        raise _missing("X-Shopify-Hmac-Sha256 header")
    if not any(_same(base64.b64encode(_hmac(s, raw).digest()), header.strip()) for s in secrets):
        raise _invalid()


def verify_hubspot(method: str, uri: str, raw: bytes, headers: Mapping[str, str],
                   secrets: list[str], now_ms: int, allow_legacy: bool = False) -> None:
    """HubSpot v3 (and v1/v2 only when the program allows them)."""
    signature = headers.get("X-HubSpot-Signature-v3")
    if signature:
        timestamp = headers.get("X-HubSpot-Request-Timestamp", "")
        if not ascii_digits(timestamp):
            raise _missing("X-HubSpot-Request-Timestamp header")
        message = f"{method}{uri}".encode() + raw + timestamp.encode()
        if not any(_same(base64.b64encode(_hmac(s, message).digest()), signature.strip())
                   for s in secrets):
            raise _invalid()
        if abs(now_ms - int(timestamp)) > TOLERANCE_SECONDS * 1000:
            raise _stale()
        return
    legacy = headers.get("X-HubSpot-Signature")
    if not legacy or not allow_legacy:
        raise _missing("X-HubSpot-Signature-v3 header")
    version = headers.get("X-HubSpot-Signature-Version", "v1")
    def digest(secret: str) -> bytes:
        source = secret.encode() + (raw if version == "v1" else f"{method}{uri}".encode() + raw)
        return hashlib.sha256(source).hexdigest().encode()
    if not any(_same(digest(s), legacy.strip()) for s in secrets):
        raise _invalid()


def verify_klaviyo(raw: bytes, headers: Mapping[str, str], secrets: list[str], now: float,
                   tolerance: int = TOLERANCE_SECONDS) -> None:
    """Klaviyo-Signature: hex HMAC-SHA256 of the raw body followed by Klaviyo-Timestamp."""
    signature, timestamp = headers.get("Klaviyo-Signature"), headers.get("Klaviyo-Timestamp", "")
    if not signature or not headers.get("Klaviyo-Webhook-Id"):
        raise _missing("Klaviyo-Signature / Klaviyo-Webhook-Id header")
    if not any(_same(_hmac(s, raw + timestamp.encode()).hexdigest().encode(), signature.strip())
               for s in secrets):
        raise _invalid()
    seconds = _klaviyo_seconds(timestamp)
    if seconds is None or abs(now - seconds) > tolerance:
        raise _stale()


def _klaviyo_seconds(timestamp: str) -> float | None:
    if ascii_digits(timestamp):
        value = int(timestamp)
        return value / 1000 if value > 10**11 else value
    try:
        return parse_rfc3339(timestamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None
