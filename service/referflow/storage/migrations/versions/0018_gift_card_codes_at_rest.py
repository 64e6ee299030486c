"""gift-card codes no longer in the clear

A gift-card code is a bearer secret. ``gift_cards.code`` gives way to ``code_hash`` (a keyed hash
of the normalised code, under the hashing key, as e-mails are: the lookup, unique),
``code_encrypted`` (a Fernet token, storage/crypto.py, re-encrypted by `referflow secrets rotate`)
and ``code_last4`` (what lists show). ``rewards.code`` (the codes the issuers handed out, ledger
cards' among them) becomes an encrypted column too. The outbox keeps a card's last characters
only (a webhook gets the code from the card when it is sent): the codes in the events already
there give way to ``code_last4``. Existing rows are converted here, a batch at a time, and back
on the way down (but for the events' codes: they stay out). The keys come from referflow.storage.migrate (``secret_keys``,
``hash_key``), else from the environment; a database without cards or codes needs none.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from referflow.config import Settings
from referflow.domain.codes import gift_card_code_key, gift_card_code_tail
from referflow.storage.crypto import Keyring
from referflow.storage.rekey import BATCH_SIZE, Change, SecretColumn, decrypting, reencrypting, rewrite

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

PURPOSE = 'gift_cards.code'  # the purpose of models.GiftCard.code
REWARD_CODES = SecretColumn('rewards', ('id',), 'code', 'rewards.code')
CARD_EVENTS = ('reward.issued', 'reward.redeemed')
OUTBOX = sa.table('outbox', sa.column('id'), sa.column('type'), sa.column('payload', sa.JSON()))
CARDS = sa.table('gift_cards', sa.column('id'), sa.column('code'), sa.column('code_hash'),
                 sa.column('code_encrypted'), sa.column('code_last4'))


def upgrade() -> None:
    with op.batch_alter_table('gift_cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('code_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('code_last4', sa.String(length=4), nullable=True))
    if _any('gift_cards'):
        _fill(_hidden_code(_keyring(), _hash_key()))
    with op.batch_alter_table('gift_cards', schema=None) as batch_op:
        for name, kind in (('code_hash', sa.String(length=64)), ('code_encrypted', sa.Text()),
                           ('code_last4', sa.String(length=4))):
            batch_op.alter_column(name, existing_type=kind, nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_gift_cards_code_hash'), ['code_hash'])
        batch_op.drop_constraint(batch_op.f('uq_gift_cards_code'), type_='unique')
        batch_op.drop_column('code')
    _retype_reward_codes(sa.String(length=100), sa.Text())
    _rewrite_reward_codes(reencrypting)
    _strip_event_codes()
    _compact_sqlite_after()


def downgrade() -> None:
    _rewrite_reward_codes(decrypting)
    _retype_reward_codes(sa.Text(), sa.String(length=100))
    with op.batch_alter_table('gift_cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sa.String(length=32), nullable=True))
    if _any('gift_cards'):
        keyring = _keyring()
        _fill(lambda row: {'code': keyring.decrypt(PURPOSE, row.code_encrypted)})
    with op.batch_alter_table('gift_cards', schema=None) as batch_op:
        batch_op.alter_column('code', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_gift_cards_code'), ['code'])
        batch_op.drop_constraint(batch_op.f('uq_gift_cards_code_hash'), type_='unique')
        batch_op.drop_column('code_last4')
        batch_op.drop_column('code_encrypted')
        batch_op.drop_column('code_hash')


def _hidden_code(keyring: Keyring, hash_key: str) -> Callable[[sa.Row[object]], dict[str, str]]:
    def hide(row: sa.Row[object]) -> dict[str, str]:
        return {'code_hash': gift_card_code_key(hash_key, row.code),
                'code_encrypted': keyring.encrypt(PURPOSE, row.code),
                'code_last4': gift_card_code_tail(row.code)}
    return hide


def _fill(values: Callable[[sa.Row[object]], dict[str, str]]) -> None:
    """Write ``values(row)`` into every card, in id order, a batch at a time."""
    bind = op.get_bind()
    write = sa.update(CARDS).where(CARDS.c.id == sa.bindparam('_id'))
    after = None
    while True:
        query = sa.select(CARDS).order_by(CARDS.c.id).limit(BATCH_SIZE)
        if after is not None:
            query = query.where(CARDS.c.id > after)
        rows = bind.execute(query).all()
        if not rows:
            return
        bind.execute(write.values({k: sa.bindparam(k) for k in values(rows[0])}),
                     [{'_id': row.id, **values(row)} for row in rows])
        after = rows[-1].id


def _strip_event_codes() -> None:
    """Replace the code of the gift card in each card event by its last characters."""
    bind = op.get_bind()
    write = sa.update(OUTBOX).where(OUTBOX.c.id == sa.bindparam('_id')).values(
        payload=sa.bindparam('_payload', type_=sa.JSON()))
    after = 0
    while True:
        rows = bind.execute(sa.select(OUTBOX).where(OUTBOX.c.type.in_(CARD_EVENTS), OUTBOX.c.id > after)
                            .order_by(OUTBOX.c.id).limit(BATCH_SIZE)).all()
        if not rows:
            return
        changed = [{'_id': row.id, '_payload': payload} for row in rows
                   if (payload := _without_code(row.payload)) is not None]
        if changed:
            bind.execute(write, changed)
        after = rows[-1].id


def _without_code(payload: object) -> dict[str, object] | None:
    """The payload with its card's code replaced by the tail; None when it holds no code."""
    data = payload.get('data') if isinstance(payload, dict) else None
    card = data.get('gift_card') if isinstance(data, dict) else None
    if not isinstance(card, dict) or not isinstance(card.get('code'), str):
        return None
    assert isinstance(payload, dict) and isinstance(data, dict)
    shown = {k: v for k, v in card.items() if k != 'code'}
    shown['code_last4'] = gift_card_code_tail(card['code'])
    return {**payload, 'data': {**data, 'gift_card': shown}}


def _retype_reward_codes(before: sa.types.TypeEngine, after: sa.types.TypeEngine) -> None:
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.alter_column('code', existing_type=before, type_=after, existing_nullable=True)


def _rewrite_reward_codes(change: Callable[[Keyring, str], Change]) -> None:
    if not op.get_bind().scalar(sa.select(sa.func.count()).select_from(sa.table('rewards'))
                                .where(sa.column('code').is_not(None))):
        return  # nothing to encrypt: no key needed
    for _batch in rewrite(op.get_bind(), REWARD_CODES, change(_keyring(), REWARD_CODES.purpose)):
        pass


def _any(table: str) -> bool:
    return bool(op.get_bind().scalar(sa.select(sa.func.count()).select_from(sa.table(table))))


def _compact_sqlite_after() -> None:
    """Ask referflow.storage.migrate to VACUUM a SQLite file: free pages keep the plain codes."""
    config = op.get_context().config
    if config is not None and op.get_bind().dialect.name == 'sqlite':
        config.attributes['compact_sqlite'] = True


def _keyring() -> Keyring:
    config = op.get_context().config
    keys = config.attributes.get('secret_keys') if config is not None else None
    return Keyring(keys or Settings.from_env().secret_keys)


def _hash_key() -> str:
    """The key of the keyed hashes: the one the app finds cards with (REFERFLOW_HASH_KEY...)."""
    config = op.get_context().config
    key = config.attributes.get('hash_key') if config is not None else None
    return key or Settings.from_env().secret_key
