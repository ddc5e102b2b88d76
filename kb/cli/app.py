"""The object every command gets: configuration resolved lazily, engines made on first use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from kb import db
from kb.config import resolve_database_url
from kb.errors import KbError


@dataclass
class App:
    db_option: str | None = None
    debug: bool = False
    _url: URL | None = field(default=None, repr=False)
    _engines: dict[bool, Engine] = field(default_factory=dict, repr=False)
    _schema_checked: bool = field(default=False, repr=False)

    @property
    def url(self) -> URL:
        if self._url is None:
            self._url = resolve_database_url(self.db_option)
        return self._url

    def engine(self, *, readonly: bool = False) -> Engine:
        """The engine (made once per kind), without checking the schema."""
        if readonly not in self._engines:
            self._engines[readonly] = db.create_kb_engine(self.url, readonly=readonly)
        return self._engines[readonly]

    def ready_engine(self, *, readonly: bool = False) -> Engine:
        """The engine, after making sure the schema is at this kb's revision.

        A command that writes creates a brand-new database on first use, so ``kb ingest`` works
        out of the box. A command that only reads (``readonly``) never creates anything — no
        database file, no directory: a missing or empty database is an error naming it.
        """
        if not self._schema_checked:
            if readonly:
                engine = self.engine(readonly=True)
                db.check_schema(engine, self.url, auto_create=False)
                engine.dispose()  # no pooled connection from before the caller's guards (kb.query.make_readonly)
            else:
                db.check_schema(self.engine(), self.url)
            self._schema_checked = True
        return self.engine(readonly=readonly)

    @contextlib.contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error.

        ``write=False`` uses a read-only connection (analysts' commands).
        """
        engine = self.ready_engine(readonly=not write)
        factory = db.make_sessionmaker(engine, write=write)
        with db.translate_db_errors(self.url), factory.begin() as session:
            yield session

    def explain_db_error(self, exc: OperationalError) -> KbError:
        return db.explain_operational_error(self.url, exc)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
