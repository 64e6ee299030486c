"""Failed authentication and the public endpoints are rate limited: 429 with Retry-After."""

from __future__ import annotations

import os
import secrets

import pytest

from referflow.app import create_app
from referflow.errors import ConfigurationError
from tests.conftest import make_program
from tests.helpers import link


@pytest.fixture()
def limited(settings):
    application = create_app(settings.with_overrides(
        rate_limit_auth_failures="5/minute", rate_limit_public="4/minute", rate_limit_ingress="3/minute"))
    yield application.test_client()
    application.extensions["referflow"].db.dispose()


def _get(client, path, token=None, ip="198.51.100.7"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers, environ_base={"REMOTE_ADDR": ip})


def _limited(response):
    assert response.status_code == 429, response.get_json()
    assert response.get_json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_wrong_keys_from_one_address_are_stopped_and_right_keys_still_pass(limited):
    api = make_program(limited)
    for i in range(5):
        assert _get(limited, "/v1/program", f"rfk_wrong{i:04d}xxxxxx").status_code == 401
    _limited(_get(limited, "/v1/program", "rfk_wrong9999xxxxxx"))
    # Programs share addresses (Zapier, n8n cloud, a proxy): one tenant's bad key locks no one out.
    assert _get(limited, "/v1/program", api.token).status_code == 200
    _limited(_get(limited, "/v1/program", "rfk_wrong8888xxxxxx"))


def test_guesses_at_one_key_prefix_are_stopped_across_addresses(limited):
    for i in range(5):
        assert _get(limited, "/v1/program", f"rfk_samepfx1-guess{i}", ip=f"203.0.113.{i}").status_code == 401
    _limited(_get(limited, "/v1/program", "rfk_samepfx1-guessZ", ip="203.0.113.99"))


def test_missing_credentials_count_as_failures(limited):
    for _ in range(5):
        assert _get(limited, "/v1/program").status_code == 401
    _limited(_get(limited, "/v1/program"))


def test_good_requests_are_not_limited_by_the_failure_limit(limited):
    api = make_program(limited)
    for _ in range(20):
        assert _get(limited, "/v1/program", api.token).status_code == 200


def test_wrong_admin_tokens_are_limited(limited):
    def attempt():
        return limited.post("/v1/admin/programs", json={}, headers={"Authorization": "Bearer nope"},
                            environ_base={"REMOTE_ADDR": "198.51.100.7"})

    for _ in range(5):
        assert attempt().status_code == 401
    _limited(attempt())


def test_share_link_visits_are_limited_per_address(limited):
    api = make_program(limited)
    code = link(api)["code"]
    for _ in range(4):
        assert _get(limited, f"/r/{code}").status_code == 302
    _limited(_get(limited, f"/r/{code}"))
    assert _get(limited, f"/r/{code}", ip="198.51.100.50").status_code == 302


def test_provider_deliveries_are_limited_before_the_signature_check(limited):
    for _ in range(3):
        response = limited.post("/v1/ingress/prg_x/stripe", data=b"{}", content_type="application/json",
                                environ_base={"REMOTE_ADDR": "192.0.2.1"})
        assert response.status_code == 404
    _limited(limited.post("/v1/ingress/prg_x/stripe", data=b"{}", content_type="application/json",
                          environ_base={"REMOTE_ADDR": "192.0.2.1"}))


def test_a_malformed_limit_fails_at_start(settings):
    with pytest.raises(ConfigurationError, match="REFERFLOW_RATE_LIMIT_PUBLIC"):
        create_app(settings.with_overrides(rate_limit_public="lots"))


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (CI's PostgreSQL + Redis run)")
def test_with_redis_every_process_counts_together(settings):
    apps = [create_app(settings.with_overrides(redis_url=os.environ["REDIS_URL"],
                                               rate_limit_auth_failures="4/minute")) for _ in range(2)]
    clients = [a.test_client() for a in apps]
    ip = f"198.18.{secrets.randbelow(250)}.{secrets.randbelow(250)}"  # fresh counters each run
    key = "rfk_" + secrets.token_hex(8)
    for i in range(4):
        assert _get(clients[i % 2], "/v1/program", key, ip=ip).status_code == 401
    _limited(_get(clients[0], "/v1/program", key, ip=ip))
    _limited(_get(clients[1], "/v1/program", key, ip=ip))
    for a in apps:
        a.extensions["referflow"].db.dispose()
