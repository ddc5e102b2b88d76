"""Upgrades from every earlier schema revision keep every row (issue 7, scenario 5), on SQLite and
PostgreSQL.

For each revision before head (walked with ``alembic.script.ScriptDirectory``): a database is
built at that revision and filled through SQLAlchemy Core with reflected tables -- real corpus
records (studies and every child table that exists then, the rows the head code would write, JSON
columns included), curated rows on some of them (cards at their second revision, their findings,
limitations and notes, and both ``card_revisions`` rows with the card's text and JSON), a topic
linking some, and the generic rows of ``tests/test_migrations.py::_fill_every_table`` in every
table. Then it is upgraded to head, and:

* every row of every table that existed before is still there, unchanged (all columns compared),
  the curated ones (cards, bullets, card revisions) counted apart;
* the analyst views answer (``study_overview`` one row per study, ``card_items`` one per curated
  item, ``topic_studies_overview`` one per link) and so does the search index (one row per study PubMed has not deleted,
  a title word finds its study);
* kb at head sees the migrated corpus studies as its own: storing the same records again reports
  every one of them unchanged (same content hash), and ``check_schema`` passes;
* and the migrated cards as its own: each is whole (the integrity check of the crash scenarios: its
  latest ``card_revisions`` row is its revision and holds its text), renders in every format,
  saving it unchanged is no new revision, and an edit is revision 3.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, LargeBinary, MetaData, Table, func, insert, inspect, select, text
from sqlalchemy.engine import URL, Connection, Engine

from kb import db as kbdb
from kb import search, store
from kb.cards.data import load_card
from kb.cards.model import CardDoc, Item
from kb.cards.render import FORMATS, render
from kb.curate import save_card
from kb.models import AbstractSection
from kb.pubmed import xmlzip
from kb.pubmed.parse import iter_pubmed_xml
from kb.pubmed.records import DeleteCitation
from kb.search import TABLE as SEARCH_TABLE
from kb.search import is_index_table, reindex_all

from ..conftest import DB_PARAMS, DatabaseTemplates
from ..test_migrations import _allowed_literal, _fill_every_table, _value_for
from .conftest import scaled
from .support import card_problems


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory(str(kbdb.migrations_dir()))
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


ALL_REVISIONS = revisions_oldest_first()
EARLIER = ALL_REVISIONS[:-1]
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
CURATED = ("cards", "findings", "limitations", "notes", "card_revisions")
CARDED = 12  # the first records get curated cards


@pytest.fixture(scope="module")
def corpus_records(corpus: Path) -> list[store.Prepared]:
    """Corpus records as the head code prepares them, one per PMID (the last version wins)."""
    files = sorted(p for p in corpus.rglob("*") if p.name.endswith((".xml", ".xml.gz")) and "SUBSET" not in p.name)
    latest: dict[int, store.Prepared] = {}
    for path in files:
        for item in iter_pubmed_xml(path):
            if not isinstance(item, DeleteCitation):
                latest.pop(item.pmid, None)
                prepared = store.prepare(item, "file")
                # The table abstract_sections of revisions before 0013: every section, as the parser gave it.
                prepared.children["abstract_sections"] = [
                    (item.pmid, i, s.label, s.nlm_category, s.text, s.text_markup if s.text_markup != s.text else None)
                    for i, s in enumerate(item.abstract_sections)]
                latest[item.pmid] = prepared
    records = list(latest.values())
    return records[: scaled(150, len(records))]


# --------------------------------------------------------------------------------------------
# Writing rows with reflected tables
# --------------------------------------------------------------------------------------------


def _checks(conn: Connection, table: Table) -> list[str]:
    return [c["sqltext"] for c in inspect(conn).get_check_constraints(table.name)]


def _complete(table: Table, checks: list[str], row: dict[str, Any], i: int) -> dict[str, Any]:
    """The row limited to the table's columns, with every other NOT NULL column filled."""
    out = {k: v for k, v in row.items() if k in table.c}
    for col in table.columns:
        if col.name in out or col.nullable or col.server_default is not None:
            continue
        if col.primary_key and col.autoincrement in (True, "auto") and not col.foreign_keys \
                and len(table.primary_key.columns) == 1:
            continue  # a serial id: the database numbers it
        allowed = _allowed_literal(checks, col.name)
        out[col.name] = allowed if allowed is not None else _value_for(col, i)
    for col in table.columns:  # JSON columns take Python values through Core
        if isinstance(col.type, JSON) and isinstance(out.get(col.name), str):
            out[col.name] = json.loads(out[col.name])
    return out


