"""cards drafted by a language model: card_generations, generated fields and checks, source 'generated'

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 01:10:00

``findings``, ``limitations`` and ``notes`` accept ``source = 'generated'``. PostgreSQL replaces
the CHECK constraint; SQLite cannot alter one, so each table is rebuilt from its own CREATE
statement with the new list (rows copied, ids kept), with the views that read it dropped first
and re-created afterwards from their stored SQL (whatever revision wrote them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEM_TABLES = ("findings", "limitations", "notes")
OLD_SOURCES = "'curator', 'extracted'"
NEW_SOURCES = "'curator', 'extracted', 'generated'"
OLD_COMMENT = "'curator' (written by a person) or 'extracted' (from the abstract)"
NEW_COMMENT = "'curator' (written by a person), 'extracted' (from the abstract) or 'generated' (by a language model)"


def upgrade() -> None:
    op.create_table(
        'card_generations',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='When the call finished (UTC)'),
        sa.Column('model_requested', sa.Text(), nullable=False, comment='Model asked for (--model / KB_LLM_MODEL)'),
        sa.Column('model_answered', sa.Text(), nullable=True, comment='Model that answered, as the reply names it'),
        sa.Column('prompt_version', sa.String(length=64), nullable=False, comment='Prompt file, e.g. card-v1'),
        sa.Column('prompt_sha256', sa.String(length=64), nullable=False,
                  comment='SHA-256 of the prompt and the JSON schema'),
        sa.Column('record_content_hash', sa.String(length=64), nullable=True,
                  comment='content_hash of the PubMed record the card was generated from'),
        sa.Column('options', sa.JSON(), nullable=False,
                  comment='Call options: timeout, tries, attempts made, model options (JSON)'),
        sa.Column('input_tokens', sa.Integer(), nullable=True, comment='Tokens in, as the model reports them'),
        sa.Column('output_tokens', sa.Integer(), nullable=True, comment='Tokens out, as the model reports them'),
        sa.Column('duration_ms', sa.Integer(), nullable=True, comment='Time of the call, retries included'),
        sa.Column('raw_reply', sa.Text(), nullable=True, comment="The model's reply, as received"),
        sa.Column('card', sa.JSON(), nullable=True, comment='The card parsed from the reply (JSON)'),
        sa.Column('checks', sa.JSON(), nullable=True, comment='Guardrail results for the parsed card (JSON)'),
        sa.Column('status', sa.String(length=16), nullable=False,
                  comment='stored (a draft card was saved), failed (the call failed) or invalid (the reply was '
                          'not a card)'),
        sa.Column('error', sa.Text(), nullable=True, comment='Why the call failed or the reply was refused'),
        sa.Column('card_revision', sa.Integer(), nullable=True, comment='Card revision the generation saved'),
        sa.CheckConstraint("status IN ('stored', 'failed', 'invalid')", name=op.f('ck_card_generations_status')),
        sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_card_generations_pmid_studies'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_card_generations')),
        comment='One row per language-model call of kb curate generate: what was asked, what came back, the '
                'checks and the outcome',
    )
    with op.batch_alter_table('card_generations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_generations_pmid_created_at'), ['pmid', 'created_at'], unique=False)
    op.add_column('cards', sa.Column(
        'generated_fields', sa.JSON(), server_default='[]', nullable=False,
        comment='Card fields a language model wrote (kb curate generate) and no curator has rewritten (JSON array)'))
    op.add_column('cards', sa.Column(
        'checks', sa.JSON(), nullable=True,
        comment='Guardrail results for the generated text, computed when the card was saved (JSON; empty when '
                'nothing on the card is generated)'))
    op.add_column('cards', sa.Column(
        'check_overrides', sa.JSON(), server_default='[]', nullable=False,
        comment='Failed checks a curator overrode to publish: check, author, time (JSON array)'))
    _item_sources(OLD_SOURCES, NEW_SOURCES, NEW_COMMENT)


def downgrade() -> None:
    for table in ITEM_TABLES:
        op.execute(f"UPDATE {table} SET source = 'extracted' WHERE source = 'generated'")
    _item_sources(NEW_SOURCES, OLD_SOURCES, OLD_COMMENT)
    for name in ("check_overrides", "checks", "generated_fields"):
        op.execute(f"ALTER TABLE cards DROP COLUMN {name}")
    with op.batch_alter_table('card_generations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_generations_pmid_created_at'))
    op.drop_table('card_generations')


def _item_sources(old: str, new: str, comment: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        for table in ITEM_TABLES:
            op.alter_column(table, "source", comment=comment, existing_type=sa.String(16), existing_nullable=False)
            op.drop_constraint(op.f(f"ck_{table}_source"), table, type_="check")
            op.create_check_constraint(op.f(f"ck_{table}_source"), table, f"source IN ({new})")
        return
    views = bind.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid").all()
    for name, _ in views:
        op.execute(f'DROP VIEW "{name}"')
    for table in ITEM_TABLES:
        create = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar_one()
        check = f"CHECK (source IN ({old}))"
        if check not in create:
            raise RuntimeError(f"unexpected definition of {table}: {create}")
        temporary = f"_kb_new_{table}"
        renamed = re.sub(rf'^CREATE TABLE "?{table}"? ', f"CREATE TABLE {temporary} ", create)
        op.execute(renamed.replace(check, f"CHECK (source IN ({new}))"))
        op.execute(f"INSERT INTO {temporary} SELECT * FROM {table}")
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {temporary} RENAME TO {table}")
    for _, sql in views:
        op.execute(sql)
