"""Rows of an import file: known customers, and referrals brought over from another tool.

Facts in, a checked row (or ``BadRow``) out, one row at a time; the actions stage the checked
rows and decide what is new with set-based SQL (actions/bulk.py). Every rule about what a
column may hold lives here, and the docs' column tables (docs/referrals.md, "Importing") are
these tables in prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from types import MappingProxyType
from typing import NamedTuple

from referflow.domain import referral as states
from referflow.domain.codes import VANITY_RE, normalise_code
from referflow.domain.emails import normalise_email
from referflow.domain.money import MAX_MINOR
from referflow.domain.stats import HIST_FIRST, HIST_STEPS, duration_bucket
from referflow.domain.timeutil import parse_rfc3339

# The pattern of the API's email fields (schemas/claim-referral.request.json and
# import-customers.request.json); tests/domain/test_imports.py checks that the copies agree.
EMAIL_PATTERN = r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$"
_EMAIL = re.compile(EMAIL_PATTERN)
_REASON = re.compile(r"^[a-z0-9_]{1,40}$")
_DIGITS = re.compile(r"^[0-9]{1,16}$")
ID_LENGTH, EMAIL_LENGTH, NAME_LENGTH = 200, 320, 200


class BadRow(ValueError):
    """A row that cannot be imported; the message names the column and what is wrong with it."""


# ---- known customers --------------------------------------------------------------------------

CUSTOMER_COLUMNS = ("external_id", "email")  # other columns of a shop's export are ignored


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """One existing customer: an external id, a normalised email, or both."""

    external_id: str | None
    email: str | None


def check_customer(fields: Mapping[str, object]) -> CustomerRow:
    """Return the customer a row names, or raise BadRow."""
    # The rules of _given, _text and _email for two columns, without their dict (a million
    # rows a file: this is most of a customer import's checking).
    external_id = _plain(fields.get("external_id"), "external_id")
    email = _plain(fields.get("email"), "email")
    if email is not None and not _EMAIL.match(email):
        raise BadRow("email: not an email address")
    if external_id is None and email is None:
        raise BadRow("neither external_id nor email: a customer needs one of them")
    return CustomerRow(external_id, normalise_email(email) if email else None)


# ---- referrals from another tool --------------------------------------------------------------

# The status a referral had in the other tool -> where it stands here. "claimed" has not
# qualified yet; "qualified" waits out the programme's hold (then referflow approves it, as it
# approves its own); "approved" and "rewarded" are past the hold and get no reward planned here.
IMPORTED_STATUS: Mapping[str, states.ReferralStatus] = MappingProxyType({
    "claimed": states.PENDING,
    "qualified": states.HELD,
    "approved": states.APPROVED,
    "rewarded": states.REWARDED,
    "rejected": states.REJECTED,
    "reversed": states.REVERSED,
})

REFERRAL_COLUMNS: Mapping[str, str] = MappingProxyType({
    "advocate_external_id": "required; the advocate's customer id in your shop (up to 200 characters)",
    "advocate_email": "the advocate's email; rows of one advocate must agree (or leave it empty)",
    "advocate_name": "the advocate's name; rows of one advocate must agree (or leave it empty)",
    "code": "the advocate's code in the other tool, kept so shared links go on working "
            "(3-32 letters, digits, '_'; spaces and dashes are dropped, like a typed code)",
    "friend_external_id": "required; the referred friend's customer id, once per program",
    "friend_email": "the friend's email",
    "status": "required; " + ", ".join(IMPORTED_STATUS),
    "created_at": "required; when the friend was referred (RFC 3339 with an offset)",
    "qualified_at": "when the friend qualified (default: created_at, for qualified, approved "
                    "and rewarded)",
    "qualified_amount": "what the qualifying purchase paid, integer minor units (cents)",
    "currency": "the amount's currency: the program's (ISO 4217); required with an amount",
    "qualifying_event_id": "the order or invoice id that qualified the friend",
    "hold_until": "qualified only: when the hold ends (default: qualified_at + the program's "
                  "hold_days)",
    "approved_at": "approved, rewarded, reversed: when it was approved (default: qualified_at)",
    "advocate_reward": "the advocate's reward committed at approval, integer minor units",
    "friend_reward": "the friend's reward committed at approval, integer minor units",
    "reason": "rejected and reversed: a reason code (a-z, 0-9, '_'; e.g. fraud, chargeback)",
})
REQUIRED_COLUMNS = ("advocate_external_id", "friend_external_id", "status", "created_at")

_QUALIFYING = frozenset({"qualified_at", "qualified_amount", "currency", "qualifying_event_id"})
_APPROVAL = frozenset({"approved_at", "advocate_reward", "friend_reward"})
# Which optional facts each imported status may carry; anything else is a mistake in the file.
_ALLOWED: Mapping[str, frozenset[str]] = MappingProxyType({
    "claimed": frozenset(),
    "qualified": _QUALIFYING | {"hold_until"},
    "approved": _QUALIFYING | _APPROVAL,
    "rewarded": _QUALIFYING | _APPROVAL,
    "rejected": _QUALIFYING | {"reason"},
    "reversed": _QUALIFYING | _APPROVAL | {"reason"},
})
_STATUS_FACTS = _QUALIFYING | _APPROVAL | {"hold_until", "reason"}
_NOT_ALLOWED = {status: _STATUS_FACTS - allowed for status, allowed in _ALLOWED.items()}


@dataclass(frozen=True, slots=True)
class ImportRules:
    """What a referral row is checked against: the programme's currency and hold, and now."""

    currency: str
    hold_days: int
    now: datetime


