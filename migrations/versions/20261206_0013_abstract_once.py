"""the abstract stored once: sections that are the whole abstract are not stored again; the view
abstract_sections gives every section as before

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:00:00

Both databases (issue 16, the PostgreSQL target of 8 KB a study). Most abstracts are one section
without a label or NLM category, and its text is ``studies.abstract`` itself: three of four
studies of a baseline-like load, each storing about 1 KB of text twice (on PostgreSQL
``abstract_sections`` rows stay under the 2 KB TOAST threshold, so that copy is not even
compressed).

* The table ``abstract_sections`` becomes ``abstract_section_rows`` (same columns, ``text``
  nullable), holding every section except such a whole-abstract section: one without markup
  (``text_markup`` NULL) has no row; one with markup keeps its row with ``text`` NULL.
* The view ``abstract_sections`` (the old table's name and columns: pmid, position, label,
  nlm_category, text, text_markup) gives every section of every abstract, as the table did: the
  stored rows (``text`` NULL read as ``studies.abstract``), and for a study with an abstract and no
  stored row, the row position 0, no label, no category, ``text`` = ``studies.abstract``,
  ``text_markup`` NULL. A study without an abstract (``studies.abstract`` NULL) has no such row,
  so the rule is exact: an abstract always comes from at least one non-empty section.

The rows are copied into the new table in chunks of studies (a fresh table: no dead rows left
behind on PostgreSQL), then the old table is dropped and the view created. kb writes the new
form from this revision on (kb.store._section_rows). Downgrade writes the full rows back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 2000
TABLE_COMMENT = ("Stored abstract sections; read the view abstract_sections, which adds the abstracts that are "
                 "one unlabelled section without markup (stored only as studies.abstract)")
OLD_TABLE_COMMENT = "Sections of a structured abstract (one row for an unstructured one)"
LABEL = "Section label as printed, e.g. 'METHODS'"
CATEGORY = "NLM category: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS, UNASSIGNED"
TEXT = "Section text, plain; NULL when the section is the whole abstract (studies.abstract)"
OLD_TEXT = "Section text, plain"
MARKUP = ("Section text with inline markup kept; NULL when it has none (the same as text): "
          "read COALESCE(text_markup, text)")
VIEW = """
CREATE VIEW abstract_sections AS
SELECT r.pmid AS pmid, r.position AS position, r.label AS label, r.nlm_category AS nlm_category,
       COALESCE(r.text, (SELECT s.abstract FROM studies s WHERE s.pmid = r.pmid)) AS text,
       r.text_markup AS text_markup
  FROM abstract_section_rows r
UNION ALL
SELECT s.pmid, 0, NULL, NULL, s.abstract, NULL
  FROM studies s
 WHERE s.abstract IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM abstract_section_rows r WHERE r.pmid = s.pmid)"""
# A section that is the whole abstract: the study's only section, at position 0, unlabelled,
# uncategorised, its text non-empty and equal to studies.abstract.
WHOLE = ("(a.position = 0 AND a.label IS NULL AND a.nlm_category IS NULL AND a.text <> '' AND a.text = s.abstract "
         "AND NOT EXISTS (SELECT 1 FROM {old} b WHERE b.pmid = a.pmid AND b.position <> 0))")


def _create(name: str, *, text_nullable: bool, comment: str, text_comment: str) -> None:
    op.create_table(
        name,
        sa.Column("pmid", sa.Integer(), nullable=False, comment="PubMed ID of the study"),
        sa.Column("position", sa.Integer(), nullable=False, comment="Order in the PubMed record, from 0"),
        sa.Column("label", sa.Text(), nullable=True, comment=LABEL),
        sa.Column("nlm_category", sa.String(length=32), nullable=True, comment=CATEGORY),
        sa.Column("text", sa.Text(), nullable=text_nullable, comment=text_comment),
        sa.Column("text_markup", sa.Text(), nullable=True, comment=MARKUP),
        sa.ForeignKeyConstraint(["pmid"], ["studies.pmid"], name=f"fk_{name}_pmid_studies", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pmid", "position", name=f"pk_{name}"),
        comment=comment,
    )


def _copy(source: str, select_sql: str) -> None:
    """Run ``select_sql`` (an INSERT ... SELECT with a ``{range}`` condition on ``a.pmid``) chunk by
    chunk of the studies that have rows in ``source``."""
    conn = op.get_bind()
    last = 0
    while True:
        top = conn.execute(sa.text(
            f"SELECT max(pmid) FROM (SELECT DISTINCT pmid FROM {source} WHERE pmid > :last "
            f"ORDER BY pmid LIMIT {_CHUNK}) x"), {"last": last}).scalar()
        if top is None:
            return
        conn.execute(sa.text(select_sql.format(range="a.pmid > :last AND a.pmid <= :top")), {"last": last, "top": top})
        last = top


def upgrade() -> None:
    _create("abstract_section_rows", text_nullable=True, comment=TABLE_COMMENT, text_comment=TEXT)
    whole = WHOLE.format(old="abstract_sections")
    _copy("abstract_sections",
          "INSERT INTO abstract_section_rows (pmid, position, label, nlm_category, text, text_markup) "
          f"SELECT a.pmid, a.position, a.label, a.nlm_category, CASE WHEN {whole} THEN NULL ELSE a.text END, "
          "CASE WHEN a.text_markup = a.text THEN NULL ELSE a.text_markup END "
          "FROM abstract_sections a JOIN studies s ON s.pmid = a.pmid "
          f"WHERE {{range}} AND NOT ({whole} AND COALESCE(a.text_markup, a.text) = a.text) "
          "ORDER BY a.pmid, a.position")
    op.drop_table("abstract_sections")
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW abstract_sections")
    _create("abstract_sections", text_nullable=False, comment=OLD_TABLE_COMMENT, text_comment=OLD_TEXT)
    _copy("studies",
          "INSERT INTO abstract_sections (pmid, position, label, nlm_category, text, text_markup) "
          "SELECT a.pmid, a.position, a.label, a.nlm_category, COALESCE(a.text, s.abstract), a.text_markup "
          "FROM abstract_section_rows a JOIN studies s ON s.pmid = a.pmid WHERE {range} "
          "UNION ALL SELECT a.pmid, 0, NULL, NULL, a.abstract, NULL FROM studies a "
          "WHERE {range} AND a.abstract IS NOT NULL "
          "AND NOT EXISTS (SELECT 1 FROM abstract_section_rows r WHERE r.pmid = a.pmid)")
    op.drop_table("abstract_section_rows")
