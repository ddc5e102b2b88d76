"""``kb search``: ranked full-text search over studies (a thin layer over :mod:`kb.search`)."""

from __future__ import annotations

import re

import click

from kb import search as kbsearch
from kb.cli.options import pass_kb
from kb.cli.output import emit_rows, format_option, stderr
from kb.errors import InputError
from kb.handle import KnowledgeBase
from kb.wording import counted


COLUMNS = ("pmid", "year", "type", "title", "score", "snippet", "status")


@click.command("search", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1)
@click.option("--type", "types", multiple=True, metavar="TYPE",
              help="Only this study type (repeatable), as printed: " + ", ".join(kbsearch.STUDY_TYPES)
              + "; or the short names " + ", ".join(k for k in kbsearch.TYPES if k not in kbsearch.STUDY_TYPES)
              + ".")
@click.option("--card", type=click.Choice(kbsearch.CARD_FILTERS),
              help="Only studies whose card has this status, or 'none': studies without a card.")
@click.option("--needs-review", is_flag=True, help="Only studies whose card is marked for another review.")
@click.option("--year", "year", metavar="YEARS", help="2020, 2015..2024, 2015.. or ..2024.")
@click.option("--mesh", metavar="TERM", help="Only studies indexed with this MeSH descriptor (name or UI).")
@click.option("--topic", metavar="NAME", help="Only studies of this topic (its exclusions left out).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most N results.")
@click.option("--reindex", is_flag=True, help="Rebuild the whole search index first (then search, if words given).")
@format_option
@pass_kb
def search(app: KnowledgeBase, words: tuple[str, ...], types: tuple[str, ...], card: str | None, needs_review: bool,
           year: str | None, mesh: str | None, topic: str | None, limit: int, reindex: bool, fmt: str | None) -> None:
    """Search titles, abstracts, MeSH terms, keywords and curated text; best matches first.

    \b
    Query syntax (PostgreSQL's websearch_to_tsquery, on both databases):
      vitamin b12 anemia      every word must match (stemmed: trial also finds trials)
      "vitamin d"             a phrase
      cancer OR tumour        either
      cancer -breast          not this word (or -"phrase"); a query starting with - goes after --
    Matched words are in [brackets] in the snippet. Studies PubMed deleted are left out.
    \b
    Examples:
      kb search "vitamin b12 anemia" --type rct --year 2015..
      kb search anemia --type "randomized controlled trial" --card published --needs-review
      kb search '"heart failure" OR cardiomyopathy' --mesh Humans --limit 50 --format csv
      kb search --reindex
    """
    for word in words:  # unknown options reach WORDS (so that `kb search vitamin -smoking` works)
        if re.match(r"--[A-Za-z]", word):
            raise click.UsageError(f"No such option: {word} (a query that starts with - goes after --)")
    text = " ".join(words)
    if not text.strip() and not reindex:
        raise InputError('give the words to search for, e.g. kb search "vitamin b12 anemia" (or --reindex)')
    years = kbsearch.parse_years(year) if year is not None else None  # bad --year: exit 2 before any work
    for kind in types:
        kbsearch.design_of(kind)  # a bad --type too
    if reindex:
        with app.session(write=True) as session:
            count = kbsearch.reindex_all(session)
        stderr(f"Search index rebuilt: {counted(count, 'study', 'studies')}.")
        if not text.strip():
            return
    engine = app.readonly_engine()
    hits = kbsearch.search(engine, text, types=types, years=years, mesh=mesh, topic=topic, limit=limit, card=card,
                           needs_review=needs_review)
    emit_rows(COLUMNS, ([h.pmid, h.year, h.design, h.title, h.score, h.snippet, h.evidence_status] for h in hits),
              fmt)
    if not hits:
        stderr("No studies match.")
