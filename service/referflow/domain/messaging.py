"""May a message go to this person now? The one home of the send/skip rules. Pure.

Every send path asks here: the ask decision of a moment (``domain/moments.py``), ``checkMessage``
(n8n workflows and other senders) and referflow's own Klaviyo/HubSpot sync. Facts in (a
``Recipient``, identifiers already hashed by the caller), one ``Outcome`` per rule out, in order;
the first rule that does not pass gives the stable reason code. Which rules apply depends on the
message's purpose:

| purpose | rules |
|---|---|
| ask | consent, suppression (all kinds), frequency caps, cool-down, quiet hours, channel |
| reward | consent, suppression (erased, suppression list), the message cap, quiet hours, channel |
| transactional | suppression (erased only), channel |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from referflow.domain.conditions import Condition, failing
from referflow.domain.program import ProgramConfig, QuietHours

PASS = "pass"  # noqa: S105 (an outcome code, not a password)
DEFERRED = "deferred"
WEEK = timedelta(days=7)


class SkipReason(StrEnum):
    """Why a moment asks nobody, or a message is not sent: stable codes, like the signal codes."""

    MOMENT_NOT_ASKING = "moment_not_asking"
    MOMENT_RULE_FAILED = "moment_rule_failed"
    NOT_A_FIT = "not_a_fit"
    NO_CONSENT = "no_consent"
    SUPPRESSED = "suppressed"
    ERASED = "erased"
    FREQUENCY_CAPPED = "frequency_capped"
    COOLING_DOWN = "cooling_down"
    NO_CHANNEL = "no_channel"
    NO_EMAIL = "no_email"


QUIET_HOURS = "quiet_hours"  # not a skip: checkMessage's reason while a message must wait
PURPOSES = ("ask", "reward", "transactional")
# The purpose of the message each referral event sends, whoever sends it (referflow's own Klaviyo
# sync, the n8n workflows): the new advocate's link is an ask to share; the rest tell people what
# they earned or what was decided. An event not listed sends no message (facts only).
EVENT_PURPOSES = {"advocate.link_created": "ask", "referral.approved": "reward",
                  "reward.issued": "reward", "referral.rejected": "reward"}


def event_purpose(event_type: str) -> str:
    """The purpose of the message an event sends; ``transactional`` for facts-only updates."""
    return EVENT_PURPOSES.get(event_type, "transactional")
GRANTED, WITHDRAWN = "granted", "withdrawn"


@dataclass(frozen=True)
class Recipient:
    """What is known about a person when a message to them is decided."""

    now: datetime
    timezone: str = "UTC"  # IANA: the person's, else the program's
    attributes: Mapping[str, Any] = field(default_factory=dict)
    has_email: bool = False
    is_advocate: bool = False
    erased: bool = False
    consent: Mapping[str, str] = field(default_factory=dict)  # channel -> latest status
    suppressions: tuple[str, ...] = ()  # reasons on the suppression list (by email)
    declined_at: datetime | None = None  # the last ask the person declined
    last_ask_at: datetime | None = None
    asks_last_week: tuple[tuple[datetime, str], ...] = ()  # (when, channel) of each recent ask
    messages_last_week: int = 0  # referral messages sent by referflow's sync, plus asks


@dataclass(frozen=True)
class Outcome:
    """One rule's outcome: ``pass``, a skip reason, or ``deferred``; the detail says why."""

    rule: str
    outcome: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        """Tell whether the rule lets the message through (a deferral does)."""
        return self.outcome in (PASS, DEFERRED)

    def to_dict(self) -> dict[str, str]:
        """Return the JSON form."""
        return {"rule": self.rule, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True)
class MessageCheck:
    """The answer for one message: send or not, why not, and when when it must wait."""

    send: bool
    reason: str | None
    send_at: datetime | None
    outcomes: tuple[Outcome, ...]