class ReferralRow(NamedTuple):
    """One referral as it will be stored (``status`` is referflow's, ``imported_as`` the file's).

    A named tuple: immutable like a frozen dataclass, and several times cheaper to build (a
    million of them a file)."""

    advocate_external_id: str
    advocate_email: str | None
    advocate_name: str | None
    code: str | None
    friend_external_id: str
    friend_email: str | None
    imported_as: str
    status: states.ReferralStatus
    created_at: datetime
    qualified_at: datetime | None
    qualified_amount: int | None
    currency: str | None
    qualifying_event_id: str | None
    hold_until: datetime | None
    approved_at: datetime | None
    advocate_reward: int | None
    friend_reward: int | None
    reason: str | None

    def reasons(self) -> list[dict[str, str]]:
        """Return the referral's reasons: the imported reason code, if any."""
        if self.reason is None:
            return []
        known = self.status == states.REVERSED and self.reason in states.REVERSAL_MESSAGES
        message = (states.REVERSAL_MESSAGES[self.reason] if known
                   else f"Imported as {self.imported_as}: {self.reason}.")
        return [{"code": self.reason, "message": message}]


def missing_columns(names: Iterable[str]) -> list[str]:
    """Return the required referral columns a header lacks."""
    present = set(names)
    return [name for name in REQUIRED_COLUMNS if name not in present]


def unknown_columns(names: Iterable[str]) -> list[str]:
    """Return the columns no referral import knows (a typo would silently drop data)."""
    return [name for name in names if name not in REFERRAL_COLUMNS]


def check_referral(fields: Mapping[str, object], rules: ImportRules) -> ReferralRow:
    """Return the referral a row describes, or raise BadRow naming the first problem."""
    unknown = fields.keys() - REFERRAL_COLUMNS.keys()
    if unknown:
        raise BadRow(f"{min(unknown)}: not a column of a referral import")
    given, text = _given(fields)
    imported_as = _required(text, "status")
    status = IMPORTED_STATUS.get(imported_as)
    if status is None:
        raise BadRow(f"status: {imported_as!r} is not one of {', '.join(IMPORTED_STATUS)}")
    extra = given.keys() & _NOT_ALLOWED[imported_as]
    if extra:
        raise BadRow(f"{min(extra)}: a {imported_as} referral does not carry it")
    created_at = _past_time(text, "created_at", rules.now)
    if created_at is None:
        raise BadRow("created_at: required")
    qualified_at = _past_time(text, "qualified_at", rules.now) or (
        created_at if status in states.QUALIFIED_STATUSES else None)
    _not_before(qualified_at, created_at, "qualified_at", "created_at")
    approved_at = _past_time(text, "approved_at", rules.now) or (
        qualified_at if status in (states.APPROVED, states.REWARDED) else None)
    _not_before(approved_at, qualified_at or created_at, "approved_at", "qualified_at")
    hold_until = _time(text, "hold_until") or (
        qualified_at + timedelta(days=rules.hold_days) if qualified_at and status == states.HELD
        else None)
    _not_before(hold_until, qualified_at, "hold_until", "qualified_at")
    amount, currency = _amount(given, text, rules.currency)
    return ReferralRow(
        advocate_external_id=_required(text, "advocate_external_id"),
        advocate_email=_email(text, "advocate_email"),
        advocate_name=text("advocate_name"),
        code=_code(text),
        friend_external_id=_required(text, "friend_external_id"),
        friend_email=_email(text, "friend_email"),
        imported_as=imported_as, status=status, created_at=created_at,
        qualified_at=qualified_at, qualified_amount=amount, currency=currency,
        qualifying_event_id=text("qualifying_event_id"),
        hold_until=hold_until, approved_at=approved_at,
        advocate_reward=_minor(given, "advocate_reward"),
        friend_reward=_minor(given, "friend_reward"),
        reason=_reason(text),
    )


# ---- one column at a time ---------------------------------------------------------------------

