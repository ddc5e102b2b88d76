"""The static site of ``kb cards build``: a page per card and an index to sort and filter them.

Layout of OUTDIR (every link relative, so the site works from disk and from any web server)::

    index.html            every card: headline, study title, year, study type, status,
                          evidence warnings, topics; sorted and filtered by assets/site.js
    cards/PMID.html       one card (the generated draft for a study without a curated card)
    assets/site.css, assets/site.js

The index rows are rendered on the server side (the page works without JavaScript; the script
only hides and reorders rows), so no data is embedded as JSON and every value goes through
Jinja2's autoescape.

Pages are streamed: cards are read in batches with set-based queries (``load_cards``), each page
is written as soon as it is rendered, and the index is generated row by row while the pages are
written. Every file is written to a temporary name (``.NAME.kbtmpPID``) and renamed, so a killed
build leaves whole pages only. A rebuild leaves pages whose content is unchanged as they are (same
file, same mtime). Card pages of an earlier build whose study is no longer selected are removed,
and so are temporary files of killed builds; other files in OUTDIR are left alone. Two builds
into the same OUTDIR at once are not supported.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Template, TemplateError
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from kb import models as m
from kb.batches import IN_LIST_SIZE, chunked
from kb.cards.data import CardView, design_label, query_text, run_query, view_from_rows
from kb.cards.render import context, environment
from kb.errors import InputError, KbError, NotFound
from kb.files import TEMP_NAME, make_dir, remove, write_atomic, write_if_changed
from kb.topics import get_topic

CARDS_DIR = "cards"
ASSETS_DIR = "assets"
ASSETS = ("site.css", "site.js")
INDEX = "index.html"
INDEX_TEMPLATE = "index.html.j2"
PAGE_TEMPLATE = "card.html.j2"   # what render(view, "html") uses
BATCH_SIZE = IN_LIST_SIZE
# Names kb writes: pages (in OUTDIR/cards), and the temporary files every file is written to first.
_PAGE_NAME = re.compile(r"^([1-9][0-9]{0,9})\.html$")
# A card query filtered to one study: "WHERE [alias.]pmid = :pmid".
_ONE_PMID = re.compile(r"\bWHERE\s+((?:\w+\.)?)pmid\s*=\s*:pmid\b", re.IGNORECASE)
# Notice kinds shown as warnings in the index (a draft shows in the status column instead).
_WARNING_KINDS = ("retracted", "expression_of_concern", "deleted", "changed")
_EVIDENCE_LABELS = {"erratum": "ERRATUM", "updated": "UPDATED"}


@dataclass
class SiteReport:
    """What ``build_site`` wrote."""

    cards: int
    pages: list[Path] = field(default_factory=list)   # every card page of the site
    index: Path | None = None
    unchanged: int = 0  # pages an earlier build wrote with the same content: left as they were
    removed: int = 0    # card pages of an earlier build that were deleted


@dataclass(frozen=True, slots=True)
class Flag:
    """A warning shown beside a card in the index (retracted, deleted, record changed …)."""

    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row of the index."""

    pmid: int
    href: str
    headline: str
    title: str           # the study's title, empty when the headline is the title
    journal: str
    year: int | None
    study_type: str
    status: str          # the card's status, or "draft from the record" (no card stored)
    flags: tuple[Flag, ...]
    topics: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Reading cards in batches
# --------------------------------------------------------------------------------------------


@cache
def batched_query(name: str) -> TextClause:
    """The named card query (one study, ``:pmid``) for a set of studies (``:pmids``), with the
    study's PMID added as the first column, ``batch_pmid``."""
    sql = query_text(name)
    match = _ONE_PMID.search(sql)
    if match is None or len(_ONE_PMID.findall(sql)) != 1:
        raise KbError(f"the card query {name!r} is not filtered by one 'WHERE pmid = :pmid': cannot batch it")
    alias = match.group(1)
    sql = _ONE_PMID.sub(f"WHERE {alias}pmid IN :pmids", sql)
    sql, found = re.subn(r"^SELECT\s", f"SELECT {alias}pmid AS batch_pmid, ", sql, count=1,
                         flags=re.IGNORECASE | re.MULTILINE)
    if not found:
        raise KbError(f"the card query {name!r} does not start with SELECT: cannot batch it")
    return text(sql).bindparams(bindparam("pmids", expanding=True))


def batched_rows(session: Session, name: str, pmids: Sequence[int]) -> dict[int, list[Any]]:
    """The rows of a card query for ``pmids``, by PMID, each study's rows in the query's order."""
    out: dict[int, list[Any]] = defaultdict(list)
    if pmids:
        for row in session.execute(batched_query(name), {"pmids": list(pmids)}).mappings():
            out[row["batch_pmid"]].append(row)
    return out


def study_rows(session: Session, pmids: Sequence[int]) -> dict[int, Any]:
    """The ``card_study`` rows of ``pmids`` (at most IN_LIST_SIZE of them) by PMID; a PMID not
    stored has none."""
    return {row["batch_pmid"]: row for row in session.execute(batched_query("card_study"), {"pmids": list(pmids)})
            .mappings()}


def load_cards(session: Session, pmids: Iterable[int], *, batch_size: int = BATCH_SIZE) -> Iterator[CardView]:
    """The cards of ``pmids``, in that order, read ``batch_size`` studies at a time with three
    queries per batch (the named card queries, batched). Raises NotFound for a PMID not stored."""
    for chunk in chunked(pmids, batch_size):
        studies = study_rows(session, chunk)
        missing = [p for p in chunk if p not in studies]
        if missing:
            raise NotFound(f"PMID {missing[0]} is not in the knowledge base: ingest it first (kb ingest {missing[0]})")
        curated = [p for p in chunk if studies[p]["card_pmid"] is not None]
        drafts = [p for p in chunk if studies[p]["card_pmid"] is None]
        items = batched_rows(session, "card_items", curated)
        abstracts = batched_rows(session, "card_abstract", drafts)
        for pmid in chunk:
            yield view_from_rows(studies[pmid], items.get(pmid, []), abstracts.get(pmid, []))