def _insert(conn: Connection, meta: MetaData, name: str, rows: list[dict[str, Any]]) -> None:
    if name in meta.tables and rows:
        table = meta.tables[name]
        checks = _checks(conn, table)
        conn.execute(insert(table), [_complete(table, checks, row, i) for i, row in enumerate(rows)])


def fill_with_corpus(engine: Engine, records: list[store.Prepared]) -> None:
    meta = MetaData()
    meta.reflect(engine)
    stamps = {"first_fetched_at": NOW, "last_fetched_at": NOW, "last_changed_at": NOW}
    with engine.begin() as conn:
        packed = isinstance(meta.tables["studies"].c.raw_xml.type, LargeBinary)  # PostgreSQL from 0012 on
        _insert(conn, meta, "studies", [{**r.study, **stamps, "evidence_status": "ok",
                                         **({"raw_xml": xmlzip.pack(r.study["raw_xml"])} if packed else {})}
                                        for r in records])
        tables = [(model.__tablename__, columns) for model, columns in store._CHILD_COLUMNS.items()]
        tables.append(("abstract_sections", store._CHILD_COLUMNS[AbstractSection][:6]))  # a table before 0013
        for name, columns in tables:
            rows = [dict(zip(columns, row)) for r in records for row in r.children[name]]
            if name == "abstract_sections":  # before 0011 the markup was always stored
                rows = [{**row, "text_markup": row["text_markup"] or row["text"]} for row in rows]
            _insert(conn, meta, name, rows)
        curated = [r.pmid for r in records[:CARDED]]
        _insert(conn, meta, "cards", [
            {"pmid": p, "headline": f"Curated headline {p} — “quotes”, ünïcode", "quick_summary": "Curated summary",
             "status": "published", "record_content_hash": r.content_hash, "needs_review": False, "revision": 2,
             "curator": "migrated", "created_at": NOW, "updated_at": NOW}
            for p, r in zip(curated, records)])
        for table in ("findings", "limitations", "notes"):
            _insert(conn, meta, table, [
                {"pmid": p, "position": k, "label": f"Label {k}", "text": f"Curated {table} {k} of {p}",
                 "audience": "lay", "source": "curator"}
                for p in curated for k in range(2)])
        _insert(conn, meta, "card_revisions", [
            {"pmid": p, "revision": revision, "author": "migrated", "created_at": NOW, "action": action,
             "card_text": f"{doc.headline}\n\nQuick Summary: {doc.quick_summary}\n", "content": doc.to_json()}
            for p in curated for revision, action, doc in ((1, "import", migrated_card(p, first=True)),
                                                           (2, "edit", migrated_card(p)))])
        topic_id = conn.execute(
            insert(meta.tables["topics"]).values(**_complete(meta.tables["topics"], _checks(conn, meta.tables["topics"]), {
                "name": "corpus topic", "query": "heparin[tiab]", "created_at": NOW}, 0)).returning(
                meta.tables["topics"].c.id)).scalar_one()
        _insert(conn, meta, "topic_studies", [
            {"topic_id": topic_id, "pmid": r.pmid, "added_at": NOW, "is_excluded": i % 5 == 0}
            for i, r in enumerate(records[:40])])
        _insert(conn, meta, "study_revisions", [
            {"pmid": r.pmid, "changed_at": NOW, "old_content_hash": "0" * 64, "new_content_hash": r.content_hash,
             "changed_fields": ["title"],
             "previous_xml": xmlzip.pack(r.study["raw_xml"]) if packed else r.study["raw_xml"]} for r in records[:20]])
        _insert(conn, meta, "study_events", [
            {"pmid": r.pmid, "at": NOW, "kind": "erratum", "detail": "ErratumIn"} for r in records[:10]])
        _insert(conn, meta, "fetch_failures", [
            {"pmid": 99_000_000 + i, "error": "HTTP 500", "attempts": 2, "first_failed_at": NOW,
             "last_failed_at": NOW} for i in range(5)])
        _insert(conn, meta, "source_files", [
            {"name": "pubmed25n0001.xml.gz", "sha256": "a" * 64, "size_bytes": 123, "status": "complete",
             "records": len(records), "deletions": 0, "started_at": NOW, "finished_at": NOW}])
        if inspect(conn).has_table(SEARCH_TABLE):
            # From the revision that added full-text search on, kb writes index rows with every
            # study (the migration itself only indexes the studies stored before it ran).
            columns = {c["name"] for c in inspect(conn).get_columns("cards")}
            if "technical_limitations" not in columns:
                # kb before revision 0008 (issue 12): its index SQL, as revision 0005 holds it
                _index_as_0005(conn)
                return
            legacy = conn.dialect.name == "sqlite" and "study_type" not in {
                c["name"] for c in inspect(conn).get_columns("study_overview")}
            if legacy:  # before 0009 the view's column was study_design, which the kb of then read
                conn.execute(text("CREATE TEMP VIEW study_overview AS "
                                  "SELECT *, study_design AS study_type FROM main.study_overview"))
            if conn.dialect.name == "sqlite" and not inspect(conn).has_table("study_search_docs"):
                # Before 0011 the FTS5 table kept its own copy of the text.
                conn.execute(text("INSERT INTO study_search (rowid, title, subjects, abstract, curated, facets) "
                                  + search._fields_sql("sqlite", "NOT s.is_deleted")))
            elif conn.dialect.name == "postgresql" and "pub_year" not in {
                    c["name"] for c in inspect(conn).get_columns(SEARCH_TABLE)}:
                # Before 0011 the PostgreSQL index row had no filter columns.
                conn.execute(text(f"INSERT INTO study_search (pmid, search_vector) SELECT f.pmid, "
                                  f"{search._pg_vector_sql()} FROM ({search._fields_sql('postgresql', 'NOT s.is_deleted')}) f"))
            elif conn.dialect.name == "postgresql" and "study_type" not in {
                    c["name"] for c in inspect(conn).get_columns(SEARCH_TABLE)}:
                # Before 0012 the PostgreSQL index row had no study_type.
                filters = (", (SELECT s2.pub_year FROM studies s2 WHERE s2.pmid = f.pmid), ARRAY(SELECT mh.descriptor_ui "
                           "FROM mesh_headings mh WHERE mh.pmid = f.pmid ORDER BY mh.position)")  # kb at 0011
                conn.execute(text(f"INSERT INTO study_search (pmid, search_vector, pub_year, mesh_uis) SELECT f.pmid, "
                                  f"{search._pg_vector_sql()}{filters} "
                                  f"FROM ({search._fields_sql('postgresql', 'NOT s.is_deleted')}) f"))
            else:
                reindex_all(conn)
            if legacy:
                conn.execute(text("DROP VIEW temp.study_overview"))


