"""The advocate page's rules: who is shown how, share links, tier progress, page tokens.

Pure: the page (``portal/``), its JSON (``api/portal.py``) and the use cases
(``actions/portal.py``) all take these decisions from here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from referflow.domain.hashing import keyed_hash
from referflow.domain.program import Reward, Tier
from referflow.domain.timeutil import to_rfc3339

# Each share button tags its link with ``?ch=`` (recorded on the click, then on the referral).
SHARE_CHANNELS = ("email", "sms", "whatsapp", "x", "linkedin", "facebook", "telegram")
COPY_CHANNEL = "copy"
QR_CHANNEL = "qr"
MAX_FIRST_NAME = 30


def display_name(name: str | None, email: str | None) -> str | None:
    """Return how a person is shown to others: their first name, else an initial, else None.

    Never more than that: no surname, no email, no id. ``"Smith, Anna"`` reads as Anna; a
    person without a name is the initial of their email's local part (``"j.doe@x"`` -> ``J.``).
    """
    first = _first_name(name or "")
    if first:
        return first
    local = (email or "").split("@", 1)[0]
    initial = next((c for c in local if c.isalnum()), None)
    return f"{initial.upper()}." if initial else None


def _first_name(name: str) -> str | None:
    if "," in name:  # "Surname, Given"
        name = name.split(",", 1)[1]
    words = name.split()
    if not words:
        return None
    first = words[0].strip(".-'\"()")[:MAX_FIRST_NAME]
    return first or None


def tagged(url: str, channel: str) -> str:
    """Return a share URL with ``ch=<channel>`` in its query (replacing any earlier one)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ch"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("ch", channel)])))


@dataclass(frozen=True)
class ShareLink:
    """One share button: the channel, the tagged share URL it sends, and the link it opens."""

    channel: str
    url: str
    href: str

    def to_dict(self) -> dict[str, str]:
        """Return the JSON form."""
        return {"channel": self.channel, "url": self.url, "href": self.href}


def share_links(share_url: str, message: str, subject: str) -> list[ShareLink]:
    """Return the share buttons of a share URL, each link encoded for its app."""
    links = []
    for channel in SHARE_CHANNELS:
        url = tagged(share_url, channel)
        links.append(ShareLink(channel, url, _HREFS[channel](url, message, subject)))
    return links


def _q(value: str) -> str:
    return quote(value, safe="")


def _email(url: str, text: str, subject: str) -> str:
    return f"mailto:?subject={_q(subject)}&body={_q(f'{text} {url}')}"


def _sms(url: str, text: str, _subject: str) -> str:
    return f"sms:?&body={_q(f'{text} {url}')}"  # "?&": read by both Android and iOS


def _whatsapp(url: str, text: str, _subject: str) -> str:
    return f"https://wa.me/?text={_q(f'{text} {url}')}"


def _x(url: str, text: str, _subject: str) -> str:
    return f"https://x.com/intent/tweet?text={_q(text)}&url={_q(url)}"


def _linkedin(url: str, _text: str, _subject: str) -> str:
    return f"https://www.linkedin.com/sharing/share-offsite/?url={_q(url)}"


def _facebook(url: str, _text: str, _subject: str) -> str:
    return f"https://www.facebook.com/sharer/sharer.php?u={_q(url)}"


def _telegram(url: str, text: str, _subject: str) -> str:
    return f"https://t.me/share/url?url={_q(url)}&text={_q(text)}"


_HREFS: dict[str, Callable[[str, str, str], str]] = {
    "email": _email, "sms": _sms, "whatsapp": _whatsapp, "x": _x, "linkedin": _linkedin,
    "facebook": _facebook, "telegram": _telegram,
}


@dataclass(frozen=True)
class TierProgress:
    """Where an advocate stands among the tiers: reached, next, and how far along."""

    approved: int
    current: Tier | None
    next: Tier | None

    @property
    def remaining(self) -> int:
        """Return the approved referrals still needed for the next tier (0 at the top)."""
        return max(self.next.min_approved - self.approved, 0) if self.next else 0

    @property
    def fraction(self) -> float:
        """Return how far along the step to the next tier, from 0 to 1 (1 at the top)."""
        if self.next is None:
            return 1.0
        base = self.current.min_approved if self.current else 0
        span = self.next.min_approved - base
        return min(max((self.approved - base) / span, 0.0), 1.0) if span > 0 else 1.0


