"""reward codes no longer in the clear in stored events and the history

A reward's code (a Shopify or Stripe discount code, a card code from an issuer) is a bearer
secret. ``rewards.code`` is encrypted since 0018, but the reward as events and the history dump
it kept the code in the clear: ``reward.issued`` and ``reward.voided`` in the outbox
(``data.reward``), the ``rewarded`` (``data.rewards[]``) and ``reward_voided`` (``data.reward``)
history entries that getReferral and the audit export show. They keep its last characters now,
``code_last4`` in place of ``code`` (null when the reward has no code), as gift cards do;
``reward.issued`` gets the code back from the reward when it is sent (actions/events.py).

Existing rows are rewritten here, a batch at a time, and only those that hold a ``code``. The way
down puts the codes back from the (encrypted) rewards, as the code before this sends them: it
needs the keys (referflow.storage.migrate's ``secret_keys``, else the environment) when a reward
has a code; the way up needs none.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeGuard

import sqlalchemy as sa
from alembic import op

from referflow.config import Settings
from referflow.domain.codes import gift_card_code_tail
from referflow.storage.crypto import Keyring
from referflow.storage.rekey import BATCH_SIZE

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

PURPOSE = 'rewards.code'  # the purpose of models.Reward.code
OUTBOX = sa.table('outbox', sa.column('id'), sa.column('type'), sa.column('payload', sa.JSON()))
HISTORY = sa.table('referral_history', sa.column('id'), sa.column('action'),
                   sa.column('data', sa.JSON()))
REWARDS = sa.table('rewards', sa.column('id'), sa.column('code'))
REWARD_EVENTS = ('reward.issued', 'reward.voided')  # data.reward
VOIDED_ENTRY, REWARDED_ENTRY = 'reward_voided', 'rewarded'  # data.reward; data.rewards[]
SIDES = 2  # a rewarded entry lists one reward per side (advocate, friend)

Dump = Mapping[str, object]  # a reward as events and the history keep it
Shown = Callable[[Dump], dict[str, object]]  # how a dump is to be kept instead


class Place(NamedTuple):
    """Where reward dumps are kept: a table's JSON column, the dumps' parent in it, and which
    rows have a dump with a given key."""

    table: sa.TableClause
    column: str
    inside: str | None  # an event's dumps are in its payload's data; an entry's in its data
    holding: Callable[[str], sa.ColumnElement[bool]]


def _events_holding(key: str) -> sa.ColumnElement[bool]:
    return sa.and_(OUTBOX.c.type.in_(REWARD_EVENTS), _present(OUTBOX.c.payload, 'data', 'reward', key))


def _entries_holding(key: str) -> sa.ColumnElement[bool]:
    data = HISTORY.c.data
    return sa.or_(sa.and_(HISTORY.c.action == VOIDED_ENTRY, _present(data, 'reward', key)),
                  sa.and_(HISTORY.c.action == REWARDED_ENTRY,
                          sa.or_(*(_present(data, 'rewards', i, key) for i in range(SIDES)))))


PLACES = (Place(OUTBOX, 'payload', 'data', _events_holding),
          Place(HISTORY, 'data', None, _entries_holding))


def upgrade() -> None:
    for place in PLACES:
        _rewrite(place, 'code', lambda _dumps: _masked)
    _compact_sqlite_after()


def downgrade() -> None:
    for place in PLACES:
        _rewrite(place, 'code_last4', _put_back)


def _masked(dump: Dump) -> dict[str, object]:
    """The dump with its code replaced, in its place, by the code's last characters."""
    code = dump['code']
    shown = gift_card_code_tail(code) if isinstance(code, str) and code else None
    return {('code_last4' if k == 'code' else k): (shown if k == 'code' else v)
            for k, v in dump.items()}


