"""Tables. Money is integer minor units + ISO currency; times are UTC; ids are opaque strings."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from referflow.domain.referral import ReferralStatus
from referflow.domain.timeutil import utcnow
from referflow.storage.types import BigIntPK, EncryptedJSON, EncryptedText, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def _now() -> datetime:
    return utcnow()


class Program(Base):
    """A referral program: one tenant of an install."""

    __tablename__ = "programs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]]
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class ProgramConfigVersion(Base):
    """Every version a program's config has had, so decisions can cite the one they used."""

    __tablename__ = "program_config_versions"
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=_now)


class ApiKey(Base):
    """A program API key; only its SHA-256 is stored, and its first characters to name it."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON)  # domain/scopes.py
    created_at: Mapped[datetime] = mapped_column(default=_now)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]  # to the minute: written at most once a minute


class Advocate(Base):
    """A customer who refers others."""

    __tablename__ = "advocates"
    __table_args__ = (
        UniqueConstraint("program_id", "external_id"),
        Index(None, "program_id", "email_key"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str | None] = mapped_column(String(40))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class AdvocateEvent(Base):
    """Append-only facts about an advocate: tier changes, flags, erasure."""

    __tablename__ = "advocate_events"
    __table_args__ = (Index(None, "advocate_id", "id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id"))
    program_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=_now)
    action: Mapped[str] = mapped_column(String(40))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class IdentityMark(Base):
    """A keyed hash of an identifier (IP, /64, device, payment method) seen for a person.

    ``advocate_id`` is the advocate the person belongs to: the advocate themself, or the
    advocate who referred the friend. Fraud lookups go through (advocate_id, kind, key).
    """

    __tablename__ = "identity_marks"
    __table_args__ = (Index(None, "advocate_id", "kind", "key"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(String(32))
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id"))
    subject: Mapped[str] = mapped_column(String(16))
    referral_id: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class KnownCustomer(Base):
    """An existing customer (imported, or seen buying): never eligible as a referred friend."""

    __tablename__ = "known_customers"
    __table_args__ = (
        Index(None, "program_id", "external_id"),
        Index(None, "program_id", "email_key"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    email_key: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class ReferralCode(Base):
    """A code that attributes referrals to an advocate; unique across the install."""

    __tablename__ = "referral_codes"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id"), index=True)
    vanity: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Click(Base):
    """A visit of a share link; identifiers only as keyed hashes."""

    __tablename__ = "clicks"
    __table_args__ = (Index(None, "advocate_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id"))
    code: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(40))
    ip_key: Mapped[str | None] = mapped_column(String(64))
    net_key: Mapped[str | None] = mapped_column(String(64))
    ua_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Referral(Base):
    """A friend referred by an advocate, and where that referral stands."""

    __tablename__ = "referrals"
    statuses = ReferralStatus  # the family of ``status`` (decided in domain/referral.py)
    __table_args__ = (
        UniqueConstraint("program_id", "friend_external_id"),
        Index(None, "advocate_id", "created_at"),
        Index(None, "status", "hold_until"),
        Index(None, "status", "review_deadline"),
        Index(None, "program_id", "friend_email_key"),
        Index(None, "advocate_id", "approved_at"),
        Index(None, "program_id", "approved_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id"))
    code: Mapped[str] = mapped_column(String(32))
    click_id: Mapped[str | None] = mapped_column(String(32))
    friend_external_id: Mapped[str] = mapped_column(String(200))
    friend_email: Mapped[str | None] = mapped_column(String(320))
    friend_email_key: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    qualifying_event_id: Mapped[str | None] = mapped_column(String(200))
    qualified_amount: Mapped[int | None] = mapped_column(BigInteger)
    qualified_currency: Mapped[str | None] = mapped_column(String(3))
    qualified_at: Mapped[datetime | None]
    hold_until: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    review_deadline: Mapped[datetime | None]
    # Reward amounts committed at approval (the advocate's tier then), in the program currency.
    advocate_reward: Mapped[int | None] = mapped_column(BigInteger)
    friend_reward: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)
    # Optimistic lock: a concurrent change of the same referral fails its flush (StaleDataError).
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": version}


class ReferralHistory(Base):
    """Append-only history of a referral: inputs, rules, state changes, actors."""

    __tablename__ = "referral_history"
    __table_args__ = (Index(None, "referral_id", "id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"))
    program_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(default=_now)
    action: Mapped[str] = mapped_column(String(40))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(200))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_version: Mapped[int | None] = mapped_column(Integer)


class ProcessedEvent(Base):
    """An external event already acted on (dedupe key per program and source)."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("program_id", "source", "event_id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(255))
    referral_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class GiftCardStatus(StrEnum):
    """A ledger gift card: spendable, used up, or voided (reversal, erasure)."""

    ACTIVE = "active"
    REDEEMED = "redeemed"
    VOIDED = "voided"