def tier_progress(tiers: Sequence[Tier], approved: int) -> TierProgress | None:
    """Return the progress among tiers sorted by ``min_approved``; None without tiers."""
    if not tiers:
        return None
    reached = [t for t in tiers if approved >= t.min_approved]
    ahead = [t for t in tiers if approved < t.min_approved]
    return TierProgress(approved, reached[-1] if reached else None, ahead[0] if ahead else None)


def readable_on(colour: str) -> str:
    """Return black or white, whichever contrasts more with a hex background (WCAG 2 ratio)."""
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    channels = [int(hex_digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    on_black = (luminance + 0.05) / 0.05
    on_white = 1.05 / (luminance + 0.05)
    return "#000000" if on_black >= on_white else "#ffffff"


def frame_ancestors(origins: Sequence[str]) -> str:
    """Return the CSP frame-ancestors source list: the allowed origins, else 'none'."""
    return " ".join(origins) if origins else "'none'"


def permanent_token(secret: str, advocate_id: str, generation: int) -> str:
    """Return the permanent page token of an advocate's link generation (rotation adds one).

    Derived from the install's hashing key, so it is never stored: the database keeps only
    :func:`token_hash`, which cannot be turned back into the token.
    """
    digest = hmac.new(secret.encode(), f"portal-token:{advocate_id}:{generation}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(secret: str, token: str) -> str:
    """Return the keyed hash a page token is stored and looked up by."""
    return keyed_hash(secret, "portal", token)


def permanent_token_hash(secret: str, advocate_id: str, generation: int) -> str:
    """Return the stored hash of an advocate's permanent token of a generation."""
    return token_hash(secret, permanent_token(secret, advocate_id, generation))


def signing_key(secret: str) -> str:
    """Derive the key that signs short-lived page tokens (never the install secret itself)."""
    return hmac.new(secret.encode(), b"referflow portal tokens", hashlib.sha256).hexdigest()


# -- rewards as the advocate sees them -----------------------------------------------------------

MONEY = "money"  # a gift card or any other reward worth an amount of money
SHOWN_KINDS = (MONEY, "non_cash", "percent", "amount", "free_period")
FREE_PERIOD_MONTHS = 1  # a free period is one billing period: a month on the usual plans


@dataclass(frozen=True)
class RewardShown:
    """A reward as the page says it: its kind and only the figures that kind has.

    ``money``: ``amount`` (gift cards, balance credits); ``non_cash``: the ``perks``;
    ``percent``: ``percent`` off; ``amount``: ``amount`` off; ``free_period``: ``months`` free.
    Discounts carry their ``code`` (once issued) and ``expires_at``.
    """

    kind: str
    currency: str
    amount: int | None = None
    percent: int | None = None
    months: int | None = None
    perks: tuple[str, ...] = ()
    code: str | None = None
    expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (without the words: the caller adds them in its language)."""
        return {"kind": self.kind, "amount": self.amount, "currency": self.currency,
                "percent": self.percent, "months": self.months, "perks": list(self.perks),
                "code": self.code,
                "expires_at": to_rfc3339(self.expires_at)}


def shown_reward(kind: str, amount: int, currency: str, details: Mapping[str, Any] | None,
                 code: str | None = None, expires_at: datetime | None = None) -> RewardShown:
    """Return how an issued (or planned) reward row is shown, by its kind."""
    details = details or {}
    if kind == "non_cash":
        perks = details.get("perks") or ([details["perk"]] if details.get("perk") else [])
        return RewardShown("non_cash", currency, perks=tuple(str(p) for p in perks))
    if kind == "percent":
        return RewardShown("percent", currency, percent=details.get("percent"), code=code,
                           expires_at=expires_at)
    if kind == "amount":
        return RewardShown("amount", currency, amount=amount, code=code, expires_at=expires_at)
    if kind == "free_period":
        return RewardShown("free_period", currency, months=FREE_PERIOD_MONTHS,
                           expires_at=expires_at)
    return RewardShown(MONEY, currency, amount=amount, code=code, expires_at=expires_at)


def shown_rule(rule: Reward, currency: str) -> RewardShown | None:
    """Return how a program's reward rule is shown (None: the rule gives nothing)."""
    if rule.type == "none" or (rule.type == "gift_card" and not rule.monetary) or (
            rule.type == "non_cash" and not rule.perk):
        return None
    return shown_reward(rule.type, rule.amount, currency,
                        {"perk": rule.perk, "percent": rule.percent})
