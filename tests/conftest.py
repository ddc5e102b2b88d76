"""Shared fixtures: an isolated kb home per test, SQLite and PostgreSQL databases, the corpus.

PostgreSQL: every test that asks for it gets a database of its own on the server at
``KB_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), created
and dropped around the test. Without a server the test skips, except under ``CI=true`` where
it fails. The corpus in ``../shared`` follows the same rule.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "pubmed"
IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get("KB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

_KB_ENV = ("KB_DATABASE_URL", "KB_HOME", "KB_EUTILS_URL", "NCBI_API_KEY", "NCBI_EMAIL", "EMAIL", "KB_DEBUG")


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; fail under CI=true, where everything must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must run in CI)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def kb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own KB_HOME and none of the caller's kb settings."""
    for name in _KB_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "kb-home"
    monkeypatch.setenv("KB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        skip_or_fail(f"the PubMed corpus is not at {CORPUS} (../shared beside the checkout)")
    return CORPUS


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


@pytest.fixture
def pg_url(pg_admin_url: URL) -> Iterator[URL]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    url = _create_pg_database(pg_admin_url)
    try:
        yield url
    finally:
        _drop_pg_database(pg_admin_url, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> URL:
    return make_url(f"sqlite:///{tmp_path / 'test.sqlite3'}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> URL:
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)
