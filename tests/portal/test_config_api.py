"""The portal section of a program config through the API: validated, defaults spelled out."""

from __future__ import annotations

import pytest

from tests.conftest import PROGRAM_CONFIG, make_program


def test_a_program_without_portal_config_gets_the_defaults(api):
    portal = api.get("/v1/program").get_json()["config"]["portal"]
    assert portal == {"name": None, "logo_url": None,
                      "colours": {"primary": "#1d4ed8", "accent": "#047857"},
                      "terms": None, "consent_text": None, "support_email": None,
                      "allowed_origins": [], "permanent_link": True, "leaderboard": False,
                      "language": None}


@pytest.mark.parametrize("portal", [
    {"logo_url": "http://shop.test/logo.png"},
    {"colours": {"primary": "#12"}},
    {"colours": {"primary": "#123456", "other": "#fff"}},
    {"allowed_origins": ["https://shop.test/embed"]},
    {"allowed_origins": ["http://shop.test"]},
    {"language": "fr"},
    {"permanent_link": "no"},
    {"unknown": True},
])
def test_bad_portal_config_is_a_422_not_a_500(client, portal):
    from tests.conftest import ADMIN_TOKEN, Api

    admin = Api(client, ADMIN_TOKEN)
    response = admin.post("/v1/admin/programs", {"name": "Bad", "config": {**PROGRAM_CONFIG, "portal": portal}})
    assert response.status_code == 422, response.get_json()


def test_a_full_portal_config_is_kept(client):
    portal = {"name": "Acme", "logo_url": "https://cdn.acme.test/logo.svg",
              "colours": {"primary": "#7C2D12", "accent": "#b45309"}, "terms": "T", "consent_text": "C",
              "support_email": "help@acme.test", "allowed_origins": ["https://Shop.Acme.test"],
              "permanent_link": False, "leaderboard": True, "language": "de"}
    api = make_program(client, {**PROGRAM_CONFIG, "portal": portal})
    stored = api.get("/v1/program").get_json()["config"]["portal"]
    assert stored == {**portal, "allowed_origins": ["https://shop.acme.test"]}
