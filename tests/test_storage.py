"""Stored records keep every byte and every row (migration 0011's compact storage).

* every study's stored XML reads back as exactly the XML of its record (the last version of the
  PMID across the corpus files), through kb and through the analysts' view ``study_xml`` (SQLite;
  on PostgreSQL by unpacking the column's bytes);
* re-parsing the stored XML reproduces the stored rows of the study and of its child tables;
* SQLite's external-content search index stays consistent with the tables it reads (FTS5
  integrity-check) after loads, changes, deletions and curation.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

from sqlalchemy import MetaData, func, inspect, select, text
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import models as m
from kb import search, store
from kb.pubmed import xmlzip
from kb.pubmed.parse import iter_pubmed_xml
from kb.pubmed.parse import _abstract_text
from kb.pubmed.records import AbstractSection, DeleteCitation, MeshQualifier, PubmedRecord

from .conftest import corpus_files, kb

# Columns that say how and when a row was stored, not what PubMed's record holds.
_BOOKKEEPING = {"first_fetched_at", "last_fetched_at", "last_changed_at", "is_deleted", "deleted_at", "is_missing",
                "is_retracted", "evidence_status", "is_placeholder", "source", "raw_xml"}


def _last_versions(files: list[Path]) -> dict[int, PubmedRecord]:
    latest: dict[int, PubmedRecord] = {}
    for path in files:
        for item in iter_pubmed_xml(path):
            if not isinstance(item, DeleteCitation):
                latest[item.pmid] = item
    return latest


def _norm(value: object) -> object:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, bool):
        return int(value)
    return value


def _check_index(url: URL) -> None:
    """SQLite: FTS5 checks its index against the content it reads (raises if they differ)."""
    if url.get_backend_name() != "sqlite":
        return
    engine = kbdb.create_kb_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO study_search (study_search, rank) VALUES ('integrity-check', 1)"))
        indexed = conn.execute(text("SELECT count(*) FROM study_search_docs")).scalar_one()
        searchable = conn.execute(text("SELECT count(*) FROM studies WHERE NOT is_deleted")).scalar_one()
    engine.dispose()
    assert indexed == searchable


def test_stored_records_read_back_exactly_and_reparse_to_the_same_rows(db_url: URL, corpus: Path) -> None:
    files = corpus_files(corpus)
    result = kb(db_url, "load", "--quiet", *map(str, files))
    assert result.exit_code == 0, result.output
    latest = _last_versions(files)
    engine = kbdb.create_kb_engine(db_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(m.Study.pmid, m.Study.raw_xml)).all())
        if db_url.get_backend_name() == "sqlite":
            via_view = dict(conn.execute(text("SELECT pmid, xml FROM study_xml")).all())
            kinds = conn.execute(text("SELECT typeof(raw_xml), count(*) FROM studies GROUP BY 1")).all()
            assert kinds == [("blob", len(latest))]
            packed, plain = conn.execute(text("SELECT sum(length(raw_xml)), sum(length(kb_xml(raw_xml))) "
                                              "FROM studies")).one()
        else:  # PostgreSQL (migration 0012): bytea as xmlzip packs it; no view can unpack it in SQL
            via_view = {pmid: xmlzip.unpack(bytes(blob)) for pmid, blob in
                        conn.execute(text("SELECT pmid, raw_xml FROM studies")).all()}
            assert not inspect(conn).has_table("study_xml") and "study_xml" not in inspect(conn).get_view_names()
            packed = conn.execute(text("SELECT sum(octet_length(raw_xml)) FROM studies")).scalar_one()
            plain = sum(len(xml.encode()) for xml in via_view.values())
        assert packed < plain / 3
        studies = {row.pmid: row._asdict() for row in conn.execute(select(*[
            c for c in meta.tables["studies"].columns if c.name not in _BOOKKEEPING]))}
        children: dict[str, dict[int, list[tuple]]] = {}
        for model, columns in store._CHILD_COLUMNS.items():
            table = meta.tables[model.__tablename__]
            cols = [table.c[c] for c in columns]
            if model is m.AbstractSection:  # stored NULL where it equals the text
                assert conn.execute(select(func.count()).where(table.c.text_markup == table.c.text)).scalar() == 0
            rows: dict[int, list[tuple]] = {}
            for row in conn.execute(select(*cols).order_by(table.c.pmid, table.c.position)):
                rows.setdefault(row[0], []).append(tuple(_norm(v) for v in row))
            children[model.__tablename__] = rows
        sections: dict[int, list[tuple]] = {}
        for pmid, *row in conn.execute(text(
                "SELECT pmid, label, nlm_category, text, COALESCE(text_markup, text) FROM abstract_sections "
                "ORDER BY pmid, position")):
            sections.setdefault(pmid, []).append(tuple(row))
    engine.dispose()

    assert set(stored) == set(latest) == set(via_view) and len(latest) > 250
    for pmid, record in latest.items():
        # The view abstract_sections gives every section whole (migration 0013 stores most text once).
        assert sections.get(pmid, []) == [(s.label, s.nlm_category, s.text, s.text_markup)
                                          for s in record.abstract_sections], pmid
        assert stored[pmid] == record.raw_xml, pmid
        assert via_view[pmid] == record.raw_xml, pmid
        again = store.prepare(store._parse_one(stored[pmid]), "file")
        assert again.content_hash == record.content_hash, pmid
        expected = {k: v for k, v in again.study.items() if k in studies[pmid]}
        assert {k: _norm(v) for k, v in studies[pmid].items()} == {k: _norm(v) for k, v in expected.items()}, pmid
        for name, rows in again.children.items():
            assert children[name].get(pmid, []) == [tuple(_norm(v) for v in row) for row in rows], (pmid, name)
    _check_index(db_url)


def test_compressed_xml_round_trips_and_names_its_format() -> None:
    xml = '<PubmedArticle><MedlineCitation><PMID Version="1">1</PMID>Ünïcode – “x” 𝛼</MedlineCitation></PubmedArticle>'
    blob = xmlzip.pack(xml)
    assert blob[0] == xmlzip.FORMAT_V1 and xmlzip.unpack(blob) == xml
    assert xmlzip.unpack(xml) == xml  # text stored before 0011
    con = sqlite3.connect(":memory:")
    xmlzip.register_sqlite_functions(con)
    assert con.execute("SELECT kb_xml(?), kb_xml(NULL)", (blob,)).fetchone() == (xml, None)
    for bad in (b"", b"\x07abc", blob[:-3]):
        try:
            xmlzip.unpack(bad)
        except Exception:  # noqa: BLE001 - any error will do, as long as no wrong text comes back
            continue
        raise AssertionError(f"{bad!r} unpacked")


def test_search_index_stays_consistent_through_changes(db_url: URL, corpus: Path, tmp_path: Path) -> None:
    files = [p for p in corpus_files(corpus) if p.name.endswith(".xml")][:3]
    assert kb(db_url, "load", "--quiet", *map(str, files)).exit_code == 0
    engine = kbdb.create_kb_engine(db_url)
    with engine.connect() as conn:
        pmids = conn.execute(text("SELECT pmid FROM studies ORDER BY pmid LIMIT 6")).scalars().all()
    # A changed version of two records (title and abstract), a deletion, curated text on a third.
    first = store._parse_one(_xml(engine, pmids[0]))
    second = store._parse_one(_xml(engine, pmids[1]))
    changed = [
        store.prepare(_with(first, title="Zebrafish replacement title", abstract="Quokka abstract."), "file"),
        store.prepare(_with(second, title=second.title + " amended"), "file"),
    ]
    sessions = kbdb.make_sessionmaker(engine, write=True)
    with sessions.begin() as session:
        assert sorted(store.store_prepared(session, changed).updated) == sorted(pmids[:2])
    with sessions.begin() as session:
        assert store.mark_deleted(session, [pmids[2]]) == [pmids[2]]
    with sessions.begin() as session:
        session.add(m.Card(pmid=pmids[3], headline="Narwhal headline"))
        session.flush()
        search.reindex_studies(session, [pmids[3]])
    _check_index(db_url)
    assert [h.pmid for h in search.search(engine, "zebrafish quokka")] == [pmids[0]]
    assert [h.pmid for h in search.search(engine, "narwhal")] == [pmids[3]]
    assert pmids[2] not in [h.pmid for h in search.search(engine, first.title.split()[0])]
    with sessions.begin() as session:
        search.reindex_all(session)
    _check_index(db_url)
    assert [h.pmid for h in search.search(engine, "zebrafish")] == [pmids[0]]
    engine.dispose()


def _xml(engine, pmid: int) -> str:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(m.Study.raw_xml).where(m.Study.pmid == pmid)).scalar_one()


def _with(record: PubmedRecord, **changes: object) -> PubmedRecord:
    import dataclasses

    changed = dataclasses.replace(record, **changes)
    return dataclasses.replace(changed, content_hash=record.content_hash[:-8] + "00000000")


def test_json_columns_are_the_text_json_dumps_makes(corpus: Path) -> None:
    """kb.store builds the affiliations and qualifiers JSON itself (for speed): the same text as
    json.dumps, over every author and MeSH heading of the corpus and a few hostile strings."""
    records = list(_last_versions(corpus_files(corpus)).values())
    authors = [a for r in records for a in r.authors]
    headings = [h for r in records for h in r.mesh_headings]
    assert sum(bool(a.affiliations) for a in authors) > 100 and sum(bool(h.qualifiers) for h in headings) > 100
    for a in authors:
        assert store._json_strings(a.affiliations) == json.dumps(list(a.affiliations), ensure_ascii=False)
    for h in headings:
        assert store._json_qualifiers(h.qualifiers) == json.dumps(
            [{"ui": q.ui, "name": q.name, "is_major": q.is_major} for q in h.qualifiers], ensure_ascii=False)
    odd = ('quote " backslash \\ tab \t newline \n', "Ünïcode – 𝛼 \u2028 \x7f", "")
    assert store._json_strings(odd) == json.dumps(list(odd), ensure_ascii=False)
    quals = (MeshQualifier(None, odd[0], True), MeshQualifier("Q1", odd[1], False))  # type: ignore[arg-type]
    assert store._json_qualifiers(quals) == json.dumps(
        [{"ui": x.ui, "name": x.name, "is_major": x.is_major} for x in quals], ensure_ascii=False)


def test_abstract_sections_read_back_whole_however_they_are_stored(db_url: URL, corpus: Path) -> None:
    """Migration 0013: a section's text is stored only where studies.abstract does not hold it. Odd
    sections (empty ones, labelled or not; blank lines and non-BMP characters in the text; markup;
    an abstract that does not hold its sections) come back from the view as parsed."""
    record = next(r for r in _last_versions(corpus_files(corpus)).values() if r.abstract_sections)
    S = AbstractSection
    cases = [
        [S(None, None, "One section.", "One section.")],
        [S(None, None, "One section with markup.", "One <i>section</i> with markup.")],
        [S("BACKGROUND", "BACKGROUND", "a\n\nb 😀 ü", "a\n\nb 😀 ü"), S(None, None, "", ""), S("EMPTY", None, "", ""),
         S(None, "UNASSIGNED", "x y", "x <sup>y</sup>"), S("RESULTS", "RESULTS", "RESULTS: done.", "RESULTS: done.")],
        [S(None, None, "", "")],
        [S("OBJECTIVE", None, "Only labelled.", "Only labelled.")],
    ]
    records = [dataclasses.replace(record, pmid=99_000_100 + i, abstract_sections=tuple(sections),
                                   abstract=_abstract_text(tuple(sections)))
               for i, sections in enumerate(cases)]
    # An abstract that does not hold its sections (not what the parser makes): the text is stored.
    records.append(dataclasses.replace(records[2], pmid=99_000_199, abstract="Something else."))
    engine = kbdb.create_kb_engine(db_url)
    try:
        with kbdb.make_sessionmaker(engine, write=True).begin() as session:
            store.store_records(session, records, source="file")
        with engine.connect() as conn:
            for r in records:
                got = conn.execute(text("SELECT position, label, nlm_category, text, COALESCE(text_markup, text) "
                                        "FROM abstract_sections WHERE pmid = :p ORDER BY position"),
                                   {"p": r.pmid}).all()
                assert [tuple(row) for row in got] == [(i, *s) for i, s in enumerate(r.abstract_sections)], r.pmid
            stored = dict(conn.execute(text("SELECT pmid, count(*) FROM abstract_section_rows "
                                            "WHERE pmid > 99000000 AND text IS NOT NULL GROUP BY pmid")).all())
            rows = dict(conn.execute(text("SELECT pmid, count(*) FROM abstract_section_rows "
                                          "WHERE pmid > 99000000 GROUP BY pmid")).all())
    finally:
        engine.dispose()
    assert 99_000_100 not in rows  # one unlabelled section without markup: only studies.abstract
    assert rows[99_000_101] == 1 and 99_000_101 not in stored  # its markup only
    assert stored.get(99_000_102) == 2  # the two empty sections; the others are read from the abstract
    assert stored[99_000_199] == 5  # nothing found in an abstract that does not hold them


def test_storing_a_batch_reaches_rows_through_its_pmids_only(sqlite_url: URL, corpus: Path) -> None:
    """What a batch of kb load, ingest or refresh costs must not grow with the database: every
    statement of store_prepared reaches rows through the batch's PMIDs (a table's key, or the
    ref_pmid index for links to them), never by scanning a table or a low-cardinality index.
    SQLite keeps no statistics, and with "AND ref_type IN (...)" in the evidence queries it walked
    ix_comments_corrections_ref_type: every erratum and retraction link of the database, once per
    500 PMIDs, and kb load ran at 1,183 records/s into 970,000 studies against 2,228 into none."""
    import re

    from sqlalchemy import event

    files = [p for p in corpus_files(corpus) if p.name.endswith(".xml")]
    assert kb(sqlite_url, "load", "--quiet", *map(str, files)).exit_code == 0
    engine = kbdb.create_kb_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            pmids = conn.execute(text("SELECT pmid FROM studies ORDER BY pmid IN (SELECT pmid FROM comments_corrections) DESC, "
                                      "pmid LIMIT 40")).scalars().all()
            tables = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())
        records = [store._parse_one(_xml(engine, pmid)) for pmid in pmids]
        batch = [store.prepare(_with(r, title=r.title + " (corrected)"), "file") for r in records[:20]]  # changed
        batch += [store.prepare(dataclasses.replace(r, pmid=r.pmid + 50_000_000), "file") for r in records[20:30]]  # new
        batch += [store.prepare(r, "file") for r in records[30:]]  # unchanged
        statements: list[tuple[str, object]] = []

        def grab(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if not executemany:
                statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", grab)
        with kbdb.make_sessionmaker(engine, write=True).begin() as session:
            result = store.store_prepared(session, batch)
        event.remove(engine, "before_cursor_execute", grab)
        assert (len(result.updated), len(result.new), len(result.unchanged)) == (20, 10, 10)
        assert any("comments_corrections" in s for s, _ in statements)

        bad = []
        with engine.connect() as conn:
            for statement, parameters in statements:
                if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                    continue
                for *_, detail in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all():
                    scanned = re.match(r"SCAN (\w+)", detail)
                    index = re.search(r"USING (?:COVERING )?INDEX (\w+)", detail)
                    if (scanned and scanned[1] in tables) or (
                            index and not index[1].startswith("sqlite_autoindex_")
                            and index[1] != "ix_comments_corrections_ref_pmid"):
                        bad.append(f"{detail}  <-  {' '.join(statement.split())[:120]}")
        assert not bad, "\n".join(bad)
    finally:
        engine.dispose()


def test_a_writers_page_cache_grows_with_the_database(sqlite_url: URL) -> None:
    """SQLite's 2 MiB page cache is kept for a database under 256 MiB (a baseline file's load into
    a new database uses the memory it did); a writer on a bigger file gets a 128th of it, at most
    64 MiB (kb load into 970,000 studies: 1,297 -> ~1,450-1,610 records/s). Readers keep the default."""
    path = Path(sqlite_url.database)

    def cache_kib(readonly: bool) -> int:
        engine = kbdb.create_kb_engine(sqlite_url, readonly=readonly)
        try:
            with engine.connect() as conn:
                return -conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        finally:
            engine.dispose()

    assert cache_kib(readonly=False) == 2000  # SQLite's default (-2000: 2,000 KiB)
    with path.open("r+b") as f:  # a sparse file of 1 GiB with kb's schema at its start
        f.truncate(2**30)
    assert kbdb.writer_cache_bytes(path) == 2**30 // 128
    assert cache_kib(readonly=False) == 2**30 // 128 // 1024 and cache_kib(readonly=True) == 2000
    with path.open("r+b") as f:
        f.truncate(40 * 2**30)
    assert cache_kib(readonly=False) == 64 * 1024


def test_a_writers_page_cache_follows_the_file_as_it_grows(sqlite_url: URL) -> None:
    """One `kb load` of many baseline files keeps one connection: each write transaction sizes its
    cache to the file as it is then, not as it was when the connection opened."""
    path = Path(sqlite_url.database)
    engine = kbdb.create_kb_engine(sqlite_url)
    sessions = kbdb.make_sessionmaker(engine, write=True)
    try:
        with sessions.begin() as session:
            assert session.execute(text("PRAGMA cache_size")).scalar_one() == -2000
        with path.open("r+b") as f:  # the database has grown (sparse: kb's schema at its start)
            f.truncate(2**30)
        with sessions.begin() as session:
            assert session.execute(text("PRAGMA cache_size")).scalar_one() == -(2**30 // 128 // 1024)
            assert session.execute(text("SELECT count(*) FROM studies")).scalar_one() == 0
        assert engine.pool.checkedin() == 1  # one pooled connection served both transactions
    finally:
        engine.dispose()
