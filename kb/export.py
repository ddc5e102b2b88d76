"""Export studies: flat rows for analysts (csv, jsonl) and citations for reference managers
(RIS, BibTeX, CSL-JSON).

Two steps, so nothing is written before the selection is known to be valid:

1. :func:`select_pmids` resolves the selection — every study, the studies of a topic (less the
   curator's exclusions) or named PMIDs (unknown ones are an :class:`~kb.errors.InputError`) —
   to a sorted list of PMIDs. Placeholder studies are left out unless named by PMID.
2. :func:`iter_studies` streams those studies in chunks of PMIDs, one query per table per chunk,
   so memory stays flat however large the knowledge base is. The writers (:func:`write_ris`,
   :func:`write_bibtex`, :func:`write_csl_json`) and :func:`rows` consume that stream.

Author lists are the byline (``authors.is_investigator`` false); collective names stand as
written. Retracted studies carry :data:`RETRACTED_NOTE` in every citation format.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import Executable, select
from sqlalchemy.orm import Session

from kb import models as m
from kb.batches import IN_LIST_SIZE, chunked
from kb.errors import InputError
from kb.topics import get_topic
from kb.wording import counted

CHUNK_SIZE = IN_LIST_SIZE
RETRACTED_NOTE = "RETRACTED (PubMed)"
PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"

ROW_COLUMNS = (
    "pmid",
    "doi",
    "pmcid",
    "title",
    "journal_title",
    "journal_iso_abbrev",
    "pub_year",
    "pub_date_text",
    "volume",
    "issue",
    "pages",
    "authors",
    "first_author",
    "publication_types",
    "mesh_major",
    "language",
    "evidence_status",
    "is_retracted",
    "card_status",
    "url",
)
"""Columns of :func:`rows`. ``authors``, ``publication_types`` and ``mesh_major`` are lists
(joined with ``"; "`` for csv); ``card_status`` is None when the study has no card."""

ROW_LIST_SEPARATOR = "; "


# --------------------------------------------------------------------------------------------
# What is exported
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportAuthor:
    """One byline author: a person or a collective (group) name."""

    last_name: str | None
    fore_name: str | None
    initials: str | None
    suffix: str | None
    collective_name: str | None

    @property
    def given(self) -> str:
        """Given names, else the initials."""
        return self.fore_name or self.initials or ""

    @property
    def short(self) -> str:
        """MEDLINE style: 'Lantz M', 'Smith JA Jr', or the collective name."""
        if self.collective_name:
            return self.collective_name
        return " ".join(p for p in (self.last_name, self.initials, self.suffix) if p)


@dataclass(frozen=True)
class ExportStudy:
    """A study with the child rows an export needs, read in one chunk."""

    pmid: int
    record_type: str
    title: str
    abstract: str | None
    journal_title: str | None
    journal_iso_abbrev: str | None
    journal_issn: str | None
    volume: str | None
    issue: str | None
    pages: str | None
    pub_date_text: str | None
    pub_year: int | None
    pub_month: int | None
    pub_day: int | None
    language: str | None
    doi: str | None
    pmcid: str | None
    evidence_status: str
    is_retracted: bool
    card_status: str | None
    authors: tuple[ExportAuthor, ...]
    publication_types: tuple[str, ...]
    mesh_major: tuple[str, ...]
    keywords: tuple[str, ...]

    @property
    def url(self) -> str:
        """The study's PubMed page."""
        return PUBMED_URL.format(pmid=self.pmid)

    @property
    def is_whole_book(self) -> bool:
        """A book record without a chapter title (PubMed gives the book title as the title)."""
        return self.record_type == "book" and (not self.journal_title or self.title == self.journal_title)

    @property
    def is_chapter(self) -> bool:
        """A book record for one chapter (ArticleTitle) of a book (BookTitle)."""
        return self.record_type == "book" and not self.is_whole_book

    @property
    def languages(self) -> list[str]:
        """Language codes, e.g. ['eng']."""
        return [code.strip() for code in (self.language or "").split(";") if code.strip()]


