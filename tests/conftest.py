"""Shared fixtures: an isolated kb home per test, SQLite and PostgreSQL databases, the corpus.

PostgreSQL: every test that asks for it gets a database of its own on the server at
``KB_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), created
and dropped around the test. Without a server the test skips, except under ``CI=true`` where
it fails. The corpus in ``../shared`` follows the same rule.

Shared by the test files:

* :func:`kb` / the ``run_kb`` fixture: ``kb --db URL ARGS`` in this process (Click's runner), or
  with ``run_kb.process(...)`` in a process of its own where the process boundary is the point
  (exit codes of a real process, signals, stdout and stderr apart, start-up);
* the ``eutils`` fixture: the E-utilities stand-in with kb pointed at it, without a rate limit
  and with a short Retry-After (only the test of the shared rate limit runs at NCBI's 3/s);
* the ``db_templates`` fixture: a database built once per session (the corpus loaded, say) and
  copied for each test that asks for it: a file copy on SQLite, ``CREATE DATABASE … TEMPLATE``
  on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import OperationalError

from kb import db as kbdb
from kb.cli import cli
from kb.testing.eutils import EutilsServer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "pubmed"
IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get("KB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

_KB_ENV = ("KB_DATABASE_URL", "KB_HOME", "KB_EUTILS_URL", "NCBI_API_KEY", "NCBI_EMAIL", "EMAIL", "KB_DEBUG",
           "KB_EUTILS_RATE", "KB_EUTILS_TIMEOUT", "KB_EUTILS_TRIES", "KB_EUTILS_BACKOFF", "KB_RATE_DIR")

# How kb meets the stand-in in most tests: the stand-in does not limit the rate and asks for a
# short wait with its 429s, and kb paces itself at STAND_IN_RATE requests/s instead of NCBI's 3.
# The 429s, faults and retries are all still served; only the waiting is shorter.
STAND_IN_RATE = 200
STAND_IN_RETRY_AFTER = 0.05
STAND_IN_BACKOFF = 0.01


# The modules with the longest tests, longest first (measured with KB_TEST_CPU_LOG): run first,
# so that (pytest-xdist hands tests out in this order) no long test starts last and leaves the
# other workers idle. A module's tests stay together (its module-scoped fixtures).
LONG_MODULES = (
    "reliability/test_crashes.py", "test_cards.py", "reliability/test_concurrency.py", "test_ingest.py",
    "reliability/test_faults.py", "test_install.py", "test_site.py", "reliability/test_properties.py",
    "reliability/test_migration_upgrades.py", "test_storage.py", "test_search.py", "test_refresh.py",
    "reliability/test_secrets.py", "test_query.py", "test_migrations.py",
)


# Modules whose tests share a database, a file or a server built once per module (a
# module-scoped fixture) or a template only they use: each runs on one xdist worker
# (``--dist loadgroup``, as scripts/test.sh runs the suite), so that it is built once, not once
# per worker that happens to get some of its tests.
SHARED_FIXTURE_MODULES = (
    "test_search.py", "test_query.py", "test_site.py", "test_load_faults.py", "test_parse.py",
    "test_install.py", "test_eutils_server.py", "test_eutils_shapes.py", "test_extract.py",
    "reliability/test_migration_upgrades.py", "reliability/test_hostile_xml.py",
    "reliability/test_hostile_cards.py", "reliability/test_hostile_queries.py",
    "reliability/test_properties.py",
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks (and so that no plugin reorders after)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def path(item: pytest.Item) -> str:
        return item.path.relative_to(REPO / "tests").as_posix()

    def rank(item: pytest.Item) -> int:
        return LONG_MODULES.index(path(item)) if path(item) in LONG_MODULES else len(LONG_MODULES)

    for item in items:
        if path(item) in SHARED_FIXTURE_MODULES:
            item.add_marker(pytest.mark.xdist_group(path(item)))
    items.sort(key=rank)  # stable: the order within each group is kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With ``KB_TEST_CPU_LOG=FILE``, append a JSON line per test: wall time and CPU time (this
    process, and the processes it started and waited for), setup and teardown included. What
    makes the suite slow: waiting (wall well above CPU) or work."""
    log = os.environ.get("KB_TEST_CPU_LOG")
    if not log:
        yield
        return
    started, me, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    yield
    me2, children2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    line = {"test": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "-"), "end": round(time.time(), 3),
            "wall": round(time.perf_counter() - started, 3),
            "cpu": round(me2.ru_utime + me2.ru_stime - me.ru_utime - me.ru_stime, 3),
            "children_cpu": round(children2.ru_utime + children2.ru_stime - children.ru_utime - children.ru_stime, 3)}
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; fail under CI=true, where everything must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must run in CI)")
    pytest.skip(reason)


