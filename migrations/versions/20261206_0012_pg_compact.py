"""compact PostgreSQL storage: record XML compressed by kb (bytea), search index rows with the
vector out of line and study_type, a GIN index without a pending list

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 04:00:00

PostgreSQL only (SQLite is unchanged):

* ``studies.raw_xml`` and ``study_revisions.previous_xml`` become ``bytea`` holding each record
  as kb.pubmed.xmlzip packs it (a format byte and a zstd frame with the dictionary trained on
  PubMed records), as SQLite stores them since 0011: about 1.8 KB a record, where PostgreSQL's own
  compression (pglz or lz4, no dictionary) kept 3.8 to 4.6 KB. Storage EXTERNAL: PostgreSQL does
  not try to compress them again. PostgreSQL cannot decompress zstd in SQL, so the view
  ``study_xml`` is dropped there: read the XML through kb (kb.models.Study.raw_xml, or
  ``kb.pubmed.xmlzip.unpack`` on the column's bytes).
* ``study_search`` keeps its vectors out of line: a search reads the row of every match (GIN
  gives row addresses only) and sorts them by PMID, and a row with its vector inline is about
  1.1 KB, five times one without. PostgreSQL moves a value out of line only from rows longer than
  about 2 KB (TOAST_TUPLE_THRESHOLD; the table option toast_tuple_target does not lower it), so
  each row carries ``toast_pad``, 2,100 spaces stored compressed (storage MAIN), which puts every
  row over it; ``search_vector`` has storage EXTERNAL (moved out first, not compressed: tsvectors
  hardly compress). The table takes about as much space as before; a broad search reads a fifth
  of the pages. The row also gains ``study_type`` (as the view study_overview has it): --type is a
  check on the row, not a join of the view per match.
* The GIN index of ``study_search`` is written without a pending list (``fastupdate = off``): a
  pending list is scanned whole by every search until it is merged, and after the merge its pages
  stay in the file; writing each row into the index directly left an index a fifth of the size
  after a 3,000-record load.

The XML is converted in place, in chunks (each row's old value is set to NULL as its new value is
written, so the old text becomes dead rows that VACUUM, or autovacuum, frees for reuse);
``study_search`` is emptied and filled again from a copy of its rows, and its GIN index rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 2000
_GIN = "ix_study_search_search_vector"
RAW_XML = ("The PubMed XML of the record as last fetched (provenance, re-parsing), compressed by kb "
           "(kb.pubmed.xmlzip). SQLite: read it as text from the view study_xml")
PREVIOUS_XML = "The record's XML before the change (compressed like studies.raw_xml)"
TOAST_PAD = 2100
TOAST_PAD_COMMENT = ("Not data: spaces (stored compressed, a few dozen bytes) that make every row longer than "
                     "PostgreSQL''s TOAST threshold, so that search_vector is kept out of line and the rows a "
                     "search scans stay small")
# As 0011 left them.
RAW_XML_0011 = ("The PubMed XML of the record as last fetched (provenance, re-parsing). SQLite: compressed "
                "(a BLOB); read it as text from the view study_xml")
PREVIOUS_XML_0011 = "The record's XML before the change (SQLite: compressed like studies.raw_xml; kb_xml() reads it)"


def _convert(table: str, key: str, column: str, new_type: str, convert: Callable[[object], object],
             comment: str) -> None:
    """Replace ``column`` by a column of ``new_type`` holding ``convert(value)``, chunk by chunk."""
    conn = op.get_bind()
    tmp = f"{column}_new"
    op.execute(f"ALTER TABLE {table} ADD COLUMN {tmp} {new_type}")
    last = None
    while True:
        where = f"{column} IS NOT NULL" + ("" if last is None else f" AND {key} > :last")
        rows = conn.execute(
            sa.text(f"SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key} LIMIT {_CHUNK}"),
            {"last": last},
        ).all()
        if not rows:
            break
        conn.execute(
            sa.text(f"UPDATE {table} SET {tmp} = :v, {column} = NULL WHERE {key} = :k"),
            [{"k": k, "v": convert(v)} for k, v in rows],
        )
        last = rows[-1][0]
    op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.execute(f"ALTER TABLE {table} RENAME COLUMN {tmp} TO {column}")
    if new_type == "BYTEA":
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL")
    op.alter_column(table, column, comment=comment)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from kb.pubmed import xmlzip  # the stored format is versioned (its first byte), never changed

    op.execute("DROP VIEW IF EXISTS study_xml")
    _convert("studies", "pmid", "raw_xml", "BYTEA", xmlzip.pack, RAW_XML)
    _convert("study_revisions", "id", "previous_xml", "BYTEA", xmlzip.pack, PREVIOUS_XML)
    # study_search is filled again (its rows as they are, with study_type added): a row gets its
    # vector out of line only as it is inserted with the pad uncompressed. The GIN index is built
    # afterwards, in one pass, and written row by row from then on (fastupdate off).
    op.execute("CREATE TEMPORARY TABLE study_search_0011 ON COMMIT DROP AS "
               "SELECT pmid, search_vector, pub_year, mesh_uis FROM study_search")
    op.execute(f"DROP INDEX {_GIN}")
    op.execute("TRUNCATE study_search")
    op.execute("ALTER TABLE study_search ADD COLUMN study_type TEXT, "
               f"ADD COLUMN toast_pad TEXT NOT NULL DEFAULT repeat(' ', {TOAST_PAD})")
    op.execute("ALTER TABLE study_search ALTER COLUMN search_vector SET STORAGE EXTERNAL, "
               "ALTER COLUMN mesh_uis SET STORAGE MAIN, ALTER COLUMN toast_pad SET STORAGE MAIN")
    op.execute("INSERT INTO study_search (pmid, search_vector, pub_year, mesh_uis, study_type) "
               "SELECT t.pmid, t.search_vector, t.pub_year, t.mesh_uis, o.study_type "
               "FROM study_search_0011 t LEFT JOIN study_overview o ON o.pmid = t.pmid ORDER BY t.pmid")
    op.execute(f"CREATE INDEX {_GIN} ON study_search USING gin (search_vector) WITH (fastupdate = off)")
    op.execute("COMMENT ON COLUMN study_search.study_type IS 'The study''s type as study_overview has it (--type)'")
    op.execute(f"COMMENT ON COLUMN study_search.toast_pad IS '{TOAST_PAD_COMMENT}'")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from kb.pubmed import xmlzip

    op.execute("ALTER TABLE study_search DROP COLUMN study_type, DROP COLUMN toast_pad")
    op.execute("ALTER TABLE study_search ALTER COLUMN search_vector SET STORAGE EXTENDED, "
               "ALTER COLUMN mesh_uis SET STORAGE EXTENDED")
    op.execute(f"ALTER INDEX {_GIN} RESET (fastupdate)")
    _convert("studies", "pmid", "raw_xml", "TEXT", lambda v: xmlzip.unpack(bytes(v)), RAW_XML_0011)
    _convert("study_revisions", "id", "previous_xml", "TEXT", lambda v: xmlzip.unpack(bytes(v)), PREVIOUS_XML_0011)
    op.execute("CREATE VIEW study_xml AS SELECT pmid, raw_xml AS xml FROM studies")
