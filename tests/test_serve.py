"""`kb serve`: the read-only Datasette view (issue 15), opened in a real headless Chromium.

A view and a canned card query render with their descriptions, a write through the SQL box is
refused (and nothing changes), a pmid's card link resolves to the card kb renders; PostgreSQL and a
missing database or extra get one clear error line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import URL

from kb import models as m
from kb import serve as kbserve
from kb.cli import cli
from kb.errors import EXIT_SCHEMA, EXIT_USAGE

from .browser import Chromium, Tab, browser  # noqa: F401 - the browser fixture
from .conftest import REPO, url_text

CARD = REPO / "tests" / "data" / "card-31902683-kb.txt"
PMID = 31902683


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def kb_file(corpus: Path, tmp_path: Path) -> Path:
    """A SQLite knowledge base: the ncbiutils records and the example card."""
    db = tmp_path / "kb.sqlite3"
    runner = CliRunner()
    for args in (["load", "--quiet", str(corpus / "ncbiutils")], ["curate", "import", "--quiet", str(CARD)]):
        result = runner.invoke(cli, ["--db", f"sqlite:///{db}", *args])
        assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def served(kb_file: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    db = kb_file
    url = f"sqlite:///{db}"
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "kb", "--db", url, "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KB_DEBUG": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # up to 30 s for Datasette to start on a busy machine
            try:
                with urllib.request.urlopen(base + "/-/versions.json", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        else:
            raise AssertionError("kb serve did not answer: " + (tmp_path / "serve.log").read_text())
        yield {"base": base, "db": db, "log": tmp_path / "serve.log", "tmp": tmp_path}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _text(tab: Tab, selector: str = "body") -> str:
    return tab.js(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")


def test_kb_serve_in_a_real_browser(served: dict[str, Any], browser: Chromium) -> None:  # noqa: F811
    base, db = served["base"], served["db"]
    before = _sha(db)
    tab = Tab(browser)

    # The database page: the documented views first, with their descriptions; then the queries.
    tab.open(f"{base}/kb")
    order = tab.js("Array.from(document.querySelectorAll('h2')).map(h => h.id)")
    assert order.index("views") < order.index("queries") < order.index("tables"), order
    page = _text(tab)
    assert "One row per study with the fields analysts filter on most" in page
    assert m.Base.metadata.tables["studies"].comment in page  # tables are described too
    assert "study_search_data" not in page  # FTS5's shadow tables are hidden

    # A view, with its description and its columns' descriptions.
    tab.open(f"{base}/kb/study_overview")
    assert "One row per study with the fields analysts filter on most" in _text(tab, ".metadata-description")
    described = tab.js("Object.fromEntries(Array.from(document.querySelectorAll('th[data-column-description]'))"
                       ".map(th => [th.dataset.column, th.dataset.columnDescription]))")
    assert described["study_type"].startswith("Study type from the publication types")
    assert described["pmid"] == "PubMed ID"

    # A canned card query with its parameter form and description.
    tab.open(f"{base}/kb/card_study?pmid={PMID}")
    page = _text(tab)
    assert "The study behind a card" in page
    assert "Card query (kb/cards/queries). Parameters: :pmid" in page
    assert tab.js("document.querySelector('input[name=pmid]').value") == str(PMID)
    assert "Vitamin B12 Deficiency Can Look Like a Dangerous Blood Disorder" in page
    tab.screenshot(Path(os.environ.get("KB_TEST_SCREENSHOTS", served["tmp"])) / "serve-card_study.png")

    # The pmid's card link resolves to the card kb renders.
    link = tab.js("document.querySelector('a.kb-card').href")
    assert link == f"{base}/-/card/{PMID}"
    tab.open(link)
    assert "Vitamin B12 Deficiency Can Look Like a Dangerous Blood Disorder" in _text(tab, "h1")
    assert "Quick Summary" in _text(tab)
    tab.screenshot(Path(os.environ.get("KB_TEST_SCREENSHOTS", served["tmp"])) / "serve-card.png")

    # A write through the SQL box is refused, and the file is unchanged.
    tab.open(f"{base}/kb")
    tab.js("document.querySelector('.CodeMirror').CodeMirror.setValue('')")  # the SQL box's editor
    tab.js("document.querySelector('.CodeMirror').CodeMirror.focus()")
    browser.call("Input.insertText", tab.session, text="DELETE FROM studies")  # typed, as a person would
    since = len(browser.events)
    tab.js("document.querySelector('form.sql input[type=submit]').click()")
    browser.wait_for("Page.loadEventFired", tab.session, since)
    assert "Statement must be a SELECT" in _text(tab)
    assert "DELETE FROM studies" in tab.js("decodeURIComponent(location.search.replace(/\\+/g, ' '))")
    problems = tab.problems()  # the only one: the refused statement's answer (HTTP 400)
    assert len(problems) == 1 and "sql=DELETE+FROM+studies" in problems[0] and "status of 400" in problems[0]
    assert _sha(db) == before


def test_served_connections_refuse_writes_past_datasette(kb_file: Path) -> None:
    """Datasette's own SQL check aside, every connection it opens on the file is query_only."""
    ds = kbserve.make_datasette(URL.create("sqlite", database=str(kb_file)))
    database = ds.get_database("kb")
    before = _sha(kb_file)
    for sql in ("DELETE FROM studies", "CREATE TABLE evil (x INTEGER)", "UPDATE cards SET status = 'draft'"):
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
            asyncio.run(database.execute(sql))
    assert not any(q.get("write") for q in ds.metadata("queries", database="kb").values())
    assert asyncio.run(database.execute("SELECT count(*) FROM studies")).rows[0][0] > 100
    assert _sha(kb_file) == before


