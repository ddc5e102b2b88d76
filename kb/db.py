"""Engines, sessions and schema migrations.

SQLite connections run in WAL mode with a busy timeout and foreign keys on, so analysts reading
do not block a writer for long, nor the reverse. Units of work that write (see :func:`writer`)
start with ``BEGIN IMMEDIATE``: a writer takes SQLite's write lock up front (waiting up to the
busy timeout) instead of failing half-way when a read transaction tries to become a write one.
Plain reads start a deferred transaction and never wait for a writer.

Migrations are Alembic revisions shipped inside the package (``kb.migrations``), so they run
from an installed wheel in any directory.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import sqlite3
import time
import traceback
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kb.config import mask_url, sqlite_path
from kb.errors import ConfigError, DatabaseMissing, DatabaseUnavailable, InputError, KbError, SchemaOutOfDate
from kb.pubmed import xmlzip

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Pages of 16 KiB for a new database (an existing one keeps its own): a study's row is 2-4 KB (its
# compressed XML and abstract), and 4 KiB pages, which hold only one such row, left a fifth of the
# studies table empty. Measured on baseline-like records: 9.9 KB a study instead of 10.3.
SQLITE_PAGE_SIZE = 16_384
# A writer's page cache grows with the database, from SQLite's default 2 MiB to 64 MiB (a 128th
# of the file). Each batch of kb load/ingest/refresh inserts
# into b-tree indexes at places spread over the whole file (author names, MeSH headings, article
# ids): in a big database those pages no longer stay in 2 MiB and are read again and again.
# kb load of 30,000 records into 970,000 studies: 1,297 records/s with 2 MiB, 1,610 with 64 MiB
# (no further gain at 128 or 256 MiB); a database under 256 MiB keeps the default, so the load
# of a baseline file into a new database uses the memory it did. Each write transaction sizes the
# cache to the file as it is then (one kb load of many files grows the file under one connection).
SQLITE_WRITER_CACHE_MAX = 64 * 2**20
SQLITE_WRITER_CACHE_SHARE = 128
SQLITE_DEFAULT_CACHE = 2 * 2**20
_WRITE_OPTION = "kb_write"
PG_CONNECT_TIMEOUT_S = 10


def create_kb_engine(url: URL, *, readonly: bool = False, create_dir: bool = True) -> Engine:
    """An engine for the knowledge base at ``url``.

    ``readonly`` gives a connection that cannot write: SQLite opened with ``mode=ro``;
    PostgreSQL sessions with ``default_transaction_read_only``.
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, readonly=readonly, create_dir=create_dir)
    connect_args: dict[str, object] = {"connect_timeout": PG_CONNECT_TIMEOUT_S, "application_name": "kb"}
    if readonly:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _sqlite_engine(url: URL, *, readonly: bool, create_dir: bool) -> Engine:
    path = sqlite_path(url)
    assert path is not None
    if readonly:
        if not path.exists():
            raise DatabaseMissing(
                f"no kb database at {path}: this command only reads and creates nothing. Run `kb db upgrade` "
                "to create it there, or point --db / KB_DATABASE_URL (or KB_HOME) at your database."
            )
        url = URL.create("sqlite", database=f"file:{path}", query={"mode": "ro", "uri": "true"})
    elif create_dir and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the directory {path.parent} for the database: {exc.strerror or exc}. "
                "Point KB_HOME, or --db / KB_DATABASE_URL, at a place you can write"
            ) from None
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event, not the sqlite3 module, decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()
        xmlzip.register_sqlite_functions(dbapi_conn)  # kb_xml(), read by the view study_xml
        if not readonly:
            dbapi_conn.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")  # a no-op once the file has pages
            _use_wal(dbapi_conn)
            dbapi_conn.execute("PRAGMA synchronous = NORMAL")
            _fit_cache(dbapi_conn, record.info, path)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        immediate = not readonly and conn.get_execution_options().get(_WRITE_OPTION, False)
        if immediate:  # the file may have grown since the connection opened (one kb load of many files)
            _fit_cache(conn.connection.dbapi_connection, conn.connection.info, path)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def writer_cache_bytes(path: Path) -> int:
    """The page cache of a connection that writes to the SQLite file at ``path`` (see
    SQLITE_WRITER_CACHE_MAX)."""
    try:
        size = path.stat().st_size
    except OSError:  # not created yet
        return SQLITE_DEFAULT_CACHE
    return max(SQLITE_DEFAULT_CACHE, min(SQLITE_WRITER_CACHE_MAX, size // SQLITE_WRITER_CACHE_SHARE))


def _fit_cache(dbapi_conn: sqlite3.Connection, info: dict, path: Path) -> None:
    """Size a writing connection's page cache to the file as it is now (a stat; a PRAGMA only when
    the size it asks for changed)."""
    cache = writer_cache_bytes(path)
    if info.get("kb_cache_bytes", SQLITE_DEFAULT_CACHE) != cache:
        dbapi_conn.execute(f"PRAGMA cache_size = -{cache // 1024}")  # negative: KiB
        info["kb_cache_bytes"] = cache


def _use_wal(dbapi_conn: sqlite3.Connection, timeout_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the database in WAL mode (a no-op once it is: the mode is stored in the file).

    Switching a rollback-journal database to WAL fails at once with "database is locked",
    without waiting on the busy timeout, while another connection holds its write lock. That
    happens when several kb processes open a brand-new database together, one of them already
    switching it or creating the schema. So retry for as long as the busy timeout would wait.
    """
    if dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def writer(engine: Engine) -> Engine:
    """The same engine, for units of work that write (``BEGIN IMMEDIATE`` on SQLite)."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def release_abandoned_connections(exc: BaseException) -> None:
    """Call before writing bookkeeping after ``exc`` stopped a unit of work.

    A Ctrl-C or SIGTERM can land anywhere, even inside a session's own clean-up, leaving that
    unit's connection checked out with its transaction open (on SQLite, holding the write lock
    that the bookkeeping write would wait 30 s for; on PostgreSQL, row locks), referenced only
    by the traceback's frames. Clearing them lets the pool roll the connection back.
    """
    traceback.clear_frames(exc.__traceback__)
    gc.collect()


def bounded_lock_wait(session: Session, seconds: int = 10) -> None:
    """PostgreSQL: this transaction waits at most ``seconds`` for a row lock (bookkeeping written
    after an interruption must never hang on a lock left behind). SQLite has its busy timeout."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL lock_timeout = '{int(seconds)}s'"))


def make_sessionmaker(engine: Engine, *, write: bool = False) -> sessionmaker[Session]:
    return sessionmaker(writer(engine) if write else engine, expire_on_commit=False)


@contextlib.contextmanager
def translate_db_errors(url: URL) -> Iterator[None]:
    """Turn connection failures into errors that say what to do."""
    try:
        yield
    except OperationalError as exc:
        raise explain_operational_error(url, exc) from exc
    except DatabaseError as exc:
        # SQLite's answer for a file that is something else (SQLITE_NOTADB), on the first read
        path = sqlite_path(url)
        if path is not None and isinstance(exc.orig, sqlite3.DatabaseError) and "not a database" in str(exc.orig):
            raise SchemaOutOfDate(
                f"{path} is not a SQLite database ({exc.orig}): point --db / KB_DATABASE_URL (or KB_HOME) at a kb "
                "database, or at a new file"
            ) from exc
        raise


# SQLSTATE classes of PostgreSQL errors about the connection or the server rather than a statement:
# connection exception, invalid authorization, no such database, insufficient resources, operator
# intervention (shutdown), system error. psycopg raises OperationalError for others too (a program
# limit, a lock timeout, a deadlock): those are the statement's, not "cannot connect".
_PG_CONNECTION_CLASSES = ("08", "28", "3D", "53", "57", "58")


def explain_operational_error(url: URL, exc: DBAPIError) -> KbError:
    backend = url.get_backend_name()
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if backend == "sqlite":
        return ConfigError(
            f"cannot open the SQLite database {sqlite_path(url)}: {detail}. "
            "Check the path and its permissions (option --db or KB_DATABASE_URL)."
        )
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate and not sqlstate.startswith(_PG_CONNECTION_CLASSES):
        return KbError(f"PostgreSQL refused the operation: {detail}")
    # A refused connection carries no SQLSTATE (libpq gives only the text): the server's words for
    # a database that is not there (3D000), in its default English messages.
    name = url.database or ""
    if name and sqlstate in (None, "3D000") and f'database "{name}" does not exist' in detail:
        return DatabaseMissing(
            f"there is no database {name!r} on the PostgreSQL server at {url.host or 'localhost'}:{url.port or 5432}: "
            f"create it (CREATE DATABASE \"{name}\" ENCODING 'UTF8'; kb creates its tables, not the database), "
            "or point --db / KB_DATABASE_URL at your database"
        )
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {mask_url(url)}: {detail}. "
        "Check that the server is running and the URL (--db or KB_DATABASE_URL) is right."
    )


# --------------------------------------------------------------------------------------------
# Migrations
# --------------------------------------------------------------------------------------------


def migrations_dir() -> Path:
    """Where the Alembic revisions are, in a checkout or an installed wheel."""
    return Path(str(resources.files("kb.migrations")))


def alembic_config(url: URL, connection=None):  # type: ignore[no-untyped-def]
    """An Alembic config for ``url`` that needs no alembic.ini."""
    from alembic.config import Config  # imported here: the CLI's --help must stay fast

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation: escape % in passwords
    cfg.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["kb_url"] = url
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# The schema revision this kb works with: the Alembic head of its migrations, written here so that
# opening a database (every command does) reads the database's revision with one query and does
# not import Alembic, which was about a third of the CPU of starting `kb status`.
# tests/test_migrations.py checks that it is the head: a new migration changes it.
SCHEMA_REVISION = "0013"


def head_revision() -> str:
    """The head of the migrations, as Alembic finds it (see :data:`SCHEMA_REVISION`)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    heads = script.get_heads()
    if len(heads) != 1:  # a packaging mistake, not a user error
        raise RuntimeError(f"expected one Alembic head, found {heads}")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return _read_revision(conn)


def _read_revision(conn: Connection) -> str | None:
    """The row of ``alembic_version``, read as Alembic's MigrationContext reads it (None when the
    table is missing or empty), without importing Alembic."""
    if conn.dialect.name == "postgresql":
        exists = conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    else:
        exists = conn.scalar(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"))
    if not exists:
        return None
    rows = sorted(conn.scalars(text("SELECT version_num FROM alembic_version")))
    if len(rows) > 1:  # Alembic refuses this too
        raise SchemaOutOfDate(f"the database is at more than one schema revision ({', '.join(rows)}): kb's "
                              "migrations have one line. Restore it from a backup, or delete the row that is wrong "
                              "from its table alembic_version.")
    return rows[0] if rows else None


def check_revision(revision: str) -> None:
    """An InputError (exit 2) naming kb's revisions unless Alembic knows ``revision`` (relative
    steps such as ``-1`` are left to Alembic)."""
    if re.fullmatch(r"[+-]\d+", revision):
        return
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory(str(migrations_dir()))
    try:
        script.get_revision(revision)
    except CommandError:
        first = min(s.revision for s in script.walk_revisions())
        raise InputError(f"there is no schema revision {revision!r}: kb's are {first} to {SCHEMA_REVISION}, "
                         "head and base (`kb db current` shows the database's)") from None


def upgrade(url: URL, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: URL, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def schema_state(engine: Engine) -> tuple[str | None, bool]:
    """The database's revision and whether it has no tables at all, read in one snapshot.

    Both must come from the same snapshot: another process may create the schema at any moment,
    and reading them apart could see "no revision" and then that process's tables, which looks
    like a foreign database. SQLite gives a deferred transaction one snapshot from its first read
    (WAL); PostgreSQL needs REPEATABLE READ for that.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            current = _read_revision(conn)
            empty = current is None and not inspect(conn).get_table_names()
    return current, empty


def check_schema(engine: Engine, url: URL, *, auto_create: bool = True) -> None:
    """Make sure the database is at this kb's schema revision.

    A brand-new empty database is created (migrated to head) when ``auto_create``, so kb works
    out of the box; when several processes start on one empty database at once, one creates the
    schema and the others find it done (migrations take a lock: see ``migrations/env.py``). A
    database at another revision is never migrated silently: the error says what to run.
    """
    with translate_db_errors(url):
        current, empty = schema_state(engine)
        head = SCHEMA_REVISION
        if current == head:
            return
        if current is None and empty:
            if not auto_create:
                raise DatabaseMissing(f"the database at {mask_url(url)} is empty (no kb schema): this command only "
                                      "reads and creates nothing. Run `kb db upgrade` first.")
            log.info("creating the kb schema in %s", mask_url(url))
            upgrade(url)
            return
    if current is None:
        raise SchemaOutOfDate(
            f"the database at {mask_url(url)} has tables but no kb schema revision: it is not a kb "
            "database. Point --db / KB_DATABASE_URL at a kb database or an empty one."
        )
    if not _is_known_revision(current):
        raise SchemaOutOfDate(
            f"the database at {mask_url(url)} is at revision {current}, which this kb does not know: "
            "it was upgraded by a newer kb. Upgrade kb (pip install -U kb)."
        )
    raise SchemaOutOfDate(
        f"the database at {mask_url(url)} is at revision {current}; this kb needs {head}. "
        "Back it up, then run `kb db upgrade`."
    )


def _is_known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory(str(migrations_dir())).get_revision(revision) is not None
    except CommandError:
        return False


def ping(engine: Engine, url: URL) -> None:
    with translate_db_errors(url), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
