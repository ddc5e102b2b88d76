"""The command line as a user meets it: help text everywhere, errors as one line with a
documented exit code, no tracebacks unless --debug."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import errors as kberrors
from kb.cli import cli
from kb.errors import EXIT_SCHEMA, EXIT_UNAVAILABLE, EXIT_USAGE

from .conftest import REPO, kb_process, url_text


def _walk(group: click.Group, prefix: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # as --help lists them: kb's commands load when asked for
        command = group.get_command(ctx, name)
        assert command is not None, (*prefix, name)
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from _walk(command, path)


def all_commands() -> list[tuple[str, ...]]:
    return [path for path, _ in _walk(cli)]


def test_there_are_commands() -> None:
    paths = all_commands()
    assert ("db", "upgrade") in paths and ("status",) in paths


@pytest.mark.parametrize("path", [(), *all_commands()], ids=lambda p: " ".join(p) or "kb")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)  # type: ignore[attr-defined]
    assert (command.help or "").strip(), f"`kb {' '.join(path)}` has no help text"
    assert command.get_short_help_str().strip()
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert (param.help or "").strip(), f"option {param.opts} of `kb {' '.join(path)}` has no help"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: kb" in result.output


def test_every_exit_code_kb_uses_is_listed_where_the_codes_are(kb_env) -> None:  # type: ignore[no-untyped-def]
    """`kb --help` listed 0, 1, 2, 3, 69 and 75 but not 130 (Ctrl-C) and 143 (SIGTERM), which kb
    uses (kb/cli/__init__.py): every EXIT_* of kb.errors is in kb --help, kb refresh --help (cron's
    list) and the README's exit-code table."""
    codes = {value for name, value in vars(kberrors).items() if name.startswith("EXIT_")}
    assert {0, 1, 2, 3, 69, 75, 130, 143} <= codes
    for path in ([], ["refresh"]):
        help_text = " ".join(CliRunner().invoke(cli, [*path, "--help"]).output.split())
        listing = help_text[help_text.index("Exit codes"):help_text.index("Options:")]
        listed = {int(n) for n in re.findall(r"(?:^|[:;,] )(\d+) [A-Za-z]", listing)}
        assert listed == codes, (path, sorted(codes - listed))
    table = (REPO / "README.md").read_text(encoding="utf-8").split("### Exit codes", 1)[1].split("\n\n")[1]
    assert {int(n) for n in re.findall(r"^\| (\d+) \|", table, re.M)} == codes


