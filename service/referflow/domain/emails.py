"""Email normalisation, so that one person's aliases compare equal."""

from __future__ import annotations

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def normalise_email(raw: str) -> str:
    """Return the canonical mailbox: lowercase, no +tag, gmail dots removed, googlemail aliased."""
    email = raw.strip().lower()
    local, sep, domain = email.rpartition("@")
    if not sep or not local:
        return email
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def email_domain(raw: str) -> str:
    """Return the lowercase domain of an address."""
    return raw.strip().lower().rpartition("@")[2]