_STUDY_COLUMNS = (
    m.Study.pmid,
    m.Study.record_type,
    m.Study.title,
    m.Study.abstract,
    m.Study.journal_title,
    m.Study.journal_iso_abbrev,
    m.Study.journal_issn,
    m.Study.volume,
    m.Study.issue,
    m.Study.pages,
    m.Study.pub_date_text,
    m.Study.pub_year,
    m.Study.pub_month,
    m.Study.pub_day,
    m.Study.language,
    m.Study.doi,
    m.Study.pmcid,
    m.Study.evidence_status,
    m.Study.is_retracted,
    m.Card.status.label("card_status"),
)


def _shown(pmids: Sequence[int]) -> str:
    return " ".join(map(str, pmids[:20])) + (" …" if len(pmids) > 20 else "")


def select_pmids(
    session: Session, *, topic: str | None = None, pmids: Sequence[int] | None = None
) -> list[int]:
    """The sorted PMIDs to export: every study, a topic's studies, or the PMIDs given.

    Placeholder studies are left out unless named in ``pmids``; a topic's excluded studies
    (curators' false positives) are left out. Unknown topics and PMIDs not in the knowledge base
    raise :class:`InputError`; ``topic`` and ``pmids`` cannot be combined.
    """
    if topic is not None and pmids:
        raise InputError("choose the studies by topic or by PMID, not both")
    if pmids:
        wanted = sorted(set(pmids))
        found: set[int] = set()
        for chunk in chunked(wanted, CHUNK_SIZE):
            found.update(session.scalars(select(m.Study.pmid).where(m.Study.pmid.in_(chunk))))
        unknown = [p for p in wanted if p not in found]
        if unknown:
            raise InputError(
                f"{counted(len(unknown), 'PMID')} not in the knowledge base: {_shown(unknown)}. "
                f"Nothing was exported: `kb ingest` {'it' if len(unknown) == 1 else 'them'} first, or leave "
                f"{'it' if len(unknown) == 1 else 'them'} out."
            )
        return wanted
    query = select(m.Study.pmid).where(m.Study.is_placeholder.is_(False)).order_by(m.Study.pmid)
    if topic is not None:
        topic_id = get_topic(session, topic).id
        query = query.join(m.TopicStudy, m.TopicStudy.pmid == m.Study.pmid).where(
            m.TopicStudy.topic_id == topic_id, m.TopicStudy.is_excluded.is_(False)
        )
    return list(session.scalars(query))


def _grouped(session: Session, query: Executable) -> dict[int, list[Any]]:
    """Rows of ``query`` (first column the PMID, ordered by position) grouped by PMID."""
    grouped: dict[int, list[Any]] = defaultdict(list)
    for pmid, *rest in session.execute(query):
        grouped[pmid].append(rest[0] if len(rest) == 1 else tuple(rest))
    return grouped


def iter_studies(session: Session, pmids: Sequence[int], *, chunk_size: int = CHUNK_SIZE) -> Iterator[ExportStudy]:
    """The studies of ``pmids`` in the order given, read ``chunk_size`` PMIDs at a time.

    Each chunk costs one query for the studies (with their card status) and one per child
    table (authors, publication types, major MeSH headings, keywords).
    """
    a, pt, mh, kw = m.Author, m.PublicationType, m.MeshHeading, m.Keyword
    for chunk in chunked(pmids, chunk_size):
        studies = {
            row.pmid: row
            for row in session.execute(
                select(*_STUDY_COLUMNS).outerjoin(m.Card, m.Card.pmid == m.Study.pmid).where(m.Study.pmid.in_(chunk))
            )
        }
        authors = _grouped(
            session,
            select(a.pmid, a.last_name, a.fore_name, a.initials, a.suffix, a.collective_name)
            .where(a.pmid.in_(chunk), a.is_investigator.is_(False))
            .order_by(a.pmid, a.position),
        )
        types = _grouped(session, select(pt.pmid, pt.name).where(pt.pmid.in_(chunk)).order_by(pt.pmid, pt.position))
        mesh = _grouped(
            session,
            select(mh.pmid, mh.descriptor_name)
            .where(mh.pmid.in_(chunk), mh.is_major.is_(True))
            .order_by(mh.pmid, mh.position),
        )
        keywords = _grouped(session, select(kw.pmid, kw.keyword).where(kw.pmid.in_(chunk)).order_by(kw.pmid, kw.position))
        for pmid in chunk:
            row = studies.get(pmid)
            if row is None:  # gone since select_pmids (PostgreSQL reads committed changes)
                continue
            yield ExportStudy(
                **row._mapping,
                authors=tuple(ExportAuthor(*author) for author in authors.get(pmid, ())),
                publication_types=tuple(types.get(pmid, ())),
                mesh_major=tuple(mesh.get(pmid, ())),
                keywords=tuple(keywords.get(pmid, ())),
            )


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------

