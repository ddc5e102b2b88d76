"""compact storage: compressed record XML (SQLite), an external-content search index (SQLite),
abstract markup only where it differs, and the view study_xml

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 01:30:00

* SQLite: ``studies.raw_xml`` and ``study_revisions.previous_xml`` hold each record compressed
  (kb/pubmed/xmlzip.py: a format byte and a zlib stream with a preset dictionary; a BLOB value in
  the TEXT column, so no table is rebuilt). PostgreSQL keeps them as text: it compresses long
  values itself (TOAST), and analysts keep reading them in SQL.
* SQLite: ``study_search`` becomes an FTS5 table with external content: the index without a
  second copy of the text. Its columns are read from the view ``study_search_source`` (title and
  abstract from ``studies``, subjects from ``mesh_headings`` and ``keywords``, curated text and
  facets from the new table ``study_search_docs``, one row per indexed study, as indexed). The
  curated text and facets are copied from the old index, so this revision reads no other view.
* ``abstract_sections.text_markup`` is NULL where it equals ``text`` (most sections carry no
  markup): read ``COALESCE(text_markup, text)``.
* PostgreSQL: ``study_search`` gains ``pub_year`` and ``mesh_uis`` (the study's descriptor UIs), so
  that the --year and --mesh filters are checks on the index row rather than joins per match.
* The view ``study_xml(pmid, xml)``: the XML as text on both databases (SQLite: through
  ``kb_xml()``, a function kb registers on its connections).

Rows are converted in place. The space freed in a SQLite file is reused by later writes;
``VACUUM`` gives it back to the file system.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 2000
RAW_XML = ("The PubMed XML of the record as last fetched (provenance, re-parsing). SQLite: compressed "
           "(a BLOB); read it as text from the view study_xml")
PREVIOUS_XML = "The record's XML before the change (SQLite: compressed like studies.raw_xml; kb_xml() reads it)"
FTS_OPTIONS = "tokenize = 'porter unicode61 remove_diacritics 2'"
COLUMNS = "title, subjects, abstract, curated, facets"
SOURCE_VIEW = """
CREATE VIEW study_search_source AS
SELECT d.pmid AS pmid, s.title AS title,
       (SELECT group_concat(t, '; ') FROM (
            SELECT 0 AS k, mh.position AS p, mh.descriptor_name AS t FROM mesh_headings mh WHERE mh.pmid = s.pmid
            UNION ALL SELECT 1, kw.position, kw.keyword FROM keywords kw WHERE kw.pmid = s.pmid
            ORDER BY k, p) x) AS subjects,
       s.abstract AS abstract, d.curated AS curated, d.facets AS facets
  FROM study_search_docs d JOIN studies s ON s.pmid = d.pmid"""


def _convert_xml(table: str, key: str, column: str, convert, wanted: str) -> None:  # type: ignore[no-untyped-def]
    """Rewrite ``column`` chunk by chunk, only rows whose value is of SQLite type ``wanted``."""
    conn = op.get_bind()
    last = None
    while True:
        where = f"typeof({column}) = '{wanted}'" + ("" if last is None else f" AND {key} > :last")
        rows = conn.execute(
            sa.text(f"SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key} LIMIT {_CHUNK}"),
            {"last": last},
        ).all()
        if not rows:
            return
        conn.execute(
            sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"),
            [{"k": k, "v": convert(v)} for k, v in rows],
        )
        last = rows[-1][0]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("abstract_sections") as batch:
        batch.alter_column("text_markup", existing_type=sa.Text(), nullable=True,
                           comment="Section text with inline markup kept; NULL when it has none (the same as "
                                   "text): read COALESCE(text_markup, text)")
    op.execute("UPDATE abstract_sections SET text_markup = NULL WHERE text_markup = text")
    if dialect == "postgresql":
        op.alter_column("studies", "raw_xml", existing_type=sa.Text(), existing_nullable=True, comment=RAW_XML)
        op.alter_column("study_revisions", "previous_xml", existing_type=sa.Text(), existing_nullable=True,
                        comment=PREVIOUS_XML)
        op.execute("CREATE VIEW study_xml AS SELECT pmid, raw_xml AS xml FROM studies")
        # The filter values of each index row: --year and --mesh check the row the GIN index found.
        op.execute("ALTER TABLE study_search ADD COLUMN pub_year INTEGER, ADD COLUMN mesh_uis TEXT[]")
        op.execute("UPDATE study_search ss SET pub_year = s.pub_year, mesh_uis = ARRAY(SELECT mh.descriptor_ui "
                   "FROM mesh_headings mh WHERE mh.pmid = ss.pmid ORDER BY mh.position) FROM studies s "
                   "WHERE s.pmid = ss.pmid")
        op.execute("COMMENT ON COLUMN study_search.pub_year IS 'The study''s publication year (--year)'")
        op.execute("COMMENT ON COLUMN study_search.mesh_uis IS 'The study''s MeSH descriptor UIs (--mesh)'")
        return

    from kb.pubmed import xmlzip  # the stored format is versioned (its first byte), never changed

    _convert_xml("studies", "pmid", "raw_xml", xmlzip.pack, "text")
    _convert_xml("study_revisions", "id", "previous_xml", xmlzip.pack, "text")
    op.execute("CREATE VIEW study_xml AS SELECT pmid, kb_xml(raw_xml) AS xml FROM studies")

    op.execute("CREATE TABLE study_search_docs (pmid INTEGER NOT NULL PRIMARY KEY, curated TEXT, facets TEXT)")
    op.execute("INSERT INTO study_search_docs (pmid, curated, facets) SELECT rowid, curated, facets FROM study_search")
    op.execute("DROP TABLE study_search")
    op.execute(SOURCE_VIEW)
    op.execute(f"CREATE VIRTUAL TABLE study_search USING fts5({COLUMNS}, content = 'study_search_source', "
               f"content_rowid = 'pmid', {FTS_OPTIONS})")
    op.execute("INSERT INTO study_search (study_search) VALUES ('rebuild')")
    op.execute("INSERT INTO study_search (study_search) VALUES ('optimize')")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS study_xml")
    if dialect == "postgresql":
        op.execute("ALTER TABLE study_search DROP COLUMN pub_year, DROP COLUMN mesh_uis")
        op.alter_column("studies", "raw_xml", existing_type=sa.Text(), existing_nullable=True,
                        comment="The PubMed XML of the record as last fetched (provenance, re-parsing)")
        op.alter_column("study_revisions", "previous_xml", existing_type=sa.Text(), existing_nullable=True,
                        comment="The record's XML before the change")
    else:
        from kb.pubmed import xmlzip

        _convert_xml("studies", "pmid", "raw_xml", xmlzip.unpack, "blob")
        _convert_xml("study_revisions", "id", "previous_xml", xmlzip.unpack, "blob")
        op.execute(f"CREATE VIRTUAL TABLE study_search_old USING fts5({COLUMNS}, {FTS_OPTIONS})")
        op.execute(f"INSERT INTO study_search_old (rowid, {COLUMNS}) SELECT pmid, {COLUMNS} FROM study_search_source")
        op.execute("DROP TABLE study_search")
        op.execute("DROP VIEW study_search_source")
        op.execute("DROP TABLE study_search_docs")
        op.execute("ALTER TABLE study_search_old RENAME TO study_search")
        op.execute("INSERT INTO study_search (study_search) VALUES ('optimize')")
    op.execute("UPDATE abstract_sections SET text_markup = text WHERE text_markup IS NULL")
    with op.batch_alter_table("abstract_sections") as batch:
        batch.alter_column("text_markup", existing_type=sa.Text(), nullable=False,
                           comment="Section text with inline markup kept")
