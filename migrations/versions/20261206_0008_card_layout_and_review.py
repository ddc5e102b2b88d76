"""cards: the technical Limitations paragraph and who reviewed the card; card_revisions: status
from and to, and no foreign key (a card's history outlives a deleted card and its placeholder)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 01:10:00

Issue 12. No card content is migrated: cards stored before render in the new layout as they are
(their technical limitation bullets stay rows of ``limitations``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PMID_OLD, PMID_NEW = "The study", "The study (PMID); kept after the card is deleted"
ACTION_OLD, ACTION_NEW = "edit, import, status, ...", "edit, import, status, review, revert, delete, draft, ..."


def upgrade() -> None:
    op.add_column('cards', sa.Column('technical_limitations', sa.Text(), nullable=True,
                                     comment="Technical analysis: limitations (paragraphs; kb's earlier bullets stay "
                                             "in limitations)"))
    op.add_column('cards', sa.Column('reviewed_by', sa.Text(), nullable=True,
                                     comment='Who last marked the card reviewed (kb curate review)'))
    op.add_column('cards', sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True,
                                     comment='When the card was last marked reviewed (UTC)'))
    with op.batch_alter_table('card_revisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_from', sa.String(length=16), nullable=True,
                                      comment="The card's status before this revision"))
        batch_op.add_column(sa.Column('status_to', sa.String(length=16), nullable=True,
                                      comment="The card's status after this revision (NULL: the card was deleted)"))
        batch_op.drop_constraint(batch_op.f('fk_card_revisions_pmid_studies'), type_='foreignkey')
        batch_op.alter_column('pmid', existing_type=sa.Integer(), existing_nullable=False,
                              comment=PMID_NEW, existing_comment=PMID_OLD)
        batch_op.alter_column('action', existing_type=sa.String(length=32), existing_nullable=False,
                              comment=ACTION_NEW, existing_comment=ACTION_OLD)


def downgrade() -> None:
    # revisions of studies that no longer exist cannot keep a foreign key: they go with it
    op.execute("DELETE FROM card_revisions WHERE pmid NOT IN (SELECT pmid FROM studies)")
    with op.batch_alter_table('card_revisions', schema=None) as batch_op:
        batch_op.alter_column('action', existing_type=sa.String(length=32), existing_nullable=False,
                              comment=ACTION_OLD, existing_comment=ACTION_NEW)
        batch_op.alter_column('pmid', existing_type=sa.Integer(), existing_nullable=False,
                              comment=PMID_OLD, existing_comment=PMID_NEW)
        batch_op.create_foreign_key(batch_op.f('fk_card_revisions_pmid_studies'), 'studies', ['pmid'], ['pmid'],
                                    ondelete='RESTRICT')
        batch_op.drop_column('status_to')
        batch_op.drop_column('status_from')
    for name in ('reviewed_at', 'reviewed_by', 'technical_limitations'):
        op.execute(f"ALTER TABLE cards DROP COLUMN {name}")
