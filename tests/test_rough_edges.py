"""The rough edges a new user hit (issue 15), one test each, on SQLite and PostgreSQL where the
database matters: read-only commands that created databases, unclear URL errors, two vocabularies
for study types, queries and docs that needed a checkout, PMIDs typed the way people copy them,
the erratum missing from the card page, a placeholder's journal, the emoji font."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb.cli import cli
from kb.errors import EXIT_SCHEMA, EXIT_USAGE
from kb.pubmed.pmids import parse_pmids

from .conftest import REPO, kb, url_text
from .records import article, write_set

P = 40_100_000
RCT, COMMENT, REVIEW, PLAIN, ERRATUM = P + 1, P + 2, P + 3, P + 4, P + 5



def one_error_line(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def loaded(db_url: URL, tmp_path: Path) -> URL:
    """Five studies of known types (one with an erratum), two curated cards."""
    records = [
        article(RCT, "Vitamin D trial", pub_types=[("D016449", "Randomized Controlled Trial")]),
        article(COMMENT, "Vitamin D comment", pub_types=[("D016420", "Comment")]),
        article(REVIEW, "Vitamin D review", pub_types=[("D016454", "Review")]),
        article(PLAIN, "Vitamin D article"),
        article(ERRATUM, "Vitamin D cohort", links=[("ErratumIn", P + 99)]),
    ]
    assert kb(db_url, "load", "--quiet", str(write_set(tmp_path / "set.xml", records))).exit_code == 0
    for pmid, status in ((RCT, "published"), (COMMENT, "draft")):
        card = tmp_path / f"card-{pmid}.txt"
        card.write_text(f"Vitamin D card {pmid}\n\nQuick Summary: It is a card.\n\n"
                        f"Source: PubMed | Type: Other | Year: 2020\n\n📄 Read Full Study (PMID: {pmid})\n")
        result = kb(db_url, "curate", "import", "--quiet", "--status", status, str(card))
        assert result.exit_code == 0, result.output
    return db_url


# -- read-only commands never create a database --------------------------------------------

READ_ONLY = [
    ["query", "select 1"], ["query", "--name", "card_topics"], ["search", "vitamin"], ["export", "studies"],
    ["card", "31902683"], ["status"], ["refresh", "--status"], ["report", "changes"], ["topic", "list"],
    ["curate", "lint"], ["cards", "build", "SITE"], ["sql"], ["serve"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: "-".join(a[:2]))
def test_read_only_commands_create_no_database_nor_kb_home(args: list[str], tmp_path: Path, kb_env: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "typo.sqlite3"
    one_error_line(kb(f"sqlite:///{typo}", *args), EXIT_SCHEMA, f"no kb database at {typo}", "kb db upgrade")
    assert not typo.exists()
    result = CliRunner().invoke(cli, args)  # the default database, in KB_HOME
    one_error_line(result, EXIT_SCHEMA, f"no kb database at {kb_env / 'kb.sqlite3'}")
    assert not kb_env.exists()


def test_read_only_commands_leave_an_empty_postgresql_database_empty(empty_pg_url: URL) -> None:
    for args in READ_ONLY[:4]:
        one_error_line(kb(empty_pg_url, *args), EXIT_SCHEMA, "is empty", "kb db upgrade")
    engine = kbdb.create_kb_engine(empty_pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("url, needle", [
    ("sqlite://tmp/x.sqlite3", "after sqlite:// comes a third slash"),
    ("postgresql://kb@host:port/kb", "is not a database URL"),
    ("mysql://kb@host/kb", "unsupported database"),
])
def test_bad_database_urls_are_one_line_exit_2(url: str, needle: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    one_error_line(kb(url, "status"), EXIT_USAGE, needle)
    assert list(tmp_path.iterdir()) == []


# -- one vocabulary for study types --------------------------------------------------------


def _pmids(result: Result) -> list[int]:
    assert result.exit_code == 0, result.output
    return sorted(row["pmid"] for row in json.loads(result.stdout))


def test_search_types_take_the_names_the_output_shows(loaded: URL) -> None:
    shown = json.loads(kb(loaded, "search", "vitamin", "--format", "json").stdout)
    types = {row["pmid"]: row["type"] for row in shown}
    assert types == {RCT: "randomized controlled trial", COMMENT: "commentary", REVIEW: "review",
                     PLAIN: "other", ERRATUM: "other"}
    for name in ("rct", "randomized controlled trial", "Randomized-Controlled-Trial", "randomised controlled trial"):
        assert _pmids(kb(loaded, "search", "vitamin", "--type", name, "--format", "json")) == [RCT], name
    assert _pmids(kb(loaded, "search", "vitamin", "--type", "commentary", "--format", "json")) == [COMMENT]
    assert _pmids(kb(loaded, "search", "vitamin", "--type", "other", "--format", "json")) == [PLAIN, ERRATUM]
    one_error_line(kb(loaded, "search", "vitamin", "--type", "anecdote"), EXIT_USAGE, "unknown study type")
    # Card filters.
    assert _pmids(kb(loaded, "search", "vitamin", "--card", "published", "--format", "json")) == [RCT]
    assert _pmids(kb(loaded, "search", "vitamin", "--card", "draft", "--format", "json")) == [COMMENT]
    assert _pmids(kb(loaded, "search", "vitamin", "--card", "none", "--format", "json")) == [REVIEW, PLAIN, ERRATUM]
    assert _pmids(kb(loaded, "search", "vitamin", "--needs-review", "--format", "json")) == []
    engine = kbdb.create_kb_engine(loaded)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE cards SET needs_review = TRUE WHERE pmid = {COMMENT}")
    engine.dispose()
    assert _pmids(kb(loaded, "search", "vitamin", "--needs-review", "--format", "json")) == [COMMENT]
    # The view's column is study_type; cards.study_design is the card's paragraph.
    overview = json.loads(kb(loaded, "query", "SELECT pmid, study_type FROM study_overview", "--format",
                             "json").stdout)
    assert {r["pmid"]: r["study_type"] for r in overview}[RCT] == "randomized controlled trial"


# -- shipped queries and docs --------------------------------------------------------------


def test_shipped_queries_and_docs_work_outside_a_checkout(loaded: URL, tmp_path: Path) -> None:
    env_cwd = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 120}
    listing = subprocess.run([sys.executable, "-m", "kb", "query", "--list", "--format", "csv"], **env_cwd)
    names = [line.split(",")[0] for line in listing.stdout.splitlines()[1:]]
    assert {"card_study", "card_items", "card_index", "rcts_on_mesh", "study_types_per_year"} <= set(names)
    study = subprocess.run([sys.executable, "-m", "kb", "--db", url_text(loaded), "query", "--name", "card_study",
                            "-p", f"pmid={RCT}", "--format", "json"], **env_cwd)
    assert study.returncode == 0, study.stderr
    (row,) = json.loads(study.stdout)
    assert (row["pmid"], row["study_type"], row["headline"]) == (RCT, "randomized controlled trial",
                                                                 f"Vitamin D card {RCT}")
    worked = kb(loaded, "query", "--name", "study_types_per_year", "-p", "since=2015", "--format", "json")
    assert {(r["pub_year"], r["study_type"]) for r in json.loads(worked.stdout)} >= {(2020, "review")}
    one_error_line(kb(loaded, "query", "--name", "card_study"), EXIT_USAGE, "takes -p pmid=…", "missing pmid")
    one_error_line(kb(loaded, "query", "--name", "nope"), EXIT_USAGE, "kb query --list")
    schema = subprocess.run([sys.executable, "-m", "kb", "docs", "schema"], **env_cwd)
    assert schema.stdout == (REPO / "docs" / "schema.md").read_text()
    queries = subprocess.run([sys.executable, "-m", "kb", "docs", "queries"], **env_cwd)
    assert queries.stdout == (REPO / "docs" / "queries.md").read_text()


# -- one PMID reader -----------------------------------------------------------------------


def test_the_pmid_reader_takes_what_people_paste() -> None:
    text = ["1, 2", "3\n4", "PMID:5", "PMID: 6", "pmid 7", "https://pubmed.ncbi.nlm.nih.gov/8/",
            "http://www.ncbi.nlm.nih.gov/pubmed/9", "pubmed.ncbi.nlm.nih.gov/10?from=x", "11 # a comment", "1"]
    assert parse_pmids(text) == ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [])
    assert parse_pmids(["12ab", "0", "123456789", "PMID:x", "https://example.org/12/"]) == (
        [], ["12ab", "0", "123456789", "PMID:x", "https://example.org/12/"])


def test_every_command_reads_pmids_the_same_way(loaded: URL, tmp_path: Path) -> None:
    pasted = f"{RCT}, PMID:{REVIEW} https://pubmed.ncbi.nlm.nih.gov/{PLAIN}/"
    export = kb(loaded, "export", "studies", "--pmid", pasted, "--format", "jsonl")
    assert export.exit_code == 0, export.output
    assert [json.loads(line)["pmid"] for line in export.stdout.splitlines()] == [RCT, REVIEW, PLAIN]
    from_stdin = kb(loaded, "export", "studies", "--pmid", "-", "--format", "jsonl", input=f"{RCT}\n{REVIEW}\n")
    assert [json.loads(line)["pmid"] for line in from_stdin.stdout.splitlines()] == [RCT, REVIEW]
    card = kb(loaded, "card", f"https://pubmed.ncbi.nlm.nih.gov/{RCT}/", "--format", "json")
    assert card.exit_code == 0 and json.loads(card.stdout)["study"]["pmid"] == RCT
    assert kb(loaded, "curate", "status", f"PMID:{RCT}", "reviewed").exit_code == 0
    one_error_line(kb(loaded, "card", f"{RCT}, {REVIEW}"), EXIT_USAGE, "give one PMID")


def test_kb_ingest_reads_commas_prefixes_and_urls(tmp_path: Path, eutils, sqlite_url: URL) -> None:  # type: ignore[no-untyped-def]
    eutils.load(write_set(tmp_path / "set.xml", [article(P + i, f"Study {i}") for i in range(1, 6)]))
    result = kb(sqlite_url, "ingest", f"{P + 1}, {P + 2}", f"PMID:{P + 3}",
                f"https://pubmed.ncbi.nlm.nih.gov/{P + 4}/", "-", input=f"{P + 5}\n")
    assert result.exit_code == 0, result.output
    assert "new 5, updated 0, unchanged 0, not found 0, failed 0" in result.stderr


# -- the card page and the site ------------------------------------------------------------


def test_the_card_page_shows_the_erratum_the_index_badges(loaded: URL, tmp_path: Path) -> None:
    page = kb(loaded, "card", str(ERRATUM), "--format", "html")
    assert page.exit_code == 0 and "ERRATUM" in page.stdout and "correction (erratum)" in page.stdout
    assert kb(loaded, "cards", "build", "--quiet", str(tmp_path / "site")).exit_code == 0
    assert "ERRATUM" in (tmp_path / "site" / "cards" / f"{ERRATUM}.html").read_text()
    assert "ERRATUM" not in kb(loaded, "card", str(PLAIN), "--format", "html").stdout


def test_a_placeholder_study_has_no_journal_called_pubmed(loaded: URL, tmp_path: Path) -> None:
    card = tmp_path / "card.txt"
    card.write_text("A card for a study kb does not hold\n\nQuick Summary: Yes.\n\n"
                    "Source: PubMed | Type: Review | Year: 2019\n\nOriginal Study Reference\nTitle: A study\n"
                    "Source: PubMed\nYear: 2019\n\n📄 Read Full Study (PMID: 40100777)\n")
    assert kb(loaded, "curate", "import", "--quiet", str(card)).exit_code == 0
    shown = json.loads(kb(loaded, "card", "40100777", "--format", "json").stdout)
    assert shown["study"]["journal"] == ""


def test_pages_fall_back_to_an_emoji_font() -> None:
    for css in (REPO / "kb" / "cards" / "templates" / "site" / "site.css",
                REPO / "kb" / "cards" / "templates" / "card.html.j2"):
        assert '"Noto Color Emoji"' in css.read_text(), css


def test_migration_0009_keeps_the_view_data_under_its_new_name(loaded: URL) -> None:
    from sqlalchemy import text

    def overview(column: str) -> dict[int, str]:
        engine = kbdb.create_kb_engine(loaded)
        try:
            with engine.connect() as conn:
                return dict(conn.execute(text(f"SELECT pmid, {column} FROM study_overview")).all())
        finally:
            engine.dispose()

    before = overview("study_type")
    assert before[RCT] == "randomized controlled trial" and before[COMMENT] == "commentary"
    kbdb.downgrade(loaded, "0007")
    assert overview("study_design") == before
    kbdb.upgrade(loaded, "head")
    assert overview("study_type") == before
