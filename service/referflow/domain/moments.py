"""Ask at the right moment: whether a moment in a customer's life asks them to refer. Pure.

A moment (``first_win``, ``nps_response``...) and what is known about the person go in; a
``Decision`` comes out with every rule's outcome, in this order:

1. ``moment_rule``: does this moment type ask, and do its conditions over ``data`` hold?
2. ``fit``: the program's fit gates over person attributes (plan, seats, tenure...).
3. ``consent``, 4. ``suppression``, 5. ``frequency_cap``, 6. ``cool_down``, 7. ``quiet_hours``,
   8. ``channel``: the send rules of an ask (``domain/messaging.py``, the one home of those rules
   for every send path).
9. ``link``: the person can be given a share link (an advocate already, or an email to enrol).
10. ``experiment`` (only in a moment experiment covering this moment): the person's variant asks
    at this moment type, or holds them out (``experiment_holdout``).

Every rule runs; the first that does not pass is the skip reason. Quiet hours never skip: the ask
is decided with a ``send_at`` at the end of the quiet hours in the person's timezone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from referflow.domain import messaging
from referflow.domain.conditions import failing
from referflow.domain.messaging import PASS, WEEK, Outcome, Recipient, SkipReason
from referflow.domain.program import ProgramConfig

ASK, SKIP = "ask", "skip"


@dataclass(frozen=True)
class Decision:
    """Ask or not; when asking, on which channel and when; every rule's outcome for the audit."""

    ask: bool
    skip_reason: str | None
    channel: str | None
    send_at: datetime | None
    outcomes: tuple[Outcome, ...]

    @property
    def verdict(self) -> str:
        """Return ``ask`` or ``skip``."""
        return ASK if self.ask else SKIP


def moment_rule(moment_type: str, data: Mapping[str, Any], config: ProgramConfig) -> Outcome:
    """Tell whether the program asks at this moment, given its data."""
    rule = config.moments.rule_for(moment_type)
    if not rule.ask:
        return Outcome("moment_rule", SkipReason.MOMENT_NOT_ASKING, f"{moment_type} never asks")
    failed = failing(rule.when, data)
    if failed:
        return Outcome("moment_rule", SkipReason.MOMENT_RULE_FAILED,
                       "fails: " + "; ".join(c.describe() for c in failed))
    return Outcome("moment_rule", PASS, "; ".join(c.describe() for c in rule.when))


def fit(r: Recipient, config: ProgramConfig) -> Outcome:
    """Tell whether the person fits the program's gates."""
    gates = config.moments.fit
    failed = failing(gates, r.attributes)
    if failed:
        return Outcome("fit", SkipReason.NOT_A_FIT, "fails: " + "; ".join(c.describe() for c in failed))
    return Outcome("fit", PASS, "; ".join(c.describe() for c in gates))


def link(r: Recipient) -> Outcome:
    """Tell whether the person can get a share link (an advocate is enrolled with an email)."""
    if r.is_advocate or r.has_email:
        return Outcome("link", PASS)
    return Outcome("link", SkipReason.NO_EMAIL, "not an advocate yet, and no email to enrol them")


def decide(moment_type: str, data: Mapping[str, Any], r: Recipient,
           config: ProgramConfig, experiment: Sequence[Outcome] = ()) -> Decision:
    """Decide whether this moment asks this person; run every rule and keep each outcome.

    ``experiment``: a moment experiment's outcome for this person (domain/experiments.py),
    last, so that its holdout is the skip reason only when every other rule passed.
    """
    channels = config.moments.channels
    outcomes = [moment_rule(moment_type, data, config), fit(r, config),
                *messaging.evaluate("ask", channels, r, config), link(r), *experiment]
    failed = messaging.first_failure(outcomes)
    if failed is not None:
        return Decision(False, failed.outcome, None, None, tuple(outcomes))
    chosen = messaging.usable_channels(r, config, channels, "ask")[0]
    send_at = messaging.quiet_until(r.now, r.timezone, config.moments.quiet_hours)
    return Decision(True, None, chosen, send_at, tuple(outcomes))


def next_ask_at(r: Recipient, config: ProgramConfig) -> tuple[datetime | None, str | None]:
    """Return the earliest time the person may be asked again, or None and what blocks them.

    Moment rules and fit gates are left out: they depend on the moment to come.
    """
    blocked = _blocked(r, config)
    if blocked is not None:
        return None, blocked
    caps = config.moments.caps
    waits = [r.now]
    if r.last_ask_at is not None:
        waits.append(r.last_ask_at + timedelta(days=caps.cool_down_days))
    if r.declined_at is not None:
        waits.append(r.declined_at + timedelta(days=caps.after_decline_days))
    recent = sorted(at for at, _ in r.asks_last_week)
    if len(recent) >= caps.asks_per_week:
        waits.append(recent[len(recent) - caps.asks_per_week] + WEEK)
    waits.append(min(_channel_free_at(r, config, c) for c in _open_channels(r, config)))
    when = max(waits)
    return messaging.quiet_until(when, r.timezone, config.moments.quiet_hours) or when, None


def _open_channels(r: Recipient, config: ProgramConfig) -> list[str]:
    return [c for c in config.moments.channels
            if messaging.consent_allows(r, config, c) and messaging.reachable(r, c)]


def _blocked(r: Recipient, config: ProgramConfig) -> str | None:
    """Return what keeps the person from any ask whatever the time, if anything does."""
    if r.erased:
        return SkipReason.ERASED
    if r.suppressions or messaging.suppressing_attributes(r, config):
        return SkipReason.SUPPRESSED
    if messaging.consent(r, config, "ask", config.moments.channels).outcome != PASS:
        return SkipReason.NO_CONSENT
    if not _open_channels(r, config):
        return SkipReason.NO_CHANNEL
    if config.moments.caps.asks_per_week == 0 or all(
            config.moments.caps.asks_per_week_by_channel.get(c) == 0 for c in _open_channels(r, config)):
        return SkipReason.FREQUENCY_CAPPED
    return None


def _channel_free_at(r: Recipient, config: ProgramConfig, channel: str) -> datetime:
    """Return when a channel has room for one more ask under its weekly cap."""
    limit = config.moments.caps.asks_per_week_by_channel.get(channel)
    recent = sorted(at for at, c in r.asks_last_week if c == channel)
    if limit is None or len(recent) < limit:
        return r.now
    return recent[len(recent) - limit] + WEEK
