"""``kb export studies``: tables for analysts, citations for reference managers."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import click

from kb import export as kbexport
from kb.cli.options import pass_kb
from kb.cli.output import emit_rows, stderr
from kb.files import atomic_file
from kb.handle import KnowledgeBase
from kb.pubmed.pmids import gather_tokens, require_pmids
from kb.wording import counted


ROW_FORMATS = ("csv", "jsonl")
FORMATS = ROW_FORMATS + tuple(kbexport.CITATION_WRITERS)


@contextlib.contextmanager
def _destination(output: str | None) -> Iterator[TextIO]:
    """stdout, or FILE replaced only when the export succeeds (see :func:`kb.files.atomic_file`)."""
    if output is None or output == "-":
        yield sys.stdout
        return
    with atomic_file(Path(output)) as out:
        yield out


@click.group("export")
def export() -> None:
    """Export studies for analysts and reference managers."""


@export.command("studies")
@click.option("--topic", "topic_name", metavar="NAME", help="Only the studies of topic NAME (less its exclusions).")
@click.option("--pmid", "pmid_args", metavar="PMID", multiple=True,
              help="Only these studies (repeat the option, or separate PMIDs with commas).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
              help="csv/jsonl: one row per study; ris, bibtex, csl-json: citations.")
@click.option("-o", "--output", metavar="FILE", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE (replaced only when the export succeeds) instead of stdout.")
@pass_kb
def studies(app: KnowledgeBase, topic_name: str | None, pmid_args: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Export studies, ordered by PMID: all of them (placeholders left out), a topic's, or named PMIDs.

    \b
    csv, jsonl  columns: pmid, doi, pmcid, title, journal_title, journal_iso_abbrev, pub_year,
                pub_date_text, volume, issue, pages, authors ('Last FM; Last FM'), first_author,
                publication_types, mesh_major, language, evidence_status, is_retracted,
                card_status, url. csv joins lists with '; ', jsonl keeps JSON arrays.
    ris         for EndNote, Zotero, Mendeley (TY JOUR, CHAP or BOOK).
    bibtex      @article{pmidNNN, ...}, UTF-8, LaTeX specials escaped.
    csl-json    a JSON array of CSL items (id pmid:NNN) for Zotero, Pandoc and citeproc.
    Retracted studies carry 'RETRACTED (PubMed)' in a note (csv/jsonl: is_retracted).
    Unknown PMIDs are listed and nothing is exported (exit 2).
    """
    pmids = require_pmids(gather_tokens(pmid_args, stdin=sys.stdin)) if pmid_args else None
    with app.session(write=False) as session:
        selected = kbexport.select_pmids(session, topic=topic_name, pmids=pmids)
        studies = kbexport.iter_studies(session, selected)
        with _destination(output) as out:
            if fmt in ROW_FORMATS:
                with contextlib.redirect_stdout(out):
                    emit_rows(kbexport.ROW_COLUMNS, kbexport.rows(studies, join_lists=fmt == "csv"), fmt)
            else:
                kbexport.CITATION_WRITERS[fmt](studies, out)
    if output not in (None, "-"):
        stderr(f"{counted(len(selected), 'study', 'studies')} exported to {output}")
