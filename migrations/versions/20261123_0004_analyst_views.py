"""analyst views: study_overview, card_items, topic_studies_overview

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:40:00

The SQL is written out here (not imported from kb) so this revision stays as it was run.
Documentation of every view column: kb/views.py (rendered into docs/schema.md).
Note for later revisions: SQLite batch migrations rebuild tables; drop these views before a
batch operation on a table they read, and create them again after.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Publication types to one study design, most specific evidence first (PubMed UIs).
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


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # SQLite keeps no comments
        op.execute("COMMENT ON COLUMN topic_studies.topic_id IS 'The topic'")
        op.execute("COMMENT ON COLUMN topic_studies.pmid IS 'The study'")
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
       {DESIGN} AS study_design,
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
    parts = []
    for kind, table in (("finding", "findings"), ("limitation", "limitations"), ("note", "notes")):
        parts.append(f"""
SELECT '{kind}' AS kind, i.id AS item_id, i.pmid, i.position, i.audience, i.label, i.text, i.source, i.author,
       i.updated_at, s.title AS study_title, s.pub_year, s.evidence_status, c.status AS card_status
  FROM {table} i JOIN studies s ON s.pmid = i.pmid LEFT JOIN cards c ON c.pmid = i.pmid""")
    op.execute("CREATE VIEW card_items AS" + "\nUNION ALL".join(parts))
    op.execute("""
CREATE VIEW topic_studies_overview AS
SELECT t.name AS topic, ts.topic_id, ts.pmid, ts.is_excluded, ts.added_at, s.title, s.pub_year,
       s.evidence_status, s.is_retracted
  FROM topic_studies ts JOIN topics t ON t.id = ts.topic_id JOIN studies s ON s.pmid = ts.pmid
""")


def downgrade() -> None:
    for view in ("topic_studies_overview", "card_items", "study_overview"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("COMMENT ON COLUMN topic_studies.topic_id IS NULL")
        op.execute("COMMENT ON COLUMN topic_studies.pmid IS NULL")