class GiftCard(Base):
    """A gift card of referflow's own ledger."""

    __tablename__ = "gift_cards"
    __table_args__ = (
        UniqueConstraint("referral_id", "side"),
        Index(None, "program_id", "advocate_id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    referral_id: Mapped[str | None] = mapped_column(ForeignKey("referrals.id"))
    advocate_id: Mapped[str | None] = mapped_column(ForeignKey("advocates.id"))
    side: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=_now)


class GiftCardEntry(Base):
    """One append-only movement on a gift card (issue, redeem, void)."""

    __tablename__ = "gift_card_entries"
    __table_args__ = (Index(None, "gift_card_id", "id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    gift_card_id: Mapped[str] = mapped_column(ForeignKey("gift_cards.id"))
    program_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=_now)


class IdempotencyRecord(Base):
    """The first response to a POST sent with an Idempotency-Key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    # Encrypted: the first answer of createProgram, createApiKey or createWebhookSubscription
    # carries a secret, replayed as it was.
    response: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON("idempotency_keys.response"))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class OutboxEvent(Base):
    """An event to reach the outside world, written in the same transaction as the change."""

    __tablename__ = "outbox"
    __table_args__ = (Index(None, "done_at", "id"), Index(None, "program_id", "type", "id"))
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    program_id: Mapped[str] = mapped_column(String(32), index=True)
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=_now)
    done_at: Mapped[datetime | None]
    pruned_at: Mapped[datetime | None]  # the payload was replaced after the retention period


class WebhookSubscription(Base):
    """An outbound webhook endpoint of a program (also a Zapier REST-hook subscription)."""

    __tablename__ = "webhook_subscriptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]]
    secret: Mapped[str] = mapped_column(EncryptedText("webhook_subscriptions.secret"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failing_since: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    deleted_at: Mapped[datetime | None]


class DeliveryStatus(StrEnum):
    """An outbound webhook delivery: waiting, being sent (leased), delivered, given up."""

    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(Base):
    """One event to one subscription; retried with backoff until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "outbox_id"),
        Index(None, "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(32), index=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]  # a worker is sending it until then
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    delivered_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    """Every attempt to deliver a webhook, for the log."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index(None, "delivery_id", "id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"))
    at: Mapped[datetime] = mapped_column(default=_now)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)


class RewardStatus(StrEnum):
    """A reward: waiting, being issued (leased), issued, refused by the provider."""

    PENDING = "pending"
    ISSUING = "issuing"
    ISSUED = "issued"
    FAILED = "failed"


class Reward(Base):
    """One side's reward of one referral, issued through the program's issuer exactly once."""

    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("referral_id", "side"),
        Index(None, "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(32), index=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"))
    side: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    issued_at: Mapped[datetime | None]


class ProviderConfig(Base):
    """A provider's settings for one program; secrets and credentials are encrypted, never returned."""

    __tablename__ = "provider_configs"
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    webhook_secrets: Mapped[list[Any]] = mapped_column(
        EncryptedJSON("provider_configs.webhook_secrets"), default=list)
    credentials: Mapped[dict[str, Any]] = mapped_column(
        EncryptedJSON("provider_configs.credentials"), default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=_now)


class InboundStatus(StrEnum):
    """A provider event: to do, waiting for what it needs, done, done with nothing to do, given up."""

    PENDING = "pending"
    WAITING = "waiting"
    PROCESSED = "processed"
    IGNORED = "ignored"
    EXPIRED = "expired"


class InboundEvent(Base):
    """A verified provider webhook event, recorded before it is acted on (dedupe key inside)."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("program_id", "provider", "event_id"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "program_id", "subject", "status"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(200))  # the customer it waits for
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    wait_until: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=_now)
    processed_at: Mapped[datetime | None]
    pruned_at: Mapped[datetime | None]  # the payload was replaced after the retention period


class ProviderRef(Base):
    """Which customer a provider object (charge, payment intent, order) belongs to."""

    __tablename__ = "provider_refs"
    program_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Suppression(Base):
    """A person who must get no referral messaging (unsubscribed, suppressed, capped)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("program_id", "email_key"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(String(32))
    email_key: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class SyncStatus(StrEnum):
    """A push to Klaviyo or HubSpot: to do, being sent (leased), sent, skipped (why), refused."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


class SyncTask(Base):
    """One referral fact to push to one provider (Klaviyo event/profile, HubSpot contact)."""

    __tablename__ = "sync_tasks"
    __table_args__ = (
        UniqueConstraint("provider", "outbox_id"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "program_id", "recipient_key", "sent_at"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(20))
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    status: Mapped[str] = mapped_column(String(16))
    recipient_key: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    sent_at: Mapped[datetime | None]
