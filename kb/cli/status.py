"""``kb status``: what the knowledge base holds."""

from __future__ import annotations

import click

from kb import status as kbstatus
from kb.cli.app import App
from kb.cli.output import emit_rows, format_option

pass_app = click.make_pass_decorator(App)


@click.command("status")
@format_option
@pass_app
def status(app: App, fmt: str | None) -> None:
    """Count studies, cards by status, topics, queued fetch failures and loaded files."""
    with app.session(write=False) as session:
        rows = kbstatus.summary(session)
    emit_rows(["what", "count"], rows, fmt)
