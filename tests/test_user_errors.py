"""The user-facing errors of issue 14, one test each: a bad E-utilities setting, a PMID that is not
one, an unknown topic (the same message and exit code in every command), and output that cannot
be written. Each error is one documented line on stderr with its documented exit code."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import URL

from kb.cli import cli
from kb.db import SCHEMA_REVISION
from kb.demo import sample_card_file, sample_record_files
from kb.errors import EXIT_SCHEMA, EXIT_USAGE
from kb.wording import counted

from .conftest import url_text

UNKNOWN_TOPIC = "Error: no topic named 'nope': `kb topic list` shows the topics\n"


def kb(db: URL, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", url_text(db), *args], env=env)


@pytest.fixture
def sample(sqlite_url: URL) -> URL:
    """A database with the six sample studies that ship with kb."""
    result = kb(sqlite_url, "load", *map(str, sample_record_files()))
    assert result.exit_code == 0, result.output
    return sqlite_url


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("KB_EUTILS_TIMEOUT", "abc", "KB_EUTILS_TIMEOUT must be a number, not 'abc'"),
    ("KB_EUTILS_TIMEOUT", "0", "KB_EUTILS_TIMEOUT must be a number above 0, not 0.0"),
    ("KB_EUTILS_TRIES", "2.5", "KB_EUTILS_TRIES must be a whole number, not '2.5'"),
    ("KB_EUTILS_TRIES", "0", "KB_EUTILS_TRIES must be a whole number of at least 1, not 0"),
    ("KB_EUTILS_BACKOFF", "soon", "KB_EUTILS_BACKOFF must be a number, not 'soon'"),
    ("KB_EUTILS_BACKOFF", "-1", "KB_EUTILS_BACKOFF must be a number of at least 0, not -1.0"),
    ("KB_EUTILS_RATE", "inf", "KB_EUTILS_RATE must be a number above 0, not inf"),
])
def test_a_bad_eutils_setting_is_a_configuration_error(empty_sqlite_url: URL, variable: str, value: str,
                                                       message: str) -> None:
    result = kb(empty_sqlite_url, "ingest", "1", env={variable: value})
    assert (result.exit_code, result.stderr) == (EXIT_USAGE, f"Error: {message}\n")
    assert not Path(empty_sqlite_url.database or "").exists()  # refused before the database is touched


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "'abc' is not a PMID: a PMID is digits only, from 1 to 99,999,999 (PMID:123 and PubMed URLs "
            "are read too)"),
    ("", "no PMID given: give one, e.g. 31902683"),
    ("0", "'0' is not a PMID: a PMID is digits only, from 1 to 99,999,999 (PMID:123 and PubMed URLs "
          "are read too)"),
])
def test_kb_card_says_what_is_wrong_with_the_pmid(sample: URL, value: str, message: str) -> None:
    for args in (["card", value], ["curate", "history", value]):
        result = kb(sample, *args)
        assert (result.exit_code, result.stderr) == (EXIT_USAGE, f"Error: {message}\n"), args


def test_a_pmid_kb_does_not_hold_says_what_to_do_in_every_command(sample: URL) -> None:
    """`kb curate history 12345` said only 'not in the knowledge base'; the others say how to get it."""
    for args in (["card", "12345"], ["curate", "history", "12345"], ["curate", "draft", "12345"]):
        result = kb(sample, *args)
        assert (result.exit_code, result.stderr) == (
            1, "Error: PMID 12345 is not in the knowledge base: ingest it first (kb ingest 12345)\n"), args


def test_a_pmid_is_checked_before_the_database(sqlite_url: URL) -> None:
    result = kb(sqlite_url, "card", "abc")
    assert result.exit_code == EXIT_USAGE and result.stderr.startswith("Error: 'abc' is not a PMID")


def test_the_commands_that_take_pmids_say_where_they_go(sample: URL) -> None:
    result = kb(sample, "ingest")
    assert result.stderr == "Error: no PMIDs given: pass PMIDs as arguments, `-` for stdin, or --from FILE\n"
    result = kb(sample, "curate", "draft", "")
    assert (result.exit_code, result.stderr) == (EXIT_USAGE, "Error: no PMIDs given: pass PMIDs as arguments\n")


def test_an_unknown_topic_is_one_message_and_one_exit_code_everywhere(sample: URL, tmp_path: Path) -> None:
    assert kb(sample, "topic", "add", "known", "vitamin b12[tiab]").exit_code == 0
    commands = [
        ["refresh", "--topic", "nope"],
        ["refresh", "--topic", "nope", "--dry-run"],
        ["search", "vitamin", "--topic", "nope"],
        ["cards", "build", "--topic", "nope", str(tmp_path / "site")],
        ["export", "studies", "--topic", "nope"],
        ["topic", "show", "nope"],
        ["topic", "remove", "nope"],
        ["topic", "exclude", "nope", "1"],
    ]
    for args in commands:
        result = kb(sample, *args)
        assert (result.exit_code, result.stdout, result.stderr) == (EXIT_USAGE, "", UNKNOWN_TOPIC), args
    assert not (tmp_path / "site").exists()


def test_curate_export_into_a_path_that_cannot_be_made(sample: URL, tmp_path: Path) -> None:
    assert kb(sample, "curate", "draft", "--missing").exit_code == 0
    result = kb(sample, "curate", "export", "--all", "/proc/nope/x")
    assert (result.exit_code, result.stderr) == (
        EXIT_USAGE, "Error: cannot create the directory /proc/nope/x: No such file or directory\n")

    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    result = kb(sample, "curate", "export", "--all", str(a_file))
    assert (result.exit_code, result.stderr) == (
        EXIT_USAGE, f"Error: {a_file} exists and is not a directory: give another directory\n")
    assert a_file.read_text() == "not a directory\n"


def test_card_output_that_cannot_be_written(sample: URL, tmp_path: Path) -> None:
    pmid = str(min(int(p.stem) for p in sample_record_files()))
    result = kb(sample, "card", pmid, "-o", "/proc/nope/card.txt")
    assert (result.exit_code, result.stderr) == (
        EXIT_USAGE, "Error: cannot write /proc/nope/card.txt: No such file or directory\n")

    target = tmp_path / "out" / "card.md"
    target.parent.mkdir()
    assert kb(sample, "card", pmid, "--format", "md", "-o", str(target)).exit_code == 0
    assert target.read_text(encoding="utf-8") == kb(sample, "card", pmid, "--format", "md").stdout
    assert [p.name for p in target.parent.iterdir()] == ["card.md"]  # no temporary file left beside it


def test_site_into_a_path_that_cannot_be_made(sample: URL) -> None:
    result = kb(sample, "cards", "build", "/proc/nope/site")
    assert (result.exit_code, result.stderr) == (
        EXIT_USAGE, "Error: cannot create the directory /proc/nope/site/cards: No such file or directory\n")


# -- kb query: a missing or malformed parameter and empty SQL are usage errors (exit 2) ---------


@pytest.mark.parametrize(("args", "message"), [
    (["SELECT :year AS y"],
     "Error: the SQL uses :year and no value was given for it: add -p year=VALUE\n"),
    (["SELECT pmid FROM studies WHERE pmid = :pmid", "-p", "pmid"],
     "Error: -p takes name=value with a plain name, not 'pmid'\n"),
    (["   "], "Error: the SQL is empty: give one statement, e.g. kb query \"SELECT count(*) FROM studies\"\n"),
])
def test_kb_query_usage_errors_exit_2(db_url: URL, args: list[str], message: str) -> None:
    result = kb(db_url, "query", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (EXIT_USAGE, "", message)


# -- a PostgreSQL database that does not exist: exit 3 ("no database"), saying how to create it --


def test_a_postgresql_database_that_does_not_exist_says_how_to_create_it(pg_admin_url: URL) -> None:
    name = f"kb_test_missing_{uuid.uuid4().hex[:8]}"
    url = pg_admin_url.set(database=name)
    expected = (f"Error: there is no database {name!r} on the PostgreSQL server at "
                f"{pg_admin_url.host}:{pg_admin_url.port or 5432}: create it (CREATE DATABASE \"{name}\" "
                "ENCODING 'UTF8'; kb creates its tables, not the database), or point --db / KB_DATABASE_URL "
                "at your database\n")
    for args in (["status"], ["load", *map(str, sample_record_files())], ["db", "upgrade"]):
        result = kb(url, *args)
        assert (result.exit_code, result.stdout, result.stderr) == (EXIT_SCHEMA, "", expected), args


# -- kb ingest: the closing error counts in words that agree with the number, and says what next --


def test_kb_ingest_of_a_pmid_pubmed_does_not_have_ends_in_one_readable_line(sqlite_url: URL, eutils) -> None:  # type: ignore[no-untyped-def]
    result = kb(sqlite_url, "ingest", "1")  # the stand-in serves nothing yet: not found
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-2:] == [
        "not found (1): 1",
        "Error: 1 PMID not found (listed above): check it on PubMed (https://pubmed.ncbi.nlm.nih.gov/PMID/)",
    ]
    result = kb(sqlite_url, "ingest", "1", "2")
    assert result.stderr.splitlines()[-1] == (
        "Error: 2 PMIDs not found (listed above): check them on PubMed (https://pubmed.ncbi.nlm.nih.gov/PMID/)")


def test_kb_curate_delete_of_a_study_without_a_card_does_not_ask_to_write_one(sample: URL) -> None:
    pmid = min(int(p.stem) for p in sample_record_files())
    result = kb(sample, "curate", "delete", str(pmid))
    assert (result.exit_code, result.stderr) == (1, f"Error: PMID {pmid} has no card: there is nothing to delete\n")
    result = kb(sample, "curate", "status", str(pmid), "published")  # the other commands still say how to write one
    assert result.stderr == (f"Error: PMID {pmid} has no card: write one first (kb curate edit {pmid} or "
                             f"kb curate draft {pmid})\n")


@pytest.mark.parametrize("command", [["db", "upgrade", "9999"], ["db", "downgrade", "9999"],
                                     ["db", "downgrade", "9999", "--yes"]])
def test_kb_db_with_a_revision_that_does_not_exist_is_a_usage_error(sqlite_url: URL, command: list[str]) -> None:
    result = kb(sqlite_url, *command)
    assert (result.exit_code, result.stderr) == (
        EXIT_USAGE, f"Error: there is no schema revision '9999': kb's are 0001 to {SCHEMA_REVISION}, head and base "
                    "(`kb db current` shows the database's)\n")
    assert kb(sqlite_url, "db", "current").stdout == f"{SCHEMA_REVISION} (head)\n"


def test_a_pmid_excluded_from_a_topic_is_not_a_card_of_the_site(sample: URL, tmp_path: Path) -> None:
    """`kb topic exclude` of a PMID kb does not hold stores a placeholder study for it (the
    exclusion needs a row to refer to); the site listed it as a draft card 'PubMed record N'."""
    assert kb(sample, "topic", "add", "b12", "vitamin b12[tiab]").exit_code == 0
    assert kb(sample, "topic", "exclude", "b12", "99999999").exit_code == 0
    result = kb(sample, "cards", "build", str(tmp_path / "site"))
    assert result.exit_code == 0, result.output
    pages = sorted(p.stem for p in (tmp_path / "site" / "cards").iterdir())
    assert pages == sorted(p.stem for p in sample_record_files())
    assert "99999999" not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


def test_a_database_directory_that_cannot_be_made_is_one_usage_line(tmp_path: Path) -> None:
    """A KB_HOME (or --db path) kb cannot create was 'unexpected FileNotFoundError … please report it'."""
    expected = ("Error: cannot create the directory /proc/nope for the database: No such file or directory. "
                "Point KB_HOME, or --db / KB_DATABASE_URL, at a place you can write\n")
    runner = CliRunner()
    env = {"KB_HOME": "/proc/nope", "KB_DATABASE_URL": None}
    for args in (["demo"], ["db", "upgrade"], ["load", *map(str, sample_record_files())]):
        result = runner.invoke(cli, args, env=env)
        assert (result.exit_code, result.stdout, result.stderr) == (EXIT_USAGE, "", expected), args
    result = runner.invoke(cli, ["--db", "sqlite:////proc/nope/kb.sqlite3", "topic", "add", "b12", "b12[tiab]"])
    assert (result.exit_code, result.stderr) == (EXIT_USAGE, expected)


def test_a_file_that_is_not_a_sqlite_database_is_one_line(tmp_path: Path) -> None:
    """--db at a file that is not SQLite was 'unexpected DatabaseError: (sqlite3.DatabaseError) file is
    not a database [SQL: …] (Background on this error at: …) … please report it' over three lines."""
    notes = tmp_path / "notes.sqlite3"
    notes.write_text("not a database\n")
    expected = (f"Error: {notes} is not a SQLite database (file is not a database): point --db / "
                "KB_DATABASE_URL (or KB_HOME) at a kb database, or at a new file\n")
    for args in (["status"], ["load", *map(str, sample_record_files())], ["query", "SELECT 1"]):
        result = CliRunner().invoke(cli, ["--db", f"sqlite:///{notes}", *args])
        assert (result.exit_code, result.stdout, result.stderr) == (EXIT_SCHEMA, "", expected), args
    assert notes.read_text() == "not a database\n"


