"""Program configuration as a validated value object."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import time
from typing import Any

from referflow.domain.conditions import Condition
from referflow.domain.urls import BadUrl, parse_http_url

REWARD_SIDES = ("advocate", "friend")

DEFAULT_POLICY: dict[str, str] = {
    "self_referral": "reject",
    "existing_customer": "reject",
    "inactive_code": "reject",
    "outside_attribution_window": "reject",
    "late_claim": "reject",
    "same_payment_method": "review",
    "same_household": "review",
    "disposable_email": "review",
    "velocity": "review",
    "advocate_flagged": "review",
}


DISCOUNT_TYPES = ("percent", "amount", "free_period")  # codes and coupons in the store
DISCOUNT_PROVIDERS = ("shopify", "stripe")


def _check_discount(where: str, kind: str, provider: str | None, size: int | None) -> None:
    """Refuse a discount a store cannot make (shared by rewards and the friend offer)."""
    if provider not in DISCOUNT_PROVIDERS:
        raise ValueError(f"{where}: a {kind} discount needs a provider: shopify or stripe")
    if kind == "free_period" and provider != "stripe":
        raise ValueError(f"{where}: free_period is a Stripe subscription discount (provider stripe)")
    if kind == "percent" and not (size is not None and 1 <= size <= 100):
        raise ValueError(f"{where}: a percent discount needs a percentage from 1 to 100")
    if kind == "amount" and not (size is not None and size > 0):
        raise ValueError(f"{where}: an amount discount needs an amount in minor units above 0")


@dataclass(frozen=True)
class Reward:
    """What one side of a referral earns: a gift card, a perk (``non_cash``), nothing, or a
    discount in the store: ``percent`` or ``amount`` off (a single-use code or coupon) or a
    ``free_period`` (a 100% coupon for one billing period, applied to the Stripe subscription).
    A discount ends ``expiry_days`` after it is issued (the program's gift-card expiry if unset).
    """

    type: str = "gift_card"
    amount: int = 0
    perk: str | None = None
    percent: int | None = None
    provider: str | None = None
    expiry_days: int | None = None

    def __post_init__(self) -> None:
        if self.type in DISCOUNT_TYPES:
            size = self.percent if self.type == "percent" else self.amount
            _check_discount(f"a {self.type} reward", self.type, self.provider, size)

    @property
    def monetary(self) -> bool:
        """Tell whether this reward moves money."""
        return self.type == "gift_card" and self.amount > 0

    @property
    def discount(self) -> bool:
        """Tell whether this reward is a discount the store issues."""
        return self.type in DISCOUNT_TYPES


@dataclass(frozen=True)
class FriendOffer:
    """What the friend gets at checkout with the referral code: a discount in the store whose
    code is the referral code (``value``: a percentage, or minor units for ``amount``; none for
    ``free_period``). ``expiry_days`` counts from the code's creation (null: no end)."""

    type: str
    provider: str
    value: int | None = None
    minimum_order: int = 0
    once_per_customer: bool = True
    expiry_days: int | None = None

    def __post_init__(self) -> None:
        if self.type not in DISCOUNT_TYPES:
            raise ValueError(f"friend_offer.type is one of {', '.join(DISCOUNT_TYPES)}")
        _check_discount("friend_offer", self.type, self.provider, self.value)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form with every default spelled out."""
        return asdict(self)


@dataclass(frozen=True)
class Requirement:
    """Behaviour a tier asks for besides approved referrals: ``count`` moments of one type."""

    moment: str
    count: int = 1


@dataclass(frozen=True)
class Tier:
    """An advocate tier reached at ``min_approved`` approved referrals and its ``requires``."""

    name: str
    min_approved: int
    advocate_reward: Reward | None = None
    perks: tuple[str, ...] = ()
    requires: tuple[Requirement, ...] = ()

    def reached(self, approved: int, moments: Mapping[str, int]) -> bool:
        """Tell whether an advocate with these approved referrals and moments reaches it."""
        return approved >= self.min_approved and all(
            moments.get(r.moment, 0) >= r.count for r in self.requires)


@dataclass(frozen=True)
class Velocity:
    """Claims per advocate above which a claim is suspicious."""

    per_hour: int = 5
    per_day: int = 20


@dataclass(frozen=True)
class Caps:
    """Monthly reward caps."""

    advocate_rewards_per_month: int | None = None
    program_spend_per_month: int | None = None
    on_cap: str = "defer"


@dataclass(frozen=True)
class Review:
    """What each signal does, and how unreviewed referrals end."""

    policy: dict[str, str] = field(default_factory=dict)
    deadline_hours: int = 72
    on_deadline: str = "decline"

    def action(self, code: str) -> str:
        """Return reject, review or allow for a signal code (unknown codes go to review)."""
        return self.policy.get(code, DEFAULT_POLICY.get(code, "review"))


@dataclass(frozen=True)
class Fulfilment:
    """How approved referrals are paid."""

    issuer: str = "ledger"
    auto_issue: bool = False


@dataclass(frozen=True)
class Messaging:
    """Frequency rules for referral messaging."""

    max_messages_per_week: int = 3


BUILTIN_MOMENTS = ("first_win", "qbr", "renewal", "support_resolved", "nps_response",
                   "community_contribution", "milestone")
CHANNELS = ("email", "sms", "in_app", "push")
CONSENT_MODES = ("opt_in", "opt_out")  # opt_in: a granted consent is needed; opt_out: none withdrawn


@dataclass(frozen=True)
class MomentRule:
    """Whether a moment type asks, and the conditions over its ``data`` that must all hold."""

    ask: bool = True
    when: tuple[Condition, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MomentRule:
        """Build from the config's JSON."""
        return cls(ask=data.get("ask", True),
                   when=tuple(Condition.from_dict(c, "field") for c in data.get("when", ())))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"ask": self.ask, "when": [c.to_dict("field") for c in self.when]}


