"""The ``kb`` command line: a thin layer over the library.

Errors cross to the user here, once: a :class:`kb.errors.KbError` becomes one ``Error: …`` line
on stderr and its exit code; anything unexpected becomes one line too, with the traceback only
under ``--debug``. Data goes to stdout; progress, logs and summaries to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

import click
from sqlalchemy.exc import OperationalError

from kb import __version__
from kb.errors import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED, KbError, Terminated
from kb.handle import KnowledgeBase

_DEBUG = "kb.debug"  # ctx.meta key: --debug, for the error boundary
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class KbGroup(click.Group):
    """A group that turns errors into one ``Error:`` line and a documented exit code, and imports
    a command's module only when that command runs (or ``--help`` lists it): ``kb ingest`` in a
    cron job does not load the card templates (Click's lazy-group pattern)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}  # command name -> (module under kb.cli, attribute)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module_name, attribute = self.lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(f"kb.cli.{module_name}"), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            with _sigterm_raises():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KbError as exc:
            self._fail(ctx, str(exc), exc.exit_code, exc)
        except OperationalError as exc:
            handle = ctx.find_object(KnowledgeBase)
            err = handle.explain_db_error(exc) if handle else KbError(str(exc))
            self._fail(ctx, str(err), err.exit_code, exc)
        except BrokenPipeError:  # `kb … | head`: the reader left; say nothing more
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except Terminated:
            click.echo("Terminated.", err=True)
            ctx.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # the one place where anything unexpected is reported
            self._fail(
                ctx,
                f"unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback, "
                "and please report it)",
                EXIT_FAILURE,
                exc,
            )

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int, exc: BaseException) -> None:
        if ctx.meta.get(_DEBUG):
            raise exc
        click.echo(f"Error: {message}", err=True)
        ctx.exit(code)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While a command runs, SIGTERM (systemd stopping a unit, ``timeout`` in a cron line) raises
    :class:`Terminated` instead of ending the process on the spot: transactions roll back as
    they would anyway, and a load or refresh records that it stopped. Only in the main thread
    (signal handlers cannot be set elsewhere, e.g. under a test runner's worker thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(_signum, _frame):  # type: ignore[no-untyped-def]
        raise Terminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _configure_logging(verbose: int, debug: bool) -> None:
    """kb's log on stderr, and SQLAlchemy's (it logs, for one, a cursor it could not close; that went
    to Python's last-resort handler before) without the cleanup noise of an interruption."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name, filters in (("kb", ()), ("sqlalchemy", (_InterruptionNoiseFilter(),))):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        for log_filter in (_SecretFilter(), *filters):
            handler.addFilter(log_filter)
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    logging.getLogger("kb").setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)


class _InterruptionNoiseFilter(logging.Filter):
    """Drops what a library logs about cleaning up after Ctrl-C or SIGTERM. An interruption in the
    middle of a query makes SQLAlchemy close the connection at once; closing its cursor afterwards
    fails, and SQLAlchemy logs that with a traceback, on stderr, after which kb says
    "Terminated." (exit 143): a traceback a user must not see (seen in the SIGTERM test of
    ``kb load``, now and then)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, KeyboardInterrupt):  # Terminated is one too
                return False
            exc = exc.__context__
        return True


class _SecretFilter(logging.Filter):
    """Masks NCBI_API_KEY wherever it would appear in a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        key = os.environ.get("NCBI_API_KEY")
        if key:
            message = record.getMessage()
            if key in message:
                record.msg = message.replace(key, "***")
                record.args = ()
        return True


@click.group("kb", cls=KbGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Database URL (sqlite:///PATH or postgresql://USER@HOST/DB). "
    "Default: $KB_DATABASE_URL, else kb.sqlite3 in $KB_HOME or the user's app directory.",
)
@click.option("-v", "--verbose", count=True, help="Log progress details on stderr.")
@click.option("--debug", is_flag=True, envvar="KB_DEBUG", help="Show tracebacks and debug logs.")
@click.version_option(__version__, prog_name="kb")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, verbose: int, debug: bool) -> None:
    """kb: a literature-tracking knowledge base for evidence about health interventions.

    Curators ingest PubMed records and write lay summary cards; analysts query the evidence
    with SQL; scheduled refresh jobs keep it current.

    \b
    Exit codes: 0 ok; 1 failure or partial failure; 2 usage or configuration error;
    3 no database, or its schema out of date (run `kb db upgrade`); 69 database or E-utilities
    unavailable; 75 another process holds the lock; 130 interrupted (Ctrl-C); 141 the reader of
    the output went away (`kb … | head`); 143 terminated (SIGTERM). After 130 or 143 what was
    committed stays, the batch in hand is rolled back.
    """
    _configure_logging(verbose, debug)
    ctx.meta[_DEBUG] = debug
    handle = KnowledgeBase(db_url)
    ctx.obj = handle
    ctx.call_on_close(handle.close)


# Every command of `kb`: name -> (module under kb.cli, attribute), imported when first used.
cli.lazy = {
    "db": ("db", "db"), "demo": ("demo", "demo"), "card": ("cards", "card"), "cards": ("cards", "cards"),
    "curate": ("cards", "curate"), "export": ("export", "export"), "ingest": ("ingest", "ingest"),
    "load": ("ingest", "load"), "status": ("status", "status"), "topic": ("refresh", "topic"),
    "refresh": ("refresh", "refresh"), "report": ("refresh", "report"), "query": ("query", "query"),
    "sql": ("query", "sql_shell"), "docs": ("query", "docs"), "search": ("search", "search"),
    "serve": ("serve", "serve"),
}


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kb")
