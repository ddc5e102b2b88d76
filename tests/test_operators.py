"""Issue 15, the operator's side: `kb refresh --status` counts and errors, `kb report changes`
from the last read or the last run that found changes, topic messages, E-utilities errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from sqlalchemy.engine import URL

from kb.errors import EXIT_UNAVAILABLE
from kb.testing.eutils import EutilsServer

from .conftest import kb
from .records import article, write_set
from .test_refresh import BASE, before_state

TODAY = dt.date.today()



def rows(result) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_refresh_status_shows_linked_missing_topics_and_the_error(eutils: EutilsServer, db_url: URL,
                                                                  tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    before_state(eutils, tmp_path, count=11)
    # The studies are already stored (a curator ingested them): the first run links 11, new 0.
    pmids = [str(BASE + i) for i in range(1, 12)]
    assert kb(db_url, "ingest", "--quiet", *pmids).exit_code == 0
    added = kb(db_url, "topic", "add", "vitamin b12", "vitamin b12")
    assert added.exit_code == 0
    assert "(from the beginning)" in added.stderr and "1781" not in added.stderr
    assert "`kb refresh --topic 'vitamin b12'`" in added.stderr  # the hint can be pasted into a shell
    first = kb(db_url, "refresh")
    assert first.exit_code == 0, first.output
    assert "from the beginning" in first.stderr and "1781" not in first.stderr
    assert "new 0, linked 11" in first.stderr

    (run,) = rows(kb(db_url, "refresh", "--status", "--format", "csv"))
    assert (run["status"], run["found"], run["new"], run["linked"], run["missing"], run["error"]) == (
        "success", "11", "0", "11", "0", "")
    assert run["topics"] == "vitamin b12: found 11, new 0, linked 11"

    # A run that fails: its error is shown.
    monkeypatch.setenv("KB_EUTILS_URL", "http://127.0.0.1:9/entrez/eutils/")  # nothing listens there
    monkeypatch.setenv("KB_EUTILS_TRIES", "1")
    failed = kb(db_url, "refresh")
    assert failed.exit_code == EXIT_UNAVAILABLE, failed.output
    last = rows(kb(db_url, "refresh", "--status", "--format", "csv"))[0]
    assert last["status"] == "failed"
    assert "cannot reach E-utilities" in last["error"] or "Connection refused" in last["error"], last


def test_report_changes_is_not_hidden_by_a_no_op_run(eutils: EutilsServer, db_url: URL,
                                                     tmp_path: Path) -> None:
    before_state(eutils, tmp_path, count=5)
    assert kb(db_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    assert kb(db_url, "refresh").exit_code == 0
    assert kb(db_url, "report", "changes", "--mark-read").exit_code == 0  # a person read the first night
    # The second night: a retraction notice for a tracked study.
    eutils.add_record_xml(
        article(BASE + 30, "Retraction notice: Vitamin B12 and anaemia, cohort 3", entrez=TODAY,
                pub_types=[("D016440", "Retraction of Publication")], links=[("RetractionOf", BASE + 3)]),
        edat=TODAY, mdat=TODAY)
    second = kb(db_url, "refresh")
    assert second.exit_code == 0 and "retracted 1" in second.stderr, second.stderr
    # The third night finds nothing: the retraction must still be reported.
    noop = kb(db_url, "refresh")
    assert noop.exit_code == 0 and "new 0, linked 0, changed 0, retracted 0" in noop.stderr
    report = kb(db_url, "report", "changes", "--format", "csv", "--no-new")
    assert [(r["kind"], r["pmid"]) for r in rows(report)][:1] == [("retracted", str(BASE + 3))]
    assert "since the changes were last marked read" in report.stderr

    marked = kb(db_url, "report", "changes", "--format", "csv", "--no-new", "--mark-read")
    assert rows(marked)[0]["kind"] == "retracted" and "marked read up to refresh run 3" in marked.stderr
    assert rows(kb(db_url, "report", "changes", "--format", "csv", "--no-new")) == []
    status = rows(kb(db_url, "refresh", "--status", "--format", "csv"))
    assert " by " in status[0]["read"]  # who marked it read, and when


def test_report_changes_without_a_read_mark_starts_at_the_last_run_with_changes(
        eutils: EutilsServer, sqlite_url: URL, tmp_path: Path) -> None:
    before_state(eutils, tmp_path, count=5)
    assert kb(sqlite_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    assert kb(sqlite_url, "refresh").exit_code == 0  # finds 5 new studies
    assert kb(sqlite_url, "refresh").exit_code == 0  # finds nothing
    report = kb(sqlite_url, "report", "changes", "--format", "csv")
    assert "since the start of the latest refresh run that found changes" in report.stderr
    assert sorted(int(r["pmid"]) for r in rows(report)) == [BASE + i for i in range(1, 6)]


def test_an_http_500_is_one_line_naming_the_status(eutils: EutilsServer, sqlite_url: URL,
                                                   tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    before_state(eutils, tmp_path, count=2)
    monkeypatch.setenv("KB_EUTILS_TRIES", "2")
    eutils.inject("500", count=10, path="efetch")
    result = kb(sqlite_url, "ingest", str(BASE + 1))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert all("<" not in line for line in lines), result.stderr  # no HTML page
    assert sum("HTTP 500" in line for line in lines) == 1, result.stderr
    assert "HTTP 500 (Internal Server Error) from E-utilities" in result.stderr


def test_a_dns_failure_is_not_retried(sqlite_url: URL, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KB_EUTILS_URL", "http://kb-test-host.invalid/entrez/eutils/")  # .invalid never resolves
    monkeypatch.setenv("KB_EUTILS_TRIES", "5")
    monkeypatch.setenv("KB_EUTILS_BACKOFF", "30")  # a retry would take minutes: the test would time out
    monkeypatch.setenv("KB_RATE_DIR", str(tmp_path))
    result = kb(sqlite_url, "ingest", "31902683", "35679569")
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "cannot resolve" in lines[0] and "kb-test-host.invalid" in lines[0]
    assert "kb load FILE" in lines[0] and "KB_EUTILS_URL" in lines[0]
    assert "after 5 tries" not in result.stderr
