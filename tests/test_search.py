"""Full-text search (`kb search`, kb.search) on SQLite FTS5 and PostgreSQL tsvector: the same
answers on both databases, hand-checked answers, an index kept in sync with the data, and user
input that can never break the query."""

from __future__ import annotations

import inspect
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb import search as kbsearch
from kb import store
from kb.errors import InputError
from kb.handle import guard_readonly

from .conftest import _create_pg_database, _drop_pg_database, kb

CORPUS_DIRS = ("ncbiutils", "metapub", "pubmed-client", "biopython")



def corpus_files(corpus: Path) -> list[Path]:
    return [p for d in CORPUS_DIRS for p in sorted((corpus / d).glob("*.xml"))]


def _load(url: URL, files: list[Path]) -> None:
    result = kb(url, "load", "--quiet", *map(str, files))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def lite_db(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> URL:
    url = URL.create("sqlite", database=str(tmp_path_factory.mktemp("search") / "corpus.sqlite3"))
    _load(url, corpus_files(corpus))
    return url


@pytest.fixture(scope="module")
def pg_db(corpus: Path, pg_admin_url: URL) -> Iterator[URL]:
    url = _create_pg_database(pg_admin_url)
    try:
        _load(url, corpus_files(corpus))
        yield url
    finally:
        _drop_pg_database(pg_admin_url, url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def corpus_db(request: pytest.FixtureRequest) -> URL:
    """The corpus loaded once per module, on SQLite and on PostgreSQL (read-only use only)."""
    return request.getfixturevalue("lite_db" if request.param == "sqlite" else "pg_db")


def hits(url: URL, query: str, **filters) -> list[kbsearch.Hit]:  # type: ignore[no-untyped-def]
    engine = guard_readonly(kbdb.create_kb_engine(url, readonly=True))
    try:
        return kbsearch.search(engine, query, **filters)
    finally:
        engine.dispose()


def pmids(url: URL, query: str, **filters) -> list[int]:  # type: ignore[no-untyped-def]
    return [h.pmid for h in hits(url, query, limit=1000, **filters)]


def cli_pmids(url: URL, *args: str) -> list[int]:
    result = kb(url, "search", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return [row["pmid"] for row in json.loads(result.stdout)]


# --------------------------------------------------------------------------------------------
# The same answers on both databases
# --------------------------------------------------------------------------------------------

# Single words, phrases, exclusions and filters: the same matches and the same best five (at
# least four of them: near-ties fall either way). bm25 and ts_rank_cd are different functions.
RANKED_ALIKE = [
    ("vitamin", {}),
    ("antibody", {}),
    ('"vitamin d"', {}),
    ('"public health"', {}),
    ('"multiple sclerosis" OR "heart failure"', {}),
    ("cancer -breast -lung", {}),
    ("covid", {"mesh": "COVID-19"}),
    ("covid-19 -pandemic", {}),
    ("cytokine", {"mesh": "humans", "years": (1990, 1995)}),
    ("patients", {"types": ["review", "meta-analysis"]}),
    ("infection", {"years": (2020, None)}),
]
# Several words of different frequency: bm25 weighs the rarer word more (IDF), ts_rank_cd rewards
# words close together instead, so only the matches are compared.
MATCHED_ALIKE = [
    ("tumor necrosis factor", {}),
    ("cancer OR tumour OR tumor", {}),
    ("interleukin -mice OR cytokine -human", {}),
]


@pytest.mark.postgres
@pytest.mark.parametrize("query, filters", RANKED_ALIKE + MATCHED_ALIKE,
                         ids=[q for q, _ in RANKED_ALIKE + MATCHED_ALIKE])
def test_sqlite_and_postgresql_agree(lite_db: URL, pg_db: URL, query: str, filters: dict) -> None:
    lite, pg = hits(lite_db, query, limit=1000, **filters), hits(pg_db, query, limit=1000, **filters)
    assert lite, query
    assert {h.pmid for h in lite} == {h.pmid for h in pg}
    if (query, filters) in RANKED_ALIKE:
        best = min(4, len(lite))
        assert len({h.pmid for h in lite[:5]} & {h.pmid for h in pg[:5]}) >= best, (
            [h.pmid for h in lite[:6]], [h.pmid for h in pg[:6]])
    assert all(h.title and h.snippet for h in lite + pg)


def test_hand_checked_results(corpus_db: URL) -> None:
    """Checked by reading the XML: 'heparin' is in the title of 1752960 and the abstract of 1638523
    (ncbiutils/multiple.xml), and in metapub/37693885.xml only in a reference citation, which is
    not indexed. "multiple sclerosis" as a phrase: 1605492 (ncbiutils/multiple.xml) and 28731372
    (metapub/tests_data_pmid_28731372.xml); other files name it in their references only."""
    heparin = hits(corpus_db, "heparin")
    assert [h.pmid for h in heparin] == [1752960, 1638523]  # the title match first
    assert heparin[0].evidence_status == "retracted"
    assert "[heparin]" in heparin[0].snippet.lower()
    assert set(pmids(corpus_db, '"multiple sclerosis"')) == {1605492, 28731372}
    assert pmids(corpus_db, '"multiple sclerosis" -vitamin') == [1605492]
    assert pmids(corpus_db, "methylcobalamin OR ergothioneine") in ([1339917, 32051057], [32051057, 1339917])


def test_filters_mean_what_they_say(corpus_db: URL) -> None:
    engine = kbdb.create_kb_engine(corpus_db)
    with engine.connect() as conn:
        design = dict(conn.execute(text("SELECT pmid, study_type FROM study_overview")).all())
        year = dict(conn.execute(text("SELECT pmid, pub_year FROM studies")).all())
        humans = set(conn.execute(text("SELECT pmid FROM mesh_headings WHERE descriptor_ui = 'D006801'")).scalars())
    engine.dispose()
    every = pmids(corpus_db, "patients")
    assert len(every) > 20
    by_type = pmids(corpus_db, "patients", types=["rct", "review"])
    assert by_type and all(design[p] in ("randomized controlled trial", "review") for p in by_type)
    assert {p for p in every if design[p] in ("randomized controlled trial", "review")} == set(by_type)
    recent = pmids(corpus_db, "patients", years="2020..")
    assert {p for p in every if (year[p] or 0) >= 2020} == set(recent)
    old = pmids(corpus_db, "patients", years=(None, 2015))
    assert {p for p in every if year[p] is not None and year[p] <= 2015} == set(old)
    assert pmids(corpus_db, "patients", years="2021") == [p for p in pmids(corpus_db, "patients") if year[p] == 2021]
    assert set(pmids(corpus_db, "patients", mesh="Humans")) == {p for p in every if p in humans}
    assert pmids(corpus_db, "patients", mesh="humans") == pmids(corpus_db, "patients", mesh="D006801")
    sars = pmids(corpus_db, "covid", mesh="SARS-CoV-2")  # any spelling of the case finds the descriptor
    assert sars and pmids(corpus_db, "covid", mesh="sars-cov-2") == sars == pmids(corpus_db, "covid", mesh="D000086402")
    assert pmids(corpus_db, "patients", years="1800..1801") == []
    with pytest.raises(InputError, match="MeSH"):
        hits(corpus_db, "patients", mesh="Not A Descriptor")
    with pytest.raises(InputError, match="topic"):
        hits(corpus_db, "patients", topic="no such topic")


def test_cli_output_and_errors(corpus_db: URL) -> None:
    result = kb(corpus_db, "search", "heparin", "--format", "table")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert header == ["pmid", "year", "type", "title", "score", "snippet", "status"]
    assert "[heparin]" in result.stdout.lower() and "retracted" in result.stdout
    result = kb(corpus_db, "search", "heparin", "--format", "csv", "--limit", "1")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2
    assert cli_pmids(corpus_db, "vitamin", "-sclerosis") == cli_pmids(corpus_db, "vitamin -sclerosis")
    assert cli_pmids(corpus_db, "cytokine", "--type", "rct", "--year", "1990..1995") == []
    for bad in ("20x", "2020..2010", "..", "99", "2015-2020"):
        result = kb(corpus_db, "search", "vitamin", "--year", bad)
        assert result.exit_code == 2, (bad, result.output)
        assert result.stderr.startswith("Error: --year") and "Traceback" not in result.output
    result = kb(corpus_db, "search", "vitamin", "--type", "anecdote")
    assert result.exit_code == 2
    result = kb(corpus_db, "search", "vitamin", "--topic", "nope")
    assert result.exit_code == 2 and result.stderr.startswith("Error: no topic named 'nope'")
    result = kb(corpus_db, "search")
    assert result.exit_code == 2 and result.stderr.startswith("Error: give the words")
    result = kb(corpus_db, "search", "vitamin", "--limt", "3")  # a mistyped option is not a search word
    assert result.exit_code == 2 and "No such option: --limt" in result.output


# --------------------------------------------------------------------------------------------
# The query language
# --------------------------------------------------------------------------------------------


def test_query_parsing_and_rendering() -> None:
    q = kbsearch.parse_query('Vitamin B12 OR "iron deficiency" -anaemia -"heart failure" b12-deficiency')
    assert q.fts5() == ('("vitamin" AND "b12") OR ("iron deficiency" AND "b12 deficiency") '
                        'NOT ("anaemia" OR "heart failure")')
    assert q.websearch() == '"vitamin" "b12" OR "iron deficiency" -"anaemia" -"heart failure" "b12 deficiency"'
    sql, params = q.tsquery_sql()
    assert params == {"t0": '"vitamin"', "t1": '"b12"', "t2": '"iron deficiency"', "t3": '"b12 deficiency"',
                      "t4": '"b12-deficiency"', "t5": '"anaemia"', "t6": '"heart failure"'}
    assert sql.count("websearch_to_tsquery('english', :t") == 7 and sql.count("(!!") == 2
    assert not kbsearch.parse_query("the of and")  # stop words only, as in PostgreSQL
    assert not kbsearch.parse_query("-cancer")  # nothing to find
    assert not kbsearch.parse_query('OR OR - "" * ( ) ;')
    assert kbsearch.parse_query('"unterminated phrase').fts5() == '("unterminated phrase")'
    assert kbsearch.parse_query("NEAR(a b)").fts5() == '("near" AND "b")'  # 'a' is a stop word
    assert kbsearch.parse_query("-x/y,z's").fts5() == ""  # exclusions only: no query
    assert kbsearch.parse_query("w -x/y,z's").websearch() == '"w" -"x" -"y" -"z"'
    assert kbsearch.parse_query("Café ÉLAN").fts5() == '("café" AND "élan")'


@pytest.mark.postgres
def test_rendered_query_means_what_postgresql_reads(pg_db: URL) -> None:
    """For ordinary input, PostgreSQL's own websearch_to_tsquery of what the user typed matches the
    same studies as the tsquery kb builds: the parser here follows PostgreSQL's reading (and SQLite
    gets the same query)."""
    engine = kbdb.create_kb_engine(pg_db)
    with engine.connect() as conn:
        for raw in ["vitamin b12 anemia", '"vitamin d" OR calcium -cancer', "heart failure OR cardiomyopathy",
                    "-smoking lung cancer", '"effect of vitamin d" trial', "children's health", "mice OR rats -human",
                    "tumor necrosis factor -alpha"]:
            tsquery, params = kbsearch.parse_query(raw).tsquery_sql()
            theirs, mine = conn.execute(
                text(f"SELECT array_agg(pmid ORDER BY pmid) FILTER (WHERE search_vector @@ websearch_to_tsquery("
                     f"'english', :raw)), array_agg(pmid ORDER BY pmid) FILTER (WHERE search_vector @@ ({tsquery})) "
                     "FROM study_search"),
                {"raw": raw, **params},
            ).one()
            assert mine == theirs, raw
        # A hyphenated term matches both of PostgreSQL's readings: 'covid' '-19' and 'covid' '19'.
        tsquery, params = kbsearch.parse_query("covid-19").tsquery_sql()
        for doc in ("COVID-19 vaccines", "covid 19 vaccines"):
            assert conn.execute(text(f"SELECT to_tsvector('english', :doc) @@ ({tsquery})"),
                                {"doc": doc, **params}).scalar(), doc
    engine.dispose()


HOSTILE = [
    '"', "'", "*", "NEAR(", "OR OR", "-", "--", ";DROP TABLE studies;--", "'; DROP TABLE studies; --",
    "((vitamin", "vitamin))", ")(", '"vitamin', 'vitamin"', "AND", "NOT", "NEAR(vitamin d, 2)", "title:vitamin",
    "{title}: vitamin", "vitamin*", "^vitamin", "+vitamin", "vitamin:*", "vitamin & !d", "<->", "!!", "\\",
    "%", "_", "\x00vitamin\x00", "vitamine\u0301 caf\u00e9 \u5927\u8c46 \u0432\u0438\u0442\u0430\u043c\u0438\u043d",
    "\U0001f600 \u200b\u2009", "x" * 10_000, " ".join(["vitamin", "-d", "OR", '"b12'] * 2_000)[:10_000],
    " ".join(f"w{i}" for i in range(2_000))[:10_000], " ".join(f"-w{i}" for i in range(1_500))[:10_000] + " vitamin",
]


def _snapshot(url: URL) -> dict:
    engine = kbdb.create_kb_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        snap = {name: conn.execute(select(func.count()).select_from(t)).scalar() for name, t in meta.tables.items()
                if not name.startswith("study_search_")}
        snap["_titles"] = sorted(conn.execute(select(m.Study.title)).scalars())
    engine.dispose()
    return snap


def test_hostile_input_never_breaks_the_query(corpus_db: URL) -> None:
    before = _snapshot(corpus_db)
    for raw in HOSTILE:
        result = kb(corpus_db, "search", "--format", "json", "--", raw)
        assert result.exit_code == 0, (raw[:80], result.output[-500:])
        assert "Traceback" not in result.output and "Error" not in result.stderr, raw[:80]
        assert isinstance(json.loads(result.stdout), list)
    assert kb(corpus_db, "search", "--format", "json", "-", "'").exit_code == 0
    # Random input from the characters that mean something to FTS5, tsquery or SQL.
    rng = random.Random(7)
    alphabet = list('"\'*()-:^+{}[];,.!&|<>\\ \t') + ["OR", "AND", "NOT", "NEAR", "vitamin", "d", "b12", "é"]
    engine = guard_readonly(kbdb.create_kb_engine(corpus_db, readonly=True))
    try:
        for _ in range(300):
            raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25)))
            kbsearch.search(engine, raw, limit=3)
    finally:
        engine.dispose()
    assert _snapshot(corpus_db) == before