_PAGE = re.compile(r"^([A-Za-z]*)(\d+)([A-Za-z]*)$")


def page_range(pages: str) -> tuple[str, str | None]:
    """(first page, last page) of MEDLINE pagination, with an abbreviated end page expanded.

    '2026-31' → ('2026', '2031'); 'L688-93' → ('L688', 'L693'); 'e157-e161' stays as given;
    '123-5, 130-2' → ('123', '132'); 'k3225' → ('k3225', None).
    """
    ranges = [part.strip() for part in pages.split(",") if part.strip()]
    if not ranges:
        return "", None
    start = ranges[0].split("-", 1)[0].strip()
    last = ranges[-1]
    if "-" not in last:
        return start, (last if len(ranges) > 1 else None)
    last_start, end = (part.strip() for part in last.split("-", 1))
    return start, _expand_end(last_start, end)


def _expand_end(start: str, end: str) -> str:
    """The end page in full: MEDLINE writes '2026-31' for 2026-2031 and 'C854-61' for C854-C861."""
    first, last = _PAGE.match(start), _PAGE.match(end)
    if not first or not last:
        return end
    prefix, digits, suffix = first.groups()
    end_prefix, end_digits, end_suffix = last.groups()
    if len(end_digits) < len(digits):
        expanded = digits[: len(digits) - len(end_digits)] + end_digits
        if int(expanded) >= int(digits):
            end_digits = expanded
    return (end_prefix or prefix) + end_digits + (end_suffix or suffix)


def expand_pages(pages: str, dash: str = "-") -> str:
    """Every range of ``pages`` written in full: '2026-31, 40' → '2026--2031, 40' with dash '--'."""
    parts = []
    for part in (p.strip() for p in pages.split(",")):
        if "-" in part:
            start, end = (p.strip() for p in part.split("-", 1))
            parts.append(f"{start}{dash}{_expand_end(start, end)}")
        elif part:
            parts.append(part)
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Rows for analysts
# --------------------------------------------------------------------------------------------


def rows(studies: Iterable[ExportStudy], *, join_lists: bool = False) -> Iterator[tuple[Any, ...]]:
    """One tuple of :data:`ROW_COLUMNS` per study; lists joined with '; ' under ``join_lists``."""
    for s in studies:
        lists = ([a.short for a in s.authors], list(s.publication_types), list(s.mesh_major))
        authors, types, mesh = (ROW_LIST_SEPARATOR.join(v) for v in lists) if join_lists else lists
        first_author = s.authors[0].short if s.authors else None
        yield (
            s.pmid, s.doi, s.pmcid, s.title, s.journal_title, s.journal_iso_abbrev, s.pub_year,
            s.pub_date_text, s.volume, s.issue, s.pages, authors, first_author, types, mesh,
            s.language, s.evidence_status, s.is_retracted, s.card_status, s.url,
        )


# --------------------------------------------------------------------------------------------
# RIS
# --------------------------------------------------------------------------------------------


def _one_line(value: str) -> str:
    return " ".join(value.split())


