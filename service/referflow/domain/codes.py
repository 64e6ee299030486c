"""Opaque ids, session stamps, referral codes and gift-card codes."""

from __future__ import annotations

import functools
import re
import secrets

from referflow.domain.hashing import keyed_hash

# No 0/O, 1/I/L, U: codes stay unambiguous when read aloud or typed from a screenshot.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERRAL_CODE_LENGTH = 8  # 30**8 ~ 6.6e11 codes: unguessable by enumeration at any sane rate
GIFT_CARD_CODE_LENGTH = 16
GIFT_CARD_SHOWN = 4  # the characters lists and the dashboard show of a gift-card or reward code
VANITY_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,31}$")
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
SESSION_STAMP_BYTES = 16  # 22 characters of base64url (storage: users.session_stamp, 32)


def new_id(prefix: str) -> str:
    """Return an opaque, random id like ``ref_8k2...`` (prefix + 20 base-36 chars)."""
    return f"{prefix}_{_random_strings(_ID_ALPHABET, 20, 1)[0]}"


def new_ids(prefix: str, count: int) -> list[str]:
    """Return ``count`` ids shaped like ``new_id``'s, drawn in bulk (imports make a million)."""
    return [f"{prefix}_{chunk}" for chunk in _random_strings(_ID_ALPHABET, 20, count)]


def new_session_stamp() -> str:
    """Return a random session stamp: a dashboard cookie holds its user's, and a new one ends
    every session that holds the old (unguessable, so a restored counter cannot revive one)."""
    return secrets.token_urlsafe(SESSION_STAMP_BYTES)


def new_referral_codes(count: int) -> list[str]:
    """Return ``count`` random referral codes, drawn in bulk."""
    return _random_strings(CODE_ALPHABET, REFERRAL_CODE_LENGTH, count)


@functools.cache
def _translation(alphabet: str) -> tuple[bytes, bytes]:
    """Return the byte table onto ``alphabet`` and the bytes to drop (made once an alphabet)."""
    size = len(alphabet)
    keep = 256 - 256 % size
    return bytes(ord(alphabet[b % size]) for b in range(256)), bytes(range(keep, 256))


def _random_strings(alphabet: str, length: int, count: int) -> list[str]:
    # Random bytes mapped onto the alphabet by one C-level translate; bytes at or above the
    # largest multiple of len(alphabet) are dropped, so every character stays equally likely.
    table, drop = _translation(alphabet)
    need = length * count
    chars = ""
    while len(chars) < need:
        chars += secrets.token_bytes(need - len(chars) + 64).translate(table, drop).decode()
    return [chars[i:i + length] for i in range(0, need, length)]


def _random_code(length: int) -> str:
    return _random_strings(CODE_ALPHABET, length, 1)[0]


def new_referral_code() -> str:
    """Return a random referral code."""
    return _random_code(REFERRAL_CODE_LENGTH)


def new_gift_card_code() -> str:
    """Return a random gift-card code."""
    return _random_code(GIFT_CARD_CODE_LENGTH)


def normalise_code(raw: str) -> str:
    """Normalise a code as typed by a person: trim, uppercase, drop spaces and dashes."""
    return re.sub(r"[\s-]", "", raw.strip().upper())


def gift_card_code_key(secret: str, raw: str) -> str:
    """Return the keyed hash a gift card is found by: of its code as normalise_code reads it."""
    return keyed_hash(secret, "gift_card_code", normalise_code(raw))


def gift_card_code_tail(code: str) -> str:
    """Return the last characters of a bearer code (a gift card's, a reward's discount or card
    code): enough to tell codes apart, not to spend."""
    return normalise_code(code)[-GIFT_CARD_SHOWN:]


def normalise_vanity(raw: str) -> str | None:
    """Return the vanity code in canonical form, or None when it is not allowed."""
    code = raw.strip().upper()
    return code if VANITY_RE.match(code) else None
