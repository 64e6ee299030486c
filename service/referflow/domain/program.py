"""Program configuration as a validated value object."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

REWARD_SIDES = ("advocate", "friend")


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
class ProgramConfig:
    """The rules of one referral program (validated against program.schema.json first)."""

    landing_url: str
    currency: str = "USD"
    timezone: str = "UTC"
    advocate_reward: Reward = field(default_factory=lambda: Reward(amount=2000))
    friend_reward: Reward = field(default_factory=lambda: Reward(amount=0, type="none"))
    attribution_window_days: int = 30
    hold_days: int = 14
    gift_card_expiry_days: int = 365
    qualifying_event_types: tuple[str, ...] = ("first_order", "first_paid_invoice")
    min_qualifying_amount: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramConfig:
        """Build from the stored JSON document, applying defaults."""
        rewards = data.get("rewards", {})
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k != "rewards"}
        if "qualifying_event_types" in kwargs:
            kwargs["qualifying_event_types"] = tuple(kwargs["qualifying_event_types"])
        if "advocate" in rewards:
            kwargs["advocate_reward"] = Reward(**rewards["advocate"])
        if "friend" in rewards:
            kwargs["friend_reward"] = Reward(**rewards["friend"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document with every default spelled out."""
        data = asdict(self)
        data["qualifying_event_types"] = list(self.qualifying_event_types)
        data["rewards"] = {
            "advocate": _reward_dict(self.advocate_reward),
            "friend": _reward_dict(self.friend_reward),
        }
        del data["advocate_reward"], data["friend_reward"]
        return data

    def reward_for(self, side: str) -> Reward:
        """Return the reward of one side."""
        return self.advocate_reward if side == "advocate" else self.friend_reward

    def rewarded_sides(self) -> list[str]:
        """Return the sides that earn a monetary reward."""
        return [s for s in REWARD_SIDES if self.reward_for(s).monetary]


def _reward_dict(reward: Reward) -> dict[str, Any]:
    data = asdict(reward)
    if data["perk"] is None:
        del data["perk"]
    return data
