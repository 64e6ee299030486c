"""Tables. Money is integer minor units + ISO currency; times are UTC; ids are opaque strings."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    bindparam,
    delete,
    event,
    false,
    insert,
    inspect,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from referflow.domain.codes import new_session_stamp
from referflow.domain.referral import APPROVED_COUNTED as APPROVED_COUNTED  # re-exported
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


def only_set(column: str) -> dict[str, Any]:
    """Make an index partial: only the rows where ``column`` is set are in it, so the rows that
    leave it NULL (most of them: a bulk import's, a claim's) skip its upkeep. A query uses it only
    where its WHERE implies the column is set; a comparison on the column (``<=``, ``=``, ``>=``)
    does, on SQLite and PostgreSQL alike (tests/storage/test_partial_indexes.py)."""
    where = text(f"{column} IS NOT NULL")
    return {"sqlite_where": where, "postgresql_where": where}


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
        # listAdvocates: newest first, the leaderboards, the tier filter
        Index(None, "program_id", "created_at", "id"),
        Index(None, "program_id", "approved_count", "id"),
        Index(None, "program_id", "click_count", "id"),
        Index(None, "program_id", "tier"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str | None] = mapped_column(String(40))
    # Set by hand (setAdvocateTier): the automatic update leaves it until changed by hand again.
    tier_manual: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    # Counters the leaderboard sorts on, kept at flush by the hooks after ReferralSignal (the only
    # writers): referrals, referrals approved or rewarded, clicks.
    referral_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    approved_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    click_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The advocate page (actions/portal.py): the keyed hash of the current permanent token (the
    # token itself is derived from the hashing key and the generation, never stored); rotation
    # moves to the next generation.
    portal_token_hash: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    portal_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    portal_rotated_at: Mapped[datetime | None]


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
        # Partial (migration 0020): the due holds, the expired reviews, the monthly caps
        Index(None, "status", "hold_until", **only_set("hold_until")),
        Index(None, "status", "review_deadline", **only_set("review_deadline")),
        Index(None, "program_id", "friend_email_key"),
        Index(None, "advocate_id", "approved_at", **only_set("approved_at")),
        Index(None, "program_id", "approved_at", **only_set("approved_at")),
        # listReferrals: newest first, alone or by status or channel (a channel given: partial)
        Index(None, "program_id", "created_at", "id"),
        Index(None, "program_id", "status", "created_at", "id"),
        Index(None, "program_id", "channel", "created_at", "id", **only_set("channel")),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id"))
    code: Mapped[str] = mapped_column(String(32))
    click_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(40))  # the ?ch= of that click
    friend_external_id: Mapped[str] = mapped_column(String(200))
    friend_email: Mapped[str | None] = mapped_column(String(320))
    friend_email_key: Mapped[str | None] = mapped_column(String(64))
    # active_history: the flush hooks below ReferralSignal see what status and reasons were
    status: Mapped[str] = mapped_column(String(16), active_history=True)
    reasons: Mapped[list[Any]] = mapped_column(default=list, active_history=True)
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
    # The advocate's experiment variants at claim ({experiment_id, name, subject}); a rewards
    # variant's amounts apply at approval (actions/experiments.py). NULL: in no experiment.
    variants: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
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


class ReferralSignal(Base):
    """A reason code a referral carries (a fraud signal, a cap, a reversal...), indexed for
    listReferrals' ``reason`` filter; derived from ``Referral.reasons`` by the hooks below."""

    __tablename__ = "referral_signals"
    __table_args__ = (Index(None, "program_id", "code", "referral_id"),)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(32))


# Rows derived from referrals and clicks (the signals above, the advocates' counters) are written
# by these hooks and nowhere else: in the flush that writes their source, so in its transaction,
# whichever use case made the change. Counters move by SQL increments (no lost update), after the
# referral's own row: the lock order stays referral -> advocate. Bulk UPDATEs of a referral's
# status or reasons would bypass them; there are none.
# APPROVED_COUNTED: which statuses the approved counter counts, domain/referral.py's rule.


