"""Analyst access: read-only `kb query` on both databases, the documented views, docs that
cannot go stale, and the worked queries of docs/queries.md."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb import schema_docs
from kb.handle import guard_readonly
from kb.query import run_query

from .conftest import DB_PARAMS, REPO, kb, shared_database

WRITES = [
    "INSERT INTO topics (name, query, created_at) VALUES ('x', 'y', '2024-01-01')",
    "UPDATE studies SET title = 'changed'",
    "DELETE FROM studies",
    "DROP TABLE cards",
    "DROP VIEW study_overview",
    "CREATE TABLE evil (x INTEGER)",
    "CREATE TEMP TABLE evil (x INTEGER)",
    "CREATE INDEX ix_evil ON studies (title)",
    "ALTER TABLE studies ADD COLUMN evil INTEGER",
    "ATTACH DATABASE '/tmp/kb-evil.sqlite3' AS evil",
    "PRAGMA user_version = 42",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA query_only = OFF",
    "WITH gone AS (DELETE FROM studies RETURNING pmid) SELECT count(*) FROM gone",
    "SELECT 1; DELETE FROM studies",
    "COMMIT; DELETE FROM studies",
    "VACUUM",
    "REINDEX",
]


RCT = 28731372  # metapub/tests_data_pmid_28731372.xml: a randomised trial of vitamin D
RETRACTED = 1752960  # ncbiutils/multiple.xml: a retracted study
REVIEWED = 1304740  # ncbiutils/multiple.xml: its card is flagged for review below
NOTICE_AT = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _load(corpus: Path, url: URL) -> None:
    """Part of the corpus, three cards (one needing review), a topic of two studies (one more
    excluded) and an erratum notice: something for every worked query to find."""
    files = [corpus / "ncbiutils" / "multiple.xml", corpus / "ncbiutils" / "pubmed.xml",
             corpus / "metapub" / "tests_data_pmid_28731372.xml",
             *sorted((corpus / "metapub").glob("3*.xml"))[:40]]
    result = kb(url, "load", *map(str, files))
    assert result.exit_code == 0, result.output
    engine = kbdb.create_kb_engine(url)
    with Session(engine) as s, s.begin():
        rct = s.scalars(select(m.PublicationType.pmid).where(m.PublicationType.ui == "D016449")).first()
        assert rct == RCT
        s.add(m.Card(pmid=rct, headline="A trial", status="published"))
        s.add(m.Limitation(pmid=rct, position=0, label="Size", text="Small trial"))
        s.add(m.Card(pmid=RETRACTED, headline="Retracted but published", status="published"))
        s.add(m.Card(pmid=REVIEWED, headline="Look again", status="draft", needs_review=True,
                     review_reason="the record changed"))
        topic = m.Topic(name="vitd", query="vitamin d")
        s.add(topic)
        s.flush()
        s.add_all([m.TopicStudy(topic_id=topic.id, pmid=RCT), m.TopicStudy(topic_id=topic.id, pmid=RETRACTED),
                   m.TopicStudy(topic_id=topic.id, pmid=REVIEWED, is_excluded=True)])
        s.add(m.StudyEvent(pmid=REVIEWED, at=NOTICE_AT, kind="erratum", detail="PMID 1"))
    engine.dispose()


@pytest.fixture(scope="module", params=DB_PARAMS)
def loaded(request: pytest.FixtureRequest, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[URL]:
    """The database of :func:`_load`, built once per module (per xdist worker) and shared: every
    test here only reads it, and the tests of refused writes check that nothing changed."""
    yield from shared_database(request, tmp_path_factory.mktemp("query"), lambda url: _load(corpus, url))


def _snapshot(url: URL) -> dict:
    engine = kbdb.create_kb_engine(url)
    meta = MetaData()
    meta.reflect(engine, views=True)
    with engine.connect() as conn:
        snap = {name: conn.execute(select(func.count()).select_from(t)).scalar() for name, t in meta.tables.items()}
        snap["_titles"] = sorted(conn.execute(select(m.Study.title)).scalars())
        snap["_version"] = conn.exec_driver_sql("PRAGMA user_version").scalar() if url.get_backend_name() == "sqlite" else 0
    engine.dispose()
    return snap


@pytest.mark.parametrize("sql", WRITES, ids=lambda s: s.split()[0] + "-" + str(WRITES.index(s)))
def test_writes_are_refused(loaded: URL, sql: str) -> None:
    before = _snapshot(loaded)
    result = kb(loaded, "query", sql)
    assert result.exit_code == 1, (sql, result.output)  # "Writes are refused ... (exit 1)"
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    assert _snapshot(loaded) == before


def test_reads_with_parameters(loaded: URL) -> None:
    result = kb(loaded, "query", "SELECT pmid, title FROM study_overview WHERE pmid = :p", "-p", "p=1752960",
                "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"pmid": 1752960' in result.stdout and "heparin" in result.stdout
    hostile = "1752960' OR '1'='1"
    result = kb(loaded, "query", "SELECT count(*) AS n FROM studies WHERE title = :t", "-p", f"t={hostile}",
                "--format", "csv")
    assert result.stdout == "n\n0\n"


def test_bad_parameter_syntax(loaded: URL) -> None:
    result = kb(loaded, "query", "SELECT 1", "-p", "no equals sign")
    assert result.exit_code == 2 and "-p takes name=value" in result.stderr  # a usage error (README: exit 2)


def test_views_hold_what_the_tables_hold(loaded: URL) -> None:
    engine = guard_readonly(kbdb.create_kb_engine(loaded, readonly=True))
    overview = run_query(engine, "SELECT pmid, study_type, evidence_status, card_status FROM study_overview")
    by_pmid = {r[0]: r for r in overview.rows}
    assert by_pmid[1752960][2:] == ("retracted", "published")
    studies = run_query(engine, "SELECT count(*) FROM studies").rows[0][0]
    assert len(by_pmid) == studies
    designs = {r[1] for r in overview.rows}
    assert {"randomized controlled trial", "review", "other"} <= designs
    items = run_query(engine, "SELECT kind, label, text FROM card_items").rows
    assert items == [("limitation", "Size", "Small trial")]
    engine.dispose()


def _worked_queries() -> list[tuple[str, str, dict[str, str]]]:
    text = (REPO / "docs" / "queries.md").read_text()
    out = []
    for title, sql in re.findall(r"^## (.+?)\n.*?```sql\n(.*?)```", text, flags=re.S | re.M):
        params = {}
        for line in sql.splitlines():
            if line.startswith("-- params:"):
                name, _, value = line.removeprefix("-- params:").strip().partition("=")
                params[name] = value
        out.append((title, sql, params))
    return out


def test_docs_have_worked_queries() -> None:
    assert len(_worked_queries()) >= 6


MAJOR_MESH_OF_PUBLISHED = [  # the major MeSH headings of RCT and RETRACTED, the two published cards
    "Antibodies, Viral", "Carrier Proteins", "Cholecalciferol", "Dietary Supplements", "Epstein-Barr Virus Infections",
    "Heparin", "Multiple Sclerosis, Relapsing-Remitting", "Receptors, Tumor Necrosis Factor",
    "Tumor Necrosis Factor-alpha",
]


@pytest.mark.parametrize("title, sql, params", _worked_queries(), ids=lambda v: v if isinstance(v, str) and " " in v else "")
def test_worked_query_runs(loaded: URL, title: str, sql: str, params: dict[str, str]) -> None:
    engine = guard_readonly(kbdb.create_kb_engine(loaded, readonly=True))
    result = run_query(engine, sql, params)
    titles = dict(run_query(engine, "SELECT pmid, title FROM studies").rows)
    since_2015 = run_query(engine, "SELECT count(*) FROM studies WHERE pub_year >= 2015 AND NOT is_deleted").rows
    engine.dispose()
    assert result.columns
    rows = [tuple(r) for r in result.rows]
    if title.startswith("Every randomised"):
        assert [(r[0], r[4]) for r in rows] == [(RCT, "Small trial")]
    elif title.startswith("Retracted studies"):
        assert [r[0] for r in rows] == [RETRACTED]
    elif title.startswith("Evidence per topic"):  # the excluded study is not counted
        assert rows == [("vitd", 1991, "other", 1, 1), ("vitd", 2018, "randomized controlled trial", 1, 0)]
    elif title.startswith("Study types"):
        assert params == {"since": "2015"}
        assert rows and all(r[0] >= 2015 for r in rows)
        assert sum(r[2] for r in rows) == since_2015[0][0]
        assert rows == sorted(rows, key=lambda r: (r[0], -r[2]))
    elif title.startswith("Cards that need"):
        assert rows == [(REVIEWED, "draft", "the record changed", "ok", titles[REVIEWED])]
    elif title.startswith("Retractions, errata"):
        assert sorted((r[1], r[2]) for r in rows) == [("erratum", REVIEWED), ("erratum", 1696166),
                                                     ("retracted", RETRACTED)]
        assert rows[-1][1:] == ("erratum", REVIEWED, titles[REVIEWED], "PMID 1")  # the oldest last
    elif title.startswith("The most frequent major MeSH"):
        assert rows == [(name, 1) for name in MAJOR_MESH_OF_PUBLISHED]
    else:
        pytest.fail(f"no expected rows for the worked query {title!r}")


def test_schema_docs_are_current() -> None:
    current = (REPO / "docs" / "schema.md").read_text()
    assert schema_docs.render_fresh() == current, "docs/schema.md is stale: run python -m kb.schema_docs > docs/schema.md"


def test_every_table_and_column_is_described() -> None:
    for table in m.Base.metadata.tables.values():
        assert table.comment, table.name
        for column in table.columns:
            assert column.comment or column.name == "id", f"{table.name}.{column.name}"