# --------------------------------------------------------------------------------------------
# Kept in sync: ingest, curation, deletion, --reindex, the migration
# --------------------------------------------------------------------------------------------


def _index_content(url: URL) -> list[tuple]:
    engine = kbdb.create_kb_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT pmid, search_vector::text FROM study_search ORDER BY pmid")).all()
        else:
            rows = conn.execute(text("SELECT rowid, title, subjects, abstract, curated, facets FROM study_search "
                                     "ORDER BY rowid")).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_index_follows_ingest_curation_and_deletion(db_url: URL, corpus: Path, tmp_path: Path) -> None:
    source = corpus / "metapub" / "219391.xml"  # "lipofuscinosis" occurs once in it: in the title
    _load(db_url, [source, corpus / "ncbiutils" / "multiple.xml", corpus / "metapub" / "32051057.xml"])
    assert cli_pmids(db_url, "lipofuscinosis") == [219391]

    # A changed record: the new title word is found, the old one no longer.
    changed = tmp_path / "219391-changed.xml"
    original = source.read_text(encoding="utf-8")
    assert original.lower().count("lipofuscinosis") == 1
    changed.write_text(original.replace("lipofuscinosis", "quokkaberry"), encoding="utf-8")
    result = kb(db_url, "load", str(changed))
    assert result.exit_code == 0 and "updated 1" in result.stderr, result.output
    assert cli_pmids(db_url, "quokkaberry") == [219391]
    assert cli_pmids(db_url, "lipofuscinosis") == []

    # Curated text is searchable once the curation code reindexes the study in its transaction.
    engine = kbdb.create_kb_engine(db_url)
    with Session(engine) as s, s.begin():
        s.add(m.Card(pmid=1752960, headline="Heparin and TNF", status="draft"))
        s.flush()
        s.add(m.Finding(pmid=1752960, position=0, label="Zebrafish", text="Sunscreen halves sunburn in zebrafish"))
        s.flush()
        assert kbsearch.search(s, "sunburn zebrafish") == []  # not indexed yet …
        kbsearch.reindex_studies(s, [1752960])
        assert [h.pmid for h in kbsearch.search(s, "sunburn zebrafish")] == [1752960]  # … same transaction
    assert cli_pmids(db_url, "sunburn") == [1752960]
    assert cli_pmids(db_url, '"halves sunburn"', "--year", "1991") == [1752960]

    # Topics filter on membership, exclusions left out.
    with Session(engine) as s, s.begin():
        topic = m.Topic(name="tnf", query="tnf")
        s.add(topic)
        s.flush()
        s.add(m.TopicStudy(topic_id=topic.id, pmid=1752960))
        s.add(m.TopicStudy(topic_id=topic.id, pmid=1638523, is_excluded=True))
    assert cli_pmids(db_url, "heparin", "--topic", "tnf") == [1752960]
    assert sorted(cli_pmids(db_url, "heparin")) == [1638523, 1752960]

    # PubMed deletes a citation: it leaves the index; a later version of it comes back.
    with Session(kbdb.writer(engine)) as s, s.begin():
        store.mark_deleted(s, [219391])
    assert cli_pmids(db_url, "quokkaberry") == []
    _load(db_url, [source])
    assert cli_pmids(db_url, "lipofuscinosis") == [219391]

    # --reindex and the migration's own fill build exactly what the incremental path built.
    incremental = _index_content(db_url)
    with engine.connect() as conn:  # every stored study that PubMed did not delete
        assert len(incremental) == conn.execute(text("SELECT count(*) FROM studies WHERE NOT is_deleted")).scalar()
    engine.dispose()
    queries = ["heparin", "sunburn", "tumor necrosis", '"blood cells"', "cytokine OR heparin -mice"]
    answers = {q: cli_pmids(db_url, q) for q in queries}
    result = kb(db_url, "search", "--reindex")
    assert result.exit_code == 0 and re.search(r"Search index rebuilt: \d+ studies", result.stderr), result.output
    assert _index_content(db_url) == incremental
    assert {q: cli_pmids(db_url, q) for q in queries} == answers
    kbdb.downgrade(db_url, "0004")
    kbdb.upgrade(db_url, "head")  # 0005 fills the index for the studies already stored
    assert _index_content(db_url) == incremental
    assert {q: cli_pmids(db_url, q) for q in queries} == answers


