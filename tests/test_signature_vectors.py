"""The providers' published signature vectors, recomputed (their source list is kept outside this
repository, in the steering folder's vectors/webhook-signatures.md; the values are below)."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from referflow.errors import Unauthorized
from referflow.providers.signatures import (
    verify_hubspot,
    verify_klaviyo,
    verify_shopify,
    verify_stripe,
)

STRIPE_BODY = b'{"id":"evt_test_webhook","object":"event"}'
STRIPE_HEADER = "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"


def test_stripe_published_vector():
    verify_stripe(STRIPE_BODY, STRIPE_HEADER, ["whsec_test_secret"], now=1700000000)
    with pytest.raises(Unauthorized) as exc:
        verify_stripe(STRIPE_BODY, STRIPE_HEADER, ["whsec_test_secret"], now=time.time())
    assert exc.value.code == "stale_timestamp"


@pytest.mark.parametrize(("header", "secrets", "now", "code"), [
    (None, ["whsec_test_secret"], 1700000000, "missing_signature"),
    ("t=1700000000,v1=" + "0" * 64, ["whsec_test_secret"], 1700000000, "invalid_signature"),
    (STRIPE_HEADER, ["whsec_other"], 1700000000, "invalid_signature"),
    ("t=1700000000,v1=d95c6b74ñ", ["whsec_test_secret"], 1700000000, "invalid_signature"),
    ("garbage", ["whsec_test_secret"], 1700000000, "invalid_signature"),
    ("t=abc,v1=x", ["whsec_test_secret"], 1700000000, "invalid_signature"),
    (STRIPE_HEADER, ["whsec_test_secret"], 1700000000 - 301, "stale_timestamp"),
    (STRIPE_HEADER, ["whsec_test_secret"], 1700000000 + 301, "stale_timestamp"),
])
def test_stripe_bad_signatures(header, secrets, now, code):
    with pytest.raises(Unauthorized) as exc:
        verify_stripe(STRIPE_BODY, header, secrets, now=now)
    assert exc.value.code == code


def test_stripe_rotation_any_secret_and_any_v1_matches():
    good = STRIPE_HEADER.split("v1=")[1]
    verify_stripe(STRIPE_BODY, f"t=1700000000,v1={'f' * 64},v1={good},v0=zzz",
                  ["whsec_old", "whsec_test_secret"], now=1700000100)


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"id":820982911946154508,"email":"jon@example.com"}',
     "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="),
    ('{"name":"Zoë 🚀"}'.encode(), "40gi+EgfvYHKmoQ+TN5f007/dE7iC7xJ1SmZO74tX4o="),
])
def test_shopify_published_vectors(body, expected):
    verify_shopify(body, expected, ["hush"])
    with pytest.raises(Unauthorized):
        verify_shopify(body + b" ", expected, ["hush"])


HUBSPOT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HUBSPOT_URI = "https://www.example.com/webhook_uri"
HUBSPOT_BODY = b"{'example_field':'example_value'}"


def test_hubspot_v3_published_vector():
    headers = {"X-HubSpot-Signature-v3": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
               "X-HubSpot-Request-Timestamp": "15000000"}
    verify_hubspot("POST", HUBSPOT_URI, HUBSPOT_BODY, headers, [HUBSPOT_SECRET], now_ms=15000000)
    with pytest.raises(Unauthorized) as exc:
        verify_hubspot("POST", HUBSPOT_URI, HUBSPOT_BODY, headers, [HUBSPOT_SECRET],
                       now_ms=15000000 + 301_000)
    assert exc.value.code == "stale_timestamp"


@pytest.mark.parametrize(("version", "signature"), [
    ("v1", "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"),
    ("v2", "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"),
])
def test_hubspot_legacy_vectors_only_when_enabled(version, signature):
    headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version}
    verify_hubspot("POST", HUBSPOT_URI, HUBSPOT_BODY, headers, [HUBSPOT_SECRET], 0, allow_legacy=True)
    with pytest.raises(Unauthorized) as exc:
        verify_hubspot("POST", HUBSPOT_URI, HUBSPOT_BODY, headers, [HUBSPOT_SECRET], 0)
    assert exc.value.code == "missing_signature"


def test_klaviyo_signature_and_timestamp():
    body, ts = b'{"data":[],"meta":{"klaviyo_webhook_id":"wh_1"}}', str(int(time.time()))
    sig = hmac.new(b"klaviyo-secret-123456", body + ts.encode(), hashlib.sha256).hexdigest()
    headers = {"Klaviyo-Signature": sig, "Klaviyo-Timestamp": ts, "Klaviyo-Webhook-Id": "wh_1"}
    verify_klaviyo(body, headers, ["klaviyo-secret-123456"], now=time.time())
    with pytest.raises(Unauthorized):
        verify_klaviyo(body, {**headers, "Klaviyo-Signature": "00"}, ["klaviyo-secret-123456"],
                       now=time.time())
    with pytest.raises(Unauthorized) as exc:
        verify_klaviyo(body, headers, ["klaviyo-secret-123456"], now=time.time() + 400)
    assert exc.value.code == "stale_timestamp"


def test_standard_webhooks_published_vector():
    signed = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", datetime.fromtimestamp(1614265330, tz=UTC),
        '{"test": 2432232314}')
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