def reason_codes(reasons: list[Any] | None) -> set[str]:
    """Return the codes of a referral's reasons, as the ``reason`` filter matches them."""
    return {str(r["code"])[:64] for r in reasons or () if isinstance(r, dict) and r.get("code")}


_COUNTS: dict[tuple[str, ...], Any] = {}  # the increments, built once per set of counters


def _count(connection: Connection, advocate_id: str, **deltas: int) -> None:
    names = tuple(sorted(name for name, delta in deltas.items() if delta))
    if not names:
        return
    statement = _COUNTS.get(names)
    if statement is None:
        statement = _COUNTS[names] = update(Advocate).where(
            Advocate.id == bindparam("counted_advocate")).values(
            {name: getattr(Advocate, name) + bindparam(f"delta_{name}") for name in names})
    connection.execute(statement, {"counted_advocate": advocate_id,
                                   **{f"delta_{name}": deltas[name] for name in names}})


def _index_reasons(connection: Connection, referral: Referral, before: set[str],
                   after: set[str]) -> None:
    if after - before:
        connection.execute(insert(ReferralSignal), [
            {"referral_id": referral.id, "code": code, "program_id": referral.program_id}
            for code in sorted(after - before)])
    if before - after:
        connection.execute(delete(ReferralSignal).where(
            ReferralSignal.referral_id == referral.id, ReferralSignal.code.in_(before - after)))


@event.listens_for(Referral, "after_insert")
def _referral_inserted(_mapper: Any, connection: Connection, referral: Referral) -> None:
    _count(connection, referral.advocate_id, referral_count=1,
           approved_count=int(referral.status in APPROVED_COUNTED))
    _index_reasons(connection, referral, set(), reason_codes(referral.reasons))


@event.listens_for(Referral, "after_update")
def _referral_updated(_mapper: Any, connection: Connection, referral: Referral) -> None:
    attrs = inspect(referral).attrs
    status = attrs.status.history
    if status.deleted:
        _count(connection, referral.advocate_id,
               approved_count=int(referral.status in APPROVED_COUNTED)
               - int(status.deleted[0] in APPROVED_COUNTED))
    reasons = attrs.reasons.history
    if reasons.deleted or reasons.added:
        was = reasons.deleted[0] if reasons.deleted else None
        _index_reasons(connection, referral, reason_codes(was), reason_codes(referral.reasons))