@pytest.mark.postgres
def test_broad_searches_rank_the_most_recent_candidates_alike(lite_db: URL, pg_db: URL) -> None:
    """A search with more matches than `candidates` ranks the highest-PMID matches only, on both
    databases (kb.search.RANK_CANDIDATES; 1,000 by default)."""
    every = pmids(lite_db, "patients")
    assert len(every) > 20
    newest = sorted(every, reverse=True)[:7]
    for url in (lite_db, pg_db):
        engine = kbdb.create_kb_engine(url)
        ranked = [h.pmid for h in kbsearch.search(engine, "patients", limit=1000, candidates=7)]
        few = [h.pmid for h in kbsearch.search(engine, "patients", limit=3, candidates=7)]
        engine.dispose()
        assert sorted(ranked, reverse=True) == newest, url
        assert few == ranked[:3]


def test_default_candidates_are_the_documented_ones() -> None:
    """Issue 16: a search ranks at most its 1,000 most recent matches by default (10,000 before),
    as the README's Search section says."""
    assert kbsearch.RANK_CANDIDATES == 1_000
    assert inspect.signature(kbsearch.search).parameters["candidates"].default == kbsearch.RANK_CANDIDATES
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert "more than 1,000 studies (`kb.search.RANK_CANDIDATES`) ranks only the 1,000 matches" in readme


