"""Alembic environment for kb.

Runs from the kb CLI (``kb db upgrade``: the URL and maybe a connection come in
``config.attributes``) and from the ``alembic`` command in a checkout (the URL comes from
``--db``-equivalent ``KB_DATABASE_URL`` or kb's default SQLite file).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from kb.config import resolve_database_url
from kb.db import create_kb_engine
from kb.models import Base, UTCDateTime
from kb.search import is_index_table

config = context.config
# pg_advisory_xact_lock key that serialises kb migrations on a PostgreSQL database ("kbmigr").
MIGRATION_LOCK_KEY = 0x6B626D696772
target_metadata = Base.metadata


def _url():
    url = config.attributes.get("kb_url")
    if url is not None:
        return url
    ini_url = config.get_main_option("sqlalchemy.url")
    return resolve_database_url(ini_url or None)


def render_item(type_, obj, autogen_context):
    """Render kb's own column types as plain SQLAlchemy types, so that revisions never import
    kb.models (a revision must keep working after the models change)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "server_default" and getattr(obj, "arg", None) is not None:
        arg = getattr(obj.arg, "name", None)
        if arg in ("false", "true"):
            return f"sa.{arg}()"
    return False


def include_name(name, type_, parent_names):  # type: ignore[no-untyped-def]
    """Leave the full-text search index out of autogenerate: it is not in kb.models (an FTS5
    virtual table and its shadow tables on SQLite, a tsvector table on PostgreSQL; migration 0005)."""
    return not (type_ == "table" and name is not None and is_index_table(name))


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
        render_item=render_item,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    if is_sqlite:
        # Batch migrations rebuild tables (create, copy, drop, rename). With foreign keys on,
        # dropping the old table would cascade deletes into child tables, so switch them off for
        # the migration (the pragma is a no-op inside a transaction, hence before it) and check
        # integrity before committing.
        # The raw DBAPI connection runs it outside SQLAlchemy's autobegun transaction.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
        connection.execution_options(kb_write=True)  # BEGIN IMMEDIATE: take the write lock up front
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite,
        render_item=render_item,
        include_name=include_name,
        compare_type=True,
        transaction_per_migration=False,
        # SQLite's DDL is transactional, and kb's engine begins its own transactions (the sqlite3
        # module's implicit commits are off). Alembic assumes otherwise for SQLite and would commit
        # after each revision, so two kb processes upgrading one database could interleave their
        # revisions ("table ... already exists"). One transaction for the whole upgrade, taken
        # with BEGIN IMMEDIATE: the second process waits, then finds the schema at head.
        transactional_ddl=True,
    )
    try:
        with context.begin_transaction():
            if not is_sqlite:
                # One migration at a time per database: a second kb starting on the same empty
                # database waits here, then finds the schema at head (SQLite gets the same from
                # BEGIN IMMEDIATE above).
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
            if is_sqlite:
                problems = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
                if problems:
                    raise RuntimeError(f"migration left broken foreign keys: {problems[:5]}")
    finally:
        if is_sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_kb_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