def test_serve_refuses_postgresql_and_a_missing_database(pg_url: URL, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", url_text(pg_url), "serve"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.count("\n") == 1
    assert "serves SQLite knowledge bases only" in result.stderr and "kb sql" in result.stderr
    missing = tmp_path / "none.sqlite3"
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{missing}", "serve"])
    assert result.exit_code == EXIT_SCHEMA and f"no kb database at {missing}" in result.stderr
    assert not missing.exists()


def test_serve_without_the_extra_says_how_to_install_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    assert CliRunner().invoke(cli, ["--db", url, "db", "upgrade"]).exit_code == 0
    monkeypatch.setitem(sys.modules, "datasette", None)  # as if kb[serve] were not installed
    monkeypatch.setitem(sys.modules, "datasette.app", None)
    result = CliRunner().invoke(cli, ["--db", url, "serve"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "pip install 'kb[serve]'" in result.stderr


def test_serve_on_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    """uvicorn logged 'ERROR: [Errno 98] … address already in use' under kb's 'kb serve: http://…'
    line and exited 3, the code kb documents for a missing database."""
    url = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    assert CliRunner().invoke(cli, ["--db", url, "db", "upgrade"]).exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["--db", url, "serve", "--port", str(port)])
    assert (result.exit_code, result.stdout) == (EXIT_USAGE, ""), result.output
    assert result.stderr == (f"Error: kb serve cannot listen on 127.0.0.1:{port} (Address already in use): "
                             "give another --port, or a --host address of this machine\n")


def test_every_table_and_view_of_the_database_has_a_description(tmp_path: Path) -> None:
    """The database page listed the view study_search_source with no description under it."""
    db = tmp_path / "kb.sqlite3"
    assert CliRunner().invoke(cli, ["--db", f"sqlite:///{db}", "db", "upgrade"]).exit_code == 0
    with sqlite3.connect(db) as con:
        names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                           "AND name NOT LIKE 'sqlite_%'")]
    tables = kbserve.metadata("kb")["databases"]["kb"]["tables"]
    undescribed = [n for n in names if not tables.get(n, {}).get("hidden") and not tables.get(n, {}).get("description")]
    assert undescribed == []
