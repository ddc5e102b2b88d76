"""Errors kb reports to a user, and the exit codes they map to.

The library raises these; the CLI prints ``Error: <message>`` once and exits with ``exit_code``.
Each message says what to do about it.

Exit codes (documented in the README):

====  =====================================================================================
0     success
1     failure, or partial success: some items failed or were not found (listed on stderr)
2     usage or configuration error (bad option, bad PMID, bad database URL)
3     no database, or its schema is not at the revision this kb needs (run ``kb db upgrade``)
69    a service is unavailable (database server or E-utilities unreachable)
75    another process holds the lock (a refresh is already running); try again later
130   interrupted (Ctrl-C); work committed before it is kept, the batch in hand is not
143   terminated (SIGTERM, e.g. ``systemctl stop`` or ``timeout``); as for 130
====  =====================================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SCHEMA = 3
EXIT_UNAVAILABLE = 69
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`kb … | head`): nothing more is written


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned by the CLI into an exception like Ctrl-C's, so that a stopped run closes
    its bookkeeping (``source_files``, ``refresh_runs``) instead of vanishing mid-way."""


class KbError(Exception):
    """Base of every error kb reports to a user. The message says what to do."""

    exit_code = EXIT_FAILURE


class ConfigError(KbError):
    """Bad configuration: a database URL, an option, an environment variable."""

    exit_code = EXIT_USAGE


class InputError(KbError):
    """Bad input from the user (malformed PMIDs, an unreadable file)."""

    exit_code = EXIT_USAGE


class NotFound(KbError):
    """Something the user named (a PMID, a topic) is not in the knowledge base."""


class OutputError(KbError):
    """A file or directory kb was asked to write cannot be written (exports, the card site,
    ``kb curate export``, ``kb card -o``). Nothing half-written is left under the name."""

    exit_code = EXIT_USAGE


class ParseError(KbError):
    """A PubMed XML file that cannot be parsed."""


class DatabaseUnavailable(KbError):
    """The database server cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class SchemaOutOfDate(KbError):
    """The database is not at the schema revision this version of kb needs."""

    exit_code = EXIT_SCHEMA


class DatabaseMissing(SchemaOutOfDate):
    """A command that only reads found no database: it never creates one (exit 3, as for a schema
    that is not at this kb's revision: the fix is ``kb db upgrade``, or the right URL)."""


class NetworkError(KbError):
    """E-utilities (NCBI or the URL in KB_EUTILS_URL) cannot be reached or keeps failing."""

    exit_code = EXIT_UNAVAILABLE


class LockHeld(KbError):
    """Another kb process holds the lock for this work."""

    exit_code = EXIT_LOCKED


class LockLost(LockHeld):
    """The lock this process held is gone (PostgreSQL: its connection was closed): it stops
    before writing more, since another process may hold the lock now."""


class PartialFailure(KbError):
    """Part of the work failed and the rest is done (exit 1): PMIDs not found or not fetched,
    cards not imported, lint findings, model calls that failed, an incomplete refresh. What
    failed is listed on stderr before this error's one line."""
