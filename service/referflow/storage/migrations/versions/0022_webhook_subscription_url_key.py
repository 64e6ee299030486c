"""webhook subscriptions: one active subscription per endpoint of a program

``webhook_subscriptions.url_key`` holds the URL's normal form (``domain.urls.normal_url``: scheme
and host in lower case, no default port, no fragment); a partial unique index on
``(program_id, url_key) WHERE active`` makes a second active subscription of one endpoint fail,
even when two creates run at once. Removed and disabled subscriptions (``active`` false) leave the
index, so an endpoint can be subscribed again after either.

Existing duplicates are kept (they are delivered to as before; removing one is the owner's call):
of the active subscriptions of a program that share a normal form, the oldest gets the key and
the others keep NULL, which a unique index never compares. Keeping them under a suffixed key
would work as well, but NULL says plainly "no key": nothing can match it by accident. A stored
URL that no longer parses keeps NULL too (the sender refuses it anyway). The way down drops the
index and the column.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from referflow.domain.urls import BadUrl, normal_url

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

INDEX = 'ix_webhook_subscriptions_program_id_url_key'
ONLY_ACTIVE = sa.text('active')
SUBSCRIPTIONS = sa.table(
    'webhook_subscriptions', sa.column('id', sa.String(32)), sa.column('program_id', sa.String(32)),
    sa.column('url', sa.String(2000)), sa.column('url_key', sa.String(2048)),
    sa.column('active', sa.Boolean), sa.column('created_at', sa.DateTime))


def upgrade() -> None:
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url_key', sa.String(length=2048), nullable=True))
    bind = op.get_bind()
    subs = SUBSCRIPTIONS.c
    rows = bind.execute(sa.select(subs.id, subs.program_id, subs.url, subs.active)
                        .order_by(subs.created_at, subs.id)).all()
    keys: list[dict[str, str]] = []
    taken: set[tuple[str, str]] = set()
    for sub_id, program_id, url, active in rows:
        key = _key(url)
        if key is not None and active:
            if (program_id, key) in taken:
                continue  # a later duplicate: kept, without the key
            taken.add((program_id, key))
        if key is not None:
            keys.append({'sid': sub_id, 'key': key})
    if keys:  # subscriptions: a few per program, one statement for them all
        bind.execute(SUBSCRIPTIONS.update().where(subs.id == sa.bindparam('sid'))
                     .values(url_key=sa.bindparam('key')), keys)
    op.create_index(INDEX, 'webhook_subscriptions', ['program_id', 'url_key'], unique=True,
                    sqlite_where=ONLY_ACTIVE, postgresql_where=ONLY_ACTIVE)


def _key(url: str) -> str | None:
    try:
        return normal_url(url)
    except BadUrl:
        return None


def downgrade() -> None:
    op.drop_index(INDEX, table_name='webhook_subscriptions')
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('url_key')
