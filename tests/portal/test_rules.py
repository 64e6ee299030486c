"""The advocate page's pure rules (domain/portal.py) and its config (domain/program.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from referflow.domain import portal as rules
from referflow.domain.program import Portal, ProgramConfig, Tier


@pytest.mark.parametrize(("name", "email", "shown"), [
    ("Anna Schmidt", "anna@x.test", "Anna"),
    ("  maría   josé garcía ", None, "maría"),
    ("Schmidt, Anna", None, "Anna"),
    ("O'Neil", None, "O'Neil"),
    ("", "jonas.becker@x.test", "J."),
    (None, "_.9z@x.test", "9."),
    (None, "@x.test", None),
    ("   ", None, None),
    (None, None, None),
    ("Anastasia" * 10, None, ("Anastasia" * 10)[:30]),
])
def test_a_person_is_shown_by_first_name_else_initial(name, email, shown):
    assert rules.display_name(name, email) == shown


def test_tagging_keeps_the_query_and_replaces_an_earlier_channel():
    assert rules.tagged("https://r.test/r/ABC", "sms") == "https://r.test/r/ABC?ch=sms"
    assert rules.tagged("https://r.test/r/ABC?x=1&ch=old", "x") == "https://r.test/r/ABC?x=1&ch=x"


def test_share_links_encode_text_and_url_for_each_app():
    message = "Join Café & Co with my link: 10% off?"
    links = {link.channel: link for link in rules.share_links("https://r.test/r/ABC", message, "Hi & bye")}
    assert list(links) == list(rules.SHARE_CHANNELS)
    for channel, link in links.items():
        assert link.url == f"https://r.test/r/ABC?ch={channel}"
        assert " " not in link.href and "&ch=" not in link.href.split("?", 1)[1].replace("%26ch%3D", "")
    assert links["email"].href.startswith("mailto:?subject=Hi%20%26%20bye&body=")
    assert unquote(links["email"].href.split("&body=")[1]) == f"{message} https://r.test/r/ABC?ch=email"
    assert links["sms"].href.startswith("sms:?&body=")
    whatsapp = parse_qs(urlsplit(links["whatsapp"].href).query)
    assert whatsapp == {"text": [f"{message} https://r.test/r/ABC?ch=whatsapp"]}
    assert parse_qs(urlsplit(links["x"].href).query) == {"text": [message], "url": ["https://r.test/r/ABC?ch=x"]}
    assert parse_qs(urlsplit(links["facebook"].href).query) == {"u": ["https://r.test/r/ABC?ch=facebook"]}
    assert parse_qs(urlsplit(links["linkedin"].href).query) == {"url": ["https://r.test/r/ABC?ch=linkedin"]}
    assert parse_qs(urlsplit(links["telegram"].href).query) == {
        "url": ["https://r.test/r/ABC?ch=telegram"], "text": [message]}


TIERS = (Tier("Silver", 2), Tier("Gold", 5), Tier("Platinum", 10))


@pytest.mark.parametrize(("approved", "current", "following", "remaining", "fraction"), [
    (0, None, "Silver", 2, 0.0),
    (1, None, "Silver", 1, 0.5),
    (2, "Silver", "Gold", 3, 0.0),
    (4, "Silver", "Gold", 1, 2 / 3),
    (10, "Platinum", None, 0, 1.0),
    (99, "Platinum", None, 0, 1.0),
])
def test_tier_progress(approved, current, following, remaining, fraction):
    progress = rules.tier_progress(TIERS, approved)
    assert progress is not None
    assert (progress.current.name if progress.current else None) == current
    assert (progress.next.name if progress.next else None) == following
    assert progress.remaining == remaining and progress.fraction == pytest.approx(fraction)


def test_no_tiers_no_progress():
    assert rules.tier_progress((), 3) is None


def test_a_tier_from_zero_is_reached_at_once():
    progress = rules.tier_progress((Tier("Member", 0), Tier("Star", 3)), 0)
    assert progress.current.name == "Member" and progress.fraction == 0.0


@pytest.mark.parametrize(("colour", "text"), [
    ("#1d4ed8", "#ffffff"), ("#ffd700", "#000000"), ("#fff", "#000000"), ("#000", "#ffffff"),
    ("#7c2d12", "#ffffff"), ("#22c55e", "#000000"),
])
def test_button_text_is_black_or_white_whichever_reads_better(colour, text):
    assert rules.readable_on(colour) == text


def test_frame_ancestors():
    assert rules.frame_ancestors(()) == "'none'"
    assert rules.frame_ancestors(("https://a.test", "https://b.test:8443")) == "https://a.test https://b.test:8443"


def test_tokens_are_derived_per_generation_and_only_their_hash_is_kept():
    first = rules.permanent_token("k", "adv_1", 0)
    assert first == rules.permanent_token("k", "adv_1", 0) and len(first) == 43
    assert len({first, rules.permanent_token("k", "adv_1", 1), rules.permanent_token("k", "adv_2", 0),
                rules.permanent_token("other", "adv_1", 0)}) == 4
    assert rules.permanent_token_hash("k", "adv_1", 0) == rules.token_hash("k", first) != first
    assert "." not in first and "/" not in first and "+" not in first
    assert rules.signing_key("k") != "k"


def test_existing_configs_get_the_portal_defaults():
    config = ProgramConfig.from_dict({"landing_url": "https://shop.test"})
    assert config.portal == Portal()
    assert config.portal.permanent_link and not config.portal.leaderboard
    assert config.to_dict()["portal"]["allowed_origins"] == []
    assert ProgramConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("portal", "message"), [
    ({"logo_url": "http://shop.test/logo.png"}, "https"),
    ({"logo_url": "javascript:alert(1)"}, "https"),
    ({"colours": {"primary": "red"}}, "hex"),
    ({"colours": {"accent": "#12345"}}, "hex"),
    ({"support_email": "nobody"}, "email"),
    ({"language": "fr"}, "language"),
    ({"allowed_origins": ["http://shop.test"]}, "https"),
    ({"allowed_origins": ["https://shop.test/path"]}, "origin"),
    ({"allowed_origins": ["*"]}, "allowed_origins"),
])
def test_bad_portal_config_is_refused(portal, message):
    with pytest.raises(ValueError, match=message):
        ProgramConfig.from_dict({"landing_url": "https://shop.test", "portal": portal})


def test_origins_are_normalised():
    portal = Portal.from_dict({"allowed_origins": ["HTTPS://Shop.Test:443/", "http://localhost:3000"]})
    assert portal.allowed_origins == ("https://shop.test", "http://localhost:3000")
