"""createLink, the share URL redirect, and advocates."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from referflow.domain.codes import CODE_ALPHABET
from referflow.storage.models import Click
from tests.conftest import make_program
from tests.helpers import claim, link


def test_create_link_returns_a_short_unambiguous_code_and_share_url(api):
    response = api.post("/v1/links", {"advocate": {"external_id": "cus_1", "email": "a@x.test",
                                                   "name": "Ann"}})
    assert response.status_code == 201
    body = response.get_json()
    assert re.fullmatch(f"[{CODE_ALPHABET}]{{8}}", body["code"])
    assert body["url"] == f"https://refer.example.test/r/{body['code']}"
    assert body["advocate_id"].startswith("adv_")
    assert body["created"] is True


def test_create_link_again_for_the_same_advocate_returns_the_same_link(api):
    first = link(api, external_id="cus_1")
    again = api.post("/v1/links", {"advocate": {"external_id": "cus_1", "email": "new@x.test"}})
    assert again.status_code == 200
    assert again.get_json() | {"created": True, "outcome": "link_created", "changed": True} == first
    assert api.get(f"/v1/advocates/{first['advocate_id']}").get_json()["email"] == "new@x.test"


def test_vanity_code_is_used_when_free_and_refused_when_taken(api, client):
    mine = link(api, external_id="cus_1", vanity_code="anna-2025")
    assert mine["code"] == "ANNA-2025"
    taken = api.post("/v1/links", {"advocate": {"external_id": "cus_2", "email": "b@x.test"},
                                   "vanity_code": "Anna-2025"})
    assert taken.status_code == 409
    assert taken.get_json()["code"] == "code_taken"
    other = make_program(client, name="Other")  # codes are unique per install
    assert other.post("/v1/links", {"advocate": {"external_id": "x", "email": "c@x.test"},
                                    "vanity_code": "ANNA-2025"}).status_code == 409
    assert link(api, external_id="cus_1")["code"] == "ANNA-2025"


def test_share_link_records_a_hashed_click_and_redirects_with_code_and_click_id(api, client, app):
    code = link(api)["code"]
    response = client.get(f"/r/{code}?ch=whatsapp", headers={"User-Agent": "Mozilla/5.0 test"},
                          environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    query = parse_qs(target.query)
    assert target.netloc == "shop.example.test" and target.path == "/welcome"
    assert query["utm_source"] == ["referral"]
    assert query["ref"] == [code]
    with app.extensions["referflow"].db.session() as session:
        click = session.scalar(select(Click).where(Click.id == query["click_id"][0]))
        assert click.channel == "whatsapp"
        stored = " ".join(str(v) for v in (click.ip_key, click.net_key, click.ua_key))
        assert "203.0.113.7" not in stored and "Mozilla" not in stored
        assert len(click.ip_key) == 64 and click.created_at.tzinfo is not None


def test_unknown_share_code_is_a_json_404(client):
    response = client.get("/r/NOSUCHCODE")
    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_code"


def test_get_advocate_counts_clicks_and_referrals(api, client):
    created = link(api, external_id="cus_9")
    client.get(f"/r/{created['code']}")
    client.get(f"/r/{created['code']}")
    claim(api, created["code"])
    claim(api, created["code"], friend_id="cus_9")  # self-referral -> rejected
    body = api.get("/v1/advocates/by-external-id/cus_9").get_json()
    assert body["id"] == created["advocate_id"]
    assert body["stats"]["clicks"] == 2
    assert body["stats"]["referrals"] == 2
    assert body["stats"]["rejected"] == 1
    assert body["codes"][0]["url"].endswith(created["code"])


def test_another_programs_advocate_is_not_found(api, client):
    created = link(api)
    other = make_program(client, name="Other")
    assert other.get(f"/v1/advocates/{created['advocate_id']}").status_code == 404
