"""kb refresh against the stand-in E-utilities server: saved searches, changed records,
retractions and errata, missing PMIDs, the lock, kills, and the 9,999 cap."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb.testing.eutils import EutilsServer

from .conftest import kb, url_text
from .records import article, write_set

TODAY = dt.date.today()
BASE = 40_000_000
CURATED = ("headline", "quick_summary", "what_research_found", "who_was_studied", "how_long", "what_they_took",
           "key_findings", "study_design", "dosage_administration", "results_efficacy", "clinical_relevance",
           "curated_study_type", "status", "curator", "record_content_hash")


def before_state(eutils: EutilsServer, tmp_path: Path, count: int = 20) -> None:
    records = [article(BASE + i, f"Vitamin B12 and anaemia, cohort {i}") for i in range(1, count + 1)]
    records.append(article(BASE + 900, "Unrelated study of knees"))
    eutils.replace_records(write_set(tmp_path / "before.xml", records))


def add_cards(engine, pmids: list[int]) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s, s.begin():
        for pmid in pmids:
            study = s.get(m.Study, pmid)
            s.add(m.Card(pmid=pmid, headline=f"Headline {pmid} <b>&", quick_summary="Summary\nline two",
                         what_research_found="Found", clinical_relevance="Relevant", status="published",
                         curator="cur", record_content_hash=study.content_hash))
            s.add(m.Finding(pmid=pmid, position=0, label="Get Tested", text=f"Finding {pmid}"))
            s.add(m.Limitation(pmid=pmid, position=0, text="Small sample"))
            s.add(m.Note(pmid=pmid, position=0, audience="technical", text="Note"))


def curated_snapshot(engine) -> dict:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        cards = sorted(tuple(getattr(c, f) for f in ("pmid", *CURATED)) for c in s.scalars(select(m.Card)))
        items = sorted(
            (t.__tablename__, i.pmid, i.position, i.audience, i.label, i.text, i.source, i.author)
            for t in (m.Finding, m.Limitation, m.Note) for i in s.scalars(select(t))
        )
    return {"cards": cards, "items": items}


def test_refresh_before_and_after(eutils: EutilsServer, db_url: URL, tmp_path: Path) -> None:
    before_state(eutils, tmp_path)
    assert kb(db_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    first = kb(db_url, "refresh")
    assert first.exit_code == 0, first.output
    assert "new 20, linked 20" in first.stderr

    engine = kbdb.create_kb_engine(db_url)
    carded = [BASE + 2, BASE + 3, BASE + 4, BASE + 5, BASE + 6]
    add_cards(engine, carded)
    curated_before = curated_snapshot(engine)

    # The "after" state: two new studies, a modified record, a retraction notice pointing at a
    # tracked study (whose own record does not change), an erratum on a tracked study, a deletion.
    eutils.add_record_xml(article(BASE + 21, "Vitamin B12 in older adults", entrez=TODAY), edat=TODAY, mdat=TODAY)
    eutils.add_record_xml(article(BASE + 22, "Oral vitamin B12 versus injections", entrez=TODAY), edat=TODAY, mdat=TODAY)
    eutils.add_record_xml(article(BASE + 2, "Vitamin B12 and anaemia, cohort 2 (corrected title)", revised=TODAY),
                          mdat=TODAY)
    eutils.add_record_xml(
        article(BASE + 30, "Retraction notice: Vitamin B12 and anaemia, cohort 3", entrez=TODAY,
                pub_types=[("D016440", "Retraction of Publication")], links=[("RetractionOf", BASE + 3)]),
        edat=TODAY, mdat=TODAY)
    eutils.add_record_xml(
        article(BASE + 4, "Vitamin B12 and anaemia, cohort 4", revised=TODAY, links=[("ErratumIn", BASE + 31)]),
        mdat=TODAY)
    eutils.load(write_set(tmp_path / "deletions.xml", [], deleted=[BASE + 5]))

    second = kb(db_url, "refresh")
    assert second.exit_code == 0, second.output
    assert "new 3, linked 3, changed 2, retracted 1, missing 1, failed 0" in second.stderr

    with Session(engine) as s:
        pmids = set(s.scalars(select(m.Study.pmid)))
        assert pmids == {BASE + i for i in range(1, 21)} | {BASE + 21, BASE + 22, BASE + 30}
        linked = set(s.scalars(select(m.TopicStudy.pmid)))
        assert linked == pmids

        modified = s.get(m.Study, BASE + 2)
        assert modified.title == "Vitamin B12 and anaemia, cohort 2 (corrected title)"
        revision = s.scalars(select(m.StudyRevision).where(m.StudyRevision.pmid == BASE + 2)).one()
        assert "title" in revision.changed_fields and "date_revised" in revision.changed_fields

        retracted = s.get(m.Study, BASE + 3)
        assert retracted.is_retracted and retracted.evidence_status == "retracted"
        assert s.get(m.Card, BASE + 3).needs_review and "retracted" in s.get(m.Card, BASE + 3).review_reason

        erratum = s.get(m.Study, BASE + 4)
        assert erratum.evidence_status == "erratum" and not erratum.is_retracted
        assert s.get(m.Card, BASE + 4).needs_review  # written against the older record

        assert s.get(m.Card, BASE + 2).needs_review and "changed" in s.get(m.Card, BASE + 2).review_reason
        gone = s.get(m.Study, BASE + 5)
        assert gone.is_missing and not gone.is_deleted and gone.title
        assert not s.get(m.Card, BASE + 6).needs_review

        run = s.scalars(select(m.RefreshRun).order_by(m.RefreshRun.id.desc())).first()
        assert (run.status, run.is_complete, run.rate_limited) == ("success", True, 0)
        b12 = run.counts["topics"]["b12"]
        assert (b12["new"], b12["changed"], b12["retracted"], b12["failed"]) == (3, 2, 1, 0)
        assert run.counts["tracked"]["retracted"] == 1 and run.counts["tracked"]["changed"] == 2
    assert curated_snapshot(engine) == curated_before  # curated text byte-identical

    report = kb(db_url, "report", "changes", "--format", "csv", "--no-new")
    lines = report.stdout.splitlines()
    assert lines[0] == "when,kind,pmid,title,detail,card_status,card_needs_review"
    kinds = [line.split(",")[1] for line in lines[1:]]
    assert kinds[0] == "retracted" and set(kinds) == {"retracted", "missing", "erratum", "changed"}
    engine.dispose()


def test_dry_run_prints_the_plan_on_stdout(eutils: EutilsServer, sqlite_url: URL, tmp_path: Path) -> None:
    """`kb refresh --dry-run > plan.txt` left the file empty: the plan went to stderr."""
    before_state(eutils, tmp_path)
    assert kb(sqlite_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    for args in (["--dry-run"], ["--dry-run", "--quiet"]):  # --quiet silences progress, not the data asked for
        result = kb(sqlite_url, "refresh", *args)
        assert (result.exit_code, result.stderr) == (0, ""), args
        assert result.stdout.splitlines()[0] == "topic b12: 20 hits, 20 from the beginning, 20 new to the topic"
        assert result.stdout.splitlines()[1].startswith("dry run: topics 1, new 20, linked 20, changed 0, ")
        assert len(result.stdout.splitlines()) == 2, result.stdout
    result = kb(sqlite_url, "refresh")  # a real run keeps its progress and summary on stderr
    assert result.exit_code == 0 and result.stdout == "", result.output
    assert "topic b12: 20 hits" in result.stderr and "new 20, linked 20" in result.stderr


def test_dry_run_counts_new_as_the_real_run_does(eutils: EutilsServer, sqlite_url: URL, tmp_path: Path) -> None:
    """The dry run said `new 0` for studies kb did not hold, which the real run then stored as new."""
    before_state(eutils, tmp_path)
    assert kb(sqlite_url, "ingest", str(BASE + 1), str(BASE + 2)).exit_code == 0  # 2 of the 20 already held
    assert kb(sqlite_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    plan = kb(sqlite_url, "refresh", "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert plan.stdout.splitlines()[-1].startswith("dry run: topics 1, new 18, linked 20, "), plan.stdout
    result = kb(sqlite_url, "refresh")
    assert result.exit_code == 0 and "topics 1, new 18, linked 20, " in result.stderr, result.output


def test_exclusions_are_never_readded(eutils: EutilsServer, sqlite_url: URL, tmp_path: Path) -> None:
    before_state(eutils, tmp_path, count=5)
    assert kb(sqlite_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    assert kb(sqlite_url, "topic", "exclude", "b12", str(BASE + 1), str(BASE + 2)).exit_code == 0
    assert kb(sqlite_url, "refresh").exit_code == 0
    result = kb(sqlite_url, "refresh", "--since", "2000-01-01")
    assert result.exit_code == 0
    engine = kbdb.create_kb_engine(sqlite_url)
    with Session(engine) as s:
        links = {(ts.pmid, ts.is_excluded) for ts in s.scalars(select(m.TopicStudy))}
    engine.dispose()
    assert links == {(BASE + 1, True), (BASE + 2, True), (BASE + 3, False), (BASE + 4, False), (BASE + 5, False)}
    assert kb(sqlite_url, "topic", "remove", "b12").exit_code == 0
    listing = kb(sqlite_url, "topic", "list", "--format", "csv")
    assert listing.stdout.strip() == "name,query,hits,studies,excluded,complete_until"


def test_hit_count_jump_warns(eutils: EutilsServer, sqlite_url: URL, tmp_path: Path) -> None:
    before_state(eutils, tmp_path, count=40)
    assert kb(sqlite_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    assert kb(sqlite_url, "refresh").exit_code == 0
    before_state(eutils, tmp_path, count=12)  # an NCBI outage or a changed translation
    result = kb(sqlite_url, "refresh")
    assert "Warning: topic b12: the hit count changed sharply: 40 -> 12" in result.stderr


def _dump(url: URL) -> dict[str, list]:
    engine = kbdb.create_kb_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    volatile = {"first_fetched_at", "last_fetched_at", "last_changed_at", "added_at", "raw_xml"}
    out = {}
    with engine.connect() as conn:
        for name in ["studies", "topic_studies", *[t.__tablename__ for t in m.CHILD_TABLES]]:
            table = meta.tables[name]
            cols = [c for c in table.columns if c.name not in volatile]
            out[name] = sorted(tuple(map(repr, row)) for row in conn.execute(select(*cols)))
    engine.dispose()
    return out


def _refresh_until_mid_way(eutils: EutilsServer, url: URL) -> tuple[subprocess.Popen[str], Engine]:
    """Start `kb refresh --batch-size 10` of a 60-study topic in a process, with slow answers;
    return it (still running) and a read-only engine once 20 studies are stored."""
    assert kb(url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    eutils.inject("slow", count=6, path="efetch", seconds=0.6)
    env = {**os.environ, "KB_DATABASE_URL": url_text(url)}
    proc = subprocess.Popen([sys.executable, "-m", "kb", "refresh", "--quiet", "--batch-size", "10"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    engine = kbdb.create_kb_engine(url, readonly=True)
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None and stored < 20:
        with engine.connect() as conn:
            stored = len(conn.execute(select(m.Study.pmid)).all())
        time.sleep(0.05)
    if not (proc.poll() is None and 20 <= stored < 60):
        proc.kill()
        engine.dispose()
        pytest.fail("the refresh should be stopped mid-way")
    return proc, engine


@pytest.mark.parametrize("signame,code,said,recorded", [
    ("SIGTERM", 143, "Terminated.", "interrupted (terminated by SIGTERM) before the run finished"),
    ("SIGINT", 130, "Interrupted.", "interrupted (Ctrl-C) before the run finished"),
])
def test_stopped_refresh_records_it_and_rerun_completes(eutils: EutilsServer, tmp_path: Path, signame: str,
                                                        code: int, said: str, recorded: str) -> None:
    """SIGTERM (systemd stopping the timer's unit) or Ctrl-C mid-refresh: exit 143 or 130, the
    run is recorded as failed and interrupted (a SIGTERM used to leave it written as partial, or
    even success when the stop came after the topics), and the next refresh completes the topic."""
    before_state(eutils, tmp_path, count=60)
    url = URL.create("sqlite", database=str(tmp_path / "terminated.sqlite3"))
    proc, engine = _refresh_until_mid_way(eutils, url)
    proc.send_signal(getattr(signal, signame))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == said
    with engine.connect() as conn:
        run = conn.execute(select(m.RefreshRun.status, m.RefreshRun.error, m.RefreshRun.is_complete,
                                  m.RefreshRun.finished_at)).one()
        assert run.status == "failed" and not run.is_complete and run.finished_at is not None
        assert run.error == recorded
        assert conn.execute(select(m.Topic.watermark)).scalar() is None  # the topic did not complete
    engine.dispose()
    eutils.clear_faults()
    again = kb(url, "refresh", "--batch-size", "10")
    assert again.exit_code == 0, again.output
    engine = kbdb.create_kb_engine(url)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Study)) == 60
        assert [r.status for r in s.scalars(select(m.RefreshRun).order_by(m.RefreshRun.id))] == ["failed", "success"]
    engine.dispose()


def test_killed_refresh_then_rerun_equals_uninterrupted(eutils: EutilsServer, tmp_path: Path) -> None:
    before_state(eutils, tmp_path, count=60)
    reference = URL.create("sqlite", database=str(tmp_path / "reference.sqlite3"))
    assert kb(reference, "topic", "add", "b12", "vitamin b12").exit_code == 0
    assert kb(reference, "refresh", "--batch-size", "10").exit_code == 0

    killed = URL.create("sqlite", database=str(tmp_path / "killed.sqlite3"))
    proc, engine = _refresh_until_mid_way(eutils, killed)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    with engine.connect() as conn:
        assert conn.execute(select(m.Topic.watermark)).scalar() is None  # the topic did not complete
        assert conn.execute(select(m.RefreshRun.status)).scalar() == "running"
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    engine.dispose()

    eutils.clear_faults()
    again = kb(killed, "refresh", "--batch-size", "10")
    assert again.exit_code == 0, again.output
    assert _dump(killed) == _dump(reference)
    engine = kbdb.create_kb_engine(killed)
    with Session(engine) as s:
        statuses = [r.status for r in s.scalars(select(m.RefreshRun).order_by(m.RefreshRun.id))]
        assert statuses == ["failed", "success"]
        assert s.scalar(select(m.Topic.watermark)) is not None
    engine.dispose()


def test_two_refreshes_at_once(eutils: EutilsServer, db_url: URL, tmp_path: Path) -> None:
    before_state(eutils, tmp_path, count=10)
    assert kb(db_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    eutils.inject("slow", count=1, path="efetch", seconds=4)
    env = {**os.environ, "KB_DATABASE_URL": url_text(db_url)}
    first = subprocess.Popen([sys.executable, "-m", "kb", "refresh", "--quiet"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    engine = kbdb.create_kb_engine(db_url)
    deadline = time.monotonic() + 30
    running = False
    while not running and time.monotonic() < deadline:
        with engine.connect() as conn:
            running = conn.execute(select(m.RefreshRun.id).where(m.RefreshRun.status == "running")).first() is not None
        time.sleep(0.05)
    engine.dispose()
    assert running
    second = kb(db_url, "refresh")
    assert second.exit_code == 75, second.output
    assert second.stderr.startswith("Error: another kb refresh is running")
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    third = kb(db_url, "refresh")  # the lock was released
    assert third.exit_code == 0, third.output


@pytest.mark.slow
def test_topic_over_the_esearch_cap_is_windowed(eutils: EutilsServer, sqlite_url: URL, tmp_path: Path) -> None:
    total = 10_600
    start = dt.date(2019, 1, 1)
    records = [article(BASE + i, f"Windowed topic study {i}", entrez=start + dt.timedelta(days=i % 700))
               for i in range(total)]
    eutils.replace_records(write_set(tmp_path / "many.xml", records))
    assert kb(sqlite_url, "topic", "add", "windows", "windowed").exit_code == 0
    result = kb(sqlite_url, "refresh", "--batch-size", "5000")
    assert result.exit_code == 0, result.output
    assert f"new {total}, linked {total}" in result.stderr
    engine = kbdb.create_kb_engine(sqlite_url)
    with Session(engine) as s:
        assert len(s.scalars(select(m.TopicStudy.pmid)).all()) == total
        run = s.scalars(select(m.RefreshRun)).one()
        assert run.counts["topics"]["windows"]["windows"] >= 2
    engine.dispose()
    searches = [e for e in eutils.stats()["log"] if e["endpoint"] == "esearch"]
    assert all(int(e["params"].get("retmax", "0")) <= 9999 for e in searches)


@pytest.mark.slow
def test_changed_studies_cost_requests_not_the_tracked_count(eutils: EutilsServer, sqlite_url: URL,
                                                             tmp_path: Path) -> None:
    tracked = 10_000
    path = write_set(tmp_path / "tracked.xml", [article(BASE + i, f"Tracked study {i}") for i in range(tracked)])
    eutils.replace_records(path)
    assert kb(sqlite_url, "load", "--quiet", str(path)).exit_code == 0
    for i in range(0, 5000, 100):  # 50 studies change today
        eutils.add_record_xml(article(BASE + i, f"Tracked study {i}, revised", revised=TODAY), mdat=TODAY)
    eutils.reset_stats()
    result = kb(sqlite_url, "refresh")
    assert result.exit_code == 0, result.output
    assert "changed 50" in result.stderr
    stats = eutils.stats()
    assert stats["ids_fetched"] == 50
    assert stats["efetch"] == 1  # grows with the 50 changes (500 per request), not with the 10,000
    assert stats["requests"] <= 5  # epost, two esearches, one efetch

    # Two tracked PMIDs disappear from PubMed, at both ends of the 10,000: the count over all of
    # them differs, and searches by PMID range (10,000 is more than one listing holds) find them.
    gone = [BASE + 3, BASE + tracked - 2]
    eutils.load(write_set(tmp_path / "gone.xml", [], deleted=gone))
    eutils.reset_stats()
    result = kb(sqlite_url, "refresh")
    assert result.exit_code == 0, result.output
    assert "missing 2" in result.stderr
    engine = kbdb.create_kb_engine(sqlite_url)
    with Session(engine) as s:
        flagged = s.scalars(select(m.Study.pmid).where(m.Study.is_missing.is_(True))).all()
    engine.dispose()
    assert sorted(flagged) == gone
    assert eutils.stats()["esearch"] <= 8  # the count, the range searches, mdat: not one per PMID
