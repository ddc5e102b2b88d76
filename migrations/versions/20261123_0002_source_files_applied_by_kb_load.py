"""source files applied by kb load

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:43:06.956807
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('source_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False, comment='File name, e.g. pubmed25n1275.xml.gz'),
    sa.Column('sha256', sa.String(length=64), nullable=False, comment="SHA-256 of the file's bytes"),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False, comment='File size'),
    sa.Column('status', sa.String(length=16), nullable=False, comment="'complete', or 'failed' (the batches before the error are stored)"),
    sa.Column('records', sa.Integer(), nullable=False, comment='Records stored from the file'),
    sa.Column('deletions', sa.Integer(), nullable=False, comment='DeleteCitation PMIDs applied'),
    sa.Column('error', sa.Text(), nullable=True, comment='The error that stopped the file, if any'),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False, comment='Start (UTC)'),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True, comment='End (UTC)'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_files')),
    comment='PubMed XML files applied by kb load (baseline and update files), in order'
    )
    with op.batch_alter_table('source_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_files_sha256'), ['sha256'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('source_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_files_sha256'))

    op.drop_table('source_files')