def _assert_one_error_line(result, code: int, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output + result.stderr
    for needle in needles:
        assert needle in lines[0]


def _assert_error(result, code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    """The documented error, word for word: one line on stderr, nothing on stdout."""
    assert (result.exit_code, result.stderr, result.stdout) == (code, f"Error: {message}\n", ""), result.exception


@pytest.mark.parametrize(
    "url, message",
    [
        ("not a url", "'not a url' is not a database URL. Use sqlite:///PATH/kb.sqlite3 or "
                      "postgresql://USER@HOST:PORT/DBNAME (option --db or KB_DATABASE_URL)."),
        ("mysql://u@localhost/kb", "unsupported database 'mysql' in mysql://u@localhost/kb: kb runs on SQLite "
                                   "(sqlite:///PATH) or PostgreSQL (postgresql://USER@HOST/DBNAME); set --db or "
                                   "KB_DATABASE_URL."),
        ("sqlite://", "an in-memory SQLite database keeps nothing: give a file, e.g. sqlite:///kb.sqlite3 "
                      "(option --db or KB_DATABASE_URL)"),
    ],
)
def test_bad_database_url(url: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["--db", url, "status"])
    _assert_error(result, EXIT_USAGE, message)


def test_bad_database_url_from_environment_masks_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_DATABASE_URL", "oracle://scott:tiger@db/kb")
    result = CliRunner().invoke(cli, ["status"])
    _assert_error(result, EXIT_USAGE, "unsupported database 'oracle' in oracle://scott:***@db/kb: kb runs on SQLite "
                  "(sqlite:///PATH) or PostgreSQL (postgresql://USER@HOST/DBNAME); set --db or KB_DATABASE_URL.")
    assert "tiger" not in result.output


def test_unreachable_postgresql() -> None:
    result = CliRunner().invoke(cli, ["--db", "postgresql://kb:s3cret@127.0.0.1:1/kb", "status"])
    _assert_one_error_line(result, EXIT_UNAVAILABLE, "cannot connect to PostgreSQL", "127.0.0.1:1")
    assert "s3cret" not in result.output


def test_debug_shows_the_traceback() -> None:
    """In a real process: --debug re-raises, so Python prints the traceback and exits 1."""
    result = kb_process("postgresql://kb@127.0.0.1:1/kb", "--debug", "status")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Traceback (most recent call last):\n"), result.stderr[:500]
    assert 'File "' in result.stderr and "in check_schema" in result.stderr
    last = result.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("kb.errors.DatabaseUnavailable: cannot connect to PostgreSQL at "), last
    assert result.stdout == ""


def _status_after(url: URL, sql: str):  # type: ignore[no-untyped-def]
    """`kb status` on the database at ``url`` after ``sql`` changed it by hand."""
    engine = kbdb.create_kb_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()
    return CliRunner().invoke(cli, ["--db", url_text(url), "status"])


def test_database_at_an_older_revision(empty_db_url: URL) -> None:
    kbdb.upgrade(empty_db_url, "0001")
    result = CliRunner().invoke(cli, ["--db", url_text(empty_db_url), "status"])
    _assert_error(result, EXIT_SCHEMA, f"the database at {empty_db_url.render_as_string()} is at revision 0001; this kb "
                  f"needs {kbdb.head_revision()}. Back it up, then run `kb db upgrade`.")
    result = CliRunner().invoke(cli, ["--db", url_text(empty_db_url), "db", "current"])
    assert result.stdout.startswith("0001 (this kb's head is")
    assert CliRunner().invoke(cli, ["--db", url_text(empty_db_url), "db", "upgrade"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--db", url_text(empty_db_url), "status"])
    assert result.exit_code == 0, result.output


def test_database_from_a_newer_kb(db_url: URL) -> None:
    kbdb.upgrade(db_url, "head")
    result = _status_after(db_url, "UPDATE alembic_version SET version_num = 'fffffffffff'")
    _assert_error(result, EXIT_SCHEMA, f"the database at {db_url.render_as_string()} is at revision fffffffffff, "
                  "which this kb does not know: it was upgraded by a newer kb. Upgrade kb (pip install -U kb).")


def test_database_with_two_schema_revisions(db_url: URL) -> None:
    """kb reads alembic_version itself (not through Alembic): two rows are refused as Alembic would."""
    result = _status_after(db_url, "INSERT INTO alembic_version (version_num) VALUES ('0011')")
    _assert_error(result, EXIT_SCHEMA, f"the database is at more than one schema revision "
                  f"(0011, {kbdb.SCHEMA_REVISION}): kb's migrations have one line. Restore it from a backup, "
                  "or delete the row that is wrong from its table alembic_version.")


def test_not_a_kb_database(empty_sqlite_url: URL) -> None:
    result = _status_after(empty_sqlite_url, "CREATE TABLE other (x INTEGER)")
    _assert_error(result, EXIT_SCHEMA, f"the database at {empty_sqlite_url.render_as_string()} has tables but no kb schema "
                  "revision: it is not a kb database. Point --db / KB_DATABASE_URL at a kb database or an empty one.")


def test_default_database_works_out_of_the_box(kb_env) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    path = runner.invoke(cli, ["db", "path"]).stdout.strip()
    assert path == str((kb_env / "kb.sqlite3").resolve())
    # Only reading: nothing is created, not even KB_HOME (issue 15).
    result = runner.invoke(cli, ["status", "--format", "csv"])
    _assert_error(result, EXIT_SCHEMA, f"no kb database at {kb_env / 'kb.sqlite3'}: this command only reads and "
                  "creates nothing. Run `kb db upgrade` to create it there, or point --db / KB_DATABASE_URL (or "
                  "KB_HOME) at your database.")
    assert not kb_env.exists()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["status", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "studies,0" in result.stdout
    assert runner.invoke(cli, ["db", "current"]).stdout.strip() == f"{kbdb.head_revision()} (head)"


def test_db_url_masks_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_DATABASE_URL", "postgresql://kb:hunter2@db.example:5432/kb")
    result = CliRunner().invoke(cli, ["db", "url"])
    assert result.stdout.strip() == "postgresql+psycopg://kb:***@db.example:5432/kb"


def test_db_path_refuses_postgresql() -> None:
    result = CliRunner().invoke(cli, ["--db", "postgresql://kb@h/kb", "db", "path"])
    _assert_error(result, EXIT_USAGE, "the database is not a SQLite file but postgresql+psycopg://kb@h/kb; use `kb db url`")


def test_downgrade_needs_confirmation(empty_sqlite_url: URL) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", url_text(empty_sqlite_url), "db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["--db", url_text(empty_sqlite_url), "db", "downgrade", "base"], input="n\n")
    assert result.exit_code == 1
    assert runner.invoke(cli, ["--db", url_text(empty_sqlite_url), "db", "current"]).stdout.endswith("(head)\n")
    result = runner.invoke(cli, ["--db", url_text(empty_sqlite_url), "db", "downgrade", "base", "--yes"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["--db", url_text(empty_sqlite_url), "db", "current"]).stdout.startswith("none")


def test_cleanup_after_an_interruption_logs_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM in the middle of a query: SQLAlchemy closes the connection, then fails to close
    the cursor and logs that with a traceback (seen now and then in the SIGTERM test of kb load).
    kb's logging drops that record, and only that kind: SQLAlchemy's other errors still show."""
    import logging
    import sqlite3

    from kb.cli import _configure_logging
    from kb.errors import Terminated

    _configure_logging(0, False)
    pool_log = logging.getLogger("sqlalchemy.pool.impl.QueuePool")

    def log_failed_close(during: BaseException) -> None:
        try:
            try:
                raise during
            except BaseException:  # noqa: BLE001 - as SQLAlchemy's _safe_close_cursor meets it
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")  # noqa: B904
        except sqlite3.ProgrammingError:
            pool_log.error("Error closing cursor", exc_info=True)

    log_failed_close(Terminated("terminated by SIGTERM"))
    log_failed_close(KeyboardInterrupt())
    assert capsys.readouterr().err == ""
    log_failed_close(ValueError("something else"))
    err = capsys.readouterr().err
    assert "ERROR sqlalchemy.pool.impl.QueuePool: Error closing cursor" in err and "something else" in err
