"""``kb query`` (read-only SQL) and ``kb sql`` (the native shell on the configured database)."""

from __future__ import annotations

import os
import shutil

import click

from kb import query as kbquery
from kb.cli.options import pass_kb
from kb.cli.output import emit_rows, format_option
from kb.config import sqlite_path
from kb.errors import ConfigError, DatabaseMissing, InputError
from kb.handle import KnowledgeBase


@click.command("query")
@click.argument("sql", required=False)
@click.option("-f", "--file", "sql_file", type=click.File("r"), help="Read the SQL from FILE.")
@click.option("-n", "--name", "name", metavar="NAME", help="Run the shipped query NAME (see --list).")
@click.option("--list", "list_queries", is_flag=True,
              help="List the shipped queries (the card queries and docs/queries.md) with their parameters.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Bind :NAME in the SQL to VALUE (repeatable); values are never spliced into the SQL.")
@format_option
@pass_kb
def query(app: KnowledgeBase, sql: str | None, sql_file, name: str | None, list_queries: bool,  # type: ignore[no-untyped-def]
          params: tuple[str, ...], fmt: str | None) -> None:
    """Run one read-only SQL statement and print the rows.

    \b
    Examples:
      kb query "SELECT pmid, title FROM study_overview WHERE pub_year >= :y" -p y=2020
      kb query --list
      kb query --name card_study -p pmid=31902683
    Writes are refused by the database connection itself (exit 1).
    """
    if list_queries:
        rows = [(q.name, " ".join(f"{p}={q.examples.get(p, '…')}" for p in q.params), q.title)
                for q in kbquery.shipped_queries().values()]
        emit_rows(["name", "parameters", "description"], rows, fmt)
        return
    if sum(x is not None for x in (sql, sql_file, name)) != 1:
        raise InputError("give the SQL as an argument, with -f FILE, or a shipped query with --name (one of them)")
    bound = kbquery.parse_params(list(params))
    if name is not None:
        shipped = kbquery.named_query(name)
        kbquery.check_params(shipped, bound)
        text = shipped.sql
    else:
        text = sql if sql is not None else sql_file.read()
    engine = app.readonly_engine()
    result = kbquery.run_query(engine, text, bound)
    emit_rows(result.columns, result.rows, fmt)


@click.command("docs")
@click.argument("document", type=click.Choice(("schema", "queries")))
def docs(document: str) -> None:
    """Print the analysts' reference shipped with kb: schema (every table, view and column) or
    queries (the worked queries)."""
    click.echo(kbquery.doc_text(document), nl=False)


@click.command("sql")
@click.option("--write", is_flag=True, help="Open the shell read-write (default: read-only).")
@pass_kb
def sql_shell(app: KnowledgeBase, write: bool) -> None:
    """Open the native SQL shell (sqlite3 or psql) on the configured database, read-only by default."""
    url = app.url
    path = sqlite_path(url)
    if path is not None:
        binary = shutil.which("sqlite3")
        if binary is None:
            raise ConfigError("the sqlite3 shell is not installed (Debian/Ubuntu: apt install sqlite3)")
        if not path.exists():
            raise DatabaseMissing(f"no kb database at {path}: run `kb db upgrade` to create it there, or point "
                                  "--db / KB_DATABASE_URL (or KB_HOME) at your database")
        args = [binary, "-cmd", ".headers on", "-cmd", ".mode column"]
        args += [str(path)] if write else ["-readonly", str(path)]
        os.execv(binary, args)
    binary = shutil.which("psql")
    if binary is None:
        raise ConfigError("the psql shell is not installed (Debian/Ubuntu: apt install postgresql-client)")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    if not write:
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c default_transaction_read_only=on").strip()
    # ON_ERROR_STOP: a script on stdin that fails exits 3, as sqlite3 exits 1 (interactive psql keeps its prompt).
    args = [binary, "-v", "ON_ERROR_STOP=1", "-h", url.host or "localhost", "-p", str(url.port or 5432),
            "-U", url.username or "postgres", url.database or "postgres"]
    os.execve(binary, args, env)
