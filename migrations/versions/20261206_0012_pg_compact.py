"""compact PostgreSQL storage: record XML compressed by kb (bytea), a GIN search index without a
pending list

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
* The GIN index of ``study_search`` is written without a pending list (``fastupdate = off``): a
  pending list is scanned whole by every search until it is merged, and after the merge its pages
  stay in the file; writing each row into the index directly left an index a fifth of the size
  after a 3,000-record load.

Rows are converted in place, in chunks (each row's old value is set to NULL as its new value is
written, so the old text becomes dead rows that VACUUM, or autovacuum, frees for reuse).
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
    op.execute(f"ALTER INDEX {_GIN} SET (fastupdate = off)")
    op.execute(f"SELECT gin_clean_pending_list('{_GIN}'::regclass)")  # what the pending list held
    # The --type filter value of each index row, as the view study_overview has it.
    op.execute("ALTER TABLE study_search ADD COLUMN study_type TEXT")
    op.execute("UPDATE study_search ss SET study_type = o.study_type FROM study_overview o WHERE o.pmid = ss.pmid")
    op.execute("COMMENT ON COLUMN study_search.study_type IS 'The study''s type as study_overview has it (--type)'")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from kb.pubmed import xmlzip

    op.execute("ALTER TABLE study_search DROP COLUMN study_type")
    op.execute(f"ALTER INDEX {_GIN} RESET (fastupdate)")
    _convert("studies", "pmid", "raw_xml", "TEXT", lambda v: xmlzip.unpack(bytes(v)), RAW_XML_0011)
    _convert("study_revisions", "id", "previous_xml", "TEXT", lambda v: xmlzip.unpack(bytes(v)), PREVIOUS_XML_0011)
    op.execute("CREATE VIEW study_xml AS SELECT pmid, raw_xml AS xml FROM studies")