def test_kb_query_json_takes_every_value_a_database_returns(db_url: URL) -> None:
    """A BLOB (studies.raw_xml, so `SELECT * FROM studies`) and PostgreSQL's numeric (avg(), sums)
    and interval were 'unexpected TypeError: Object of type … is not JSON serializable'."""
    if db_url.get_backend_name() == "sqlite":
        sql = "SELECT X'00FF' AS b, 2.5 AS d, 7 AS n"
        expected = {"b": "AP8=", "d": 2.5, "n": 7}
    else:
        sql = "SELECT '\\x00ff'::bytea AS b, 2.5::numeric AS d, 7::numeric AS n, interval '1 day' AS i"
        expected = {"b": "AP8=", "d": 2.5, "n": 7, "i": "1 day, 0:00:00"}
    for fmt in ("json", "jsonl"):
        result = kb(db_url, "query", sql, "--format", fmt)
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout) if fmt == "json" else [json.loads(line) for line in result.stdout.splitlines()]
        assert rows == [expected], fmt


def test_kb_query_csv_and_table_show_a_blob_as_base64_as_json_does(db_url: URL) -> None:
    """csv and the table printed a BLOB as Python's bytes literal, b'\\x00\\xff'."""
    cast = "X'00FF'" if db_url.get_backend_name() == "sqlite" else "'\\x00ff'::bytea"
    sql = f"SELECT {cast} AS b, 7 AS n"
    expected = {"csv": "b,n\nAP8=,7\n", "table": "b     n\n----  -\nAP8=  7\n"}
    for fmt, text in expected.items():
        result = kb(db_url, "query", sql, "--format", fmt)
        assert (result.exit_code, result.stdout) == (0, text), (fmt, result.output)
    assert json.loads(kb(db_url, "query", sql, "--format", "json").stdout) == [{"b": "AP8=", "n": 7}]