@pytest.mark.postgres
@pytest.mark.parametrize("floor", ["estimated", "too high", "none"])
def test_postgresql_candidates_floor_changes_no_result(pg_db: URL, monkeypatch: pytest.MonkeyPatch, floor: str) -> None:
    """PostgreSQL reads only the matches at or above a PMID floor when it estimates a search to be
    very broad (issue 16); a floor that leaves too few candidates is dropped. The results are the
    same as ranking every match's highest PMIDs, which is what SQLite does."""
    engine = kbdb.create_kb_engine(pg_db)
    try:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE study_search"))  # the estimate reads the lexeme statistics
            conn.commit()
            every = conn.execute(text("SELECT count(*) FROM study_search WHERE search_vector @@ "
                                      "websearch_to_tsquery('english', 'patients')")).scalar_one()
            highest = conn.execute(text("SELECT max(pmid) FROM study_search")).scalar_one()
        candidates = max(2, every // 20)  # the estimate of 'patients' is over 8 x candidates
        expected = [(h.pmid, h.score) for h in kbsearch.search(engine, "patients", limit=1000, candidates=every)
                    if h.pmid >= sorted(pmids(pg_db, "patients"), reverse=True)[candidates - 1]]
        used: list[int | None] = []
        estimated = kbsearch._pg_candidates_floor
        if floor == "estimated":
            def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
                used.append(estimated(*args, **kwargs))
                return used[-1]
            monkeypatch.setattr(kbsearch, "_pg_candidates_floor", spy)
        else:
            monkeypatch.setattr(kbsearch, "_pg_candidates_floor", lambda *a, **k: highest if floor == "too high" else None)
        ranked = kbsearch.search(engine, "patients", limit=1000, candidates=candidates)
    finally:
        engine.dispose()
    assert len(ranked) == candidates
    assert sorted((h.pmid, h.score) for h in ranked) == sorted(expected)
    if floor == "estimated":
        assert used and used[0] is not None  # the floor was used
