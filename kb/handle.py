"""The library handle: one knowledge base, its configuration resolved lazily, engines made on first use.

What the command line does, a notebook can do through the same object::

    import kb
    k = kb.open("sqlite:///kb.sqlite3")       # or kb.open(): --db's default (KB_DATABASE_URL, KB_HOME)
    k.ingest([31902683])                        # E-utilities (NCBI, or KB_EUTILS_URL)
    print(k.card(31902683, "md"))
    with k.session(write=False) as session:     # any library function that takes a session
        ...

Nothing touches the database before the first call that needs it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kb import db
from kb.config import resolve_database_url
from kb.errors import KbError

if TYPE_CHECKING:
    from kb.config import EntrezSettings
    from kb.curate import SaveResult
    from kb.ingest import IngestReport

log = logging.getLogger(__name__)

# Pragmas that take an argument but only read (``kb query``'s guards, below).
_READING_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check", "function_list",
    "pragma_list", "collation_list", "module_list", "compile_options",
})


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg2 is not None and (arg1 or "").lower() not in _READING_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def guard_readonly(engine: Engine) -> Engine:
    """Add the read-only guards to a read-only engine (see :func:`kb.db.create_kb_engine`):
    on SQLite ``PRAGMA query_only`` and an authorizer that refuses ATTACH/DETACH and pragmas that
    set something. (PostgreSQL's read-only sessions are the engine's own.)"""
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _guard(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA query_only = ON")
            dbapi_conn.set_authorizer(_sqlite_authorizer)

    return engine


class KnowledgeBase:
    """One knowledge base. ``url``: a database URL (text or :class:`~sqlalchemy.engine.URL`); None
    resolves it as the command line does (``KB_DATABASE_URL``, else kb.sqlite3 in ``KB_HOME``)."""

    def __init__(self, url: str | URL | None = None) -> None:
        self._option = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        self._url: URL | None = None
        self._engines: dict[bool, Engine] = {}
        self._schema_checked = False
        self._guarded = False

    def __repr__(self) -> str:
        from kb.config import mask_url, mask_url_text

        try:  # the database it opens (the default one too), never its password
            shown = mask_url(self.url)
        except KbError:
            shown = mask_url_text(self._option or "")
        return f"KnowledgeBase({shown!r})"

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- engines and sessions ----------------------------------------------------------------

    @property
    def url(self) -> URL:
        if self._url is None:
            self._url = resolve_database_url(self._option)
        return self._url

    def engine(self, *, readonly: bool = False) -> Engine:
        """The engine (made once per kind), without checking the schema."""
        if readonly not in self._engines:
            self._engines[readonly] = db.create_kb_engine(self.url, readonly=readonly)
        return self._engines[readonly]

    def ready_engine(self, *, readonly: bool = False) -> Engine:
        """The engine, after making sure the schema is at this kb's revision.

        Writing creates a brand-new database on first use, so ``kb ingest`` works out of the
        box. Reading (``readonly``) never creates anything — no database file, no directory: a
        missing or empty database is an error naming it.
        """
        if not self._schema_checked:
            if readonly:
                engine = self.engine(readonly=True)
                db.check_schema(engine, self.url, auto_create=False)
                if engine.dialect.name == "sqlite":
                    # no pooled connection from before the guards of readonly_engine() (they are
                    # set on connecting; PostgreSQL's read-only sessions need none, and there
                    # the connection that checked is kept: a new one costs the server ~8 ms of CPU)
                    engine.dispose()
            else:
                db.check_schema(self.engine(), self.url)
            self._schema_checked = True
        return self.engine(readonly=readonly)

    def readonly_engine(self) -> Engine:
        """The read-only engine with the guards of analysts' SQL (``kb query``, ``kb search``):
        the database connection, not a reading of the SQL, refuses to write."""
        engine = self.ready_engine(readonly=True)
        if not self._guarded:
            guard_readonly(engine)
            self._guarded = True
        return engine

    def sessions(self, *, write: bool = True) -> sessionmaker[Session]:
        """A session factory for work made of several transactions (ingest, load, refresh)."""
        return db.make_sessionmaker(self.ready_engine(readonly=not write), write=write)

    @contextlib.contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error.

        ``write=False`` uses a read-only connection (analysts' commands).
        """
        factory = self.sessions(write=write)
        with db.translate_db_errors(self.url), factory.begin() as session:
            yield session

    def explain_db_error(self, exc: OperationalError) -> KbError:
        return db.explain_operational_error(self.url, exc)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        self._guarded = False

    # -- the main job, for notebooks and scripts ----------------------------------------------

    def ingest(self, pmids: Sequence[int], *, entrez: EntrezSettings | None = None, retry_queued: bool = True,
               batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> IngestReport:
        """Fetch ``pmids`` from E-utilities and store them (``kb ingest``); ``entrez`` defaults to
        the environment's settings (NCBI_EMAIL, NCBI_API_KEY, KB_EUTILS_URL, …)."""
        from kb import ingest as kbingest
        from kb.config import EntrezSettings
        from kb.pubmed.eutils import EutilsClient

        client = EutilsClient(entrez or EntrezSettings.from_env())
        return kbingest.ingest_pmids(self.sessions(), client, pmids, retry_queued=retry_queued,
                                     batch_size=batch_size or kbingest.DEFAULT_FETCH_BATCH,
                                     progress=progress or (lambda _n: None))

    def load(self, paths: Sequence[str | Path]) -> IngestReport:
        """Load PubMed XML files (``kb load``)."""
        from kb import ingest as kbingest

        return kbingest.load_files(self.sessions(), paths)

    def import_card(self, path: str | Path, *, status: str | None = None, author: str | None = None,
                    replace: bool = False) -> SaveResult:
        """Import one card file (``kb curate import``): .txt, .md or kb's card JSON; ``status`` None
        publishes a new card and keeps a stored card's status, as the command does. Its warnings
        (a card whose type, year or title disagrees with the record, a PMID not yet stored) are
        logged, as ``kb curate import`` prints them."""
        from kb import curate as kbcurate

        read = kbcurate.read_card_file(Path(path))
        with self.session() as session:
            result, plan = kbcurate.import_card(session, read, status=status, author=author, replace=replace)
        for warning in plan.warnings:
            log.warning("%s: %s", path, warning)
        return result

    def card(self, pmid: int, fmt: str = "text", *, template: Path | None = None) -> str:
        """The card of ``pmid`` rendered (``kb card``): text, md, html or json."""
        from kb.cards.data import load_card
        from kb.cards.render import render

        with self.session(write=False) as session:
            view = load_card(session, pmid)
        return render(view, fmt, template=template)
