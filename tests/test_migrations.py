"""Schema migrations on SQLite and PostgreSQL: round trips with rows, upgrades that keep rows,
models and migrations in agreement, stable constraint names."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    func,
    inspect,
    insert,
    select,
)
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb.models import Card, Finding, Study
from kb.search import is_index_table

from .conftest import REPO, url_text


def _revisions_oldest_first() -> list[str]:
    script = ScriptDirectory(str(kbdb.migrations_dir()))
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


def _table_counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in meta.tables.items()
            if name != "alembic_version" and not is_index_table(name)  # the search index: see test_search.py
        }


def _value_for(column, i: int):  # type: ignore[no-untyped-def]
    """A plausible value of the column's type, for filling any table of any revision."""
    t = column.type
    if isinstance(t, Boolean):
        return i % 2 == 0
    if isinstance(t, DateTime):
        return dt.datetime(2024, 1, 1 + i % 28, tzinfo=dt.timezone.utc)
    if isinstance(t, Date):
        return dt.date(2024, 1, 1 + i % 28)
    if isinstance(t, JSON):
        return ["x", i]
    if isinstance(t, (Integer, Numeric)):
        return 1000 + i
    if isinstance(t, (String, Text)):
        length = getattr(t, "length", None) or 64
        return f"v{i}"[:length]
    return None


def _allowed_literal(checks: list[str], column: str) -> str | None:
    """The first string literal of a check constraint on ``column`` ("status IN ('a', ...)" on
    SQLite, "(status)::text = ANY (ARRAY['a'::character varying, ...])" on PostgreSQL)."""
    for sql in checks:
        if re.search(rf"\b{column}\b", sql):
            found = re.search(r"'([^']*)'", sql)
            if found:
                return found.group(1)
    return None


