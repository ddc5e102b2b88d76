"""Read-only SQL for analysts, enforced by the database connection, not by reading the SQL.

SQLite: the file is opened with ``mode=ro``, ``PRAGMA query_only`` is on, and an authorizer on
the connection refuses ATTACH/DETACH and pragmas that set something. PostgreSQL: the session is
``default_transaction_read_only``, each query runs in a ``READ ONLY`` transaction that is rolled
back, and as a prepared statement, so one call is exactly one statement (no ``COMMIT; …``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from kb.errors import InputError, KbError

_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class QueryRefused(KbError):
    """A query that tried to write, or that the database rejected."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``name=value`` pairs from ``-p`` options. Values are always bound, never spliced into SQL."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _PARAM.match(name):
            raise InputError(f"-p takes name=value with a plain name, not {pair!r}")
        params[name] = value
    return params


def run_query(engine: Engine, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
    """Run one read-only statement; named parameters are written ``:name`` in the SQL."""
    params = dict(params or {})
    if not sql.strip():
        raise InputError('the SQL is empty: give one statement, e.g. kb query "SELECT count(*) FROM studies"')
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        try:
            if engine.dialect.name == "sqlite":
                cursor = raw.execute(sql, params)
            else:
                cursor = raw.cursor()
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute("SELECT 1")  # from here on the transaction cannot become read-write
                cursor.execute(_pg_named(sql), params, prepare=True)
            columns = [d[0] for d in cursor.description or ()]
            rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        except (sqlite3.Error, DBAPIError) as exc:
            raise _refusal(exc) from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise _refusal(exc) from None
            raise
        finally:
            raw.rollback()
    return QueryResult(columns, rows)


def _pg_named(sql: str) -> str:
    """``:name`` placeholders to psycopg's ``%(name)s`` (and literal ``%`` doubled)."""
    out, i = [], 0
    for match in re.finditer(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)|%", sql):
        out.append(sql[i : match.start()])
        out.append("%%" if match.group(0) == "%" else f"%({match.group(1)})s")
        i = match.end()
    out.append(sql[i:])
    return "".join(out)


# A :name in the SQL without its -p: sqlite3's and psycopg's words for it.
_MISSING_PARAM = re.compile(r"binding parameter :([A-Za-z_][A-Za-z0-9_]*)|query parameter missing: ([A-Za-z_][A-Za-z0-9_]*)")


def _refusal(exc: BaseException) -> KbError:
    """A parameter left without a value is the caller's mistake (exit 2); anything else the
    database refused is the query's (exit 1)."""
    missing = _MISSING_PARAM.search(str(getattr(exc, "orig", None) or exc))
    if missing:
        name = missing.group(1) or missing.group(2)
        return InputError(f"the SQL uses :{name} and no value was given for it: add -p {name}=VALUE")
    return QueryRefused(_explain(exc))


def _explain(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    lowered = message.lower()
    if any(word in lowered for word in ("readonly", "read-only", "read only", "not authorized", "query_only")):
        return f"kb query is read-only: {message}. Use the kb commands that write (ingest, curate, …)."
    return f"the database refused the query: {message}"


# --------------------------------------------------------------------------------------------
# Shipped queries: the card queries (kb/cards/queries/*.sql) and the worked queries of
# docs/queries.md (shipped as kb.docs), by name.
# --------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    title: str
    sql: str
    source: str  # "card" (kb/cards/queries) or "worked" (docs/queries.md)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> list[str]:
        """The ``:name`` parameters, in order of first use (comment lines left out)."""
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return list(dict.fromkeys(_PLACEHOLDER.findall(body)))


def doc_text(name: str) -> str:
    """A shipped reference document: ``schema`` (docs/schema.md) or ``queries`` (docs/queries.md)."""
    return (resources.files("kb.docs") / f"{name}.md").read_text(encoding="utf-8")


def shipped_queries() -> dict[str, NamedQuery]:
    """Every shipped query by name: card queries first, then the worked queries."""
    found: dict[str, NamedQuery] = {}
    folder = resources.files("kb.cards") / "queries"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        sql = entry.read_text(encoding="utf-8")
        first = sql.splitlines()[0].removeprefix("--").strip() if sql else ""
        name = entry.name.removesuffix(".sql")
        found[name] = NamedQuery(name, first.removeprefix(f"{name}:").strip(), sql, "card")
    for title, sql in re.findall(r"^## (.+?)\n.*?```sql\n(.*?)```", doc_text("queries"), flags=re.S | re.M):
        name, examples = None, {}
        for line in sql.splitlines():
            if line.startswith("-- name:"):
                name = line.removeprefix("-- name:").strip()
            elif line.startswith("-- params:"):
                for pair in line.removeprefix("-- params:").split(","):
                    key, _, value = pair.strip().partition("=")
                    examples[key] = value
        if name:
            found[name] = NamedQuery(name, title.strip(), sql, "worked", examples)
    return found


def named_query(name: str) -> NamedQuery:
    queries = shipped_queries()
    if name not in queries:
        raise InputError(f"no shipped query named {name!r}: `kb query --list` shows them ({', '.join(queries)})")
    return queries[name]


def check_params(query: NamedQuery, params: Mapping[str, str]) -> None:
    """Every parameter of ``query`` given, and no other (InputError naming them)."""
    missing = [p for p in query.params if p not in params]
    extra = [p for p in params if p not in query.params]
    if missing or extra:
        wanted = " ".join(f"-p {p}=…" for p in query.params) or "no parameters"
        problem = (f"missing {', '.join(missing)}" if missing else "") + ("; " if missing and extra else "") + (
            f"unknown {', '.join(extra)}" if extra else "")
        raise InputError(f"query {query.name} takes {wanted} ({problem})")
