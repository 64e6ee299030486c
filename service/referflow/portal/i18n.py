"""The advocate page's words: one Babel message catalogue, English source, German shipped.

English is the source language (the msgids). Each other language is a ``.po`` file under
``translations/<lang>/LC_MESSAGES/``, compiled in memory the first time it is used (no ``.mo``
is committed or built: a fresh ``pip install -e .`` reads the ``.po`` as it is). ``make
messages`` extracts the strings into ``translations/messages.pot`` and merges them into each
``.po``; tests/portal/test_i18n.py fails while a string is missing or untranslated.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_percent
from babel.support import NullTranslations, Translations

from referflow.domain.money import to_major

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
SOURCE_LANGUAGE = "en"


@cache
def languages() -> tuple[str, ...]:
    """Return the languages the page speaks: English, then every shipped catalogue."""
    shipped = sorted(p.name for p in TRANSLATIONS.iterdir()
                     if (p / "LC_MESSAGES" / "messages.po").is_file())
    return (SOURCE_LANGUAGE, *shipped)


@cache
def catalogue(language: str) -> NullTranslations:
    """Return the compiled catalogue of a language (English: the source strings themselves)."""
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries stay out, as msgfmt leaves them
    compiled.seek(0)
    return Translations(compiled)


def choose(asked: str | None, configured: str | None, browser_best: str | None) -> str:
    """Pick the language: ``?lang=``, then the program's ``portal.language``, then the browser's."""
    spoken = languages()
    for candidate in (asked, configured, browser_best):
        if candidate in spoken:
            return candidate
    return SOURCE_LANGUAGE


class Texts:
    """The words and formats of one language, as the templates and the JSON use them."""

    def __init__(self, language: str):
        self.language = language
        self._catalogue = catalogue(language)

    def gettext(self, message: str, **values: Any) -> str:
        """Translate a message and fill its ``%(name)s`` placeholders."""
        text = self._catalogue.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """Translate a message with a count (``%(num)s`` is the count)."""
        return self._catalogue.ngettext(singular, plural, n) % {"num": n, **values}

    def money(self, minor: int, currency: str) -> str:
        """Format an amount in minor units, as this language writes money."""
        return format_currency(to_major(minor, currency), currency, locale=self.language)

    def percent(self, value: int) -> str:
        """Format a whole percentage, as this language writes it (15%, 15 %)."""
        return format_percent(value / 100, locale=self.language)

    def date(self, value: datetime | None) -> str:
        """Format a date (UTC) as this language writes it, e.g. 3 Mar 2026."""
        return format_date(value, format="medium", locale=self.language) if value else ""
