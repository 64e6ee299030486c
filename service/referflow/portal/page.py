"""What the advocate page says: the share message and buttons, the QR code, a referral in plain words.

Strings here are marked with ``N_`` (found by ``make messages``) and translated when shown.
"""

from __future__ import annotations

from datetime import datetime

import segno
from markupsafe import Markup, escape

from referflow.actions.portal import FriendLine, PortalView, shown
from referflow.domain import portal as rules
from referflow.domain import referral as states
from referflow.domain.program import Reward
from referflow.portal.i18n import Texts
from referflow.storage.models import GiftCard
from referflow.storage.models import Reward as IssuedReward


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
# A reward row's state, as the "Other rewards" list says it.
REWARD_WORDS = {"pending": N_("On its way"), "issuing": N_("On its way"), "issued": N_("Ready"),
                "failed": N_("Delayed: we are looking into it"), "voided": N_("Cancelled")}


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


def reward_label(texts: Texts, reward: rules.RewardShown) -> str:
    """Say what a reward is, by its kind: an amount, the perk, 15% off, 10 EUR off, 1 month free."""
    if reward.kind == "non_cash":
        return ", ".join(reward.perks) or texts.gettext("A perk")
    if reward.kind == "percent":
        return texts.gettext("%(percent)s off", percent=texts.percent(reward.percent or 0))
    if reward.kind == "amount":
        return texts.gettext("%(amount)s off", amount=texts.money(reward.amount or 0,
                                                                  reward.currency))
    if reward.kind == "free_period":
        return texts.ngettext("%(num)s month free", "%(num)s months free", reward.months or 1)
    return texts.money(reward.amount or 0, reward.currency)


def reward_state(texts: Texts, status: str) -> str:
    """Return a reward row's state in the page's language."""
    return texts.gettext(REWARD_WORDS.get(status, status))


def reward_lines(view: PortalView) -> list[tuple[IssuedReward, rules.RewardShown]]:
    """Return the rewards of the "Other rewards" list, each with how it is shown."""
    return [(row, shown(row)) for row in view.issued]


def referral_words(texts: Texts, line: FriendLine, currency: str) -> str:
    """Say where a referral stands, the friend by first name or initial, the reward by its kind."""
    with_amount, without = STATUS_WORDS.get(line.status, STATUS_WORDS[states.PENDING])
    message = with_amount if line.shown else without
    return texts.gettext(message, friend=line.friend or texts.gettext("A friend"),
                         date=texts.date(line.created_at), until=texts.date(line.hold_until),
                         reward=reward_label(texts, line.shown) if line.shown else "")


def rule_label(texts: Texts, rule: Reward, currency: str) -> str | None:
    """Say what a reward rule gives (None: nothing)."""
    found = rules.shown_rule(rule, currency)
    return reward_label(texts, found) if found else None


def reward_rule_label(texts: Texts, view: PortalView) -> str | None:
    """Say what the advocate earns per friend now (their tier's reward), by its kind."""
    tier = view.tier.current.name if view.tier and view.tier.current else None
    return rule_label(texts, view.ctx.config.advocate_reward_in(tier), view.ctx.config.currency)


def reward_rule(texts: Texts, view: PortalView) -> str:
    """Say what the advocate earns per friend (their tier's reward), by its kind."""
    label = reward_rule_label(texts, view)
    if label:
        return texts.gettext("You get %(reward)s for each friend who places a first order.",
                             reward=label)
    return texts.gettext("Thank you for each friend you bring.")


def next_tier_reward(texts: Texts, view: PortalView) -> str | None:
    """Say what the next tier adds (its reward per friend and its perks), if anything."""
    if view.tier is None or view.tier.next is None:
        return None
    nxt = view.tier.next
    label = rule_label(texts, nxt.advocate_reward, view.ctx.config.currency) \
        if nxt.advocate_reward else None
    perks = ", ".join(nxt.perks)
    if label and perks:
        return texts.gettext("At %(tier)s: %(reward)s for each friend, and %(perks)s.",
                             tier=nxt.name, reward=label, perks=perks)
    if label:
        return texts.gettext("At %(tier)s: %(reward)s for each friend.", tier=nxt.name,
                             reward=label)
    if perks:
        return texts.gettext("At %(tier)s: %(perks)s.", tier=nxt.name, perks=perks)
    return None


def shows_earned(view: PortalView) -> bool:
    """Tell whether the page shows money earned: some was, or the advocate earns money."""
    tier = view.tier.current.name if view.tier and view.tier.current else None
    return view.earned > 0 or view.ctx.config.advocate_reward_in(tier).monetary


def card_state(card: GiftCard, now: datetime) -> str:
    """Return a gift card's state for people: active, used up, cancelled or expired."""
    if card.status == "active" and card.expires_at <= now:
        return "expired"
    return str(card.status)


def paragraphs(text: str | None) -> list[str]:
    """Split plain text (terms, consent) into paragraphs at blank lines."""
    return [p.strip() for p in (text or "").split("\n\n") if p.strip()]