@pytest.mark.parametrize("value", ["abc", "999999999999", "0"])
def test_a_card_whose_pmid_line_holds_no_pmid_says_so_on_that_line(sqlite_url: URL, tmp_path: Path,
                                                                   value: str) -> None:
    """'📄 Read Full Study (PMID: abc)' was read as a second title line of the reference: 'join them
    into one line', then 'the card has no 📄 Read Full Study line'."""
    text = sample_card_file().read_text(encoding="utf-8")
    card = tmp_path / "card.txt"
    card.write_text(text.replace("(PMID: 31902683)", f"(PMID: {value})"), encoding="utf-8")
    result = kb(sqlite_url, "curate", "import", str(card))
    assert result.exit_code == 1, result.output
    number = text.splitlines().index("📄 Read Full Study (PMID: 31902683)") + 1
    assert result.stderr.splitlines()[:2] == [
        f"not imported: {card} is not a valid card:",
        f"  line {number}: {value!r} is not a PMID: a PMID is digits only, from 1 to 99,999,999, e.g. "
        "'📄 Read Full Study (PMID: 31902683)'",
    ]
    assert "the card has no" not in result.stderr and "join them" not in result.stderr


def test_the_missing_ncbi_email_warning_says_how_to_set_it(sqlite_url: URL, eutils,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NCBI_EMAIL", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)
    result = kb(sqlite_url, "ingest", "1")
    warnings = [line for line in result.stderr.splitlines() if "NCBI_EMAIL" in line]
    assert len(warnings) == 1 and warnings[0].endswith(
        "NCBI_EMAIL is not set: NCBI asks every E-utilities user for a contact address: set "
        "NCBI_EMAIL=you@example.org in the environment (kb ingest also takes --email)"), result.stderr


def test_a_count_of_one_takes_the_singular(sample: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'1 PMIDs excluded', 'removed (1 links)', 'stored 1 drafts', 'wrote 1 cards', 'imported 1 cards
    (… 1 placeholder studies created)', 'The 1 PMIDs not fetched': every count says its noun through
    kb.wording.counted."""
    assert (counted(0, "card"), counted(1, "PMID"), counted(2, "PMID"), counted(1, "study", "studies"),
            counted(3, "study", "studies")) == ("0 cards", "1 PMID", "2 PMIDs", "1 study", "3 studies")
    pmid = str(min(int(p.stem) for p in sample_record_files()))
    assert kb(sample, "topic", "add", "b12", "vitamin b12[tiab]").exit_code == 0
    assert kb(sample, "topic", "exclude", "b12", pmid).stderr == "1 PMID excluded from 'b12'.\n"
    assert kb(sample, "topic", "remove", "b12").stderr == "Topic 'b12' removed (1 link); the studies stay.\n"
    assert kb(sample, "curate", "draft", pmid).stderr == "stored 1 draft (0 studies already had a card)\n"
    assert kb(sample, "curate", "draft", pmid).stderr == "stored 0 drafts (1 study already had a card)\n"
    assert kb(sample, "curate", "export", pmid, str(tmp_path / "out")).stderr == f"wrote 1 card to {tmp_path / 'out'}\n"
    card = tmp_path / "card.txt"
    card.write_text(sample_card_file().read_text(encoding="utf-8").replace("(PMID: 31902683)", "(PMID: 99999998)"),
                    encoding="utf-8")
    result = kb(sample, "curate", "import", str(card))
    assert result.stderr.splitlines()[-1] == "imported 1 card (0 unchanged, 1 placeholder study created), failed 0"

    monkeypatch.setenv("KB_EUTILS_URL", "http://kb-test-host.invalid/entrez/eutils/")  # .invalid never resolves
    monkeypatch.setenv("KB_RATE_DIR", str(tmp_path))
    result = kb(sample, "ingest", "35679569")
    assert result.stderr.splitlines()[-1].endswith(
        "The 1 PMID not fetched is queued in fetch_failures for the next run."), result.stderr


def test_an_eutils_address_that_answers_404_is_a_configuration_error(sqlite_url: URL, eutils,  # type: ignore[no-untyped-def]
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A KB_EUTILS_URL where every E-utility is 404 was 'HTTP 404 … queued in fetch_failures for the
    next run', exit 1: a retry can never succeed. Now one Error: line naming the setting and its
    value, exit 2, nothing queued, and the API key nowhere."""
    eutils.load(sample_record_files()[0])
    wrong = eutils.base_url.replace("/entrez/eutils/", "/wrong/")
    monkeypatch.setenv("KB_EUTILS_URL", wrong)
    monkeypatch.setenv("NCBI_API_KEY", "kb-test-secret-key")
    expected = (f"E-utilities answered HTTP 404 (Not Found) for {{}}: KB_EUTILS_URL={wrong} is not an E-utilities "
                "address: set KB_EUTILS_URL to NCBI's https://eutils.ncbi.nlm.nih.gov/entrez/eutils/ (or unset it), "
                "or to the address the stand-in prints (http://HOST:PORT/entrez/eutils/)")
    result = kb(sqlite_url, "ingest", sample_record_files()[0].stem)
    assert (result.exit_code, result.stderr.splitlines()) == (
        EXIT_USAGE, ["Error: " + expected.format("efetch.fcgi")]), result.stderr
    assert kb(sqlite_url, "query", "SELECT count(*) AS n FROM fetch_failures").stdout == "n\n0\n"

    assert kb(sqlite_url, "topic", "add", "b12", "vitamin b12[tiab]").exit_code == 0
    result = kb(sqlite_url, "refresh")
    assert (result.exit_code, result.stderr.splitlines()) == (
        EXIT_USAGE, ["Error: " + expected.format("esearch.fcgi")]), result.stderr
    assert "kb-test-secret-key" not in result.output


def test_a_draft_exported_and_imported_back_is_still_a_draft(sample: URL, tmp_path: Path) -> None:
    """`kb curate import` published every card it read by default: a draft exported for editing
    and imported back skipped review and went to the published site."""
    pmid = "23657305"
    assert kb(sample, "curate", "draft", pmid).exit_code == 0
    assert kb(sample, "curate", "export", pmid, str(tmp_path / "out")).exit_code == 0
    (exported,) = (tmp_path / "out").iterdir()
    # The first import makes the generated draft's text the curator's (a new revision), the second changes nothing.
    for summary in ("imported 1 card (0 unchanged", "imported 0 cards (1 unchanged"):
        result = kb(sample, "curate", "import", str(exported))
        assert result.exit_code == 0 and result.stderr.startswith(summary), result.stderr
    edited = exported.read_text(encoding="utf-8").replace("Quick Summary: ", "Quick Summary: Edited. ", 1)
    exported.write_text(edited, encoding="utf-8")
    assert kb(sample, "curate", "import", "--replace", str(exported)).exit_code == 0
    history = kb(sample, "curate", "history", pmid).stdout
    assert "\timport\tdraft -> draft" in history and "published" not in history
    assert kb(sample, "card", pmid).stdout.startswith("📝 DRAFT")
    # --status still sets it, and a new card is published by default, as legacy cards were.
    assert kb(sample, "curate", "import", "--status", "reviewed", str(exported)).exit_code == 0
    assert "\timport\tdraft -> reviewed" in kb(sample, "curate", "history", pmid).stdout
    assert kb(sample, "curate", "import", str(sample_card_file())).exit_code == 0
    assert "\timport\t(none) -> published" in kb(sample, "curate", "history", "31902683").stdout


def test_kb_curate_lint_of_a_pmid_without_a_card_says_what_to_do(sample: URL) -> None:
    """It said 'no card for PMID 23657305', unlike every other command's 'PMID N has no card: …'."""
    result = kb(sample, "curate", "lint", "23657305")
    assert (result.exit_code, result.stderr) == (
        1, "Error: PMID 23657305 has no card: write one first (kb curate edit 23657305 or kb curate draft 23657305)\n")
    result = kb(sample, "curate", "lint", "23657305", "28731372")
    assert result.stderr.startswith("Error: PMIDs 23657305, 28731372 have no card: write them first")


def _on_a_terminal(url: URL, *args: str, columns: int) -> list[str]:
    """The lines `kb ARGS` writes to a terminal (a pseudo-terminal) ``columns`` wide."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "KB_DATABASE_URL": url_text(url)}
    try:
        subprocess.run([sys.executable, "-m", "kb", *args], stdin=subprocess.DEVNULL, stdout=slave,
                       stderr=subprocess.DEVNULL, env=env, timeout=120, check=True)
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n").splitlines()


def test_a_table_on_a_terminal_fits_the_terminal(sample: URL) -> None:
    """`kb search` on a terminal printed rows about 400 characters wide (the snippet and title whole)."""
    lines = _on_a_terminal(sample, "search", "vitamin", columns=100)
    assert lines[0].split() == ["pmid", "year", "type", "title", "score", "snippet", "status"]
    assert len(lines) > 2 and all(len(line) <= 100 for line in lines), [len(line) for line in lines]
    assert any("…" in line for line in lines[2:])
    # Written to a file or a pipe, a table keeps every value whole.
    piped = kb(sample, "search", "vitamin", "--format", "table").stdout
    assert max(map(len, piped.splitlines())) > 100
    hits = json.loads(kb(sample, "search", "vitamin", "--format", "json").stdout)
    assert hits and all(hit["title"] in piped and hit["snippet"] in piped for hit in hits)
