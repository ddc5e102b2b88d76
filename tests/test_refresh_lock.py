"""The PostgreSQL refresh lock survives a server's idle_session_timeout.

The lock is a session-level advisory lock on a connection that idles for the whole run. With
idle_session_timeout set (on the server, the database or the role) PostgreSQL closed that
connection in the middle of a long refresh: the lock was gone (a second refresh could start), and
the first one, having recorded its run as a success, exited 69 with "cannot connect to PostgreSQL:
terminating connection due to idle-session timeout" when it tried to unlock.
"""

from __future__ import annotations

import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import locks


def test_the_lock_outlives_idle_session_timeout(pg_url: URL) -> None:
    admin = create_engine(pg_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{pg_url.database}" SET idle_session_timeout = \'1s\''))
    admin.dispose()
    engine = kbdb.create_kb_engine(pg_url)
    other = create_engine(pg_url)
    try:
        with locks.refresh_lock(engine):
            time.sleep(2.5)  # the lock's connection idles past the timeout, as during a long run
            with other.connect() as conn:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": locks._PG_REFRESH_KEY}).scalar()
            assert got is False  # still held: a second refresh would exit 75
    finally:
        other.dispose()
        engine.dispose()


def test_a_refresh_whose_lock_is_lost_stops_before_its_next_commit(pg_url: URL, eutils, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The lock's connection closed under a running refresh (an administrator's
    pg_terminate_backend, a pooler, the network): a second refresh could take the lock while the
    first went on writing, and the first then recorded success and exited 69 'cannot connect'."""
    import pytest

    from kb import refresh as kbrefresh
    from kb.config import EntrezSettings
    from kb.errors import LockLost
    from kb.handle import KnowledgeBase
    from kb.pubmed.eutils import EutilsClient

    from .conftest import kb
    from .test_refresh import before_state

    before_state(eutils, tmp_path)
    assert kb(pg_url, "topic", "add", "b12", "vitamin b12").exit_code == 0
    app = KnowledgeBase(pg_url)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with locks.refresh_lock(app.ready_engine()) as lock:
            with admin.connect() as conn:  # waits (up to 10 s) until the lock's server process is gone
                assert conn.execute(text("SELECT pg_terminate_backend(:p, 10000)"), {"p": lock.backend_pid}).scalar()
                # the lock went with its connection: a second refresh would get it now
                assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": locks._PG_REFRESH_KEY}).scalar()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": locks._PG_REFRESH_KEY})
            with pytest.raises(LockLost, match="the refresh lock is gone: its connection to PostgreSQL was closed"):
                kbrefresh.refresh(app.sessions(), EutilsClient(EntrezSettings.from_env()), lock_check=lock.check)
        # (leaving the lock's block after the loss raises nothing: the lock went with the connection)
        with admin.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM studies")).scalar() == 0  # nothing written
            status, error = conn.execute(text("SELECT status, error FROM refresh_runs ORDER BY id DESC LIMIT 1")).one()
        assert status == "failed" and error.startswith("the refresh lock is gone"), (status, error)
    finally:
        admin.dispose()
        app.close()
