"""full-text search: study_search (SQLite FTS5 table; PostgreSQL tsvector + GIN), filled

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 23:50:00

One index row per study over its title, MeSH descriptor names and keywords ("subjects"), abstract
and curated text (card text fields, findings, limitations, notes); studies PubMed deleted are left
out. kb keeps it in sync in the
transactions that write those tables (kb/search.py: reindex_studies, reindex_all); this revision
creates it and fills it for the studies already stored.

* SQLite: FTS5 virtual table, rowid = PMID, tokenizer 'porter unicode61 remove_diacritics 2';
  text columns title, subjects, abstract, curated, and facets: filter tokens (year2019,
  design + the study_overview design without spaces or hyphens, mesh + descriptor UI).
  FTS5 keeps its data in shadow tables study_search_data, _idx, _content, _docsize, _config.
* PostgreSQL: table study_search(pmid, search_vector tsvector) with a GIN index; weights title A,
  subjects B, abstract and curated text C ('english' configuration).

The table is not in kb.models: migrations/env.py leaves study_search* out of autogenerate.
The SQL is written out here (not imported from kb) so this revision stays as it was run.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CARD_TEXT = (
    "COALESCE(c.headline, '') || ' ' || COALESCE(c.quick_summary, '') || ' ' || "
    "COALESCE(c.what_research_found, '') || ' ' || COALESCE(c.who_was_studied, '') || ' ' || "
    "COALESCE(c.how_long, '') || ' ' || COALESCE(c.what_they_took, '') || ' ' || "
    "COALESCE(c.key_findings, '') || ' ' || COALESCE(c.study_design, '') || ' ' || "
    "COALESCE(c.dosage_administration, '') || ' ' || COALESCE(c.results_efficacy, '') || ' ' || "
    "COALESCE(c.clinical_relevance, '') || ' ' || COALESCE(c.curated_study_type, '')"
)
ITEMS = (
    "SELECT 0 AS k, i.position AS p, COALESCE(i.label || ': ', '') || i.text AS t FROM findings i "
    "WHERE i.pmid = s.pmid "
    "UNION ALL SELECT 1 AS k, i.position AS p, COALESCE(i.label || ': ', '') || i.text AS t FROM limitations i "
    "WHERE i.pmid = s.pmid "
    "UNION ALL SELECT 2 AS k, i.position AS p, COALESCE(i.label || ': ', '') || i.text AS t FROM notes i "
    "WHERE i.pmid = s.pmid"
)
SUBJECTS = (
    "SELECT 0 AS k, mh.position AS p, mh.descriptor_name AS t FROM mesh_headings mh WHERE mh.pmid = s.pmid "
    "UNION ALL SELECT 1, kw.position, kw.keyword FROM keywords kw WHERE kw.pmid = s.pmid"
)

SQLITE_FIELDS = f"""
SELECT s.pmid, s.title,
       (SELECT group_concat(t, '; ') FROM ({SUBJECTS} ORDER BY k, p) x) AS subjects,
       s.abstract,
       NULLIF(TRIM({CARD_TEXT} || ' ' || COALESCE((SELECT group_concat(t, ' ') FROM ({ITEMS} ORDER BY k, p) y), '')),
              '') AS curated,
       COALESCE('year' || s.pub_year || ' ', '') || 'design' ||
       replace(replace((SELECT o.study_design FROM study_overview o WHERE o.pmid = s.pmid), ' ', ''), '-', '') ||
       COALESCE(' ' || (SELECT group_concat('mesh' || lower(mh.descriptor_ui), ' ') FROM mesh_headings mh
                        WHERE mh.pmid = s.pmid), '') AS facets
  FROM studies s LEFT JOIN cards c ON c.pmid = s.pmid
 WHERE NOT s.is_deleted"""

PG_FIELDS = f"""
SELECT s.pmid, s.title,
       (SELECT string_agg(t, '; ' ORDER BY k, p) FROM ({SUBJECTS}) x) AS subjects,
       s.abstract,
       NULLIF(TRIM({CARD_TEXT} || ' ' || COALESCE((SELECT string_agg(t, ' ' ORDER BY k, p) FROM ({ITEMS}) y), '')),
              '') AS curated
  FROM studies s LEFT JOIN cards c ON c.pmid = s.pmid
 WHERE NOT s.is_deleted"""

PG_VECTOR = (
    "setweight(to_tsvector('english', COALESCE(f.title, '')), 'A') || "
    "setweight(to_tsvector('english', COALESCE(f.subjects, '')), 'B') || "
    "setweight(to_tsvector('english', COALESCE(f.abstract, '')), 'C') || "
    "setweight(to_tsvector('english', COALESCE(f.curated, '')), 'C')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
CREATE TABLE study_search (
    pmid INTEGER NOT NULL,
    search_vector TSVECTOR NOT NULL,
    CONSTRAINT pk_study_search PRIMARY KEY (pmid),
    CONSTRAINT fk_study_search_pmid_studies FOREIGN KEY (pmid) REFERENCES studies (pmid) ON DELETE CASCADE
)""")
        op.execute("CREATE INDEX ix_study_search_search_vector ON study_search USING gin (search_vector)")
        op.execute("COMMENT ON TABLE study_search IS 'Full-text search index, one row per study (kb search); "
                   "kept in sync by ingest and curation, rebuilt by kb search --reindex'")
        op.execute("COMMENT ON COLUMN study_search.pmid IS 'The study'")
        op.execute("COMMENT ON COLUMN study_search.search_vector IS 'tsvector (english): title weight A, MeSH "
                   "descriptors and keywords B, abstract and curated text C'")
        op.execute(f"INSERT INTO study_search (pmid, search_vector) SELECT f.pmid, {PG_VECTOR} FROM ({PG_FIELDS}) f")
        op.execute("ANALYZE study_search")
    else:
        op.execute("CREATE VIRTUAL TABLE study_search USING fts5(title, subjects, abstract, curated, facets, "
                   "tokenize = 'porter unicode61 remove_diacritics 2')")
        op.execute(f"INSERT INTO study_search (rowid, title, subjects, abstract, curated, facets) {SQLITE_FIELDS}")
        op.execute("INSERT INTO study_search (study_search) VALUES ('optimize')")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS study_search")  # FTS5 drops its shadow tables with it