@event.listens_for(Click, "after_insert")
def _click_inserted(_mapper: Any, connection: Connection, click: Click) -> None:
    _count(connection, click.advocate_id, click_count=1)


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
    """A gift card of referflow's own ledger.

    The code is a bearer secret: it is found by ``code_hash`` (a keyed hash of the normalised
    code, domain/codes.py), kept encrypted for those who may see it (``code``, read from the
    ``code_encrypted`` column only when asked for: never compare it in a query) and shown
    elsewhere by its last characters (``code_last4``).
    """

    __tablename__ = "gift_cards"
    __table_args__ = (
        UniqueConstraint("referral_id", "side"),
        Index(None, "program_id", "advocate_id"),
        Index(None, "program_id", "created_at", "id"),  # listGiftCards: newest first
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code: Mapped[str] = mapped_column("code_encrypted", EncryptedText("gift_cards.code"),
                                      deferred=True)
    code_last4: Mapped[str] = mapped_column(String(4))
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


class StatRollup(Base):
    """A program's statistics per calendar day in its timezone, kept in each fact's transaction.

    Every fact is added once per ``split``: '' (all facts), 'channel' and 'tier' (under its
    channel or tier in ``segment``, '' for none). Metrics and their meaning: domain/stats.py;
    written by actions/rollups.py only.
    """

    __tablename__ = "stat_rollups"
    __table_args__ = (Index(None, "program_id", "split", "metric", "day"),)  # figures "as of"
    program_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    split: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    segment: Mapped[str] = mapped_column(String(40), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)


class StatSharer(Base):
    """An advocate whose first click is counted in the rollups (sharing advocates), once."""

    __tablename__ = "stat_sharers"
    program_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    advocate_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date)


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
    # One active subscription per endpoint of a program, so that of two parallel creates of one
    # URL only one commits; removed and disabled ones leave the index (migration 0022).
    __table_args__ = (Index(None, "program_id", "url_key", unique=True,
                            sqlite_where=text("active"), postgresql_where=text("active")),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # domain.urls.normal_url(url); NULL on the later ones of duplicates made before 0022
    url_key: Mapped[str | None] = mapped_column(String(2048))
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
    """A reward: waiting, being issued (leased), issued, refused by the provider, taken back
    after a reversal (a discount reward: domain/rewards.py). A reward to take back is pending
    again, with ``details["void"]`` saying so, until its worker settles it ``voided``."""

    PENDING = "pending"
    ISSUING = "issuing"
    ISSUED = "issued"
    FAILED = "failed"
    VOIDED = "voided"


class Reward(Base):
    """One side's reward of one referral, issued through its issuer exactly once.

    ``side`` is advocate or friend, or ``tier`` for the perks of a tier an advocate reached
    (no referral; ``advocate_id`` names the recipient, and the id is derived from the advocate
    and the tier, so each tier's perks are granted once). ``kind`` is the reward's type
    (domain/program.py: gift_card, non_cash, percent, amount, free_period); ``details`` what the
    kind needs beyond money (the perk, the tier and its perks, the percentage, the provider);
    ``expires_at`` when a discount stops working.
    """

    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("referral_id", "side"),
        Index(None, "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(32), index=True)
    referral_id: Mapped[str | None] = mapped_column(ForeignKey("referrals.id"))
    advocate_id: Mapped[str | None] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(EncryptedText("rewards.code"))  # a bearer secret
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    issued_at: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(String(16), default="gift_card", server_default="gift_card")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None]


class StoreDiscountStatus(StrEnum):
    """A friend offer's discount in the store: to do, a worker holds it (creating, or disabling
    it after the code was deactivated), live, refused by the store, switched off."""

    PENDING = "pending"
    CREATING = "creating"
    ACTIVE = "active"
    FAILED = "failed"
    DISABLED = "disabled"


class StoreDiscount(Base):
    """The friend offer of one referral code: a discount in the store whose code is the referral
    code, created in the background exactly once (actions/offers.py).

    ``wanted`` is what the store should have (active, or disabled once the code is deactivated);
    a worker makes it so. ``terms`` are the offer as configured when the row was made.
    """

    __tablename__ = "store_discounts"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "program_id", "provider", "external_id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(ForeignKey("referral_codes.code"), unique=True)
    advocate_id: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(20))
    terms: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    wanted: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(200))  # Shopify node id, Stripe promo id
    coupon_id: Mapped[str | None] = mapped_column(String(200))  # Stripe
    reason: Mapped[str | None] = mapped_column(String(500))  # the store's refusal, or the outage
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)


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


class Person(Base):
    """Someone moments are recorded for, or consent is kept for (an advocate or not, yet).

    Found by a keyed hash of the program's own customer id (``external_key``), kept after
    erasure so an erased person is never asked again; the id itself, the email and the
    attributes go at erasure. The row is also the lock that serialises the asks of one person.
    """

    __tablename__ = "people"
    __table_args__ = (
        UniqueConstraint("program_id", "external_key"),
        Index(None, "program_id", "email_key"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    external_key: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))  # "erased:<id>" once erased
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)


class ConsentStatus(StrEnum):
    """A person's consent for a channel: given, or taken back."""

    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class Consent(Base):
    """Append-only consent evidence: who said what, for which channel, where and when.

    A provider opt-out names an email only: ``person_id`` stays empty until that email is a
    person's. Erasure empties ``email_key`` and keeps the rest (that consent existed, and when).
    """

    __tablename__ = "consents"
    __table_args__ = (
        Index(None, "person_id", "channel", "occurred_at"),
        Index(None, "program_id", "email_key", "channel"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))
    email_key: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # ConsentStatus
    source: Mapped[str] = mapped_column(String(100))
    text_version: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(default=_now)
    recorded_at: Mapped[datetime] = mapped_column(default=_now)