def ris_record(study: ExportStudy) -> str:
    """The study as one RIS record (``TY  - JOUR`` … ``ER  - ``), lines ending in '\\n'."""
    s = study
    lines: list[tuple[str, Any]] = [("TY", "BOOK" if s.is_whole_book else "CHAP" if s.is_chapter else "JOUR")]
    lines.append(("TI", s.title))
    for author in s.authors:
        if author.collective_name:
            lines.append(("AU", author.collective_name))
        else:
            lines.append(("AU", ", ".join(p for p in (author.last_name, author.given, author.suffix) if p)))
    lines.append(("PY", s.pub_year))
    if s.pub_year:
        month = f"{s.pub_month:02d}" if s.pub_month else ""
        day = f"{s.pub_day:02d}" if s.pub_month and s.pub_day else ""
        lines.append(("DA", f"{s.pub_year:04d}/{month}/{day}/"))
    if not s.is_whole_book:
        lines.append(("T2", s.journal_title))
    lines += [("J2", s.journal_iso_abbrev), ("SN", s.journal_issn), ("VL", s.volume), ("IS", s.issue)]
    if s.pages:
        start, end = page_range(s.pages)
        lines += [("SP", start), ("EP", end)]
    lines += [("DO", s.doi), ("AB", s.abstract)]
    lines += [("KW", keyword) for keyword in dict.fromkeys((*s.keywords, *s.mesh_major))]
    lines += [("LA", "; ".join(s.languages)), ("AN", s.pmid), ("UR", s.url)]
    if s.is_retracted:
        lines.append(("N1", RETRACTED_NOTE))
    text = "".join(f"{tag}  - {_one_line(str(value))}\n" for tag, value in lines if value not in (None, ""))
    return text + "ER  - \n"


def write_ris(studies: Iterable[ExportStudy], out: TextIO) -> int:
    """Write the studies as RIS records separated by blank lines; returns how many."""
    count = 0
    for count, study in enumerate(studies, 1):
        out.write(("\n" if count > 1 else "") + ris_record(study))
    return count


# --------------------------------------------------------------------------------------------
# BibTeX
# --------------------------------------------------------------------------------------------

_BIBTEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "{": r"\textbraceleft{}",
    "}": r"\textbraceright{}",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "_": r"\_",
    "$": r"\$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_BIBTEX_SPECIAL = re.compile("[" + re.escape("".join(_BIBTEX_ESCAPES)) + "]")
_WORD = re.compile(r"[^\W_]+")


def _escape_latex(text: str) -> str:
    return _BIBTEX_SPECIAL.sub(lambda match: _BIBTEX_ESCAPES[match.group()], text)


def bibtex_escape(text: str) -> str:
    """``text`` safe inside a braced BibTeX field: LaTeX specials escaped (braces as
    ``\\textbraceleft{}``, so a field always stays balanced), whitespace collapsed, Unicode kept
    (BibLaTeX, Biber and Zotero read UTF-8)."""
    return _escape_latex(_one_line(text))


def bibtex_title(title: str) -> str:
    """An escaped title whose capitals survive BibTeX styles that change case.

    PubMed titles are in sentence case, so every word with a capital letter (an acronym, a
    gene, a proper noun) is braced — except the first word when only its first letter is one.
    """
    text = _one_line(title)
    out: list[str] = []
    position = 0
    for index, match in enumerate(_WORD.finditer(text)):
        word = match.group()
        out.append(_escape_latex(text[position : match.start()]))
        sentence_start = index == 0 and not any(c.isupper() for c in word[1:])
        out.append(f"{{{word}}}" if any(c.isupper() for c in word) and not sentence_start else word)
        position = match.end()
    out.append(_escape_latex(text[position:]))
    return "".join(out)


def bibtex_name(author: ExportAuthor) -> str:
    """'Last, Fore', 'Last, Jr, Fore', or a braced collective name (so its 'and' is no separator)."""
    if author.collective_name:
        return f"{{{bibtex_escape(author.collective_name)}}}"
    last = bibtex_escape(author.last_name or "")
    if "," in last or " and " in f" {last.lower()} ":
        last = f"{{{last}}}"
    given = bibtex_escape(author.given)
    if author.suffix:
        return f"{last}, {bibtex_escape(author.suffix)}, {given}"
    return f"{last}, {given}" if given else last