def _index_as_0005(conn) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    path = kbdb.migrations_dir() / "versions" / "20261123_0005_full_text_search.py"
    spec = importlib.util.spec_from_file_location("kb_migration_0005", path)
    assert spec is not None and spec.loader is not None
    sql = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sql)
    conn.execute(text("DELETE FROM study_search"))
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"INSERT INTO study_search (pmid, search_vector) SELECT f.pmid, {sql.PG_VECTOR} "
                          f"FROM ({sql.PG_FIELDS}) f"))
    else:
        conn.execute(text(f"INSERT INTO study_search (rowid, title, subjects, abstract, curated, facets) "
                          f"{sql.SQLITE_FIELDS}"))


def migrated_card(pmid: int, *, first: bool = False) -> CardDoc:
    """The content JSON of a migrated card's revision: the second is the card's rows as inserted."""
    def items(table: str) -> list[Item]:
        return [Item(text=f"Curated {table} {k} of {pmid}", label=f"Label {k}") for k in range(2)]
    return CardDoc(pmid=pmid, headline="First headline" if first else f"Curated headline {pmid} — “quotes”, ünïcode",
                   quick_summary="Curated summary", findings=items("findings"),
                   limitations=items("limitations"), notes=items("notes"))


def migrated_cards_at_head(engine: Engine, pmids: list[int]) -> list[str]:
    """kb at head reads, renders and saves the migrated cards."""
    problems = []
    with engine.connect() as conn:
        problems += card_problems(conn, pmids)
    sessions = kbdb.make_sessionmaker(engine, write=True)
    with sessions.begin() as session:
        for pmid in pmids:
            view = load_card(session, pmid)
            if not view.doc.same_content(migrated_card(pmid)) or view.card_meta["revision"] != 2:
                problems.append(f"{pmid}: kb reads the migrated card as {view.doc.headline!r}, "
                                f"revision {view.card_meta['revision']}")
            for fmt in FORMATS:
                if f"Curated headline {pmid}" not in render(view, fmt):
                    problems.append(f"{pmid}: --format {fmt} does not show the card")
        doc = load_card(session, pmids[0]).doc
        unchanged = save_card(session, doc, action="edit", author="head")
        doc.headline = "Edited at head"
        edited = save_card(session, doc, action="edit", author="head")
        if (unchanged.changed, unchanged.revision, edited.changed, edited.revision) != (False, 2, True, 3):
            problems.append(f"saving a migrated card at head: {unchanged}, {edited}")
    with engine.connect() as conn:
        problems += card_problems(conn, pmids)
    return problems


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------


