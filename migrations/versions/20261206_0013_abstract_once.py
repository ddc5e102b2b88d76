"""the abstract stored once: abstract sections keep where their text is in studies.abstract, not
the text again; the view abstract_sections gives every section as the table did

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:00:00

Both databases (issue 16, the PostgreSQL target of 8 KB a study). ``studies.abstract`` is the
abstract's sections joined by blank lines (labels as 'LABEL: text'), and ``abstract_sections``
held each section's text again: about 1 KB a study twice (on PostgreSQL these rows stay under the
2 KB TOAST threshold, so that copy was not even compressed). In a baseline-like load three
abstracts of four are one unlabelled section without markup.

* The table ``abstract_sections`` becomes ``abstract_section_rows``: the same columns, ``text``
  nullable, and ``text_start`` / ``text_length``. A section whose text is found where the abstract
  has it keeps ``text`` NULL and its place (characters, from 1); any other keeps its text (and no
  place). An abstract that is one unlabelled, uncategorised section without markup has no row.
* The view ``abstract_sections`` (the table's old name and columns: pmid, position, label,
  nlm_category, text, text_markup) gives every section of every abstract, as the table did: the
  stored rows, ``text`` read from ``studies.abstract`` with ``substr`` where it is NULL; and for a
  study with an abstract and no stored row, the row position 0, no label, no category, ``text`` =
  ``studies.abstract``, ``text_markup`` NULL. The rule is exact: an abstract (``studies.abstract``
  not NULL) always comes from at least one section.

The rows are converted in chunks of studies into the new table (a fresh table: no dead rows left
behind on PostgreSQL), then the old table is dropped and the view created. From this revision on
kb writes this form (kb.store._section_rows, which this revision's ``_rows`` copies). Downgrade
writes the full rows back from the view.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 2000
TABLE_COMMENT = ("Stored abstract sections; read the view abstract_sections, which gives each section's text (here "
                 "NULL where it is part of studies.abstract) and adds the abstracts that are one unlabelled section "
                 "without markup")
OLD_TABLE_COMMENT = "Sections of a structured abstract (one row for an unstructured one)"
LABEL = "Section label as printed, e.g. 'METHODS'"
CATEGORY = "NLM category: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS, UNASSIGNED"
TEXT = "Section text, plain; NULL when it is substr(studies.abstract, text_start, text_length)"
OLD_TEXT = "Section text, plain"
MARKUP = ("Section text with inline markup kept; NULL when it has none (the same as text): "
          "read COALESCE(text_markup, text) from the view abstract_sections")
OLD_MARKUP = ("Section text with inline markup kept; NULL when it has none (the same as text): "
              "read COALESCE(text_markup, text)")
START = "Where the section's text starts in studies.abstract (characters, from 1); NULL when text holds it"
LENGTH = "Length of the section's text in studies.abstract (characters); NULL when text holds it"
COLUMNS = ("pmid", "position", "label", "nlm_category", "text", "text_markup", "text_start", "text_length")
VIEW = """
CREATE VIEW abstract_sections AS
SELECT r.pmid AS pmid, r.position AS position, r.label AS label, r.nlm_category AS nlm_category,
       COALESCE(r.text, substr((SELECT s.abstract FROM studies s WHERE s.pmid = r.pmid), r.text_start,
                               r.text_length)) AS text,
       r.text_markup AS text_markup
  FROM abstract_section_rows r
