"""``kb ingest`` (PMIDs through E-utilities) and ``kb load`` (PubMed XML files)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kb import ingest as kbingest
from kb.cli.options import pass_kb, quiet_option
from kb.cli.output import stderr
from kb.cli.progress import Progress
from kb.config import EntrezSettings
from kb.errors import PartialFailure
from kb.handle import KnowledgeBase
from kb.pubmed import pmids as kbpmids
from kb.pubmed.eutils import EutilsClient
from kb.wording import counted


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
        raise PartialFailure(_closing_error(len(report.not_found), len(report.failed)))


def _closing_error(not_found: int, failed: int) -> str:
    """'1 PMID not found (listed above): check it on PubMed (…)', '2 PMIDs failed …': only the
    counts that are not 0, each saying what to do."""
    parts = []
    if not_found:
        parts.append(f"{counted(not_found, 'PMID')} not found (listed above): check "
                     f"{'them' if not_found != 1 else 'it'} on PubMed (https://pubmed.ncbi.nlm.nih.gov/PMID/)")
    if failed:
        parts.append(f"{counted(failed, 'PMID')} failed (listed above) and "
                     f"{'are' if failed != 1 else 'is'} queued for the next run")
    return "; ".join(parts) or "some PMIDs were not stored (listed above)"


@click.command("ingest")
@click.argument("pmids", nargs=-1)
@click.option("--from", "from_file", type=click.File("r"), help="Read PMIDs from FILE, one per line ('#' comments).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=kbingest.DEFAULT_FETCH_BATCH, show_default=True,
              help="PMIDs per efetch request.")
@click.option("--no-retry-failed", is_flag=True, help="Do not also retry PMIDs queued by earlier failed fetches.")
@click.option("--email", envvar="NCBI_EMAIL", help="Contact e-mail sent to NCBI (default: $NCBI_EMAIL).")
@click.option("--api-key", envvar="NCBI_API_KEY", show_envvar=False,
              help="NCBI API key for 10 requests/s (default: $NCBI_API_KEY; prefer the variable).")
@quiet_option
@pass_kb
def ingest(app: KnowledgeBase, pmids: tuple[str, ...], from_file, batch_size: int, no_retry_failed: bool,  # type: ignore[no-untyped-def]
           email: str | None, api_key: str | None, quiet: bool) -> None:
    """Fetch PubMed records by PMID from E-utilities and store them.

    PMIDS are PubMed IDs, separated by spaces, commas or newlines; PMID:123 and PubMed URLs are
    read too; `-` reads them from stdin. Malformed PMIDs are listed and nothing is fetched. Exit
    code 1 when any PMID was not found or failed (listed on stderr).
    """
    tokens = kbpmids.gather_tokens(pmids, stdin=sys.stdin, files=[from_file] if from_file else [])
    wanted = kbpmids.require_pmids(tokens, source="pass PMIDs as arguments, `-` for stdin, or --from FILE")
    client = EutilsClient(EntrezSettings.from_env(email=email, api_key=api_key))
    with Progress("fetching", None, unit="PMIDs", quiet=quiet) as bar:

        def start(total: int) -> None:
            if total > len(wanted):
                stderr(f"also retrying {counted(total - len(wanted), 'PMID')} queued by earlier failed fetches", quiet=quiet)
            bar.set_total(total)

        report = kbingest.ingest_pmids(app.sessions(), client, wanted, retry_queued=not no_retry_failed,
                                       batch_size=batch_size, progress=bar.advance, on_total=start)
    _finish(report, quiet)


@click.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=kbingest.DEFAULT_LOAD_BATCH, show_default=True,
              help="Records per transaction.")
@click.option("--pipeline/--no-pipeline", default=True, envvar="KB_LOAD_PIPELINE", show_envvar=True,
              help="Parse large files in a second process while this one writes (default: on).")
@quiet_option
@pass_kb
def load(app: KnowledgeBase, files: tuple[str, ...], batch_size: int, pipeline: bool, quiet: bool) -> None:
    """Load PubMed XML files: efetch answers, baseline and update files (.xml or .xml.gz).

    FILES are files or directories; a directory's *.xml and *.xml.gz files are loaded in name
    order. Files are applied in the order given; a later version of a PMID supersedes an earlier
    one. DeleteCitation flags studies as deleted and their cards for review; nothing is dropped.
    On a terminal a progress bar shows the file, records and bytes done, the rate and the time left.
    """
    paths = kbingest.pubmed_files(files)  # a bad path: exit 2 before the database is touched
    sessions = app.sessions()
    total = sum(p.stat().st_size for p in paths)
    with Progress("loading", total, unit="records", in_bytes=True, quiet=quiet) as bar:

        def step(done: kbingest.LoadStep) -> None:
            bar.advance(done.bytes, count=done.records, item=Path(done.path).name)

        report = kbingest.load_files(sessions, paths, batch_size=batch_size, progress=step, pipeline=pipeline)
    _finish(report, quiet)
