"""``kb ingest`` (PMIDs through E-utilities) and ``kb load`` (PubMed XML files)."""

from __future__ import annotations

import sys
import time

import click

from kb import db as kbdb
from kb import ingest as kbingest
from kb import store
from kb.cli.app import App
from kb.cli.output import stderr
from kb.config import EntrezSettings
from kb.errors import EXIT_FAILURE
from kb.pubmed.eutils import EutilsClient

pass_app = click.make_pass_decorator(App)


class ProgressLine:
    """A one-line counter on stderr when it is a terminal (and not --quiet); silent otherwise."""

    def __init__(self, label: str, total: int | None, *, enabled: bool) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            total = f"/{self.total}" if self.total else ""
            click.echo(f"\r{self.label}: {self.done}{total}", err=True, nl=False)

    def close(self) -> None:
        if self.enabled and self.done:
            click.echo("", err=True)


def _listing(label: str, pmids: list[int] | dict[int, str], quiet: bool) -> None:
    if pmids:
        ids = list(pmids)
        shown = " ".join(map(str, ids[:50])) + (" …" if len(ids) > 50 else "")
        stderr(f"{label} ({len(ids)}): {shown}", quiet=quiet and label != "failed")


def _finish(report: kbingest.IngestReport, quiet: bool) -> None:
    stderr(report.summary(), quiet=quiet)
    _listing("not found", report.not_found, quiet)
    _listing("failed", report.failed, quiet)
    if report.failed:
        first = next(iter(report.failed.values()))
        stderr(f"  ({first}); queued in fetch_failures for the next run", quiet=quiet)
    if not report.ok:
        sys.exit(EXIT_FAILURE)


@click.command("ingest")
@click.argument("pmids", nargs=-1)
@click.option("--from", "from_file", type=click.File("r"), help="Read PMIDs from FILE, one per line ('#' comments).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=kbingest.DEFAULT_FETCH_BATCH, show_default=True,
              help="PMIDs per efetch request.")
@click.option("--no-retry-failed", is_flag=True, help="Do not also retry PMIDs queued by earlier failed fetches.")
@click.option("--email", envvar="NCBI_EMAIL", help="Contact e-mail sent to NCBI (default: $NCBI_EMAIL).")
@click.option("--api-key", envvar="NCBI_API_KEY", show_envvar=False,
              help="NCBI API key for 10 requests/s (default: $NCBI_API_KEY; prefer the variable).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr (failures still shown).")
@pass_app
def ingest(app: App, pmids: tuple[str, ...], from_file, batch_size: int, no_retry_failed: bool,  # type: ignore[no-untyped-def]
           email: str | None, api_key: str | None, quiet: bool) -> None:
    """Fetch PubMed records by PMID from E-utilities and store them.

    PMIDS are PubMed IDs; `-` reads them from stdin. Malformed PMIDs are listed and nothing is
    fetched. Exit code 1 when any PMID was not found or failed (listed on stderr).
    """
    tokens = [t for t in pmids if t != "-"]
    if "-" in pmids:
        tokens += kbingest.read_pmid_lines(sys.stdin)
    if from_file is not None:
        tokens += kbingest.read_pmid_lines(from_file)
    wanted = kbingest.require_pmids(tokens)
    client = EutilsClient(EntrezSettings.from_env(email=email, api_key=api_key))
    sessions = kbdb.make_sessionmaker(app.ready_engine(), write=True)
    if not no_retry_failed:
        with sessions() as session:
            queued = [p for p in store.queued_failures(session) if p not in set(wanted)]
        if queued:
            stderr(f"also retrying {len(queued)} PMIDs queued by earlier failed fetches", quiet=quiet)
            wanted += queued
    progress = ProgressLine("fetched", len(wanted), enabled=not quiet)
    try:
        report = kbingest.ingest_pmids(sessions, client, wanted, batch_size=batch_size, progress=progress)
    finally:
        progress.close()
    _finish(report, quiet)


@click.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=kbingest.DEFAULT_LOAD_BATCH, show_default=True,
              help="Records per transaction.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@pass_app
def load(app: App, files: tuple[str, ...], batch_size: int, quiet: bool) -> None:
    """Load PubMed XML files: efetch answers, baseline and update files (.xml or .xml.gz).

    Files are applied in the order given; a later version of a PMID supersedes an earlier one.
    DeleteCitation flags studies as deleted and their cards for review; nothing is dropped.
    """
    sessions = kbdb.make_sessionmaker(app.ready_engine(), write=True)
    progress = ProgressLine("loaded", None, enabled=not quiet)
    try:
        report = kbingest.load_files(sessions, files, batch_size=batch_size, progress=progress)
    finally:
        progress.close()
    _finish(report, quiet)
