"""Outbound HTTP to providers: timeouts, and errors split into retry-later and never-retry."""

from __future__ import annotations

from typing import Any

import requests

from referflow.errors import PermanentProviderError, RetryableProviderError
from referflow.jsonbody import ascii_digits

TIMEOUT = (3.05, 15)


def call(method: str, url: str, provider: str, **kwargs: Any) -> requests.Response:
    """Make a request; 5xx, 429 and network errors are retryable, other 4xx are permanent."""
    response = send(method, url, provider, **kwargs)
    if response.status_code >= 400:
        raise PermanentProviderError(f"{provider}: HTTP {response.status_code}: "
                                     f"{_message(response)}")
    return response


def send(method: str, url: str, provider: str, **kwargs: Any) -> requests.Response:
    """Make a request; raise retryable errors (5xx, 429, network), return any other answer
    (a caller that reads a provider's refusal, e.g. Stripe's error object, checks the status)."""
    try:
        response = requests.request(method, url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        raise RetryableProviderError(f"{provider}: {type(exc).__name__}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableProviderError(f"{provider}: HTTP {response.status_code}",
                                     retry_after=_retry_after(response))
    return response


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    return float(raw) if ascii_digits(raw.replace(".", "", 1)) else None


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code"))[:200]
    return str(body)[:200]
