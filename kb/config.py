"""Where kb keeps its data and how it reaches PubMed.

Resolution order for the database URL: the ``--db`` option, then ``KB_DATABASE_URL``, then a
SQLite file ``kb.sqlite3`` in the kb home directory (``KB_HOME``, else the user's app directory
as given by :func:`click.get_app_dir`). Nothing here runs at import time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from kb.errors import ConfigError

APP_NAME = "kb"
DEFAULT_DB_FILENAME = "kb.sqlite3"
NCBI_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"

SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def kb_home(environ: dict[str, str] | None = None) -> Path:
    """The directory for kb's own files: ``KB_HOME`` or the platform's app directory."""
    env = os.environ if environ is None else environ
    home = env.get("KB_HOME")
    return Path(home).expanduser() if home else Path(click.get_app_dir(APP_NAME))


def default_database_url(environ: dict[str, str] | None = None) -> str:
    return f"sqlite:///{kb_home(environ) / DEFAULT_DB_FILENAME}"


def resolve_database_url(option: str | None = None, environ: dict[str, str] | None = None) -> URL:
    """The database URL to use, validated and normalised.

    ``postgresql://`` and ``postgres://`` URLs use the psycopg 3 driver.
    """
    env = os.environ if environ is None else environ
    raw = option or env.get("KB_DATABASE_URL") or default_database_url(env)
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"{mask_url_text(raw)!r} is not a database URL. Use sqlite:///PATH/kb.sqlite3 or "
            "postgresql://USER@HOST:PORT/DBNAME (option --db or KB_DATABASE_URL)."
        ) from None
    backend = url.get_backend_name()
    if backend == "postgres":
        url = url.set(drivername="postgresql+psycopg")
        backend = "postgresql"
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"unsupported database {backend!r} in {mask_url(url)}: kb runs on SQLite "
            "(sqlite:///PATH) or PostgreSQL (postgresql://USER@HOST/DBNAME); set --db or KB_DATABASE_URL."
        )
    if backend == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3, whatever the URL said
    if backend == "sqlite" and (url.host or url.port or url.username):
        raise ConfigError(
            f"{mask_url_text(raw)!r} is not a SQLite URL kb can use: after sqlite:// comes a third slash, then "
            "the path (sqlite:///relative/kb.sqlite3, or four slashes for an absolute path: "
            "sqlite:////tmp/kb.sqlite3); option --db or KB_DATABASE_URL"
        )
    if backend == "sqlite" and url.database in (None, ""):
        raise ConfigError(
            "an in-memory SQLite database keeps nothing: give a file, e.g. sqlite:///kb.sqlite3 "
            "(option --db or KB_DATABASE_URL)"
        )
    return url


def mask_url(url: URL) -> str:
    """The URL as text with any password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def mask_url_text(raw: str) -> str:
    """Mask the password of a URL that may not even parse (for error messages)."""
    scheme, sep, rest = raw.partition("://")
    if not sep or "@" not in rest:
        return raw
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for other databases)."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database).expanduser()


@dataclass(frozen=True)
class EntrezSettings:
    """Who kb says it is to NCBI, where E-utilities live, and how patiently kb asks.

    ``api_key`` is a secret: it is never logged, stored or shown (see ``__repr__``). ``timeout``:
    seconds per request; ``tries``: attempts per request; ``backoff``: the first wait before a
    retry (doubling); ``rate``: requests per second (None: NCBI's 3, or 10 with a key);
    ``rate_dir``: where the rate schedule shared by kb's processes lives (None: the temp directory).
    """

    email: str | None
    api_key: str | None
    base_url: str = NCBI_EUTILS_URL
    tool: str = "kb"
    timeout: float = 60.0
    tries: int = 5
    backoff: float = 1.0
    rate: float | None = None
    rate_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"KB_EUTILS_URL must be an http(s) URL such as http://127.0.0.1:8080/entrez/eutils/, "
                f"not {self.base_url!r}"
            )
        if not self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url + "/")
        finite = {name: getattr(self, name) is None or math.isfinite(getattr(self, name))
                  for name in ("timeout", "backoff", "rate")}
        for name, ok, what in (("timeout", finite["timeout"] and self.timeout > 0, "a number above 0"),
                               ("backoff", finite["backoff"] and self.backoff >= 0, "a number of at least 0"),
                               ("rate", finite["rate"] and (self.rate is None or self.rate > 0), "a number above 0"),
                               ("tries", self.tries >= 1, "a whole number of at least 1")):
            if not ok:
                raise ConfigError(f"{_ENTREZ_ENV[name]} must be {what}, not {getattr(self, name)!r}")

    def __repr__(self) -> str:
        key = "***" if self.api_key else None
        return (
            f"EntrezSettings(email={self.email!r}, api_key={key!r}, base_url={self.base_url!r}, "
            f"tool={self.tool!r}, timeout={self.timeout!r}, tries={self.tries!r}, backoff={self.backoff!r}, "
            f"rate={self.rate!r}, rate_dir={self.rate_dir!r})"
        )

    @property
    def uses_stand_in(self) -> bool:
        return self.base_url.rstrip("/") != NCBI_EUTILS_URL.rstrip("/")

    @classmethod
    def from_env(
        cls,
        email: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> EntrezSettings:
        """The settings from the environment (arguments given win): NCBI_EMAIL (or EMAIL),
        NCBI_API_KEY, KB_EUTILS_URL, KB_EUTILS_TIMEOUT, KB_EUTILS_TRIES, KB_EUTILS_BACKOFF,
        KB_EUTILS_RATE and KB_RATE_DIR. A value that is not a number is a :class:`ConfigError`."""
        env = os.environ if environ is None else environ
        numbers = {name: _number(env, variable, int if name == "tries" else float)
                   for name, variable in _ENTREZ_ENV.items()}
        rate_dir = env.get("KB_RATE_DIR")
        return cls(
            email=email or env.get("NCBI_EMAIL") or env.get("EMAIL") or None,
            api_key=api_key or env.get("NCBI_API_KEY") or None,
            base_url=base_url or env.get("KB_EUTILS_URL") or NCBI_EUTILS_URL,
            rate_dir=Path(rate_dir) if rate_dir else None,
            **{name: value for name, value in numbers.items() if value is not None},
        )


_ENTREZ_ENV = {"timeout": "KB_EUTILS_TIMEOUT", "tries": "KB_EUTILS_TRIES", "backoff": "KB_EUTILS_BACKOFF",
               "rate": "KB_EUTILS_RATE"}


def _number(env: Mapping[str, str], variable: str, kind: type[float] | type[int]) -> float | int | None:
    raw = env.get(variable, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{variable} must be {what}, not {raw!r}") from None


def editor_command(environ: Mapping[str, str] | None = None) -> str:
    """The curator's editor for ``kb curate edit``: $VISUAL, else $EDITOR, else vi."""
    env = os.environ if environ is None else environ
    return env.get("VISUAL") or env.get("EDITOR") or "vi"
