"""Full-text search over studies: title, abstract, MeSH, keywords and curated text, ranked.

One index row per study, in the table ``study_search`` (created by migration 0005):

* **SQLite**: an FTS5 virtual table, ``rowid`` = PMID, tokenizer ``porter unicode61
  remove_diacritics 2``, text columns ``title``, ``subjects`` (MeSH descriptor names and
  keywords), ``abstract`` and ``curated`` (the card's text, findings, limitations and notes),
  ranked with ``bm25()`` weighted 5 / 2 / 1 / 1; snippets from ``snippet()``. It is an
  *external-content* table (migration 0011): it keeps the index only, and reads a study's text,
  for snippets and when a row is taken out, from the view ``study_search_source`` (title and
  abstract from ``studies``, subjects from ``mesh_headings`` and ``keywords``, curated text and
  facets from ``study_search_docs``, which keeps them as they were indexed, one row per indexed
  study). The PubMed text is not stored twice; a row is taken out (:func:`unindex_studies`)
  before its PubMed rows change. A fifth column,
  ``facets``, holds filter tokens (``year2019``, ``designreview``, ``meshd006801``): a filter is
  an FTS5 AND, so the filtered set is a doclist intersection and only it is ranked. User terms are
  limited to the text columns, and ``facets`` weighs 0 in the ranking.
* **PostgreSQL**: ``study_search(pmid, search_vector)``, a ``tsvector`` with a GIN index, built
  with ``setweight(to_tsvector('english', …))``: title A, subjects B, abstract and curated text C.
  Ranked with ``ts_rank_cd(…, 2)``: the default weights 1.0 / 0.4 / 0.2 give the same 5 / 2 / 1
  ratios, and normalisation 2 (by document length) brings it closest to bm25 (about 9 in 10 of
  the top five agree on the test corpus). Snippets from ``ts_headline``. Filters are SQL, on
  columns of the index row (``pub_year``, ``mesh_uis``, ``study_type``). The vector is stored out
  of line (migration 0012: ``toast_pad`` puts every row over PostgreSQL's TOAST threshold), so
  the rows a search reads for every match are about 200 bytes, not 1.1 KB. A search is a few short
  statements: the tsquery; PostgreSQL's estimate of its matches; the best of the candidates (for a
  search estimated very broad only the matches above a PMID floor are read, see
  :func:`_pg_candidates_floor`); the details and snippets of those. The two that do the work have a
  text that does not depend on the words (the tsquery is a parameter), so each is planned once per
  connection and always the same way.

Scores are comparable within one database only. Studies PubMed deleted are not in the index.

**Keeping it in sync.** The index is written in the same transaction as the data it reflects:
:func:`kb.store.store_prepared` calls :func:`reindex_studies` for the new and changed PMIDs of each
batch, :func:`kb.store.mark_deleted` for the deleted ones, and code that writes curated text
(cards, findings, limitations, notes) must call :func:`reindex_studies` for the studies it
touched, in its own transaction. :func:`reindex_all` (``kb search --reindex``) rebuilds it all.
Topic membership is not indexed (it changes outside these paths): ``--topic`` is a SQL filter.

**Query syntax** (the same on both databases; PostgreSQL's ``websearch_to_tsquery`` syntax): words
(all must match), ``"quoted phrases"``, ``OR`` between alternatives, ``-word`` / ``-"phrase"`` to
exclude. The text is parsed here, once, and rendered for each database: every term is quoted, so
no user input can produce an FTS5 syntax error, and the query is always a bound parameter. Words
that are only English stop words are dropped (PostgreSQL drops them; SQLite is made to agree).
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.orm import Session

from kb.batches import chunked
from kb.errors import InputError
from kb.topics import topic_id

TABLE = "study_search"

# Documentation of the index, rendered into docs/schema.md by kb.schema_docs.
INDEX_DOC: tuple[str, dict[str, str]] = (
    "Full-text search index, one row per study (studies PubMed deleted left out), kept in sync by "
    "ingest/load/refresh and by curation; used by `kb search`, rebuilt by `kb search --reindex`. On SQLite "
    "an FTS5 table (columns below) whose `rowid` is the PMID: query it with `study_search MATCH '…'`, rank "
    "with `bm25(study_search, 5, 2, 1, 1, 0)`. It holds the index only (external content): its columns are "
    "read from the view `study_search_source`, which takes title and abstract from `studies`, subjects from "
    "`mesh_headings` and `keywords`, and the curated text and facets from `study_search_docs` (one row per "
    "indexed study, as indexed). Never write these tables yourself: `kb search --reindex` rebuilds them. "
    "On PostgreSQL the table `study_search(pmid, search_vector)`: "
    "a `tsvector` (title weight A, subjects B, abstract and curated text C) with a GIN index, queried with "
    "`search_vector @@ websearch_to_tsquery('english', '…')`, and the study's `pub_year`, `mesh_uis` "
    "(descriptor UIs) and `study_type` (as study_overview has it) for the filters; `toast_pad` is not data "
    "(it keeps the vector out of line, migration 0012).",
    {
        "title": "Article title",
        "subjects": "MeSH descriptor names and keywords, '; '-separated",
        "abstract": "Abstract",
        "curated": "Curated text: the card's text fields, then findings, limitations and notes",
        "facets": "Filter tokens, not for text search: year2019, design + the study_overview study_type without "
        "spaces or hyphens (designrandomizedcontrolledtrial), mesh + descriptor UI (meshd006801)",
    },
)

# Column weights: title highest, then MeSH/keywords, then abstract and curated text; facets 0.
_BM25 = "bm25(study_search, 5.0, 2.0, 1.0, 1.0, 0.0)"
_TEXT_COLUMNS = "{title subjects abstract curated}"
_PG_CONFIG = "english"
_SNIPPET_TOKENS = 24
# A search that matches more studies than this ranks only the RANK_CANDIDATES matches with the
# highest PMIDs (the most recent records): ranking every match of a word such as "patients" in a
# million studies would take seconds. Both databases pick the same candidates, so they still agree.
# 1,000 since issue 16 (10,000 before): on PostgreSQL ranking a candidate costs about 9 µs (its
# vector read from TOAST, then ts_rank_cd), 90 ms for 10,000; with 2,000 the p95 of
# scripts/bench_search.py at 100,000 studies was 41 ms on a quiet machine (51 ms shared), with
# 1,000 26 ms (40 ms shared).
RANK_CANDIDATES = 1_000
# Studies PubMed deleted (DeleteCitation) are not in the index: kb.store.mark_deleted reindexes them.
_SEARCHABLE = "NOT s.is_deleted"

# --------------------------------------------------------------------------------------------
# What is indexed: per study, built in SQL (set-based) for any set of PMIDs.
# --------------------------------------------------------------------------------------------

_CARD_TEXT_COLUMNS = (
    "headline", "quick_summary", "what_research_found", "who_was_studied", "how_long", "what_they_took",
    "key_findings", "study_design", "dosage_administration", "results_efficacy", "clinical_relevance",
    "curated_study_type",
)
# Card columns added after migration 0005 filled the index: joined only when set, so that a card
# without them is indexed exactly as 0005 indexed it.
_LATER_CARD_TEXT_COLUMNS = ("technical_limitations",)


def _subjects_sql(dialect: str) -> str:
    """The subjects of study ``s``: MeSH descriptor names, then keywords, '; '-separated."""
    union = (
        "SELECT 0 AS k, mh.position AS p, mh.descriptor_name AS t FROM mesh_headings mh WHERE mh.pmid = s.pmid "
        "UNION ALL SELECT 1, kw.position, kw.keyword FROM keywords kw WHERE kw.pmid = s.pmid"
    )
    if dialect == "postgresql":
        return f"(SELECT string_agg(t, '; ' ORDER BY k, p) FROM ({union}) x)"
    return f"(SELECT group_concat(t, '; ') FROM ({union} ORDER BY k, p) x)"


def _fields_sql(dialect: str, where: str, *, text_columns: bool = True) -> str:
    """SELECT pmid, title, subjects, abstract, curated (and on SQLite facets) for ``where``;
    with ``text_columns=False`` only pmid, curated and facets (SQLite's study_search_docs)."""
    if dialect == "postgresql":
        def agg(sep: str) -> str:
            return f"string_agg(t, '{sep}' ORDER BY k, p)"
        order = ""
    else:
        def agg(sep: str) -> str:
            return f"group_concat(t, '{sep}')"
        order = " ORDER BY k, p"
    items = " UNION ALL ".join(
        f"SELECT {k} AS k, i.position AS p, COALESCE(i.label || ': ', '') || i.text AS t "
        f"FROM {table} i WHERE i.pmid = s.pmid"
        for k, table in enumerate(("findings", "limitations", "notes"))
    )
    card = " || ' ' || ".join(f"COALESCE(c.{col}, '')" for col in _CARD_TEXT_COLUMNS)
    card += "".join(f" || COALESCE(' ' || c.{col}, '')" for col in _LATER_CARD_TEXT_COLUMNS)
    curated = f"NULLIF(TRIM({card} || ' ' || COALESCE((SELECT {agg(' ')} FROM ({items}{order}) y), '')), '')"
    facets = ""
    if dialect != "postgresql":
        facets = (
            ", COALESCE('year' || s.pub_year || ' ', '') || 'design' || "
            "replace(replace((SELECT o.study_type FROM study_overview o WHERE o.pmid = s.pmid), ' ', ''), '-', '')"
            " || COALESCE(' ' || (SELECT group_concat('mesh' || lower(mh.descriptor_ui), ' ') FROM mesh_headings mh "
            "WHERE mh.pmid = s.pmid), '') AS facets"
        )
    texts = f"s.title, {_subjects_sql(dialect)} AS subjects, s.abstract, " if text_columns else ""
    return (
        f"SELECT s.pmid, {texts}{curated} AS curated{facets} "
        f"FROM studies s LEFT JOIN cards c ON c.pmid = s.pmid WHERE {where}"
    )


# A tsvector holds at most 1 MB, and one can take up to 6 bytes per character of text (a CJK
# character and a space make one 12-byte lexeme): on PostgreSQL the first 40,000 characters of each
# of the four columns are indexed, so that no study's text (a card with megabytes in a bullet, say)
# can make its index row, and with it the write, fail.
_PG_INDEXED_CHARS = 40_000


def _pg_vector_sql() -> str:
    """The tsvector of a row of :func:`_fields_sql` (aliased ``f``)."""
    parts = [
        f"setweight(to_tsvector('{_PG_CONFIG}', left(COALESCE(f.{col}, ''), {_PG_INDEXED_CHARS})), '{weight}')"
        for col, weight in (("title", "A"), ("subjects", "B"), ("abstract", "C"), ("curated", "C"))
    ]
    return " || ".join(parts)


_SQLITE_COLUMNS = "title, subjects, abstract, curated, facets"
_PG_INSERT = "INSERT INTO study_search (pmid, search_vector, pub_year, mesh_uis, study_type) "
# PostgreSQL: the filter values of each index row (migrations 0011 and 0012), so that --year,
# --mesh and --type are checks on the row the GIN index found, not joins per match.
_PG_FILTER_COLUMNS = (
    ", (SELECT s2.pub_year FROM studies s2 WHERE s2.pmid = f.pmid), "
    "ARRAY(SELECT mh.descriptor_ui FROM mesh_headings mh WHERE mh.pmid = f.pmid ORDER BY mh.position), "
    "(SELECT o.study_type FROM study_overview o WHERE o.pmid = f.pmid)"
)


def _conn(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def _serialise(conn: Connection) -> None:
    """PostgreSQL: index writers take kb.store's transaction lock (re-entrant, so free inside
    store_prepared), so two transactions never rebuild the same row at once. SQLite writers
    already hold the database's write lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('kb.store'))"))


def reindex_studies(session: Session | Connection, pmids: Iterable[int]) -> int:
    """Rebuild the index rows of ``pmids`` in the caller's transaction; returns how many were given.

    Call it after any write that changes indexed text: PubMed records (done by
    :func:`kb.store.store_prepared`), deletions (:func:`kb.store.mark_deleted`) and curated text
    (cards, findings, limitations, notes). PMIDs that are not stored, or that PubMed deleted, lose
    their index row. Set-based: a few statements per chunk of PMIDs (SQLite) or for all of them
    (PostgreSQL).

    On SQLite a study's title, subjects and abstract are read from the PubMed tables when its
    index row is taken out, so a writer that changes them (only :mod:`kb.store`) calls
    :func:`unindex_studies` *before* it does.
    """
    ids = sorted({int(p) for p in pmids})
    if not ids:
        return 0
    conn = _conn(session)
    _serialise(conn)
    if conn.dialect.name == "postgresql":
        params = {"pmids": ids}
        conn.execute(text("DELETE FROM study_search WHERE pmid = ANY(:pmids)"), params)
        conn.execute(
            text(
                f"{_PG_INSERT}SELECT f.pmid, {_pg_vector_sql()}{_PG_FILTER_COLUMNS} "
                f"FROM ({_fields_sql('postgresql', 's.pmid = ANY(:pmids) AND ' + _SEARCHABLE)}) f"
            ),
            params,
        )
        return len(ids)
    _sqlite_unindex(conn, ids)
    docs = text(
        "INSERT INTO study_search_docs (pmid, curated, facets) "
        + _fields_sql("sqlite", "s.pmid IN :pmids AND " + _SEARCHABLE, text_columns=False)
    ).bindparams(bindparam("pmids", expanding=True))
    index = text(
        f"INSERT INTO study_search (rowid, {_SQLITE_COLUMNS}) SELECT pmid, {_SQLITE_COLUMNS} "
        "FROM study_search_source WHERE pmid IN :pmids"
    ).bindparams(bindparam("pmids", expanding=True))
    for chunk in chunked(ids):
        conn.execute(docs, {"pmids": chunk})
        conn.execute(index, {"pmids": chunk})
    return len(ids)


def unindex_studies(session: Session | Connection, pmids: Iterable[int]) -> None:
    """Take ``pmids`` out of the index, in the caller's transaction, before their PubMed rows
    change (:func:`reindex_studies` puts them back after).

    SQLite's index (FTS5 with external content, see :data:`INDEX_DOC`) keeps no copy of the text,
    so removing a row means handing FTS5 the text it indexed: title, subjects and abstract as they
    are still stored, the curated text and facets as ``study_search_docs`` kept them.
    """
    ids = sorted({int(p) for p in pmids})
    if not ids:
        return
    conn = _conn(session)
    _serialise(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("DELETE FROM study_search WHERE pmid = ANY(:pmids)"), {"pmids": ids})
    else:
        _sqlite_unindex(conn, ids)


def _sqlite_unindex(conn: Connection, ids: list[int]) -> None:
    remove = text(
        f"INSERT INTO study_search (study_search, rowid, {_SQLITE_COLUMNS}) "
        f"SELECT 'delete', pmid, {_SQLITE_COLUMNS} FROM study_search_source WHERE pmid IN :pmids"
    ).bindparams(bindparam("pmids", expanding=True))
    forget = text("DELETE FROM study_search_docs WHERE pmid IN :pmids").bindparams(bindparam("pmids", expanding=True))
    for chunk in chunked(ids):
        conn.execute(remove, {"pmids": chunk})
        conn.execute(forget, {"pmids": chunk})


def reindex_all(session: Session | Connection) -> int:
    """Rebuild the whole index from the tables, in the caller's transaction; returns the row count."""
    conn = _conn(session)
    _serialise(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("DELETE FROM study_search"))
        fields = _fields_sql("postgresql", _SEARCHABLE)
        conn.execute(text(f"{_PG_INSERT}SELECT f.pmid, {_pg_vector_sql()}{_PG_FILTER_COLUMNS} FROM ({fields}) f"))
        return int(conn.execute(text("SELECT count(*) FROM study_search")).scalar_one())
    conn.execute(text("DELETE FROM study_search_docs"))
    conn.execute(text("INSERT INTO study_search_docs (pmid, curated, facets) "
                      + _fields_sql("sqlite", _SEARCHABLE, text_columns=False)))
    # 'rebuild' drops the whole index and reads every row of the content view again.
    conn.execute(text("INSERT INTO study_search (study_search) VALUES ('rebuild')"))
    conn.execute(text("INSERT INTO study_search (study_search) VALUES ('optimize')"))  # one b-tree segment
    return int(conn.execute(text("SELECT count(*) FROM study_search_docs")).scalar_one())


def is_index_table(name: str) -> bool:
    """True for the index table and its FTS5 shadow tables (``study_search_data``, …): not in
    kb.models, left out of autogenerate and of the generic table documentation."""
    return name == TABLE or name.startswith(TABLE + "_")


# --------------------------------------------------------------------------------------------
# The query language: parsed once, rendered for FTS5 and for websearch_to_tsquery
# --------------------------------------------------------------------------------------------

# PostgreSQL's english.stop (the 'english' text search configuration drops these words).
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves what which who whom this that these those am is
are was were be been being have has had having do does did doing a an the and but if or because as until
while of at by for with about against between into through during before after above below to from up
down in out on off over under again further then once here there when where why how all any both each
few more most other some such no nor not only own same so than too very s t can will just don should now
""".split())

MAX_QUERY_CHARS = 10_000  # longer input is cut here, before parsing
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Term:
    """A word or a phrase: its tokens (lower-case letters and digits); excluded when ``negated``.

    ``raw`` is the text as typed when PostgreSQL's parser may read it otherwise than as these
    tokens: it indexes ``COVID-19`` as 'covid', '-19' but ``covid 19`` as 'covid', '19'. FTS5 sees
    both as "covid 19"; on PostgreSQL the term matches either reading.
    """

    tokens: tuple[str, ...]
    negated: bool = False
    raw: str | None = None


@dataclass(frozen=True)
class ParsedQuery:
    """Alternatives (OR) of groups of terms that must all match (AND; negated ones must not)."""

    groups: tuple[tuple[Term, ...], ...]

    def __bool__(self) -> bool:
        return bool(self.groups)

    def fts5(self) -> str:
        """An FTS5 MATCH expression: every token inside double quotes, so always valid syntax.

        Negations become one ``NOT (a OR b …)`` per group: FTS5 flattens OR and AND chains but
        nests NOT, and it limits the expression depth.
        """
        rendered = []
        for group in self.groups:
            pos = " AND ".join(_quoted(t.tokens) for t in group if not t.negated)
            neg = " OR ".join(_quoted(t.tokens) for t in group if t.negated)
            rendered.append(f"({pos}) NOT ({neg})" if neg else f"({pos})")
        return " OR ".join(rendered)

    def websearch(self) -> str:
        """The same query in ``websearch_to_tsquery`` syntax (every term quoted, raw readings left out)."""
        return " OR ".join(
            " ".join(("-" if t.negated else "") + '"' + " ".join(t.tokens) + '"' for t in group)
            for group in self.groups
        )

    def tsquery_sql(self) -> tuple[str, dict[str, str]]:
        """A PostgreSQL tsquery expression and its parameters: every term is parsed by
        ``websearch_to_tsquery('english', :tN)`` from a quoted, bound text, and the terms are
        combined with ``&&``, ``||`` and ``!!`` along the same structure as :meth:`fts5`."""
        params: dict[str, str] = {}
        seen: dict[str, str] = {}

        def parsed(text_: str) -> str:
            if text_ not in seen:
                seen[text_] = f"t{len(seen)}"
                params[seen[text_]] = '"' + text_ + '"'
            return f"websearch_to_tsquery('{_PG_CONFIG}', :{seen[text_]})"

        def term(t: Term) -> str:
            readings = [" ".join(t.tokens)] + ([t.raw] if t.raw else [])
            return "(" + " || ".join(parsed(r) for r in readings) + ")"

        groups = []
        for group in self.groups:
            parts = [term(t) for t in group if not t.negated]
            parts += ["(!!" + term(t) + ")" for t in group if t.negated]
            groups.append("(" + " && ".join(parts) + ")")
        return " || ".join(groups), params


def _quoted(tokens: Iterable[str]) -> str:
    return '"' + " ".join(tokens).replace('"', '""') + '"'


def _is_token_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LN" or cat in ("Co", "Mn", "Mc")


def _tokens(chunk: str) -> tuple[str, ...]:
    out: list[str] = []
    cur: list[str] = []
    for ch in chunk:
        if _is_token_char(ch):
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return tuple(t.lower() for t in out)


_PIECES = re.compile(r"[^\w\-\u2010\u2011]+|_+")


def _add(group: list[Term], tokens: tuple[str, ...], negated: bool, typed: str) -> None:
    if tokens and not all(t in STOP_WORDS for t in tokens):
        typed = _SPACE.sub(" ", typed.strip().lower())
        term = Term(tokens, negated, raw=typed if typed != " ".join(tokens) else None)
        if term not in group:
            group.append(term)


def parse_query(raw: str) -> ParsedQuery:
    """Parse user input; never raises.

    Punctuation separates words, except hyphens: ``b12-deficiency`` is the phrase "b12 deficiency"
    (as PostgreSQL reads it); inside quotes everything is one phrase. Terms made only of stop
    words are dropped; a group with no positive term is dropped (a search must say what to find,
    not only what to leave out).
    """
    s = unicodedata.normalize("NFKC", raw[:MAX_QUERY_CHARS])
    s = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in s)  # NUL and control chars
    groups: list[list[Term]] = [[]]
    i, n = 0, len(s)
    while i < n:
        if s[i].isspace():
            i += 1
            continue
        negated = False
        if s[i] == "-":
            j = i
            while j < n and s[j] == "-":
                j += 1
            if j < n and not s[j].isspace():
                negated, i = True, j
        if s[i] == '"':
            end = s.find('"', i + 1)
            end = n if end < 0 else end
            typed = s[i + 1 : end]
            tokens, i = _tokens(typed), end + 1
        else:
            j = i
            while j < n and not s[j].isspace() and s[j] != '"':
                j += 1
            word, i = s[i:j], j
            if word.upper() == "OR" and not negated:
                groups.append([])
                continue
            for piece in _PIECES.split(word):  # like PostgreSQL: punctuation separates words, …
                _add(groups[-1], _tokens(piece), negated, piece)  # … hyphens join them into a phrase
            continue
        _add(groups[-1], tokens, negated, typed)
    kept: list[tuple[Term, ...]] = []
    for group in groups:
        if any(not t.negated for t in group) and tuple(group) not in kept:
            kept.append(tuple(group))
    return ParsedQuery(tuple(kept))


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------

# Short --type names to the study_type values of the study_overview view, which kb search prints;
# --type takes either (and the values with hyphens for spaces).
TYPES: dict[str, str] = {
    "rct": "randomized controlled trial",
    "meta-analysis": "meta-analysis",
    "systematic-review": "systematic review",
    "trial": "clinical trial",
    "observational": "observational study",
    "case-report": "case report",
    "review": "review",
    "commentary": "commentary",
    "other": "other",
}
STUDY_TYPES: tuple[str, ...] = tuple(dict.fromkeys(TYPES.values()))  # the values, most specific first
CARD_FILTERS = ("draft", "reviewed", "published", "none")  # --card: a card status, or no card

_YEAR = re.compile(r"^\s*(\d{4})?\s*(\.\.)?\s*(\d{4})?\s*$")


def parse_years(spec: str) -> tuple[int | None, int | None]:
    """``2020``, ``2015..2024``, ``2015..`` or ``..2024`` to (first, last); InputError otherwise."""
    match = _YEAR.match(spec or "")
    if not match or not (match.group(1) or match.group(3)) or (not match.group(2) and match.group(3)):
        raise InputError(f"--year takes YEAR, FIRST..LAST, FIRST.. or ..LAST (four-digit years), not {spec!r}")
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(3)) if match.group(3) else None
    if not match.group(2):
        last = first
    if first is not None and last is not None and first > last:
        raise InputError(f"--year {spec}: the first year is after the last")
    return first, last


def design_of(kind: str) -> str:
    """A --type name ('rct') or a study_type value as kb search prints it ('randomized controlled
    trial', also 'randomized-controlled-trial' or 'randomised …') to the study_type value."""
    key = " ".join(kind.strip().lower().replace("randomised", "randomized").split())
    if key in TYPES:
        return TYPES[key]
    for value in STUDY_TYPES:
        if key in (value, value.replace(" ", "-"), value.replace(" ", "_")):
            return value
    raise InputError(f"unknown study type {kind!r}: use one of {', '.join(STUDY_TYPES)} "
                     f"(or the short names {', '.join(k for k in TYPES if k not in STUDY_TYPES)})")


@dataclass
class _Filters:
    """Filters resolved against the database once per search."""

    years: tuple[int, int] | None = None  # clamped to the years stored
    designs: list[str] = field(default_factory=list)
    mesh_uis: list[str] = field(default_factory=list)
    topic_id: int | None = None
    card: str | None = None  # a card status, or 'none' for studies without a card
    needs_review: bool = False
    empty: bool = False  # a filter no stored study can meet

    def card_conditions(self, pmid: str) -> list[str]:
        """SQL conditions on the column ``pmid`` for the card filters (both databases)."""
        out = []
        if self.card == "none":
            out.append(f"{pmid} NOT IN (SELECT pmid FROM cards)")
        elif self.card is not None:
            out.append(f"{pmid} IN (SELECT pmid FROM cards WHERE status = :card_status)")
        if self.needs_review:
            out.append(f"{pmid} IN (SELECT pmid FROM cards WHERE needs_review)")
        return out

    def facets(self) -> list[str]:
        """FTS5 expressions on the facets column (SQLite)."""
        out = []
        if self.years:
            out.append(" OR ".join(f'"year{y}"' for y in range(self.years[0], self.years[1] + 1)))
        if self.designs:
            out.append(" OR ".join(f'"design{re.sub("[^a-z]", "", d)}"' for d in self.designs))
        if self.mesh_uis:
            out.append(" OR ".join(f'"mesh{re.sub("[^a-z0-9]", "", ui.lower())}"' for ui in self.mesh_uis))
        return [f"facets : ({expr})" for expr in out]


def _resolve(conn: Connection, *, types: Sequence[str], years: tuple[int | None, int | None] | None,
             mesh: str | None, topic: str | None, card: str | None = None, needs_review: bool = False) -> _Filters:
    f = _Filters(designs=sorted({design_of(t) for t in types}), card=card, needs_review=needs_review)
    if topic is not None:
        f.topic_id = topic_id(conn, topic)
    if mesh is not None:
        f.mesh_uis = _mesh_uis(conn, mesh.strip())
        if not f.mesh_uis:
            raise InputError(f"no study in the knowledge base is indexed with the MeSH descriptor {mesh!r} "
                             "(give its name, e.g. 'Vitamin B 12', or its UI, e.g. D014806)")
    if years is not None:
        # Two statements: SQLite answers a lone min() or max() from the index, both at once by a scan.
        lo = conn.execute(text("SELECT min(pub_year) FROM studies")).scalar()
        hi = conn.execute(text("SELECT max(pub_year) FROM studies")).scalar()
        first = max(years[0], lo) if years[0] is not None and lo is not None else lo
        last = min(years[1], hi) if years[1] is not None and hi is not None else hi
        if first is None or last is None or first > last:
            f.empty = True
        else:
            f.years = (first, last)
    return f


def _mesh_uis(conn: Connection, term: str) -> list[str]:
    """Descriptor UIs for a MeSH name (any case) or UI.

    One index seek per spelling ('humans', 'Humans', …; a MeSH name belongs to one descriptor, so
    the first row says it): reading every row of a descriptor such as Humans would cost more than
    the search. Other spellings ('sars-cov-2' for SARS-CoV-2) walk the distinct names last.
    """
    found = set()
    by_ui = text("SELECT descriptor_ui FROM mesh_headings WHERE descriptor_ui = :v LIMIT 1")
    by_name = text("SELECT descriptor_ui FROM mesh_headings WHERE descriptor_name = :v LIMIT 1")
    for query, value in [(by_ui, term.upper())] + [
        (by_name, v) for v in sorted({term, term.lower(), term.upper(), term.title(), term.capitalize()})
    ]:
        found.update(conn.execute(query, {"v": value}).scalars())
    if not found:
        # Other spellings: walk the distinct names with one index seek each (a loose index scan;
        # a plain scan would read every heading of every study).
        names = conn.execute(text("""
WITH RECURSIVE names(n) AS (
    SELECT min(descriptor_name) FROM mesh_headings
    UNION ALL
    SELECT (SELECT min(descriptor_name) FROM mesh_headings WHERE descriptor_name > names.n) FROM names
     WHERE names.n IS NOT NULL)
SELECT n FROM names WHERE lower(n) = lower(:n)"""), {"n": term}).scalars().all()
        for name in names:
            found.update(conn.execute(by_name, {"v": name}).scalars())
    return sorted(found)


# --------------------------------------------------------------------------------------------
# Searching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    pmid: int
    year: int | None
    design: str | None
    title: str
    score: float
    snippet: str
    evidence_status: str


@contextlib.contextmanager
def _connect(bind: Engine | Connection | Session) -> Iterator[Connection]:
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()
    elif isinstance(bind, Session):
        yield bind.connection()
    else:
        yield bind


def search(
    bind: Engine | Connection | Session,
    query: str,
    *,
    types: Sequence[str] = (),
    years: tuple[int | None, int | None] | str | None = None,
    mesh: str | None = None,
    topic: str | None = None,
    limit: int = 20,
    card: str | None = None,
    needs_review: bool = False,
    candidates: int = RANK_CANDIDATES,
) -> list[Hit]:
    """Studies matching ``query``, best first (at most ``limit``).

    A search that matches more than ``candidates`` studies ranks only the ``candidates`` matches
    with the highest PMIDs, the most recently added to PubMed (see :data:`RANK_CANDIDATES`): a
    very broad search returns the best of its recent matches, in milliseconds.

    Filters: ``types`` (--type names such as 'rct', or study_type values of study_overview),
    ``years`` ((first, last), either end None, or a '2015..2024' string), ``mesh`` (a MeSH
    descriptor name, any case, or UI), ``topic`` (a topic name; its excluded studies left out),
    ``card`` (a card status, or 'none': studies without a card), ``needs_review`` (cards marked
    for another review).
    An unknown topic or MeSH descriptor, a bad type or year range raise :class:`InputError`.
    Read-only: pass a read-only engine where you can.
    """
    if isinstance(years, str):
        years = parse_years(years)
    if limit < 1:
        raise InputError("--limit must be at least 1")
    if candidates < 1:
        raise InputError("candidates must be at least 1")
    for t in types:
        design_of(t)  # a bad type fails before the database is touched
    if card is not None and card not in CARD_FILTERS:
        raise InputError(f"unknown card filter {card!r}: use one of {', '.join(CARD_FILTERS)}")
    parsed = parse_query(query)
    with _connect(bind) as conn:
        filters = _resolve(conn, types=types, years=years, mesh=mesh, topic=topic, card=card,
                           needs_review=needs_review)
        if not parsed or filters.empty:
            return []
        if conn.dialect.name == "postgresql":
            rows = _pg_search(conn, parsed, filters, limit=int(limit), candidates=int(candidates))
        else:
            sql, params = _sqlite_search(parsed, filters)
            floor = conn.execute(text(_sqlite_candidates_floor(filters)),
                                 {**params, "skip": candidates - 1}).scalar()
            if floor is not None:  # more matches than candidates: rank the highest PMIDs only
                sql, params = _sqlite_search(parsed, filters, floor=floor)
            params["limit"] = int(limit)
            rows = conn.execute(text(sql), params).all()
    return [
        Hit(pmid=r.pmid, year=r.pub_year, design=r.study_type, title=r.title or "",
            score=float(f"{float(r.score):.4g}"), snippet=_SPACE.sub(" ", r.snippet or "").strip(),
            evidence_status=r.evidence_status)
        for r in rows
    ]


def _sqlite_search(parsed: ParsedQuery, f: _Filters, *, floor: int | None = None) -> tuple[str, dict[str, Any]]:
    words = f"{_TEXT_COLUMNS} : ({parsed.fts5()})"
    match = " AND ".join(f"({part})" for part in [words, *f.facets()])
    params: dict[str, Any] = {"q": match, "words": words}
    topic = _topic_sql(f)
    if f.topic_id is not None:
        params["topic"] = f.topic_id
    topic += "".join(f" AND {c}" for c in f.card_conditions("study_search.rowid"))
    if f.card not in (None, "none"):
        params["card_status"] = f.card
    if floor is not None:
        topic += " AND study_search.rowid >= :floor"
        params["floor"] = floor
    # Rank and filter first, then make the snippets of the few rows kept (snippet() needs a MATCH
    # of its own; the words alone, so that it never picks the facets column).
    sql = f"""
WITH top AS MATERIALIZED (
    SELECT study_search.rowid AS pmid, {_BM25} AS bm25_rank
      FROM study_search
     WHERE study_search MATCH :q{topic}
     ORDER BY bm25_rank, study_search.rowid
     LIMIT :limit)
SELECT top.pmid, o.pub_year, o.study_type, o.title, -top.bm25_rank AS score, o.evidence_status,
       snippet(study_search, -1, '[', ']', '…', {_SNIPPET_TOKENS}) AS snippet
  FROM top
  JOIN study_search ON study_search.rowid = top.pmid
  JOIN study_overview o ON o.pmid = top.pmid
 WHERE study_search MATCH :words
 ORDER BY top.bm25_rank, top.pmid"""
    return sql, params


def _topic_sql(f: _Filters) -> str:
    if f.topic_id is None:
        return ""
    return " AND study_search.rowid IN (SELECT pmid FROM topic_studies WHERE topic_id = :topic AND NOT is_excluded)"


def _sqlite_candidates_floor(f: _Filters) -> str:
    """The lowest PMID of the ``candidates`` highest-PMID matches, when there are more matches (FTS5
    walks its doclist backwards, no ranking: a few milliseconds for 10,000 matches)."""
    return (f"SELECT study_search.rowid FROM study_search WHERE study_search MATCH :q{_topic_sql(f)} "
            "ORDER BY study_search.rowid DESC LIMIT 1 OFFSET :skip")


def _pg_search(conn: Connection, parsed: ParsedQuery, f: _Filters, *, limit: int, candidates: int) -> list[Any]:
    """PostgreSQL: the tsquery, then (after :func:`_pg_candidates_floor`) the ``limit`` best of the
    ``candidates`` highest-PMID matches, then the details and snippets of those. The last two have
    a text that does not depend on the words searched, so psycopg prepares them and PostgreSQL
    plans each once per connection, not per search."""
    tsquery, params_ = parsed.tsquery_sql()
    query = conn.execute(text(f"SELECT CAST({tsquery} AS TEXT)"), params_).scalar_one()
    params: dict[str, Any] = {"query": query, "limit": limit, "candidates": candidates}
    where: list[str] = []
    if f.years:
        where.append("ss.pub_year BETWEEN :year_first AND :year_last")
        params.update(year_first=f.years[0], year_last=f.years[1])
    if f.designs:
        where.append("ss.study_type = ANY(:designs)")
        params["designs"] = f.designs
    if f.mesh_uis:
        where.append("ss.mesh_uis && CAST(:uis AS TEXT[])")
        params["uis"] = f.mesh_uis
    if f.topic_id is not None:
        where.append("ss.pmid IN (SELECT pmid FROM topic_studies WHERE topic_id = :topic AND NOT is_excluded)")
        params["topic"] = f.topic_id
    where += f.card_conditions("ss.pmid")
    if f.card not in (None, "none"):
        params["card_status"] = f.card
    cond = "".join(f" AND {w}" for w in where)
    floor = _pg_candidates_floor(conn, cond, params, candidates)
    # The query is a parameter of a materialised CTE, read once (an InitPlan): the plan (the GIN
    # index, then the rows of the matches sorted by PMID) is the same for every query, whatever
    # PostgreSQL would guess of its words. The candidates carry their vectors (stored out of line,
    # migration 0012, so the sort by PMID moves small rows).
    rank = """
WITH q AS MATERIALIZED (SELECT CAST(:query AS tsquery) AS query),
candidates AS MATERIALIZED (
    SELECT ss.pmid, ss.search_vector
      FROM study_search ss
     WHERE ss.search_vector @@ (SELECT query FROM q){cond}
     ORDER BY ss.pmid DESC
     LIMIT :candidates)
SELECT c.pmid, ts_rank_cd(c.search_vector, (SELECT query FROM q), 2) AS score,
       (SELECT count(*) FROM candidates) AS ranked
  FROM candidates c
 ORDER BY score DESC, c.pmid
 LIMIT :limit"""
    top = []
    if floor is not None:
        top = conn.execute(text(rank.format(cond=cond + " AND ss.pmid >= :floor")), {**params, "floor": floor}).all()
    if floor is None or not top or top[0].ranked < candidates:  # no floor, or it was too high
        top = conn.execute(text(rank.format(cond=cond)), params).all()
    if not top:
        return []
    details = conn.execute(text(f"""
SELECT s.pmid, s.pub_year, ss.study_type, s.title, s.evidence_status,
       ts_headline('{_PG_CONFIG}', concat_ws(' … ', f.title, f.subjects, f.abstract, f.curated),
                   CAST(:query AS tsquery),
                   'StartSel=[, StopSel=], MaxFragments=1, MaxWords={_SNIPPET_TOKENS}, MinWords=12, '
                   'FragmentDelimiter=" … "') AS snippet
  FROM studies s
  JOIN study_search ss ON ss.pmid = s.pmid
  JOIN ({_fields_sql('postgresql', 's.pmid = ANY(:pmids)')}) f ON f.pmid = s.pmid
 WHERE s.pmid = ANY(:pmids)"""), {"query": query, "pmids": [r.pmid for r in top]}).all()
    by_pmid = {r.pmid: r for r in details}
    return [_PgRow(score=r.score, **by_pmid[r.pmid]._asdict()) for r in top if r.pmid in by_pmid]


def _pg_candidates_floor(conn: Connection, cond: str, params: dict[str, Any], candidates: int) -> int | None:
    """PostgreSQL, a very broad search: a PMID that probably has ``candidates`` matches at or above
    it; else None.

    The candidates are the highest PMIDs among the matches, and sorting every match of a word such
    as "study" by PMID reads the index row of every one of them (46,000 at 100,000 studies). With a
    floor only the matches at or above it are read and sorted (PostgreSQL intersects the GIN
    index's matches with the primary key's range: a BitmapAnd). A floor is only a guess: the caller
    checks that it left ``candidates`` matches and otherwise ranks without it, so the candidates
    are the same either way. Here PostgreSQL's estimate of the matches (from the lexeme statistics
    ANALYZE keeps) decides: at least 4 x ``candidates`` matches, and the floor is where, were the
    matches spread evenly over the PMIDs, 3 x ``candidates`` would be at or above it.
    """
    # A constant, so that it is estimated from its lexemes (a backslash before a colon in a lexeme
    # keeps SQLAlchemy from reading it as a bind parameter).
    literal = "'" + re.sub(r":(?=[\w$])", r"\\:", str(params["query"]).replace("'", "''")) + "'"
    plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM study_search ss "
                             f"WHERE ss.search_vector @@ CAST({literal} AS tsquery){cond}"), params).scalar_one()
    matches = float(plan[0]["Plan"]["Plan Rows"])
    if matches < 4 * candidates:
        return None
    lo, hi = conn.execute(text("SELECT min(pmid), max(pmid) FROM study_search")).one()
    if lo is None:
        return None
    width = int(3 * candidates * (hi - lo + 1) / matches)
    return hi - width + 1 if width <= hi - lo else None


@dataclass(frozen=True)
class _PgRow:
    pmid: int
    pub_year: int | None
    study_type: str | None
    title: str | None
    evidence_status: str
    snippet: str | None
    score: float


__all__ = [
    "Hit",
    "ParsedQuery",
    "Term",
    "TYPES",
    "INDEX_DOC",
    "search",
    "parse_query",
    "parse_years",
    "reindex_studies",
    "reindex_all",
    "is_index_table",
]
