"""One refresh at a time per database, across processes, released when the process dies.

SQLite: an exclusive ``flock`` on a file beside the database (``kb.sqlite3.refresh.lock``): the
kernel drops it when the process exits, however it exits. PostgreSQL: a session-level advisory
lock held on a dedicated connection: the server drops it when that connection closes, which
includes the process dying. A refresh calls :meth:`RefreshLock.check` before each commit: a
connection closed under it (an administrator's ``pg_terminate_backend``, a pooler, the network)
takes the lock with it, and the run stops instead of writing beside a second refresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from kb.config import mask_url, sqlite_path
from kb.errors import LockHeld, LockLost

# pg_try_advisory_lock key: the first 8 bytes of sha1(b"kb.refresh") as a signed bigint.
_PG_REFRESH_KEY = -4298776431793575199


class RefreshLock:
    """The refresh lock held by this process; :meth:`check` raises :class:`LockLost` once it is gone."""

    def __init__(self, conn: Connection | None = None, backend_pid: int | None = None) -> None:
        self._conn = conn  # PostgreSQL: the connection holding the advisory lock (None: a file lock)
        self.backend_pid = backend_pid  # PostgreSQL: that connection's server process

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock is gone. A file lock lasts as long as the process; an
        advisory lock as long as its connection, which is asked."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
        except DBAPIError as exc:
            raise LockLost(
                "the refresh lock is gone: its connection to PostgreSQL was closed (by an administrator, a "
                f"connection pooler or the network: {str(exc.orig or exc).strip().splitlines()[0]}), so another "
                "refresh may be running. This run stopped before writing more; run kb refresh again"
            ) from None


@contextlib.contextmanager
def refresh_lock(engine: Engine) -> Iterator[RefreshLock]:
    """Hold the database's refresh lock, or raise :class:`LockHeld` at once."""
    path = sqlite_path(engine.url)
    if path is not None:
        with _file_lock(path.with_name(path.name + ".refresh.lock")):
            yield RefreshLock()
        return
    with engine.connect() as conn:
        if (conn.dialect.server_version_info or (0,)) >= (14,):
            # The lock's connection idles for the whole run: a server (or database, or role) with
            # idle_session_timeout would close it, and the lock with it, in the middle of the run.
            conn.execute(text("SET idle_session_timeout = 0"))
        got, pid = conn.execute(text("SELECT pg_try_advisory_lock(:k), pg_backend_pid()"),
                                {"k": _PG_REFRESH_KEY}).one()
        conn.commit()
        if not got:
            raise LockHeld(
                f"another kb refresh is running on {mask_url(engine.url)}; this one did nothing. "
                "Try again when it has finished (kb refresh --status shows runs)."
            )
        try:
            yield RefreshLock(conn, pid)
        finally:
            if not conn.invalidated:  # (a connection found closed took the lock with it)
                with contextlib.suppress(DBAPIError):  # closed, and not found out yet: the same
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_REFRESH_KEY})
                    conn.commit()


@contextlib.contextmanager
def _file_lock(path: os.PathLike[str] | str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(
                f"another kb refresh is running on this database (lock file {path}); this one did "
                "nothing. Try again when it has finished (kb refresh --status shows runs)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock
