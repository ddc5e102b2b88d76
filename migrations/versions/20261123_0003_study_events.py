"""study events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:03:36.575371
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('study_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False, comment='When kb saw it (UTC)'),
    sa.Column('kind', sa.String(length=32), nullable=False, comment='What happened (see the table comment)'),
    sa.Column('detail', sa.Text(), nullable=True, comment="More about it, e.g. the notice's PMID"),
    sa.Column('refresh_run_id', sa.Integer(), nullable=True, comment='The refresh that saw it, if any'),
    sa.CheckConstraint("kind IN ('retracted', 'expression_of_concern', 'erratum', 'updated', 'status_cleared', 'deleted', 'missing', 'found_again')", name=op.f('ck_study_events_kind')),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_study_events_pmid_studies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['refresh_run_id'], ['refresh_runs.id'], name=op.f('fk_study_events_refresh_run_id_refresh_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_events')),
    comment='Things curators must hear about a study, as they happen: evidence status changes (retracted, expression_of_concern, erratum, updated, status_cleared), PubMed deletions, PMIDs E-utilities no longer returns (missing, found_again). Content changes are in study_revisions.'
    )
    with op.batch_alter_table('study_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_events_pmid'), ['pmid'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('study_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_events_pmid'))
        batch_op.drop_index(batch_op.f('ix_study_events_at'))

    op.drop_table('study_events')

