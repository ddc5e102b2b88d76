"""cards: the reference as the card states it, and which fields were extracted from the abstract

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 04:45:00

Plain ADD COLUMN / DROP COLUMN (SQLite >= 3.35 has both), so the analyst views that read
``cards`` need no rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("reference_title", "reference_source", "reference_year", "extracted_fields")


def upgrade() -> None:
    op.add_column('cards', sa.Column('reference_title', sa.Text(), nullable=True,
                                     comment="Study title as the card states it (kb curate lint compares it with the record)"))
    op.add_column('cards', sa.Column('reference_source', sa.Text(), nullable=True,
                                     comment='Journal as the card states it'))
    op.add_column('cards', sa.Column('reference_year', sa.Integer(), nullable=True,
                                     comment='Publication year as the card states it'))
    op.add_column('cards', sa.Column('extracted_fields', sa.JSON(), server_default='[]', nullable=False,
                                     comment='Card fields whose text was extracted from the abstract and not yet '
                                             'rewritten by a curator (JSON array)'))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE cards DROP COLUMN {name}")
