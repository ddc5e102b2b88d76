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
