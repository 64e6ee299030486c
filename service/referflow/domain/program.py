"""Program configuration as a validated value object."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class Reward:
    """What one side of a referral earns."""

    type: str = "gift_card"
    amount: int = 0
    perk: str | None = None

    @property
    def monetary(self) -> bool:
        """Tell whether this reward moves money."""
        return self.type == "gift_card" and self.amount > 0


@dataclass(frozen=True)
class Tier:
    """An advocate tier reached at ``min_approved`` approved referrals."""

    name: str
    min_approved: int
    advocate_reward: Reward | None = None
    perks: tuple[str, ...] = ()


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
        kwargs["tiers"] = tuple(sorted((_tier(t) for t in kwargs.get("tiers", [])),
                                       key=lambda t: t.min_approved))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document with every default spelled out."""
        data = asdict(self)
        data["qualifying_event_types"] = list(self.qualifying_event_types)
        data["rewards"] = {"advocate": _drop_none(asdict(self.advocate_reward)),
                           "friend": _drop_none(asdict(self.friend_reward))}
        del data["advocate_reward"], data["friend_reward"]
        data["tiers"] = [_tier_dict(t) for t in self.tiers]
        return data

    def reward_for(self, side: str) -> Reward:
        """Return the base reward of one side."""
        return self.advocate_reward if side == "advocate" else self.friend_reward

    def rewarded_sides(self) -> list[str]:
        """Return the sides that earn a monetary reward."""
        return [s for s in REWARD_SIDES if self.reward_for(s).monetary]

    def tier_for(self, approved: int) -> Tier | None:
        """Return the highest tier reached with ``approved`` approved referrals."""
        reached = [t for t in self.tiers if approved >= t.min_approved]
        return reached[-1] if reached else None

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
                perks=tuple(data.get("perks", ())))


def _tier_dict(tier: Tier) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tier.name, "min_approved": tier.min_approved,
                           "perks": list(tier.perks)}
    if tier.advocate_reward is not None:
        out["advocate_reward"] = _drop_none(asdict(tier.advocate_reward))
    return out


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}