# The longest value each column may hold (characters); a column not named here: 64.
_LIMITS: dict[str, int] = {
    "external_id": ID_LENGTH, "email": EMAIL_LENGTH, "advocate_external_id": ID_LENGTH,
    "advocate_email": EMAIL_LENGTH, "advocate_name": NAME_LENGTH, "friend_external_id": ID_LENGTH,
    "friend_email": EMAIL_LENGTH, "qualifying_event_id": ID_LENGTH, "currency": 3, "reason": 40,
    "status": 20,
}


Text = Callable[[str], "str | None"]  # a text column's value (None: not given), or BadRow


def _given(fields: Mapping[str, object]) -> tuple[dict[str, object], Text]:
    """The row's values that are there (strings trimmed, empty strings and nulls left out),
    and the reader of its text columns."""
    given: dict[str, object] = {}
    texts_only = True
    for name, value in fields.items():
        if isinstance(value, str):
            value = value.strip()
            if not value:
                continue
            if len(value) > _LIMITS.get(name, 64):
                raise BadRow(f"{name}: longer than {_LIMITS.get(name, 64)} characters")
        elif value is None:
            continue
        else:
            texts_only = False
        given[name] = value
    # Every value a text (a CSV row): the dict answers for _text without its check.
    return given, given.get if texts_only else partial(_text, given)  # type: ignore[return-value]


def _plain(value: object, name: str) -> str | None:
    """One text value as ``_given`` and ``_text`` take it: trimmed, empty as None, not too long."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRow(f"{name}: a text value is expected")
    value = value.strip()
    if len(value) > _LIMITS[name]:
        raise BadRow(f"{name}: longer than {_LIMITS[name]} characters")
    return value or None


def _text(given: Mapping[str, object], name: str) -> str | None:
    value = given.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRow(f"{name}: a text value is expected")
    return value


def _required(text: Text, name: str) -> str:
    value = text(name)
    if value is None:
        raise BadRow(f"{name}: required")
    return value


def _email(text: Text, name: str) -> str | None:
    value = text(name)
    if value is not None and not _EMAIL.match(value):
        raise BadRow(f"{name}: not an email address")
    return value


def _code(text: Text) -> str | None:
    value = text("code")
    if value is None:
        return None
    code = normalise_code(value)
    if not VANITY_RE.match(code):
        raise BadRow("code: 3-32 letters, digits or '_' (spaces and dashes are dropped)")
    return code


def _reason(text: Text) -> str | None:
    value = text("reason")
    if value is not None and not _REASON.match(value):
        raise BadRow("reason: a code of a-z, 0-9 and '_' (up to 40)")
    return value


def _time(text: Text, name: str) -> datetime | None:
    value = text(name)
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise BadRow(f"{name}: not an RFC 3339 time with an offset") from None


def _past_time(text: Text, name: str, now: datetime) -> datetime | None:
    value = _time(text, name)
    if value is not None and states.in_the_future(value, now):
        raise BadRow(f"{name}: in the future")
    return value


def _not_before(later: datetime | None, earlier: datetime | None, name: str, other: str) -> None:
    if later is not None and earlier is not None and later < earlier:
        raise BadRow(f"{name}: before {other}")


def _minor(given: Mapping[str, object], name: str) -> int | None:
    value = given.get(name)
    if value is None:
        return None
    if isinstance(value, str) and _DIGITS.match(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MINOR:
        raise BadRow(f"{name}: a whole number of minor units (cents), 0 or more")
    return value


def _amount(given: Mapping[str, object], text: Text,
            program_currency: str) -> tuple[int | None, str | None]:
    amount = _minor(given, "qualified_amount")
    currency = text("currency")
    if currency is not None and currency.upper() != program_currency:
        raise BadRow(f"currency: the program's currency is {program_currency}")
    if amount is not None and currency is None:
        raise BadRow("currency: required with qualified_amount")
    return amount, program_currency if amount is not None else None


# ---- the statistics of imported referrals -----------------------------------------------------


def reward_bucket_edges(now: datetime, oldest: datetime) -> list[tuple[int, datetime]]:
    """Return, for each claim-to-reward bucket from the second to ``oldest``'s, the latest
    claim time that a reward at ``now`` puts in it or a later one (newest edge first).

    An imported rewarded referral is rewarded ``now`` (its history entry's time): comparing its
    claim time with these edges finds its bucket in SQL, exactly where ``duration_bucket`` does.
    """
    last = duration_bucket((now - oldest).total_seconds())
    return [(bucket, _edge(now, bucket)) for bucket in range(1, last + 1)]


def _edge(now: datetime, bucket: int) -> datetime:
    at = now - timedelta(seconds=HIST_FIRST * 2 ** ((bucket - 1) / HIST_STEPS))
    step = timedelta(microseconds=1)
    while duration_bucket((now - at).total_seconds()) < bucket:
        at -= step
    while duration_bucket((now - (at + step)).total_seconds()) >= bucket:
        at += step
    return at
