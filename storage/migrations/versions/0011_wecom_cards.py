"""WeCom: the template cards members were sent, with the code that updates each once.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wecom_cards",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("response_code", sa.String(length=512), nullable=True),
        sa.Column("code_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "task_id", name=op.f("pk_wecom_cards")),
    )


def downgrade() -> None:
    op.drop_table("wecom_cards")
