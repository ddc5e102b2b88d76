"""Datasette hooks for ``kb serve`` (registered by :func:`kb.serve.serve`; imports Datasette)."""

from __future__ import annotations

import asyncio
from typing import Any

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup

from kb.serve import CARD_ROUTE, card_html


@hookimpl
def prepare_connection(conn: Any, database: str) -> None:
    """Every connection Datasette opens on the knowledge base refuses writes, whatever the SQL.
    (Not its own in-memory catalogue, ``_internal``, which Datasette writes.)"""
    if database != "_internal":
        conn.execute("PRAGMA query_only = ON")


@hookimpl
def render_cell(value: Any, column: str) -> Any:
    """A pmid links to its rendered card."""
    if column != "pmid" or isinstance(value, bool) or not isinstance(value, int):
        return None
    return Markup(f'{value} <a class="kb-card" href="{CARD_ROUTE}{value}">card</a>')


async def _card(datasette: Any, request: Any) -> Response:
    database = next(db for db in datasette.databases.values() if db.path)  # the one file served
    status, page = await asyncio.get_running_loop().run_in_executor(
        None, card_html, database.path, request.url_vars["pmid"])
    return Response.html(page, status=status)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(r"^/-/card/(?P<pmid>[^/]+)$", _card)]
