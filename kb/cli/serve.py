"""``kb serve``: a read-only web view of the knowledge base (Datasette, the ``kb[serve]`` extra)."""

from __future__ import annotations

import click

from kb.cli.options import pass_kb
from kb.cli.output import stderr
from kb.handle import KnowledgeBase


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 shows the data to your whole network).")
@click.option("-p", "--port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="Port.")
@click.option("--setting", "settings", type=(str, str), multiple=True, metavar="NAME VALUE",
              help="A Datasette setting, e.g. --setting max_returned_rows 5000 (repeatable).")
@pass_kb
def serve(app: KnowledgeBase, host: str, port: int, settings: tuple[tuple[str, str], ...]) -> None:
    """Browse the SQLite knowledge base read-only in a web browser (Datasette).

    Tables and columns are described, the views come first, the card and worked queries are
    canned queries with a form, and every pmid links to its rendered card. Nothing can be
    written. Needs the extra: pip install 'kb[serve]'. On PostgreSQL use `kb sql` or `kb query`.
    """
    from kb import serve as kbserve

    kbserve.sqlite_file(app.url)  # PostgreSQL or no database: say so before anything starts
    app.ready_engine(readonly=True)  # a database at this kb's revision
    values = {name: int(value) if value.isdigit() else value for name, value in settings}
    kbserve.serve(app.url, host=host, port=port, settings=values,
                  announce=lambda address: stderr(f"kb serve: {address} (read-only; Ctrl-C stops it)"))
