"""Processed-update marks keep a sha256 digest of the key: every key fits on both databases.

PostgreSQL refused keys over 128 characters where SQLite took them. Existing marks are
rewritten to the digest of their key, so an update processed before the upgrade is still
recognised after it.

Revision ID: 0005
Revises: 0004
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "UPDATE processed_updates SET key = encode(sha256(convert_to(key, 'UTF8')), 'hex')"
        )
    else:
        _digest_keys_in_python(bind)
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(length=128), type_=sa.String(length=64),
            existing_nullable=False,
        )  # fmt: skip


def _digest_keys_in_python(bind: sa.Connection) -> None:
    """SQLite has no sha256(): rewrite the keys a batch at a time (a key is never 64 hex
    characters before this migration, so a digest is never digested again)."""
    table = sa.table("processed_updates", sa.column("channel"), sa.column("key"))
    last: tuple[str, str] = ("", "")
    while True:
        rows = bind.execute(
            sa.select(table.c.channel, table.c.key)
            .where(sa.tuple_(table.c.channel, table.c.key) > sa.tuple_(*last))
            .order_by(table.c.channel, table.c.key)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for channel, key in rows:
            if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
                continue
            bind.execute(
                sa.update(table)
                .where(table.c.channel == channel, table.c.key == key)
                .values(key=hashlib.sha256(key.encode()).hexdigest())
            )
        last = tuple(rows[-1])


def downgrade() -> None:
    # The original keys cannot be recovered; digests stay valid marks under the wider column.
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(length=64), type_=sa.String(length=128),
            existing_nullable=False,
        )  # fmt: skip