UNION ALL
SELECT s.pmid, 0, NULL, NULL, s.abstract, NULL
  FROM studies s
 WHERE s.abstract IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM abstract_section_rows r WHERE r.pmid = s.pmid)"""


def _rows(pmid: int, abstract: str | None, sections: list[tuple]) -> list[tuple]:
    """The stored rows of a study's sections ((position, label, nlm_category, text, text_markup) in
    order, markup NULL where it is the text), as kb.store._section_rows writes them at this revision."""
    abstract = abstract or ""
    if len(sections) == 1:
        position, label, category, text, markup = sections[0]
        if position == 0 and label is None and category is None and text and text == abstract \
                and markup in (None, text):
            return []
    rows = []
    at = 0
    for position, label, category, text, markup in sections:
        start = at + (len(label) + 2 if label else 0)
        markup = None if markup == text else markup
        if text and abstract[start:start + len(text)] == text:
            rows.append((pmid, position, label, category, None, markup, start + 1, len(text)))
        else:
            rows.append((pmid, position, label, category, text, markup, None, None))
        if label or text:
            at += len(f"{label}: {text}" if label else text) + 2
    return rows


def _create(name: str, key: str, *, new: bool) -> None:
    extra = [sa.Column("text_start", sa.Integer(), nullable=True, comment=START),
             sa.Column("text_length", sa.Integer(), nullable=True, comment=LENGTH)] if new else []
    op.create_table(
        name,
        sa.Column("pmid", sa.Integer(), nullable=False, comment="PubMed ID of the study"),
        sa.Column("position", sa.Integer(), nullable=False, comment="Order in the PubMed record, from 0"),
        sa.Column("label", sa.Text(), nullable=True, comment=LABEL),
        sa.Column("nlm_category", sa.String(length=32), nullable=True, comment=CATEGORY),
        sa.Column("text", sa.Text(), nullable=new, comment=TEXT if new else OLD_TEXT),
        sa.Column("text_markup", sa.Text(), nullable=True, comment=MARKUP if new else OLD_MARKUP),
        *extra,
        sa.ForeignKeyConstraint(["pmid"], ["studies.pmid"], name=f"fk_{key}_pmid_studies", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pmid", "position", name=f"pk_{key}"),
        comment=TABLE_COMMENT if new else OLD_TABLE_COMMENT,
    )


def _pmid_chunks(table: str):  # type: ignore[no-untyped-def]
    """(after, up_to) PMID ranges covering the rows of ``table``, _CHUNK studies each."""
    conn = op.get_bind()
    last = 0
    while True:
        top = conn.execute(sa.text(
            f"SELECT max(pmid) FROM (SELECT DISTINCT pmid FROM {table} WHERE pmid > :last "
            f"ORDER BY pmid LIMIT {_CHUNK}) x"), {"last": last}).scalar()
        if top is None:
            return
        yield last, top
        last = top


def upgrade() -> None:
    conn = op.get_bind()
    _create("abstract_section_rows", "abstract_section_rows", new=True)
    insert = sa.text(f"INSERT INTO abstract_section_rows ({', '.join(COLUMNS)}) "
                     f"VALUES ({', '.join(':' + c for c in COLUMNS)})")
    for after, up_to in _pmid_chunks("abstract_sections"):
        found = conn.execute(sa.text(
            "SELECT a.pmid, s.abstract, a.position, a.label, a.nlm_category, a.text, a.text_markup "
            "FROM abstract_sections a JOIN studies s ON s.pmid = a.pmid "
            "WHERE a.pmid > :after AND a.pmid <= :up_to ORDER BY a.pmid, a.position"),
            {"after": after, "up_to": up_to}).all()
        rows = []
        for pmid, group in groupby(found, key=lambda row: row[0]):
            group = list(group)
            rows += _rows(pmid, group[0][1], [tuple(row[2:]) for row in group])
        if rows:
            conn.execute(insert, [dict(zip(COLUMNS, row)) for row in rows])
    op.drop_table("abstract_sections")
    op.execute(VIEW)


def downgrade() -> None:
    # The full rows, from the view, into a table named as before 0013 (its constraints too).
    _create("abstract_sections_0012", "abstract_sections", new=False)
    for after, up_to in _pmid_chunks("studies"):
        op.execute(sa.text(
            "INSERT INTO abstract_sections_0012 (pmid, position, label, nlm_category, text, text_markup) "
            "SELECT pmid, position, label, nlm_category, text, text_markup FROM abstract_sections "
            "WHERE pmid > :after AND pmid <= :up_to").bindparams(after=after, up_to=up_to))
    op.execute("DROP VIEW abstract_sections")
    op.drop_table("abstract_section_rows")
    op.rename_table("abstract_sections_0012", "abstract_sections")
