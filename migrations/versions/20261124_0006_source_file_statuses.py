"""source_files.status: document 'running' and 'interrupted'

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 02:40:00

Only the column comment changes (SQLite keeps no comments, so nothing happens there).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "'complete', or 'failed' (the batches before the error are stored)"
NEW = ("'running' (or killed while running), 'complete', 'failed' or 'interrupted' (Ctrl-C); the batches "
       "stored before a stop are whole and kept")


def _comment(new: str, old: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # no comments in SQLite: a batch rebuild of the table would gain nothing
    op.alter_column('source_files', 'status', existing_type=sa.String(length=16), existing_nullable=False,
                    comment=new, existing_comment=old)


def upgrade() -> None:
    _comment(NEW, OLD)


def downgrade() -> None:
    _comment(OLD, NEW)
