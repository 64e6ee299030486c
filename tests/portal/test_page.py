"""The advocate page through the Flask test client: what it says, its headers, its languages."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select

from referflow.storage.models import Referral
from tests.helpers import claim
from tests.portal.helpers import FRIENDS, enrol, path_of, portal_program, refer_friends


@pytest.fixture()
def site(client):
    api = portal_program(client)
    made = enrol(api)
    refer_friends(api, made["code"])
    issued = api.post("/v1/gift-cards", {"advocate_id": made["advocate_id"], "amount": 1500})
    assert issued.status_code == 201, issued.get_json()
    return api, made


def _page(client, made, query="", **headers):
    response = client.get(path_of(made["portal_url"]) + query, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response, response.get_data(as_text=True)


def test_the_page_shows_link_referrals_rewards_tier_and_terms(client, site):
    _api, made = site
    _response, html = _page(client, made)
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    assert "Hi Anna, thanks for spreading the word" in text
    assert f'value="{made["url"]}?ch=copy"' in html
    assert "J. placed an order. You earned €25.00." in " ".join(text.split()) or \
        "J. placed an order. You earned €25.00; it is on its way." in " ".join(text.split())
    assert "L. signed up on" in text  # the third friend, still pending
    assert "Earned so far:" in text and "€50.00" in text
    assert "€15.00 of €15.00" in text  # the goodwill gift card, with its code
    assert "You are at Silver." in text and "3 more approved referrals to reach Gold." in text
    assert "Rewards are paid after 14 days." in text and "help@acme.test" in text
    assert "Top advocates" in text and "(you)" in text
    assert '<svg role="img" aria-label="QR code of your link"' in html


def test_no_friend_data_beyond_a_first_name_or_initial_reaches_the_html(client, site):
    _api, made = site
    _response, html = _page(client, made)
    for friend_id, email in FRIENDS:
        local = email.split("@")[0]
        for secret in (friend_id, email, local, local.split(".")[1]):
            assert secret.lower() not in html.lower(), secret
    assert "anna.schmidt" not in html and "Schmidt" not in html and "cus_anna" not in html


def test_share_buttons_carry_the_share_url_tagged_with_their_channel(client, site):
    _api, made = site
    _response, html = _page(client, made)
    buttons = re.findall(r'href="([^"]+)"[^>]*data-channel="([a-z]+)" data-url="([^"]+)"', html)
    hrefs = {channel: unescape(href) for href, channel, _url in buttons}
    assert set(hrefs) == {"email", "sms", "whatsapp", "x", "linkedin", "facebook", "telegram"}
    tagged = {c: f"{made['url']}?ch={c}" for c in hrefs}
    assert {channel: unescape(url) for _href, channel, url in buttons} == tagged
    assert hrefs["email"].startswith("mailto:?subject=Have%20a%20look%20at%20Acme%20Coffee&body=")
    assert unquote(hrefs["email"].split("body=")[1]).endswith(" " + tagged["email"])
    assert unquote(hrefs["sms"].split("body=")[1]).endswith(" " + tagged["sms"])
    for channel, key in (("whatsapp", "text"), ("x", "url"), ("linkedin", "url"), ("facebook", "u"),
                         ("telegram", "url")):
        query = parse_qs(urlsplit(hrefs[channel]).query)
        assert query[key][0].endswith(tagged[channel]), channel
    assert urlsplit(hrefs["whatsapp"]).netloc == "wa.me"
    assert " " not in hrefs["email"] + hrefs["x"]  # percent-encoded, never raw spaces


def test_headers_keep_scripts_out_the_token_in_and_framing_to_the_programs_origins(client, site):
    _api, made = site
    response, html = _page(client, made)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors https://shop.acme.test" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<style nonce="{nonce}">' in html and "--brand:#7c2d12" in html
    assert "<script>" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "X-Frame-Options" not in response.headers  # frame-ancestors decides


def test_a_program_without_allowed_origins_may_not_be_framed(api, client):
    made = enrol(api)
    response, _html = _page(client, made)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(("query", "headers", "expected"), [
    ("", {}, "Your personal link"),
    ("?lang=de", {}, "Dein persönlicher Link"),
    ("", {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}, "Dein persönlicher Link"),
    ("?lang=en", {"Accept-Language": "de-DE"}, "Your personal link"),
    ("?lang=xx", {"Accept-Language": "fr-FR"}, "Your personal link"),
])
def test_the_language_comes_from_lang_then_the_browser(client, site, query, headers, expected):
    _api, made = site
    _response, html = _page(client, made, query, **headers)
    assert expected in html


def test_the_programs_language_wins_over_the_browser_and_lang_over_both(client):
    api = portal_program(client, language="de")
    made = enrol(api)
    assert "Dein persönlicher Link" in _page(client, made, "", **{"Accept-Language": "en"})[1]
    _response, html = _page(client, made, "?lang=en")
    assert "Your personal link" in html and '<html lang="en"' in html


def test_german_page_formats_money_and_plurals_in_german(client, site):
    _api, made = site
    _response, html = _page(client, made, "?lang=de")
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())  # no-break spaces too
    assert "50,00 €" in text and "Noch 3 bestätigte Empfehlungen bis Gold." in text
    assert '<html lang="de"' in html


@pytest.mark.parametrize(("query", "marker"), [
    ("?embed=1", '<body class="embed">'), ("?theme=dark", 'data-theme="dark"'),
    ("?theme=light&embed=1", 'data-theme="light"'), ("?theme=<x>", '<html lang="en">'),
])
def test_embed_and_theme_switches(client, site, query, marker):
    _api, made = site
    assert marker in _page(client, made, query)[1]


def test_an_unknown_token_gets_an_html_404_in_the_visitors_language(client):
    response = client.get("/p/" + "A" * 43, headers={"Accept-Language": "de"})
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "Seite nicht verfügbar" in response.get_data(as_text=True)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_a_new_advocate_sees_empty_states_not_errors(api, client):
    made = enrol(api, name=None)
    _response, html = _page(client, made)
    assert "No referrals yet" in html and "Your referral page" in html
    assert "Your rewards will appear here" in html


def test_the_channel_of_the_click_flows_to_the_referral(api, client, app):
    made = enrol(api)
    visit = client.get(f"/r/{made['code']}?ch=whatsapp")
    click_id = parse_qs(urlsplit(visit.headers["Location"]).query)["click_id"][0]
    referral = claim(api, made["code"], "friend_ch", "friend.ch@private.test", click_id=click_id)
    with app.extensions["referflow"].db.session() as session:
        assert session.scalar(select(Referral.channel).where(Referral.id == referral["id"])) == "whatsapp"
    body = api.get(f"/v1/advocates/{made['advocate_id']}/portal").get_json()
    assert body["referrals"][0]["channel"] == "whatsapp"


def test_the_static_files_are_served(client):
    for name, mimetype in (("portal.js", "text/javascript"), ("portal.css", "text/css")):
        response = client.get(f"/p/static/{name}")
        assert response.status_code == 200 and response.mimetype == mimetype
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        response.close()


def test_visits_count_against_the_public_rate_limit(settings):
    from referflow.app import create_app

    application = create_app(settings.with_overrides(rate_limit_public="3/minute"))
    try:
        client = application.test_client()
        made = enrol(portal_program(client))
        statuses = [client.get(path_of(made["portal_url"]), environ_base={"REMOTE_ADDR": "198.51.100.9"})
                    for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert int(statuses[-1].headers["Retry-After"]) > 0
        assert "Too many requests" in statuses[-1].get_data(as_text=True)
        assert client.get(path_of(made["portal_url"]),
                          environ_base={"REMOTE_ADDR": "198.51.100.10"}).status_code == 200
    finally:
        application.extensions["referflow"].db.dispose()


def test_an_advocate_without_an_active_code_is_told_so(api, client, app):
    from referflow.storage.models import ReferralCode

    made = enrol(api)
    with app.extensions["referflow"].db.session() as session:
        session.get(ReferralCode, made["code"]).active = False
        session.commit()
    _response, html = _page(client, made)
    assert "Your link is switched off at the moment." in html and "share-link" not in html
    assert api.get(f"/v1/advocates/{made['advocate_id']}/portal").get_json()["share"] is None
