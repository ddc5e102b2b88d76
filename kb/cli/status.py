"""``kb status``: what the knowledge base holds."""

from __future__ import annotations

import click

from kb import status as kbstatus
from kb.cli.options import pass_kb
from kb.cli.output import emit_rows, format_option
from kb.handle import KnowledgeBase


@click.command("status")
@format_option
@pass_kb
def status(app: KnowledgeBase, fmt: str | None) -> None:
    """Count studies, cards by status, topics, queued fetch failures and loaded files."""
    with app.session(write=False) as session:
        rows = kbstatus.summary(session)
    emit_rows(["what", "count"], rows, fmt)
