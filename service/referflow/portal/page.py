"""What the advocate page says: the share message and buttons, the QR code, a referral in plain words.

Strings here are marked with ``N_`` (found by ``make messages``) and translated when shown.
"""

from __future__ import annotations

from datetime import datetime

import segno
from markupsafe import Markup, escape

from referflow.actions.portal import FriendLine, PortalView
from referflow.domain import portal as rules
from referflow.domain import referral as states
from referflow.domain.program import Reward
from referflow.portal.i18n import Texts
from referflow.storage.models import GiftCard


def N_(message: str) -> str:  # noqa: N802 (the marker's usual name, which pybabel looks for)
    """Mark a message for the catalogue; it is translated where it is shown."""
    return message


CHANNEL_LABELS = {"email": N_("Email"), "sms": N_("SMS"), "whatsapp": "WhatsApp", "x": "X",
                  "linkedin": "LinkedIn", "facebook": "Facebook", "telegram": "Telegram",
                  "copy": N_("copied link"), "qr": N_("QR code")}
# A referral in plain words: (with a reward amount, without one); %(friend)s leads each.
STATUS_WORDS: dict[str, tuple[str, str]] = {
    states.PENDING: (N_("%(friend)s signed up on %(date)s. Waiting for their first order."),) * 2,
    states.IN_REVIEW: (N_("%(friend)s signed up on %(date)s. We are checking this referral."),) * 2,
    states.HELD: (N_("%(friend)s placed an order. Your reward is confirmed on %(until)s."),) * 2,
    states.APPROVED: (N_("%(friend)s placed an order. You earned %(reward)s; it is on its way."),
                      N_("%(friend)s placed an order. Your reward is on its way.")),
    states.REWARDED: (N_("%(friend)s placed an order. You earned %(reward)s."),
                      N_("%(friend)s placed an order. You got your reward.")),
    states.REJECTED: (N_("%(friend)s signed up on %(date)s, but this referral does not qualify."),) * 2,
    states.REVERSED: (N_("%(friend)s's order was refunded, so this reward was taken back."),) * 2,
}
CARD_WORDS = {"active": N_("Active"), "redeemed": N_("Used up"), "voided": N_("Cancelled"),
              "expired": N_("Expired")}


def channel_label(texts: Texts, channel: str) -> str:
    """Return the name of a share channel in the page's language."""
    return texts.gettext(CHANNEL_LABELS.get(channel, channel))


def card_label(texts: Texts, state: str) -> str:
    """Return a gift card's state in the page's language."""
    return texts.gettext(CARD_WORDS.get(state, state))


def share_message(texts: Texts, view: PortalView) -> tuple[str, str]:
    """Return the text and the email subject a share button sends (the link follows)."""
    friend = view.ctx.config.friend_reward
    subject = texts.gettext("Have a look at %(brand)s", brand=view.brand)
    if friend.monetary:
        reward = texts.money(friend.amount, view.ctx.config.currency)
        return texts.gettext("Join %(brand)s with my link and get a %(reward)s gift card:",
                             brand=view.brand, reward=reward), subject
    return texts.gettext("I think you will like %(brand)s. Here is my link:", brand=view.brand), subject


def share_links(texts: Texts, view: PortalView) -> list[rules.ShareLink]:
    """Return the share buttons, their text in the page's language."""
    if view.share_url is None:
        return []
    return rules.share_links(view.share_url, *share_message(texts, view))


def qr_svg(url: str, label: str) -> Markup:
    """Return an inline SVG QR code of a URL (black on white, sized by CSS)."""
    svg = segno.make(url, error="m").svg_inline(scale=1, border=4, omitsize=True, svgclass="qr-code")
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1))  # noqa: S704


def referral_words(texts: Texts, line: FriendLine, currency: str) -> str:
    """Say where a referral stands, the friend by first name or initial."""
    with_amount, without = STATUS_WORDS.get(line.status, STATUS_WORDS[states.PENDING])
    message = with_amount if line.reward else without
    return texts.gettext(message, friend=line.friend or texts.gettext("A friend"),
                         date=texts.date(line.created_at), until=texts.date(line.hold_until),
                         reward=texts.money(line.reward or 0, currency))


def reward_rule(texts: Texts, view: PortalView) -> str:
    """Say what the advocate earns per friend (their tier's reward)."""
    tier = view.tier.current.name if view.tier and view.tier.current else None
    reward: Reward = view.ctx.config.advocate_reward_in(tier)
    if reward.monetary:
        return texts.gettext("You get %(reward)s for each friend who places a first order.",
                             reward=texts.money(reward.amount, view.ctx.config.currency))
    if reward.perk:
        return texts.gettext("You get %(reward)s for each friend who places a first order.",
                             reward=reward.perk)
    return texts.gettext("Thank you for each friend you bring.")


def card_state(card: GiftCard, now: datetime) -> str:
    """Return a gift card's state for people: active, used up, cancelled or expired."""
    if card.status == "active" and card.expires_at <= now:
        return "expired"
    return str(card.status)


def paragraphs(text: str | None) -> list[str]:
    """Split plain text (terms, consent) into paragraphs at blank lines."""
    return [p.strip() for p in (text or "").split("\n\n") if p.strip()]