def _norm(value: Any) -> Any:
    if isinstance(value, bytes):  # record XML stored compressed (SQLite, from 0011 on)
        return xmlzip.unpack(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def snapshot(engine: Engine) -> dict[str, tuple[list[str], Counter]]:
    """Every table's columns and rows (a multiset of normalised tuples), index tables left out."""
    meta = MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for name, table in meta.tables.items():
            if name == "alembic_version" or is_index_table(name):
                continue
            cols = [c.name for c in table.columns]
            rows = conn.execute(select(table)).all()
            out[name] = (cols, Counter(tuple(_norm(v) for v in row) for row in rows))
    return out


def compare(before: dict, after_engine: Engine) -> tuple[int, list[str]]:
    """(rows lost, problems): every row of every table that existed before, in its old columns (or
    of the view that took its name: abstract_sections from 0013 on)."""
    meta = MetaData()
    meta.reflect(after_engine, views=True)
    lost, problems = 0, []
    with after_engine.connect() as conn:
        for name, (cols, rows) in before.items():
            if name not in meta.tables:
                problems.append(f"table {name} is gone")
                lost += sum(rows.values())
                continue
            table = meta.tables[name]
            missing_cols = [c for c in cols if c not in table.c]
            if missing_cols:
                problems.append(f"{name}: columns gone: {missing_cols}")
                lost += sum(rows.values())
                continue
            # Read as kb reads them: markup stored only where it differs (0011) is the text.
            read = [func.coalesce(table.c.text_markup, table.c.text) if (name, c) == ("abstract_sections", "text_markup")
                    else table.c[c] for c in cols]
            now = Counter(tuple(_norm(v) for v in row) for row in conn.execute(select(*read)).all())
            gone = rows - now
            added = now - rows
            if gone:
                lost += sum(gone.values())
                problems.append(f"{name}: {sum(gone.values())} rows lost or changed, e.g. {next(iter(gone))!r}"[:600])
            if added:
                problems.append(f"{name}: {sum(added.values())} rows appeared, e.g. {next(iter(added))!r}"[:600])
    return lost, problems


def views_and_index(engine: Engine, records: list[store.Prepared]) -> list[str]:
    problems = []
    with engine.connect() as conn:
        def one(sql: str, **params: Any) -> Any:
            return conn.execute(text(sql), params).scalar()

        studies = one("SELECT count(*) FROM studies")
        checks = {
            "study_overview rows": (one("SELECT count(*) FROM study_overview"), studies),
            "card_items rows": (one("SELECT count(*) FROM card_items"),
                                sum(one(f"SELECT count(*) FROM {t}") for t in ("findings", "limitations", "notes"))),
            "topic_studies_overview rows": (one("SELECT count(*) FROM topic_studies_overview"),
                                            one("SELECT count(*) FROM topic_studies")),
            "study_search rows": (one("SELECT count(*) FROM study_search"),  # deleted studies are left out
                                  one("SELECT count(*) FROM studies WHERE NOT is_deleted")),
        }
        sample = next(r for r in records if len(r.study["title"].split()) > 3)
        checks["study_overview title"] = (one("SELECT title FROM study_overview WHERE pmid = :p", p=sample.pmid),
                                          sample.study["title"])
        checks["first author"] = (
            one("SELECT first_author IS NOT NULL OR author_count = 0 FROM study_overview WHERE pmid = :p",
                p=sample.pmid) in (1, True), True)
        word = max((w.strip(".,:;()[]'\"") for w in sample.study["title"].split()), key=len).lower()
        if engine.dialect.name == "postgresql":
            checks["study_search filter columns"] = (one(
                "SELECT count(*) FROM study_search ss JOIN studies s ON s.pmid = ss.pmid WHERE ss.pub_year IS DISTINCT "
                "FROM s.pub_year OR ss.mesh_uis IS DISTINCT FROM ARRAY(SELECT CAST(mh.descriptor_ui AS TEXT) FROM mesh_headings mh "
                "WHERE mh.pmid = s.pmid ORDER BY mh.position)"), 0)
            checks["study_search study_type"] = (one(
                "SELECT count(*) FROM study_search ss JOIN study_overview o ON o.pmid = ss.pmid "
                "WHERE ss.study_type IS DISTINCT FROM o.study_type"), 0)
            found = conn.execute(text("SELECT pmid FROM study_search WHERE search_vector @@ "
                                      "plainto_tsquery('english', :w)"), {"w": word}).scalars().all()
        else:
            conn.execute(text("INSERT INTO study_search (study_search, rank) VALUES ('integrity-check', 1)"))
            phrase = '"' + word.replace('"', '""') + '"'
            found = conn.execute(text("SELECT rowid FROM study_search WHERE study_search MATCH :q"),
                                 {"q": phrase}).scalars().all()
        checks[f"search finds {word!r}"] = (sample.pmid in found, True)
        published = one("SELECT count(*) FROM study_overview WHERE card_status = 'published'")
        checks["published cards in study_overview"] = (published, one(
            "SELECT count(*) FROM cards WHERE status = 'published'"))
    for what, (got, expected) in checks.items():
        if got != expected:
            problems.append(f"{what}: {got!r}, expected {expected!r}")
    return problems


def at_revision(db_templates: DatabaseTemplates, revision: str) -> tuple[str, Callable[[URL], None]]:
    """The template of an empty database at ``revision`` (name and builder for DatabaseTemplates):
    the one of the revision before, upgraded one step. Each revision's database is migrated from
    base one step at a time, as ``alembic upgrade REV`` would, once per session (per xdist worker)
    instead of once per test."""
    index = ALL_REVISIONS.index(revision)

    def build(url: URL) -> None:
        if index:
            db_templates.copy(*at_revision(db_templates, ALL_REVISIONS[index - 1]), url)
        kbdb.upgrade(url, revision)

    return f"revision-{revision}", build


@pytest.fixture(params=DB_PARAMS)
def start_url(request: pytest.FixtureRequest, db_templates: DatabaseTemplates, tmp_path: Path) -> Iterator[URL]:
    """An empty database at the test's start revision (``start``)."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_admin_url")  # reachable, or skip (fail under CI=true)
    start = request.getfixturevalue("start")
    yield from db_templates.fresh_copy(*at_revision(db_templates, start), request.param, tmp_path)


@pytest.fixture
def engine(start_url: URL) -> Iterator[Engine]:
    engine = kbdb.create_kb_engine(start_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("start", EARLIER)
def test_upgrade_to_head_keeps_every_row(start_url: URL, engine: Engine, start: str, scenario,  # type: ignore[no-untyped-def]
                                         corpus_records: list[store.Prepared]) -> None:
    scenario.notes.append(f"from {start}")
    assert kbdb.current_revision(engine) == start
    _fill_every_table(engine)  # first: its foreign keys pick parents by offset from row 0
    fill_with_corpus(engine, corpus_records)
    before = snapshot(engine)
    assert sum(sum(rows.values()) for _, rows in before.values()) > 1000

    kbdb.upgrade(start_url, "head")
    scenario.runs += 1
    assert kbdb.current_revision(engine) == kbdb.head_revision()
    lost, problems = compare(before, engine)
    curated_before = sum(sum(before[t][1].values()) for t in CURATED)
    problems += views_and_index(engine, corpus_records)

    # kb at head reads the migrated corpus studies as its own: the same records are unchanged.
    kbdb.check_schema(engine, start_url, auto_create=False)
    sessions = kbdb.make_sessionmaker(engine, write=True)
    with sessions.begin() as session:
        result = store.store_prepared(session, corpus_records)
    if result.unchanged != [r.pmid for r in corpus_records] or result.new or result.updated:
        problems.append(f"storing the corpus again at head: new {len(result.new)}, updated {len(result.updated)}, "
                        f"unchanged {len(result.unchanged)} of {len(corpus_records)}")
    curated_after = compare({t: before[t] for t in CURATED}, engine)[0]
    problems += migrated_cards_at_head(engine, [r.pmid for r in corpus_records[:CARDED]])

    scenario.records_lost += lost
    scenario.curated_changed += curated_after
    scenario.failures += bool(problems)
    assert not problems, "\n".join(problems)
    assert lost == 0 and curated_after == 0 and curated_before > 0


_SECTIONS = "SELECT pmid, position, label, nlm_category, text, COALESCE(text_markup, text) FROM abstract_sections"


@pytest.mark.parametrize("start", ["0012"])
def test_0013_stores_each_abstract_once(start_url: URL, engine: Engine, start: str,
                                        corpus_records: list[store.Prepared]) -> None:
    """Migration 0013 on a populated database: the view abstract_sections gives the rows the table
    had; the table abstract_section_rows holds exactly what kb at head writes for the same records
    (text NULL where studies.abstract has it, whole-abstract sections without markup left out); and
    the downgrade gives the table back."""
    fill_with_corpus(engine, corpus_records)
    with engine.connect() as conn:
        before = sorted(tuple(row) for row in conn.execute(text(_SECTIONS)))
    kbdb.upgrade(start_url, "0013")
    with engine.connect() as conn:
        after = sorted(tuple(row) for row in conn.execute(text(_SECTIONS)))
        stored = sorted(tuple(row) for row in conn.execute(text(
            "SELECT pmid, position, label, nlm_category, text, text_markup, text_start, text_length "
            "FROM abstract_section_rows")))
        by_pmid = conn.execute(text(_SECTIONS + " WHERE pmid = :p ORDER BY position"),
                               {"p": corpus_records[0].pmid}).all()
    written = sorted(row for r in corpus_records for row in r.children["abstract_section_rows"])
    assert after == before
    assert stored == written
    assert [tuple(row) for row in by_pmid] == [row for row in before if row[0] == corpus_records[0].pmid]
    omitted = {row[0] for row in before} - {row[0] for row in stored}
    assert len(omitted) > len(corpus_records) / 3  # most abstracts are one unlabelled section
    assert sum(row[4] is None for row in stored) > len(stored) / 2  # the text is read from studies.abstract
    assert any(row[4] is None and row[5] is not None for row in stored)  # markup is kept

    kbdb.downgrade(start_url, "0012")
    with engine.connect() as conn:
        again = sorted(tuple(row) for row in conn.execute(text(_SECTIONS)))
        assert "abstract_sections" not in inspect(conn).get_view_names()
    assert again == before