def _clean_kb_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in _KB_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KB_HOME", str(home))


@pytest.fixture(autouse=True)
def kb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own KB_HOME and none of the caller's kb settings."""
    home = tmp_path / "kb-home"
    _clean_kb_env(monkeypatch, home)
    return home


def shared_database(request: pytest.FixtureRequest, directory: Path, build: Callable[[URL], None]) -> Iterator[URL]:
    """For a fixture wider than one test, parametrized with DB_PARAMS: a new database on the
    parameter's backend (a file in ``directory`` on SQLite) filled by ``build`` with a clean kb
    environment (a wider fixture starts before :func:`kb_env`), dropped (PostgreSQL) at the end."""
    if request.param == "sqlite":
        url = URL.create("sqlite", database=str(directory / "kb.sqlite3"))
        admin = None
    else:
        admin = request.getfixturevalue("pg_admin_url")
        url = _create_pg_database(admin)
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            _clean_kb_env(monkeypatch, directory / "kb-home")
            build(url)
        yield url
    finally:
        if admin is not None:
            _drop_pg_database(admin, url)


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        skip_or_fail(f"the PubMed corpus is not at {CORPUS} (../shared beside the checkout)")
    return CORPUS


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.name.endswith((".xml", ".xml.gz")))


def record_files(corpus: Path) -> list[Path]:
    """Corpus files with records (the update-file subsets, with their DeleteCitation lists, apart)."""
    return [p for p in corpus_files(corpus) if "SUBSET" not in p.name]


@pytest.fixture(scope="session")
def pg_admin_url() -> URL:
    url = make_url(PG_ADMIN_URL)
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        skip_or_fail(f"PostgreSQL is not reachable at {url.render_as_string()}: {exc}")
    finally:
        engine.dispose()
    return url


def _create_pg_database(admin_url: URL) -> URL:
    name = f"kb_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.set(database=name)


def _drop_pg_database(admin_url: URL, url: URL) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    engine.dispose()


# The two databases a test of both runs on (the ids show in test names: test_x[sqlite]).
DB_PARAMS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))


@pytest.fixture
def empty_pg_url(pg_admin_url: URL) -> Iterator[URL]:
    """A fresh, empty PostgreSQL database (no kb schema), dropped after the test."""
    url = _create_pg_database(pg_admin_url)
    try:
        yield url
    finally:
        _drop_pg_database(pg_admin_url, url)


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> URL:
    """Where a SQLite database will be: no file yet."""
    return make_url(f"sqlite:///{tmp_path / 'test.sqlite3'}")


@pytest.fixture(params=DB_PARAMS)
def empty_db_url(request: pytest.FixtureRequest) -> URL:
    """An empty database (no kb schema: kb creates it on first use), on SQLite and on PostgreSQL.
    For the tests of schema creation; the others take ``db_url``, which starts at kb's schema."""
    if request.param == "sqlite":
        return request.getfixturevalue("empty_sqlite_url")
    return request.getfixturevalue("empty_pg_url")


