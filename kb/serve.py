"""``kb serve``: a read-only web view of a SQLite knowledge base, with Datasette (``kb[serve]``).

* Tables and columns carry the schema's descriptions (the models' comments, :mod:`kb.views` for
  the views, the search index's own); the documented views are listed first.
* The card queries (``kb/cards/queries/*.sql``) and the worked queries of ``docs/queries.md``
  are canned queries, with a form field per ``:parameter``.
* A ``pmid`` cell links to the card rendered by kb (``/-/card/PMID``, the same HTML as
  ``kb card PMID --format html``).
* Read-only: Datasette opens the file ``mode=ro``, every connection it makes also runs
  ``PRAGMA query_only``, no canned query is writable, and Datasette's SQL box takes only
  ``SELECT``. (Not ``immutable``: kb's SQLite runs in WAL mode and an immutable open would not see
  what is still in the WAL, nor later writes by ``kb refresh``.)

Nothing here imports Datasette until :func:`serve` runs, so kb works without the extra.
"""

from __future__ import annotations

import asyncio
import functools
import html
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from kb.config import mask_url, sqlite_path
from kb.errors import ConfigError, DatabaseMissing, InputError, KbError, NotFound

CARD_ROUTE = "/-/card/"
TEMPLATES = Path(__file__).parent / "serve_templates"


def sqlite_file(url: URL) -> Path:
    """The SQLite file ``kb serve`` serves, or a :class:`ConfigError` that points PostgreSQL users to
    ``kb sql``. A missing file is an error too (``kb serve`` creates nothing)."""
    path = sqlite_path(url)
    if path is None:
        raise ConfigError(
            f"kb serve serves SQLite knowledge bases only (Datasette is a SQLite tool), and this one is "
            f"PostgreSQL ({mask_url(url)}). Use `kb sql` (psql, read-only) or `kb query` on it, or serve a "
            "SQLite copy."
        )
    if not path.exists():
        raise DatabaseMissing(f"no kb database at {path}: run `kb db upgrade` (or `kb ingest`) first")
    return path


def metadata(database: str) -> dict[str, Any]:
    """Datasette metadata for the kb database named ``database`` (the file's stem)."""
    from kb.models import Base
    from kb.query import shipped_queries
    from kb.search import INDEX_DOC, TABLE as SEARCH_TABLE
    from kb.views import VIEWS

    tables: dict[str, Any] = {}
    for name, (description, columns) in VIEWS.items():
        tables[name] = {"description": description, "columns": dict(columns)}
    for name, table in sorted(Base.metadata.tables.items()):
        tables[name] = {"description": table.comment or "",
                        "columns": {c.name: c.comment for c in table.columns if c.comment}}
    description, columns = INDEX_DOC
    tables[SEARCH_TABLE] = {"description": description, "columns": dict(columns)}
    for shadow in ("data", "idx", "content", "docsize", "config"):
        tables[f"{SEARCH_TABLE}_{shadow}"] = {"hidden": True}
    # The two other parts of the SQLite index (see INDEX_DOC): listed, and said to be the index's.
    tables[f"{SEARCH_TABLE}_source"] = {
        "description": f"What the search index {SEARCH_TABLE} reads: each study's title and abstract, its MeSH "
                       "and keyword subjects, and its curated text and facets as indexed. Part of kb search."}
    tables[f"{SEARCH_TABLE}_docs"] = {
        "description": f"The curated text and filter facets of each study as {SEARCH_TABLE} indexed them. Part "
                       "of kb search: kb writes it (kb search --reindex rebuilds it)."}
    tables["alembic_version"] = {"hidden": True}
    queries = {}
    for query in shipped_queries().values():
        # A canned query and a table or view cannot share a name (one URL): card_items is both.
        name = f"{query.name}_query" if query.name in tables else query.name
        kind = "Card query (kb/cards/queries)" if query.source == "card" else "Worked query (docs/queries.md)"
        params = ", ".join(f":{p}" for p in query.params) or "none"
        queries[name] = {
            "sql": query.sql,
            "title": query.title[:1].upper() + query.title[1:],
            "description": f"{kind}. Parameters: {params}. A pmid links to the study's rendered card.",
        }
    return {
        "title": "kb — evidence about health interventions",
        "description_html": (
            "A read-only view of the knowledge base. The views <code>study_overview</code>, "
            "<code>card_items</code> and <code>topic_studies_overview</code> are the place to start; every "
            "table and column is described. A <code>pmid</code> links to its card. Reference: "
            f"<code>kb docs schema</code>; worked queries: <code>kb query --list</code>."
        ),
        "databases": {database: {"tables": tables, "queries": queries}},
    }


