"""study_overview.study_design becomes study_type; refresh_runs.read_at and read_by

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 01:30:00

* ``study_overview.study_design`` (the category from the publication types) is renamed
  ``study_type``: ``cards.study_design`` is the card's "Study Design" paragraph, and one name must
  not mean two things. A view holds no data: it is dropped and created again with the new column
  name; every value is the same.
* ``refresh_runs.read_at`` / ``read_by``: ``kb report changes --mark-read`` records that a person
  read the changes up to a run; ``kb report changes`` then starts from there.

The SQL is written out here (not imported from kb) so this revision stays as it was run.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Publication types to one study type, most specific evidence first (PubMed UIs), as in 0004.
DESIGN = """
    (SELECT CASE MIN(CASE pt.ui
                WHEN 'D017418' THEN 1 WHEN 'D000078182' THEN 2 WHEN 'D016449' THEN 3
                WHEN 'D018848' THEN 4 WHEN 'D016430' THEN 4 WHEN 'D017426' THEN 4 WHEN 'D017427' THEN 4
                WHEN 'D017428' THEN 4 WHEN 'D017429' THEN 4 WHEN 'D064888' THEN 5 WHEN 'D002363' THEN 6
                WHEN 'D016454' THEN 7 WHEN 'D016422' THEN 8 WHEN 'D016421' THEN 8 WHEN 'D016420' THEN 8
                ELSE 9 END)
            WHEN 1 THEN 'meta-analysis' WHEN 2 THEN 'systematic review'
            WHEN 3 THEN 'randomized controlled trial' WHEN 4 THEN 'clinical trial'
            WHEN 5 THEN 'observational study' WHEN 6 THEN 'case report' WHEN 7 THEN 'review'
            WHEN 8 THEN 'commentary' ELSE 'other' END
     FROM publication_types pt WHERE pt.pmid = s.pmid)"""


def _major_mesh(dialect: str) -> str:
    if dialect == "postgresql":
        return ("(SELECT string_agg(mh.descriptor_name, '; ' ORDER BY mh.position) FROM mesh_headings mh "
                "WHERE mh.pmid = s.pmid AND mh.is_major)")
    return ("(SELECT group_concat(descriptor_name, '; ') FROM (SELECT mh.descriptor_name FROM mesh_headings mh "
            "WHERE mh.pmid = s.pmid AND mh.is_major ORDER BY mh.position))")


def _create_study_overview(design_column: str) -> None:
    dialect = op.get_bind().dialect.name
    op.execute(f"""
CREATE VIEW study_overview AS
SELECT s.pmid,
       s.title,
       s.journal_iso_abbrev AS journal,
       s.pub_year,
       (SELECT COALESCE(a.collective_name, a.last_name || COALESCE(' ' || a.initials, ''))
          FROM authors a WHERE a.pmid = s.pmid AND NOT a.is_investigator
          ORDER BY a.position LIMIT 1) AS first_author,
       (SELECT count(*) FROM authors a WHERE a.pmid = s.pmid AND NOT a.is_investigator) AS author_count,
       {DESIGN} AS {design_column},
       {_major_mesh(dialect)} AS major_mesh,
       s.evidence_status,
       s.is_retracted,
       s.is_deleted,
       s.is_missing,
       s.is_placeholder,
       s.doi,
       s.pmcid,
       c.status AS card_status,
       c.needs_review AS card_needs_review,
       c.curated_study_type
  FROM studies s LEFT JOIN cards c ON c.pmid = s.pmid
""")


def upgrade() -> None:
    op.execute("DROP VIEW study_overview")
    _create_study_overview("study_type")
    op.add_column("refresh_runs", sa.Column(
        "read_at", sa.DateTime(timezone=True), nullable=True,
        comment="When a person marked the changes up to this run read (kb report changes --mark-read)"))
    op.add_column("refresh_runs", sa.Column("read_by", sa.Text(), nullable=True, comment="Who marked them read"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("COMMENT ON COLUMN refresh_runs.counts IS 'Per-topic counts (found, new, linked, changed, "
                   "retracted, failed) and the tracked-study pass, as JSON'")


def downgrade() -> None:
    for name in ("read_by", "read_at"):
        op.execute(f"ALTER TABLE refresh_runs DROP COLUMN {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("COMMENT ON COLUMN refresh_runs.counts IS 'Per-topic counts (new, changed, retracted, failed) "
                   "as JSON'")
    op.execute("DROP VIEW study_overview")
    _create_study_overview("study_design")