# Most tests start from kb's schema (what the first command on an empty database creates): it is
# migrated once per session and copied for each test, instead of running every migration per test.
@pytest.fixture
def pg_url(pg_admin_url: URL, db_templates: DatabaseTemplates, tmp_path: Path) -> Iterator[URL]:
    """A fresh PostgreSQL database at kb's schema (head revision, no rows), dropped after the test:
    one ``CREATE DATABASE … TEMPLATE``."""
    yield from db_templates.fresh_copy("schema", kbdb.upgrade, "postgresql", tmp_path)


@pytest.fixture
def sqlite_url(empty_sqlite_url: URL, db_templates: DatabaseTemplates) -> URL:
    """A fresh SQLite database at kb's schema (head revision, no rows)."""
    return db_templates.copy("schema", kbdb.upgrade, empty_sqlite_url)


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest) -> URL:
    """A database at kb's schema with no rows, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)



# --------------------------------------------------------------------------------------------
# Running kb
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessResult:
    """What a `kb` process did: the same names as Click's Result where they mean the same."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def kb(db: URL | str | None, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """``kb [--db URL] ARGS`` in this process (Click's runner): the command as the user runs it,
    without the interpreter start-up and imports a process costs."""
    head = ["--db", db if isinstance(db, str) else url_text(db)] if db is not None else []
    return CliRunner().invoke(cli, [*head, *args], input=input, env=env)


def kb_process(db: URL | str | None, *args: str, input: str | None = None, env: dict[str, str] | None = None,
               timeout: float = 120) -> ProcessResult:
    """``python -m kb [--db URL] ARGS`` in a process of its own, with this process's environment
    (and ``env`` on top)."""
    head = ["--db", db if isinstance(db, str) else url_text(db)] if db is not None else []
    done = subprocess.run([sys.executable, "-m", "kb", *head, *args], input=input, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    return ProcessResult(done.returncode, done.stdout, done.stderr)


class KbRunner:
    """The ``run_kb`` fixture: ``run_kb(db, *args)`` in this process, ``run_kb.process(db, *args)`` in another."""

    __call__ = staticmethod(kb)
    process = staticmethod(kb_process)


@pytest.fixture
def run_kb() -> KbRunner:
    return KbRunner()


# --------------------------------------------------------------------------------------------
# The E-utilities stand-in
# --------------------------------------------------------------------------------------------


def eutils_env(server: EutilsServer, rate_dir: Path) -> dict[str, str]:
    """The settings that point kb at ``server``, fast (see STAND_IN_RATE), with its own rate schedule."""
    return {"KB_EUTILS_URL": server.base_url, "KB_RATE_DIR": str(rate_dir), "KB_EUTILS_RATE": str(STAND_IN_RATE),
            "KB_EUTILS_BACKOFF": str(STAND_IN_BACKOFF), "NCBI_EMAIL": "kb-tests@example.org"}


@pytest.fixture
def eutils(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EutilsServer]:
    """The E-utilities stand-in, serving nothing yet, with kb pointed at it (this process's
    environment, which `kb` processes the test starts inherit)."""
    server = EutilsServer(rate=None, api_key_rate=None, retry_after=STAND_IN_RETRY_AFTER).start()
    rate_dir = tmp_path / "rate"
    rate_dir.mkdir()
    for name, value in eutils_env(server, rate_dir).items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()


# --------------------------------------------------------------------------------------------
# Databases built once and copied
# --------------------------------------------------------------------------------------------


class DatabaseTemplates:
    """Databases built once per session (per xdist worker) and copied into a test's database.

    ``copy(name, build, target)`` builds the template ``name`` on ``target``'s backend the first
    time (``build(url)`` fills an empty database), then makes ``target`` a copy of it. ``target``
    is the test's own database from the ``empty_sqlite_url``/``empty_pg_url``/``empty_db_url`` fixtures.
    """

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._built: dict[tuple[str, str], URL] = {}

    def copy(self, name: str, build: Callable[[URL], None], target: URL) -> URL:
        backend = target.get_backend_name()
        template = self._template(name, build, backend)
        if backend == "sqlite":
            with sqlite3.connect(template.database) as conn:  # fold the WAL into the file first
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            for suffix in ("-wal", "-shm"):
                Path(target.database + suffix).unlink(missing_ok=True)
            shutil.copyfile(template.database, target.database)
        else:
            _clone_pg_database(self._admin_url(), template, target)
        return target

    def fresh_copy(self, name: str, build: Callable[[URL], None], backend: str, directory: Path) -> Iterator[URL]:
        """A new database on ``backend``, a copy of the template ``name`` (a file in ``directory``
        on SQLite); a generator for fixtures: a PostgreSQL copy is dropped when it resumes."""
        if backend == "sqlite":
            yield self.copy(name, build, URL.create("sqlite", database=str(directory / f"{name}.sqlite3")))
            return
        url = self._admin_url().set(database=f"kb_test_{uuid.uuid4().hex[:12]}")
        _clone_pg_database(self._admin_url(), self._template(name, build, "postgresql"), url, replace=False)
        try:
            yield url
        finally:
            _drop_pg_database(self._admin_url(), url)

    def _template(self, name: str, build: Callable[[URL], None], backend: str) -> URL:
        """The template ``name`` on ``backend``, built by ``build`` the first time."""
        template = self._built.get((name, backend))
        if template is None:
            if backend == "sqlite":
                template = URL.create("sqlite", database=str(self._dir / f"{name}.sqlite3"))
            else:
                template = _create_pg_database(self._admin_url())
                self._built[(name, backend)] = template  # dropped at the end, built or not
            build(template)
            self._built[(name, backend)] = template
        return template

    @staticmethod
    def _admin_url() -> URL:
        return make_url(PG_ADMIN_URL)  # reachable: the caller's fixture asked for pg_admin_url

    def close(self) -> None:
        for (_, backend), url in self._built.items():
            if backend == "postgresql":
                _drop_pg_database(self._admin_url(), url)


def create_pg_from_template(conn: Connection, name: str, template: str) -> None:
    """``CREATE DATABASE name TEMPLATE template`` on an AUTOCOMMIT admin connection, waiting for
    connections to the template that are still closing.

    PostgreSQL 15 and later: ``STRATEGY FILE_COPY`` (a checkpoint, then a copy of the files) instead
    of the default WAL_LOG (every page of the new database written to the WAL). Measured here with a
    template at kb's schema (8.8 MB, nearly all of it PostgreSQL's own catalogs): create and drop
    0.22 s instead of 0.34 s, and the suite makes a database for each of some 180 tests."""
    strategy = " STRATEGY FILE_COPY" if conn.dialect.server_version_info >= (15,) else ""
    for attempt in range(50):
        try:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}'))
            return
        except OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.1)


def _clone_pg_database(admin_url: URL, template: URL, target: URL, *, replace: bool = True) -> None:
    """Make ``target`` a copy of ``template`` (``replace``: dropping the empty database of this
    test that has the name)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if replace:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            create_pg_from_template(conn, target.database, template.database)
    finally:
        engine.dispose()


def load_records(url: URL, corpus: Path) -> None:
    """``kb load`` of every corpus file with records, at once (a file kb refuses ends it: exit 1)."""
    result = kb(url, "load", "--quiet", *map(str, record_files(corpus)))
    assert result.exit_code in (0, 1), result.output


@pytest.fixture(params=DB_PARAMS)
def records_db(request: pytest.FixtureRequest, corpus: Path, db_templates: DatabaseTemplates,
               tmp_path: Path) -> Iterator[URL]:
    """The test's database holding :func:`load_records`' studies (loaded once per session, copied)."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_admin_url")  # reachable, or skip (fail under CI=true)
    yield from db_templates.fresh_copy("records", lambda url: load_records(url, corpus), request.param, tmp_path)


@pytest.fixture(scope="session")
def db_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseTemplates]:
    templates = DatabaseTemplates(tmp_path_factory.mktemp("db-templates"))
    yield templates
    templates.close()