@dataclass(frozen=True)
class AskCaps:
    """How often one person may be asked: per week, per channel per week, and the pauses."""

    asks_per_week: int = 1
    asks_per_week_by_channel: dict[str, int] = field(default_factory=dict)
    cool_down_days: int = 30  # after an ask
    after_decline_days: int = 90  # after the person declined an ask

    def __post_init__(self) -> None:
        unknown = set(self.asks_per_week_by_channel) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channels in asks_per_week_by_channel: {sorted(unknown)}")


@dataclass(frozen=True)
class QuietHours:
    """Local hours (the person's timezone) in which nothing is sent: asks wait until ``end``."""

    start: str = "21:00"
    end: str = "08:00"

    def __post_init__(self) -> None:
        if self.start_time == self.end_time:
            raise ValueError("quiet_hours start and end must differ")

    @property
    def start_time(self) -> time:
        """Return the start as a time of day."""
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        """Return the end as a time of day."""
        return time.fromisoformat(self.end)


DEFAULT_MOMENT_RULES = {"nps_response": MomentRule(when=(Condition("score", "gte", 9),))}
DEFAULT_CONSENT = {"email": "opt_out", "sms": "opt_in", "in_app": "opt_out", "push": "opt_in"}


@dataclass(frozen=True)
class Moments:
    """When to ask for a referral: moment rules, fit gates, consent, caps, quiet hours, channels.

    ``rules`` and ``consent`` are merged over their defaults: a rule named replaces the default
    of its moment type only; a moment type without a rule asks.
    """

    custom_types: tuple[str, ...] = ()
    rules: dict[str, MomentRule] = field(default_factory=lambda: dict(DEFAULT_MOMENT_RULES))
    fit: tuple[Condition, ...] = ()
    suppress_if: tuple[Condition, ...] = (Condition("open_support_ticket", "eq", True),)
    consent: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CONSENT))
    caps: AskCaps = field(default_factory=AskCaps)
    quiet_hours: QuietHours | None = None
    channels: tuple[str, ...] = ("email", "in_app")

    def __post_init__(self) -> None:
        clash = set(self.custom_types) & set(BUILTIN_MOMENTS)
        if clash:
            raise ValueError(f"custom moment types repeat built-in ones: {sorted(clash)}")
        if set(self.rules) - set(self.types):
            raise ValueError(f"rules for unknown moment types: {sorted(set(self.rules) - set(self.types))}")
        if not self.channels or set(self.channels) - set(CHANNELS):
            raise ValueError(f"channels are some of {', '.join(CHANNELS)}, in order of preference")
        if set(self.consent) - set(CHANNELS) or set(self.consent.values()) - set(CONSENT_MODES):
            raise ValueError("consent maps channels to opt_in or opt_out")

    @property
    def types(self) -> tuple[str, ...]:
        """Return every moment type this program accepts."""
        return BUILTIN_MOMENTS + self.custom_types

    def rule_for(self, moment_type: str) -> MomentRule:
        """Return the rule of a moment type (a type without one asks)."""
        return self.rules.get(moment_type, MomentRule())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moments:
        """Build from the config's JSON, merging rules and consent over their defaults."""
        kwargs: dict[str, Any] = dict(data)
        kwargs["custom_types"] = tuple(data.get("custom_types", ()))
        kwargs["rules"] = {**DEFAULT_MOMENT_RULES, **{
            name: MomentRule.from_dict(rule) for name, rule in data.get("rules", {}).items()}}
        for key in ("fit", "suppress_if"):
            if key in data:
                kwargs[key] = tuple(Condition.from_dict(c, "attribute") for c in data[key])
        kwargs["consent"] = {**DEFAULT_CONSENT, **data.get("consent", {})}
        kwargs["caps"] = AskCaps(**data.get("caps", {}))
        quiet = data.get("quiet_hours")
        kwargs["quiet_hours"] = QuietHours(**quiet) if quiet is not None else None
        if "channels" in data:
            kwargs["channels"] = tuple(data["channels"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document with every default spelled out."""
        return {
            "custom_types": list(self.custom_types),
            "rules": {name: rule.to_dict() for name, rule in sorted(self.rules.items())},
            "fit": [c.to_dict("attribute") for c in self.fit],
            "suppress_if": [c.to_dict("attribute") for c in self.suppress_if],
            "consent": dict(self.consent),
            "caps": asdict(self.caps),
            "quiet_hours": asdict(self.quiet_hours) if self.quiet_hours else None,
            "channels": list(self.channels),
        }


PORTAL_LANGUAGES = ("en", "de")  # the catalogues under portal/translations (tests check they agree)
HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class PortalColours:
    """Brand colours of the advocate page (hex): buttons, and the progress bar and highlights."""

    primary: str = "#1d4ed8"
    accent: str = "#047857"

    def __post_init__(self) -> None:
        for name in ("primary", "accent"):
            if not HEX_COLOUR.match(getattr(self, name)):
                raise ValueError(f"portal.colours.{name} must be a hex colour like #1d4ed8")


@dataclass(frozen=True)
class Portal:
    """The advocate page (domain/portal.py): branding, texts, embedding, what it shows.

    ``permanent_link: false`` leaves only the short-lived tokens of createPortalToken;
    ``language: null`` follows the visitor's browser.
    """

    name: str | None = None  # the brand shown; the program's name when unset
    logo_url: str | None = None
    colours: PortalColours = field(default_factory=PortalColours)
    terms: str | None = None
    consent_text: str | None = None
    support_email: str | None = None
    allowed_origins: tuple[str, ...] = ()  # who may frame the page (CSP frame-ancestors)
    permanent_link: bool = True
    leaderboard: bool = False
    language: str | None = None

    def __post_init__(self) -> None:
        if self.logo_url is not None and not _is_https(self.logo_url):
            raise ValueError("portal.logo_url must be an https URL")
        if self.support_email is not None and not _EMAIL.match(self.support_email):
            raise ValueError("portal.support_email must be an email address")
        if self.language is not None and self.language not in PORTAL_LANGUAGES:
            raise ValueError(f"portal.language is one of {', '.join(PORTAL_LANGUAGES)}")
        object.__setattr__(self, "allowed_origins", tuple(origin(o) for o in self.allowed_origins))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Portal:
        """Build from the config's JSON."""
        kwargs: dict[str, Any] = dict(data)
        kwargs["colours"] = PortalColours(**data.get("colours", {}))
        kwargs["allowed_origins"] = tuple(data.get("allowed_origins", ()))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form with every default spelled out."""
        return {**asdict(self), "allowed_origins": list(self.allowed_origins)}


def origin(raw: str) -> str:
    """Return a web origin (``https://host[:port]``, lower case), or raise ValueError.

    Plain http is accepted for loopback hosts only (local development).
    """
    try:
        parts = parse_http_url(raw)
    except BadUrl as exc:
        raise ValueError(f"portal.allowed_origins: {raw!r}: {exc}") from exc
    host = (parts.hostname or "").lower()
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"portal.allowed_origins: {raw!r} is an origin: scheme, host and port only")
    if parts.scheme != "https" and host not in _LOOPBACK:
        raise ValueError(f"portal.allowed_origins: {raw!r} must be https (http only for localhost)")
    shown = f"[{host}]" if ":" in host else host
    default = {"https": 443, "http": 80}[parts.scheme]
    return f"{parts.scheme}://{shown}" + (f":{parts.port}" if parts.port not in (None, default) else "")


def _is_https(url: str) -> bool:
    try:
        return parse_http_url(url).scheme == "https"
    except BadUrl:
        return False


@dataclass(frozen=True)
class ProgramConfig:
    """The rules of one referral program (validated against program.schema.json first)."""

    landing_url: str
    currency: str = "USD"
    timezone: str = "UTC"
    advocate_reward: Reward = field(default_factory=lambda: Reward(amount=2000))
    friend_reward: Reward = field(default_factory=lambda: Reward(amount=0, type="none"))
    attribution_window_days: int = 30
    late_claim_grace_days: int = 0
    hold_days: int = 14
    refund_after_hold: str = "reverse"
    refunds: str | dict[str, int] = "full_only"  # which partial refunds reverse (domain/referral)
    gift_card_expiry_days: int = 365
    qualifying_event_types: tuple[str, ...] = ("first_order", "first_paid_invoice")
    min_qualifying_amount: int = 0
    household_window_days: int = 30
    velocity: Velocity = field(default_factory=Velocity)
    caps: Caps = field(default_factory=Caps)
    tiers: tuple[Tier, ...] = ()
    review: Review = field(default_factory=Review)
    fulfilment: Fulfilment = field(default_factory=Fulfilment)
    messaging: Messaging = field(default_factory=Messaging)
    moments: Moments = field(default_factory=Moments)
    portal: Portal = field(default_factory=Portal)
    friend_offer: FriendOffer | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramConfig:
        """Build from the stored JSON document, applying defaults."""
        kwargs: dict[str, Any] = dict(data)
        rewards = kwargs.pop("rewards", {})
        if "advocate" in rewards:
            kwargs["advocate_reward"] = Reward(**rewards["advocate"])
        if "friend" in rewards:
            kwargs["friend_reward"] = Reward(**rewards["friend"])
        if "qualifying_event_types" in kwargs:
            kwargs["qualifying_event_types"] = tuple(kwargs["qualifying_event_types"])
        kwargs["velocity"] = Velocity(**kwargs.get("velocity", {}))
        kwargs["caps"] = Caps(**kwargs.get("caps", {}))
        kwargs["review"] = Review(**kwargs.get("review", {}))
        kwargs["fulfilment"] = Fulfilment(**kwargs.get("fulfilment", {}))
        kwargs["messaging"] = Messaging(**kwargs.get("messaging", {}))
        kwargs["moments"] = Moments.from_dict(kwargs.get("moments", {}))
        kwargs["portal"] = Portal.from_dict(kwargs.get("portal", {}))
        offer = kwargs.get("friend_offer")
        kwargs["friend_offer"] = FriendOffer(**offer) if offer else None
        kwargs["tiers"] = tuple(sorted((_tier(t) for t in kwargs.get("tiers", [])),
                                       key=lambda t: t.min_approved))
        _check_tiers(kwargs["tiers"], kwargs["moments"].types)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document with every default spelled out."""
        data = asdict(self)
        data["qualifying_event_types"] = list(self.qualifying_event_types)
        data["rewards"] = {"advocate": _drop_none(asdict(self.advocate_reward)),
                           "friend": _drop_none(asdict(self.friend_reward))}
        del data["advocate_reward"], data["friend_reward"]
        data["tiers"] = [_tier_dict(t) for t in self.tiers]
        data["moments"] = self.moments.to_dict()
        data["portal"] = self.portal.to_dict()
        data["friend_offer"] = self.friend_offer.to_dict() if self.friend_offer else None
        return data

    def reward_for(self, side: str) -> Reward:
        """Return the base reward of one side."""
        return self.advocate_reward if side == "advocate" else self.friend_reward

    def rewarded_sides(self) -> list[str]:
        """Return the sides that earn a monetary reward."""
        return [s for s in REWARD_SIDES if self.reward_for(s).monetary]

    def tier_for(self, approved: int, moments: Mapping[str, int] | None = None) -> Tier | None:
        """Return the highest tier reached with ``approved`` approved referrals and the
        person's recorded ``moments`` (counts by moment type) for tiers that require some."""
        reached = [t for t in self.tiers if t.reached(approved, moments or {})]
        return reached[-1] if reached else None

    @property
    def tiers_need_moments(self) -> bool:
        """Tell whether some tier requires recorded moments (a moment may change a tier)."""
        return any(t.requires for t in self.tiers)

    def rewards_for(self, tier_name: str | None,
                    variant: Mapping[str, Reward] | None = None) -> dict[str, Reward]:
        """Return each side's reward for a referral: the one home of reward resolution.

        The advocate's: their tier's own reward, else the experiment variant's, else the base;
        the friend's: the variant's, else the base.
        """
        variant = variant or {}
        tier = next((t for t in self.tiers if t.name == tier_name), None)
        return {"advocate": (tier.advocate_reward if tier and tier.advocate_reward else None)
                or variant.get("advocate") or self.advocate_reward,
                "friend": variant.get("friend") or self.friend_reward}

    def advocate_reward_in(self, tier_name: str | None) -> Reward:
        """Return the advocate reward of a tier (the base reward when the tier has none)."""
        for tier in self.tiers:
            if tier.name == tier_name and tier.advocate_reward is not None:
                return tier.advocate_reward
        return self.advocate_reward


def _tier(data: dict[str, Any]) -> Tier:
    reward = data.get("advocate_reward")
    return Tier(name=data["name"], min_approved=data["min_approved"],
                advocate_reward=Reward(**reward) if reward else None,
                perks=tuple(data.get("perks", ())),
                requires=tuple(Requirement(**r) for r in data.get("requires", ())))


def _check_tiers(tiers: tuple[Tier, ...], moment_types: tuple[str, ...]) -> None:
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError("tier names must be unique")
    unknown = sorted({r.moment for t in tiers for r in t.requires} - set(moment_types))
    if unknown:
        raise ValueError(f"tiers require unknown moment types: {unknown}")


def _tier_dict(tier: Tier) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tier.name, "min_approved": tier.min_approved,
                           "perks": list(tier.perks)}
    if tier.requires:
        out["requires"] = [asdict(r) for r in tier.requires]
    if tier.advocate_reward is not None:
        out["advocate_reward"] = _drop_none(asdict(tier.advocate_reward))
    return out


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}
