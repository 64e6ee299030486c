"""The advocate page's catalogue: up to date with the code, fully translated, in agreement with
the config and the JSON schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from referflow.domain.program import PORTAL_LANGUAGES
from referflow.portal import i18n

ROOT = Path(__file__).resolve().parents[2]
PORTAL = ROOT / "service" / "referflow" / "portal"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _ids(path: Path) -> set[object]:
    with path.open("rb") as fh:
        return {m.id for m in read_po(fh) if m.id}


def test_the_template_has_every_string_of_the_code():
    with (PORTAL / "babel.cfg").open() as fh:
        methods, options = parse_mapping_cfg(fh)
    found = {message for _file, _line, message, _comments, _context in extract_from_dir(
        str(PORTAL), methods, options, keywords={**DEFAULT_KEYWORDS, "N_": None})}
    assert found == _ids(PORTAL / "translations" / "messages.pot"), "run make messages"


@pytest.mark.parametrize("language", [lang for lang in i18n.languages() if lang != "en"])
def test_each_catalogue_translates_every_string_with_the_same_placeholders(language):
    path = PORTAL / "translations" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalogue = read_po(fh, locale=language)
    assert {m.id for m in catalogue if m.id} == _ids(PORTAL / "translations" / "messages.pot")
    for message in catalogue:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {message.id}"
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) <= wanted | {"num"}, (message.id, text)


def test_the_languages_agree_with_the_config_and_the_schemas():
    assert i18n.languages() == PORTAL_LANGUAGES
    program = json.loads((ROOT / "schemas" / "program.schema.json").read_text())
    assert program["properties"]["portal"]["properties"]["language"]["enum"] == [*PORTAL_LANGUAGES, None]
    page = json.loads((ROOT / "schemas" / "advocate-portal.json").read_text())
    assert page["properties"]["language"]["enum"] == list(PORTAL_LANGUAGES)


@pytest.mark.parametrize(("asked", "configured", "browser", "chosen"), [
    ("de", None, None, "de"), ("en", "de", "de", "en"), (None, "de", "en", "de"),
    (None, None, "de", "de"), ("xx", None, None, "en"), (None, None, None, "en"),
])
def test_language_choice(asked, configured, browser, chosen):
    assert i18n.choose(asked, configured, browser) == chosen


def test_texts_fill_placeholders_and_format_money_per_language():
    german = i18n.Texts("de")
    assert german.gettext("You are at %(tier)s.", tier="Gold") == "Du bist auf der Stufe Gold."
    assert german.ngettext("%(num)s referral", "%(num)s referrals", 1) == "1 Empfehlung"
    assert german.money(123456, "EUR").replace("\xa0", " ") == "1.234,56 €"
    assert i18n.Texts("en").money(500, "JPY") == "¥500"
