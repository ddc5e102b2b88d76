"""``kb db``: where the database is, and its schema revision."""

from __future__ import annotations

import click

from kb import db as kbdb
from kb.cli.options import pass_kb
from kb.config import mask_url, sqlite_path
from kb.errors import ConfigError
from kb.handle import KnowledgeBase


@click.group()
def db() -> None:
    """Where the database is; create, upgrade or downgrade its schema."""


@db.command("path")
@pass_kb
def db_path(app: KnowledgeBase) -> None:
    """Print the path of the SQLite database file (it may not exist yet)."""
    path = sqlite_path(app.url)
    if path is None:
        raise ConfigError(
            f"the database is not a SQLite file but {mask_url(app.url)}; use `kb db url`"
        )
    click.echo(str(path.resolve()))


@db.command("url")
@pass_kb
def db_url(app: KnowledgeBase) -> None:
    """Print the database URL, with any password masked."""
    click.echo(mask_url(app.url))


@db.command("current")
@pass_kb
def db_current(app: KnowledgeBase) -> None:
    """Print the schema revision of the database, and whether it is the newest (head)."""
    path = sqlite_path(app.url)
    if path is not None and not path.exists():
        click.echo("none (no database yet: run `kb db upgrade`)")
        return
    with kbdb.translate_db_errors(app.url):
        current = kbdb.current_revision(app.engine())
    head = kbdb.head_revision()
    if current is None:
        click.echo("none (empty database: run `kb db upgrade`)")
    elif current == head:
        click.echo(f"{current} (head)")
    else:
        click.echo(f"{current} (this kb's head is {head}: run `kb db upgrade`)")


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_kb
def db_upgrade(app: KnowledgeBase, revision: str) -> None:
    """Create the schema, or upgrade it to REVISION (default: head, the newest).

    Back up a database in use before upgrading it.
    """
    kbdb.check_revision(revision)
    with kbdb.translate_db_errors(app.url):
        before = kbdb.current_revision(app.engine())
        kbdb.upgrade(app.url, revision)
        after = kbdb.current_revision(app.engine())
    if before == after:
        click.echo(f"Database {mask_url(app.url)} already at {after}.", err=True)
    else:
        click.echo(f"Upgraded {mask_url(app.url)} from {before or 'empty'} to {after}.", err=True)


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_kb
def db_downgrade(app: KnowledgeBase, revision: str, yes: bool) -> None:
    """Downgrade the schema to REVISION ('base' removes every kb table and its data)."""
    kbdb.check_revision(revision)
    if not yes:
        click.confirm(
            f"Downgrade {mask_url(app.url)} to {revision}? Tables and data added after it are dropped",
            abort=True,
            err=True,
        )
    with kbdb.translate_db_errors(app.url):
        before = kbdb.current_revision(app.engine())
        kbdb.downgrade(app.url, revision)
        after = kbdb.current_revision(app.engine())
    click.echo(f"Downgraded {mask_url(app.url)} from {before} to {after or 'base'}.", err=True)