@functools.lru_cache(maxsize=4)
def _sessions(path: str):  # type: ignore[no-untyped-def]
    from kb import db as kbdb
    from kb.handle import guard_readonly

    engine = guard_readonly(kbdb.create_kb_engine(URL.create("sqlite", database=path), readonly=True))
    return kbdb.make_sessionmaker(engine)


def card_html(path: str, pmid_text: str) -> tuple[int, str]:
    """(HTTP status, page): the card of a PMID rendered as ``kb card --format html`` does."""
    from kb.cards.data import load_card
    from kb.cards.render import render
    from kb.pubmed.pmids import require_pmid

    try:
        pmid = require_pmid(pmid_text)
        with _sessions(path)() as session:
            return 200, render(load_card(session, pmid), "html")
    except (InputError, NotFound) as exc:
        status = 400 if isinstance(exc, InputError) else 404
        return status, f"<!doctype html><title>kb</title><p>{html.escape(str(exc))}</p>"


def make_datasette(url: URL, settings: dict[str, Any] | None = None) -> Any:
    """The Datasette application for the SQLite knowledge base at ``url`` (read-only; see above)."""
    path = sqlite_file(url)
    try:
        from datasette.app import Datasette
        from datasette.plugins import pm
    except ImportError:
        raise ConfigError("kb serve needs Datasette, an optional extra: pip install 'kb[serve]'") from None
    from kb import serve_plugin

    if not pm.is_registered(serve_plugin):
        pm.register(serve_plugin, name="kb")
    ds = Datasette(
        files=[str(path)],
        metadata=metadata(path.stem),
        template_dir=str(TEMPLATES),
        settings={"sql_time_limit_ms": 5000, "allow_download": False, **(settings or {})},
    )
    try:
        asyncio.run(ds.invoke_startup())
        asyncio.run(ds.refresh_schemas())
    except Exception as exc:  # a file that is not SQLite, or not readable
        raise KbError(f"Datasette cannot open {path}: {exc}") from None
    return ds


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (port 0: any free one) for :func:`serve`, or one
    :class:`ConfigError` line: uvicorn would log the failure and exit 3, kb's code for "no database"."""
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise ConfigError(f"kb serve cannot listen on {host}:{port} ({exc.strerror or exc}): "
                          "give another --port, or a --host address of this machine") from None
    return sock


def serve(url: URL, *, host: str = "127.0.0.1", port: int = 8001, settings: dict[str, Any] | None = None,
          announce: Callable[[str], None] | None = None) -> None:
    """Serve the SQLite knowledge base at ``url`` read-only until interrupted; ``announce`` gets
    the address once the port is bound (the real port when ``port`` is 0)."""
    sock = listen(host, port)
    try:
        ds = make_datasette(url, settings)
        import uvicorn  # a dependency of Datasette

        bound = sock.getsockname()[1]
        if announce is not None:
            announce(f"http://{host}:{bound}/")
        server = uvicorn.Server(uvicorn.Config(ds.app(), host=host, port=bound, log_level="warning"))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # as uvicorn.run: Ctrl-C ends it quietly
            pass
    finally:
        sock.close()