# --------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------


def _write_assets(assets: Path) -> None:
    source = resources.files("kb.cards") / "templates" / "site"
    for name in ASSETS:
        write_atomic(assets / name, [(source / name).read_text(encoding="utf-8")])


def _remove_stale(outdir: Path, keep: set[int]) -> int:
    """Delete the card pages an earlier build wrote that this build did not write, and the
    temporary files of builds that were killed. Files of any other name are left alone.
    Returns the number of pages deleted."""
    removed = 0
    for folder, has_pages in ((outdir, False), (outdir / ASSETS_DIR, False), (outdir / CARDS_DIR, True)):
        for path in folder.iterdir():
            page = _PAGE_NAME.match(path.name) if has_pages else None
            stale_page = page is not None and int(page.group(1)) not in keep
            if (stale_page or TEMP_NAME.match(path.name)) and path.is_file():
                if remove(path):
                    removed += stale_page
    return removed


# --------------------------------------------------------------------------------------------
# The site
# --------------------------------------------------------------------------------------------


def _check_filters(session: Session, status: str | None, topic: str | None) -> None:
    if status is not None and status not in m.CARD_STATUSES:
        raise InputError(f"unknown card status {status!r}: use one of {', '.join(m.CARD_STATUSES)}")
    if topic is not None:
        get_topic(session, topic)


def _topics_by_pmid(session: Session, pmids: set[int]) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = defaultdict(list)
    for row in run_query(session, "card_topics"):
        if row["pmid"] in pmids:
            found[row["pmid"]].append(row["topic"])
    return {pmid: tuple(names) for pmid, names in found.items()}


def _study_type(row: Any) -> str:
    """The study type a card of this ``card_index`` row shows (as ``study_info`` decides it)."""
    return row["curated_study_type"] or design_label(row["study_type"])


def index_entry(view: CardView, topics: tuple[str, ...]) -> IndexEntry:
    study = view.study
    headline = view.doc.headline or study["title"] or f"PMID {study['pmid']}"
    flags = [Flag(n.kind, n.title) for n in view.notices if n.kind in _WARNING_KINDS]
    if study["evidence_status"] in _EVIDENCE_LABELS:
        flags.append(Flag(study["evidence_status"], _EVIDENCE_LABELS[study["evidence_status"]]))
    return IndexEntry(
        pmid=study["pmid"], href=f"{CARDS_DIR}/{study['pmid']}.html", headline=headline,
        title=study["title"] if study["title"] != headline else "", journal=study["journal"],
        year=study["year"], study_type=study["type"],
        status="draft from the record" if view.generated else (view.status or "draft"),
        flags=tuple(flags), topics=topics,
    )


def render_page(template: Template, view: CardView) -> str:
    """The card's page: ``render(view, "html", relative_root="../")`` with the template looked
    up once per build."""
    try:
        return template.render(context(view, relative_root="../"))
    except TemplateError as exc:
        raise InputError(f"the template {template.name} failed: {exc}") from exc


def _write_pages(session: Session, cards_dir: Path, pmids: list[int], topics: dict[int, tuple[str, ...]],
                 report: SiteReport, progress: Callable[[int], None] | None = None) -> Iterator[IndexEntry]:
    """Write the page of each card, yielding its index row once the page is on disk.

    (Writing on a background thread was tried: with the GIL handed back and forth between the
    rendering thread and the writer it was slower, not faster.)"""
    template = environment().get_template(PAGE_TEMPLATE)
    for view in load_cards(session, pmids):
        pmid = view.study["pmid"]
        path = cards_dir / f"{pmid}.html"
        if not write_if_changed(path, render_page(template, view)):
            report.unchanged += 1
        report.pages.append(path)
        report.cards += 1
        if progress is not None:
            progress(1)
        yield index_entry(view, topics.get(pmid, ()))


def build_site(session: Session, outdir: Path, *, status: str | None = None, topic: str | None = None,
               progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
               ) -> SiteReport:
    """Write the static site of the selected cards to ``outdir`` (see the module docstring):
    every study, or those whose card has ``status`` and/or that belong to ``topic``.
    ``on_total(n)`` is told how many cards will be written, ``progress(1)`` after each one."""
    _check_filters(session, status, topic)
    rows = run_query(session, "card_index", status=status, topic=topic)
    pmids = [row["pmid"] for row in rows]
    if on_total is not None:
        on_total(len(pmids))
    topics = _topics_by_pmid(session, set(pmids))
    years = [row["pub_year"] for row in rows if row["pub_year"] is not None]
    cards_dir = outdir / CARDS_DIR
    make_dir(cards_dir)
    make_dir(outdir / ASSETS_DIR)
    _write_assets(outdir / ASSETS_DIR)
    report = SiteReport(cards=0, index=outdir / INDEX)
    template = environment().get_template(INDEX_TEMPLATE)
    write_atomic(outdir / INDEX, template.generate(
        entries=_write_pages(session, cards_dir, pmids, topics, report, progress),
        total=len(pmids), status=status, topic=topic,
        study_types=sorted({_study_type(row) for row in rows}),
        topics=sorted({name for names in topics.values() for name in names}),
        year_range=(min(years), max(years)) if years else None,
    ))
    report.removed = _remove_stale(outdir, set(pmids))
    return report