def bibtex_entry(study: ExportStudy) -> str:
    """The study as one BibTeX entry keyed ``pmidNNN``: @article, @book or @incollection.

    ``doi`` and ``url`` are written verbatim (BibLaTeX reads them as verbatim fields).
    """
    s = study
    kind = "book" if s.is_whole_book else "incollection" if s.is_chapter else "article"
    container = "booktitle" if s.is_chapter else "journal"
    fields: list[tuple[str, str | None]] = [
        ("title", bibtex_title(s.title) if s.title else None),
        ("author", " and ".join(bibtex_name(a) for a in s.authors) or None),
        (container, None if s.is_whole_book or not s.journal_title else bibtex_escape(s.journal_title)),
        ("year", str(s.pub_year) if s.pub_year else None),
        ("volume", bibtex_escape(s.volume) if s.volume else None),
        ("number", bibtex_escape(s.issue) if s.issue else None),
        ("pages", bibtex_escape(expand_pages(s.pages, "--")) if s.pages else None),
        ("issn", s.journal_issn),
        ("doi", s.doi),
        ("pmid", str(s.pmid)),
        ("pmcid", s.pmcid),
        ("url", s.url),
        ("abstract", bibtex_escape(s.abstract) if s.abstract else None),
        ("note", RETRACTED_NOTE if s.is_retracted else None),
    ]
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
    return f"@{kind}{{pmid{s.pmid},\n{body}\n}}\n"


def write_bibtex(studies: Iterable[ExportStudy], out: TextIO) -> int:
    """Write the studies as BibTeX entries separated by blank lines; returns how many."""
    count = 0
    for count, study in enumerate(studies, 1):
        out.write(("\n" if count > 1 else "") + bibtex_entry(study))
    return count


# --------------------------------------------------------------------------------------------
# CSL-JSON
# --------------------------------------------------------------------------------------------


def csl_item(study: ExportStudy) -> dict[str, Any]:
    """The study as a CSL-JSON item (id ``pmid:NNN``); empty fields are left out."""
    s = study
    authors: list[dict[str, str]] = []
    for author in s.authors:
        if author.collective_name:
            authors.append({"literal": author.collective_name})
        else:
            name = {"family": author.last_name or "", "given": author.given, "suffix": author.suffix or ""}
            authors.append({key: value for key, value in name.items() if value})
    date_parts = list(itertools.takewhile(bool, (s.pub_year, s.pub_month, s.pub_day)))
    item: dict[str, Any] = {
        "id": f"pmid:{s.pmid}",
        "type": "book" if s.is_whole_book else "chapter" if s.is_chapter else "article-journal",
        "title": s.title,
        "author": authors,
        "container-title": None if s.is_whole_book else s.journal_title,
        "container-title-short": s.journal_iso_abbrev,
        "issued": {"date-parts": [date_parts]} if date_parts else None,
        "volume": s.volume,
        "issue": s.issue,
        "page": expand_pages(s.pages) if s.pages else None,
        "ISSN": s.journal_issn,
        "DOI": s.doi,
        "PMID": str(s.pmid),
        "PMCID": s.pmcid,
        "abstract": s.abstract,
        "URL": s.url,
        "note": RETRACTED_NOTE if s.is_retracted else None,
    }
    return {key: value for key, value in item.items() if value not in (None, "", [])}


def write_csl_json(studies: Iterable[ExportStudy], out: TextIO) -> int:
    """Write the studies as one JSON array of CSL items, one item per line; returns how many."""
    count = 0
    out.write("[")
    for count, study in enumerate(studies, 1):
        out.write(("\n" if count == 1 else ",\n") + json.dumps(csl_item(study), ensure_ascii=False))
    out.write("\n]\n")
    return count


CITATION_WRITERS: dict[str, Callable[[Iterable[ExportStudy], TextIO], int]] = {
    "ris": write_ris,
    "bibtex": write_bibtex,
    "csl-json": write_csl_json,
}
"""The citation formats by their ``--format`` name."""