def _day(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- Channel facts --------------------------------------------------------------------------

def allowed_by(status: str | None, mode: str) -> bool:
    """Tell whether a channel's latest consent (None: never given) allows messages in a mode
    (opt_in: a granted consent is needed; opt_out: none withdrawn)."""
    return status != WITHDRAWN if mode == "opt_out" else status == GRANTED


def consent_allows(r: Recipient, config: ProgramConfig, channel: str) -> bool:
    """Tell whether the channel's consent allows a message to this person."""
    return allowed_by(r.consent.get(channel), config.moments.consent.get(channel, "opt_in"))


def reachable(r: Recipient, channel: str) -> bool:
    """Tell whether referflow knows how to reach the person there (email needs an address)."""
    return r.has_email if channel == "email" else True


def channel_capped(r: Recipient, config: ProgramConfig, channel: str) -> bool:
    """Tell whether the channel already carried its share of asks this week."""
    limit = config.moments.caps.asks_per_week_by_channel.get(channel)
    return limit is not None and sum(1 for _, c in r.asks_last_week if c == channel) >= limit


def usable_channels(r: Recipient, config: ProgramConfig, channels: tuple[str, ...],
                    purpose: str) -> list[str]:
    """Return the channels a message may use, in order of preference."""
    return [c for c in channels if (purpose == "transactional" or consent_allows(r, config, c))
            and reachable(r, c) and not (purpose == "ask" and channel_capped(r, config, c))]


def quiet_until(now: datetime, timezone: str, quiet: QuietHours | None) -> datetime | None:
    """Return when the quiet hours around ``now`` end (UTC) in a timezone, or None outside them."""
    if quiet is None:
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    at, start, end = local.time().replace(tzinfo=None), quiet.start_time, quiet.end_time
    inside = start <= at < end if start < end else (at >= start or at < end)
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if start > end and at >= start else local.date()
    return datetime.combine(day, time(end.hour, end.minute), tzinfo=zone).astimezone(UTC)


def suppressing_attributes(r: Recipient, config: ProgramConfig) -> list[Condition]:
    """Return the program's ``suppress_if`` conditions that hold for the person."""
    return [c for c in config.moments.suppress_if if not failing((c,), r.attributes)]


# -- Rules ------------------------------------------------------------------------------------

Rule = Callable[[Recipient, ProgramConfig, str, tuple[str, ...]], Outcome]


def consent(r: Recipient, config: ProgramConfig, purpose: str, channels: tuple[str, ...]) -> Outcome:
    states = ", ".join(f"{c}: {r.consent.get(c, 'none')} ({config.moments.consent.get(c, 'opt_in')})"
                       for c in channels)
    if any(consent_allows(r, config, c) for c in channels):
        return Outcome("consent", PASS, states)
    return Outcome("consent", SkipReason.NO_CONSENT, states)


def suppression(r: Recipient, config: ProgramConfig, purpose: str,
                channels: tuple[str, ...]) -> Outcome:
    if r.erased:
        return Outcome("suppression", SkipReason.ERASED, "the person was erased")
    if purpose == "transactional":
        return Outcome("suppression", PASS)
    if r.suppressions:
        return Outcome("suppression", SkipReason.SUPPRESSED, ", ".join(sorted(set(r.suppressions))))
    if purpose != "ask":
        return Outcome("suppression", PASS)
    held = suppressing_attributes(r, config)
    if held:
        return Outcome("suppression", SkipReason.SUPPRESSED, "; ".join(c.describe() for c in held))
    pause = timedelta(days=config.moments.caps.after_decline_days)
    if r.declined_at is not None and r.now < r.declined_at + pause:
        return Outcome("suppression", SkipReason.SUPPRESSED,
                       f"declined an ask on {_day(r.declined_at)}; asked again from "
                       f"{_day(r.declined_at + pause)}")
    return Outcome("suppression", PASS)


def frequency_cap(r: Recipient, config: ProgramConfig, purpose: str,
                  channels: tuple[str, ...]) -> Outcome:
    caps, sent = config.moments.caps, r.messages_last_week
    if purpose == "ask" and len(r.asks_last_week) >= caps.asks_per_week:
        return Outcome("frequency_cap", SkipReason.FREQUENCY_CAPPED,
                       f"{len(r.asks_last_week)} asks in 7 days (max {caps.asks_per_week})")
    limit = config.messaging.max_messages_per_week
    if sent >= limit:
        return Outcome("frequency_cap", SkipReason.FREQUENCY_CAPPED,
                       f"{sent} messages in 7 days (max {limit})")
    if purpose == "ask" and all(channel_capped(r, config, c) for c in channels):
        return Outcome("frequency_cap", SkipReason.FREQUENCY_CAPPED,
                       f"every channel had its asks this week ({', '.join(channels)})")
    return Outcome("frequency_cap", PASS, f"{len(r.asks_last_week)} asks, {sent} messages in 7 days")


def cool_down(r: Recipient, config: ProgramConfig, purpose: str,
              channels: tuple[str, ...]) -> Outcome:
    pause = timedelta(days=config.moments.caps.cool_down_days)
    if r.last_ask_at is not None and r.now < r.last_ask_at + pause:
        return Outcome("cool_down", SkipReason.COOLING_DOWN,
                       f"asked on {_day(r.last_ask_at)}; next from {_day(r.last_ask_at + pause)}")
    return Outcome("cool_down", PASS)


def quiet_hours(r: Recipient, config: ProgramConfig, purpose: str,
                channels: tuple[str, ...]) -> Outcome:
    until = quiet_until(r.now, r.timezone, config.moments.quiet_hours)
    if until is None:
        return Outcome("quiet_hours", PASS, f"timezone {r.timezone}")
    return Outcome("quiet_hours", DEFERRED, f"quiet hours in {r.timezone}; send at {_day(until)}")


def channel(r: Recipient, config: ProgramConfig, purpose: str, channels: tuple[str, ...]) -> Outcome:
    usable = usable_channels(r, config, channels, purpose)
    if usable:
        return Outcome("channel", PASS, usable[0])
    return Outcome("channel", SkipReason.NO_CHANNEL,
                   f"none of {', '.join(channels)} is allowed and reachable")


RULES: dict[str, tuple[Rule, ...]] = {
    "ask": (consent, suppression, frequency_cap, cool_down, quiet_hours, channel),
    "reward": (consent, suppression, frequency_cap, quiet_hours, channel),
    "transactional": (suppression, channel),
}


def evaluate(purpose: str, channels: tuple[str, ...], r: Recipient,
             config: ProgramConfig) -> list[Outcome]:
    """Run every rule of a purpose, in order; return every rule's outcome."""
    return [rule(r, config, purpose, channels) for rule in RULES[purpose]]


def first_failure(outcomes: list[Outcome]) -> Outcome | None:
    """Return the first outcome that stops the message, if any."""
    return next((o for o in outcomes if not o.passed), None)


def check(purpose: str, channel_name: str, r: Recipient, config: ProgramConfig) -> MessageCheck:
    """Decide one message on one channel: send now, wait until ``send_at``, or skip (why)."""
    outcomes = evaluate(purpose, (channel_name,), r, config)
    failed = first_failure(outcomes)
    if failed is not None:
        return MessageCheck(False, failed.outcome, None, tuple(outcomes))
    until = quiet_until(r.now, r.timezone, config.moments.quiet_hours) \
        if purpose != "transactional" else None
    if until is not None:
        return MessageCheck(False, QUIET_HOURS, until, tuple(outcomes))
    return MessageCheck(True, None, None, tuple(outcomes))


def skip_text(result: MessageCheck) -> str:
    """Return ``reason: detail`` of a message not sent (as the sync records it)."""
    failed = first_failure(list(result.outcomes))
    detail = failed.detail if failed is not None else ""
    return f"{result.reason}: {detail}" if detail else str(result.reason)