class AskDecision(StrEnum):
    """What a moment decided: ask the person to refer, or skip (with a reason code)."""

    ASK = "ask"
    SKIP = "skip"


class AskResponse(StrEnum):
    """What the person did with an ask, when the program tells referflow."""

    ACCEPTED = "accepted"
    DECLINED = "declined"


class MomentDecision(Base):
    """A moment recorded for a person and the ask decision taken, with every rule's outcome."""

    __tablename__ = "moment_decisions"
    __table_args__ = (
        UniqueConstraint("program_id", "request_id"),
        Index(None, "person_id", "created_at"),
        Index(None, "program_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    request_id: Mapped[str | None] = mapped_column(String(200))  # the caller's optional id
    moment: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime]
    decision: Mapped[str] = mapped_column(String(8))  # AskDecision
    skip_reason: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str | None] = mapped_column(String(16))
    send_at: Mapped[datetime | None]
    outcomes: Mapped[list[Any]] = mapped_column(default=list)
    config_version: Mapped[int] = mapped_column(Integer)
    advocate_id: Mapped[str | None] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(32))
    response: Mapped[str | None] = mapped_column(String(16))  # AskResponse
    responded_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)
    pruned_at: Mapped[datetime | None]  # data and rule details removed after the retention period
    # The person's experiment variants this decision exposed them to (+ the message variant's
    # text); NULL: none.
    variants: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))


class ExperimentStatus(StrEnum):
    """An experiment: assigning and applying its variants, or stopped (kept for its results)."""

    RUNNING = "running"
    STOPPED = "stopped"


class Experiment(Base):
    """An experiment of a program: variants of the rewards, the ask message or the moment.

    ``running_subject`` is the subject while running and NULL once stopped: the unique
    constraint holds at most one running experiment per program and subject, race-free.
    """

    __tablename__ = "experiments"
    __table_args__ = (
        UniqueConstraint("program_id", "running_subject"),
        Index(None, "program_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(16))  # domain/experiments.Subject
    running_subject: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # ExperimentStatus
    design: Mapped[dict[str, Any]]  # domain/experiments.Design.to_dict()
    created_at: Mapped[datetime] = mapped_column(default=_now)
    stopped_at: Mapped[datetime | None]
    stop_note: Mapped[str | None] = mapped_column(String(500))


class ExperimentAssignment(Base):
    """A person's variant, written at their first exposure, so results count exactly.

    Keyed by the keyed hash of the person's external id (``people.external_key``'s): a moment
    experiment's held-out people may never become advocates.
    """

    __tablename__ = "experiment_assignments"
    __table_args__ = (Index(None, "experiment_id", "variant"),)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    advocate_id: Mapped[str | None] = mapped_column(String(32), index=True)
    variant: Mapped[str] = mapped_column(String(40))
    assigned_at: Mapped[datetime] = mapped_column(default=_now)


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


class User(Base):
    """A dashboard login: the email as entered, looked up by its lowercase key; Argon2 hash only."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)  # actions/users.py login_key
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    last_login_at: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # "admin" (the CLI) or the owner's user id while disabled (actions/accounts.py); NULL otherwise
    disabled_by: Mapped[str | None] = mapped_column(String(32))
    # An owner set the password: its holder sets their own before any program page (migration 0024)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    # In every dashboard cookie of the user; a new one ends them all (actions/users.py)
    session_stamp: Mapped[str] = mapped_column(String(32), default=new_session_stamp)


class ProgramMember(Base):
    """A user's role on one program (domain/roles.py): agencies hold several."""

    __tablename__ = "program_members"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=_now)