def _put_back(dumps: list[Dump]) -> Shown:
    """How the dumps of a batch get their rewards' codes back (decrypted) in place of the tail."""
    ids = [i for i in {d.get('id') for d in dumps} if isinstance(i, str)]
    found = op.get_bind().execute(sa.select(REWARDS.c.id, REWARDS.c.code).where(
        REWARDS.c.id.in_(ids), REWARDS.c.code.is_not(None))).all() if ids else []
    keyring = _keyring() if found else None  # no code to decrypt: no key needed
    codes = {row.id: keyring.decrypt(PURPOSE, row.code) for row in found if keyring is not None}

    def unmasked(dump: Dump) -> dict[str, object]:
        code = codes.get(dump.get('id'))
        return {('code' if k == 'code_last4' else k): (code if k == 'code_last4' else v)
                for k, v in dump.items()}
    return unmasked


def _rewrite(place: Place, key: str, shown_for: Callable[[list[Dump]], Shown]) -> None:
    """Rewrite the dumps that have ``key`` as ``shown_for`` (given a batch's dumps) keeps them,
    in id order, a batch at a time."""
    bind = op.get_bind()
    table = place.table
    write = sa.update(table).where(table.c.id == sa.bindparam('_id')).values(
        {place.column: sa.bindparam('_doc', type_=sa.JSON())})
    after = 0
    while True:
        rows = bind.execute(sa.select(table.c.id, table.c[place.column])
                            .where(place.holding(key), table.c.id > after)
                            .order_by(table.c.id).limit(BATCH_SIZE)).all()
        if not rows:
            return
        shown = shown_for([d for row in rows for d in _dumps(_parent(row[1], place), key)])
        changed = [{'_id': row.id, '_doc': doc} for row in rows
                   if (doc := _rewritten(row[1], place, key, shown)) is not None]
        if changed:
            bind.execute(write, changed)
        after = rows[-1].id


def _parent(doc: object, place: Place) -> Mapping[str, object] | None:
    parent = doc.get(place.inside) if place.inside and isinstance(doc, Mapping) else doc
    return parent if isinstance(parent, Mapping) else None


def _has(value: object, key: str) -> TypeGuard[Dump]:
    return isinstance(value, Mapping) and key in value


def _dumps(parent: Mapping[str, object] | None, key: str) -> list[Dump]:
    """The reward dumps under ``parent`` (its reward, its rewards) that have ``key``."""
    if parent is None:
        return []
    rewards = parent.get('rewards')
    candidates = [parent.get('reward'), *(rewards if isinstance(rewards, list) else [])]
    return [d for d in candidates if _has(d, key)]


def _rewritten(doc: object, place: Place, key: str, shown: Shown) -> dict[str, object] | None:
    """The document with its dumps that have ``key`` as ``shown`` keeps them; None: none has."""
    parent = _parent(doc, place)
    if parent is None or not _dumps(parent, key):
        return None
    out = {k: _kept(v, key, shown) if k in ('reward', 'rewards') else v for k, v in parent.items()}
    if place.inside is None:
        return out
    assert isinstance(doc, Mapping)
    return {**doc, place.inside: out}


def _kept(value: object, key: str, shown: Shown) -> object:
    """A reward, or a list of them, with each dump that has ``key`` as ``shown`` keeps it."""
    if isinstance(value, list):
        return [shown(v) if _has(v, key) else v for v in value]
    return shown(value) if _has(value, key) else value


def _present(column: sa.ColumnElement[object], *path: str | int) -> sa.ColumnElement[bool]:
    """Rows whose JSON document has ``path``, even with a null value (a perk's null code)."""
    if op.get_bind().dialect.name == 'sqlite':  # JSON_EXTRACT reads a null value and no key alike
        steps = ''.join(f'[{p}]' if isinstance(p, int) else f'."{p}"' for p in path)
        return sa.func.json_type(column, f'${steps}').is_not(None)
    return column[path].is_not(None)  # PostgreSQL's #>: NULL only where the path is missing


def _compact_sqlite_after() -> None:
    """Ask referflow.storage.migrate to VACUUM a SQLite file: free pages keep the plain codes."""
    config = op.get_context().config
    if config is not None and op.get_bind().dialect.name == 'sqlite':
        config.attributes['compact_sqlite'] = True


def _keyring() -> Keyring:
    config = op.get_context().config
    keys = config.attributes.get('secret_keys') if config is not None else None
    return Keyring(keys or Settings.from_env().secret_keys)