def _fill_every_table(engine, rows: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Insert rows into every table the database has at its current revision.

    Works on any revision by reflecting the schema: foreign keys point at the rows inserted into
    the parent table; check constraints on status columns are met by using the first allowed
    value found in the constraint text.
    """
    meta = MetaData()
    meta.reflect(engine)
    inspector = inspect(engine)
    with engine.begin() as conn:
        # Continue numbering after the rows of earlier calls, so repeated fills never collide.
        start = conn.execute(select(func.count()).select_from(meta.tables["studies"])).scalar_one()
        for table in meta.sorted_tables:
            if table.name == "alembic_version" or is_index_table(table.name):  # FTS5 virtual/shadow tables
                continue
            checks = [c["sqltext"] for c in inspector.get_check_constraints(table.name)]
            for i in range(start, start + rows):
                values = {}
                for col in table.columns:
                    if col.primary_key and col.autoincrement is True and isinstance(col.type, Integer) and not col.foreign_keys:
                        continue
                    fks = list(col.foreign_keys)
                    if fks:
                        parent = fks[0].column
                        values[col.name] = conn.execute(
                            select(parent).order_by(parent).offset(i).limit(1)
                        ).scalar_one()
                        continue
                    allowed = _allowed_literal(checks, col.name)
                    if allowed is not None:
                        values[col.name] = allowed
                        continue
                    values[col.name] = _value_for(col, i)
                if table.name == "studies":
                    values["pmid"] = 1000 + i
                conn.execute(insert(table).values(**values))


def test_revisions_form_one_line() -> None:
    script = ScriptDirectory(str(kbdb.migrations_dir()))
    assert len(script.get_heads()) == 1
    assert _revisions_oldest_first()[-1] == kbdb.head_revision()
    # what kb checks a database against without importing Alembic: a new migration changes it
    assert kbdb.SCHEMA_REVISION == kbdb.head_revision()


def test_base_head_base_head_with_rows(empty_db_url: URL) -> None:
    engine = kbdb.create_kb_engine(empty_db_url)
    try:
        kbdb.upgrade(empty_db_url, "head")
        _fill_every_table(engine)
        counts = _table_counts(engine)
        assert counts["studies"] == 3 and counts["cards"] == 3 and counts["findings"] == 3
        assert all(n == 3 for n in counts.values()), counts

        kbdb.downgrade(empty_db_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert kbdb.current_revision(engine) is None

        kbdb.upgrade(empty_db_url, "head")
        assert kbdb.current_revision(engine) == kbdb.head_revision()
        _fill_every_table(engine)
        assert all(n == 3 for n in _table_counts(engine).values())
        _fill_every_table(engine)
        assert all(n == 6 for n in _table_counts(engine).values())
    finally:
        engine.dispose()


def test_rows_survive_each_upgrade_step(empty_db_url: URL) -> None:
    """Walk the revisions one at a time, filling every table before each step: no step loses a
    row of a table that still exists after it."""
    engine = kbdb.create_kb_engine(empty_db_url)
    try:
        steps = _revisions_oldest_first()
        kbdb.upgrade(empty_db_url, steps[0])
        _fill_every_table(engine)
        for rev in steps[1:]:
            before = _table_counts(engine)
            kbdb.upgrade(empty_db_url, rev)
            after = _table_counts(engine)
            for table, n in before.items():
                if table in after:
                    assert after[table] >= n, f"{rev} lost rows of {table}: {n} -> {after[table]}"
            _fill_every_table(engine, rows=3)
        assert kbdb.current_revision(engine) == kbdb.head_revision()
    finally:
        engine.dispose()


def test_alembic_check_passes(empty_db_url: URL) -> None:
    kbdb.upgrade(empty_db_url, "head")
    command.check(kbdb.alembic_config(empty_db_url))  # raises AutogenerateDiffsDetected on drift


def test_alembic_command_line_check_from_checkout(empty_sqlite_url: URL) -> None:
    """The developer's route: `alembic upgrade head` and `alembic check` with alembic.ini."""
    env = {**os.environ, "KB_DATABASE_URL": url_text(empty_sqlite_url)}
    alembic = [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini")]
    for args in (["upgrade", "head"], ["check"]):
        proc = subprocess.run(alembic + args, cwd=REPO, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert "No new upgrade operations detected" in proc.stdout + proc.stderr


def _constraint_names(url: URL) -> dict[str, set[str]]:
    engine = kbdb.create_kb_engine(url)
    try:
        kbdb.upgrade(url, "head")
        insp = inspect(engine)
        names: dict[str, set[str]] = {"pk": set(), "fk": set(), "uq": set(), "ck": set(), "ix": set()}
        for table in insp.get_table_names():
            if table == "alembic_version" or is_index_table(table):  # FTS5 shadow tables have no named keys
                continue
            names["pk"].add(insp.get_pk_constraint(table)["name"])
            names["fk"].update(fk["name"] for fk in insp.get_foreign_keys(table))
            names["uq"].update(uq["name"] for uq in insp.get_unique_constraints(table))
            names["ck"].update(ck["name"] for ck in insp.get_check_constraints(table))
            names["ix"].update(ix["name"] for ix in insp.get_indexes(table) if not ix.get("duplicates_constraint"))
        return names
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_constraint_names_identical_on_both_databases(empty_sqlite_url: URL, empty_pg_url: URL) -> None:
    lite, pg = _constraint_names(empty_sqlite_url), _constraint_names(empty_pg_url)
    for kind in ("pk", "fk", "uq", "ck", "ix"):
        assert lite[kind] == pg[kind], kind
        assert None not in lite[kind], f"unnamed {kind} constraint"
    assert "fk_cards_pmid_studies" in lite["fk"]
    assert "ck_studies_evidence_status" in lite["ck"]


def test_curated_rows_block_deleting_their_study(empty_db_url: URL) -> None:
    """No delete of a study can take curated work with it (ON DELETE RESTRICT)."""
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    kbdb.upgrade(empty_db_url, "head")
    engine = kbdb.create_kb_engine(empty_db_url)
    try:
        with Session(engine) as s, s.begin():
            s.add(Study(pmid=31902683, title="t", title_markup="t"))
            s.flush()
            s.add(Card(pmid=31902683, headline="h"))
            s.add(Finding(pmid=31902683, position=0, text="f"))
        with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
            s.delete(s.get(Study, 31902683))
        with Session(engine) as s:
            assert s.get(Card, 31902683).headline == "h"
    finally:
        engine.dispose()


def test_switch_to_wal_waits_for_another_writer(tmp_path: Path) -> None:
    """A brand-new database opened while another connection holds its write lock still opens.

    SQLite fails ``PRAGMA journal_mode = WAL`` at once ("database is locked", no busy timeout)
    while another connection holds the write lock of a rollback-journal database. Several kb
    processes starting on one new database hit that (a CI failure of
    test_two_ingest_processes_share_the_rate_limit); kb's engine now waits instead.
    """
    path = tmp_path / "new.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other_app (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other_app VALUES (1)")
    releaser = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    releaser.start()
    engine = kbdb.create_kb_engine(URL.create("sqlite", database=str(path)))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT x FROM other_app").scalar() == 1
    finally:
        releaser.join()
        engine.dispose()
        holder.close()


def test_sqlite_connection_settings(empty_sqlite_url: URL) -> None:
    engine = kbdb.create_kb_engine(empty_sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == kbdb.SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_sqlite_reader_does_not_block_writer(empty_sqlite_url: URL) -> None:
    """WAL: an open read transaction does not stop a writer from committing."""
    kbdb.upgrade(empty_sqlite_url, "head")
    writer = kbdb.create_kb_engine(empty_sqlite_url)
    reader = kbdb.create_kb_engine(empty_sqlite_url, readonly=True)
    try:
        with reader.connect() as rconn:
            rconn.execute(select(func.count()).select_from(Study.__table__)).scalar_one()  # read txn open
            with writer.begin() as wconn:
                wconn.execute(insert(Study.__table__).values(pmid=1, title="", title_markup="", pmid_version=1,
                                                             record_type="article", source="file",
                                                             evidence_status="ok"))
            assert rconn.execute(select(func.count()).select_from(Study.__table__)).scalar_one() == 0
        with reader.connect() as rconn:
            assert rconn.execute(select(func.count()).select_from(Study.__table__)).scalar_one() == 1
    finally:
        writer.dispose()
        reader.dispose()


def test_readonly_sqlite_connection_refuses_writes(empty_sqlite_url: URL) -> None:
    from sqlalchemy.exc import OperationalError

    kbdb.upgrade(empty_sqlite_url, "head")
    reader = kbdb.create_kb_engine(empty_sqlite_url, readonly=True)
    try:
        with pytest.raises(OperationalError, match="readonly"), reader.begin() as conn:
            conn.exec_driver_sql("DELETE FROM studies")
    finally:
        reader.dispose()


def test_migrations_ship_in_the_package() -> None:
    path = kbdb.migrations_dir()
    assert (path / "env.py").is_file()
    assert any(p.suffix == ".py" for p in (path / "versions").iterdir())
    # From a checkout (an editable install: the package dir maps kb.migrations to migrations/), or
    # beside kb itself in an installed wheel; nothing else.
    import kb

    package = Path(kb.__file__).resolve().parent
    expected = REPO / "migrations" if package == (REPO / "kb").resolve() else package / "migrations"
    assert Path(path).resolve() == expected.resolve()


def _kb(url: URL, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KB_DATABASE_URL": url_text(url)}
    return subprocess.run([sys.executable, "-m", "kb", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_schema_created_by_another_process_while_checking(empty_db_url: URL) -> None:
    """Regression: kb read the revision and the table list apart, so a second kb starting on the
    same empty database could see "no revision", then the other process's new tables, and refuse
    the database as foreign (exit 3). Here another process runs `kb db upgrade` right after the
    check's first statement: the check must still end with the schema at head, and no error."""
    from sqlalchemy import event

    engine = kbdb.create_kb_engine(empty_db_url)
    try:
        engine.connect().close()  # the dialect's first-connect queries are not the check's
        others: list[subprocess.CompletedProcess[str]] = []

        @event.listens_for(engine, "after_cursor_execute")
        def _another_kb_creates_the_schema(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
            if not others and not statement.startswith("BEGIN"):  # after the first read
                others.append(_kb(empty_db_url, "db", "upgrade"))

        kbdb.check_schema(engine, empty_db_url)
        assert others and others[0].returncode == 0, others[0].stderr if others else "hook never ran"
        event.remove(engine, "after_cursor_execute", _another_kb_creates_the_schema)
        assert kbdb.current_revision(engine) == kbdb.head_revision()
    finally:
        engine.dispose()


def test_processes_starting_together_on_an_empty_database(empty_db_url: URL) -> None:
    """Four kb processes that write start at once on one empty database: one creates the schema, the others
    wait for it (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock) and all succeed."""
    env = {**os.environ, "KB_DATABASE_URL": url_text(empty_db_url)}
    # A command that writes (one that only reads never creates a database: issue 15).
    procs = [subprocess.Popen([sys.executable, "-m", "kb", "topic", "add", f"t{i}", "q"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert [code for code, _ in results] == [0, 0, 0, 0], [err for _, err in results]
    engine = kbdb.create_kb_engine(empty_db_url)
    try:
        assert kbdb.current_revision(engine) == kbdb.head_revision()
    finally:
        engine.dispose()
