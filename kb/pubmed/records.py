"""Plain data objects for one parsed PubMed record.

The parser (:mod:`kb.pubmed.parse`) produces these; the store (:mod:`kb.store`) writes them to
the ``studies`` table and its child tables. They carry no database or XML objects, so they can
be hashed, compared and pickled.

The items a record holds many of (authors, MeSH headings, identifiers ...) are immutable
:class:`~typing.NamedTuple` classes rather than frozen dataclasses: the parser builds tens to
hundreds of them per record, and a frozen dataclass costs several times more to build (every
field goes through ``object.__setattr__``). They are read by attribute name like the
dataclasses they replace; :meth:`PubmedRecord.content_fields` still turns them into dicts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class AbstractSection(NamedTuple):
    label: str | None
    nlm_category: str | None
    text: str  # plain text, inline markup flattened
    text_markup: str  # the same text with PubMed's inline markup (<i>, <sup>, mml:math ...) kept


class Author(NamedTuple):
    last_name: str | None
    fore_name: str | None
    initials: str | None
    suffix: str | None
    collective_name: str | None
    orcid: str | None  # bare id, e.g. "0000-0002-9948-4783"
    affiliations: tuple[str, ...] = ()
    is_investigator: bool = False  # from InvestigatorList rather than AuthorList


class PublicationType(NamedTuple):
    ui: str  # e.g. "D016449"
    name: str


class MeshQualifier(NamedTuple):
    ui: str
    name: str
    is_major: bool


class MeshHeading(NamedTuple):
    descriptor_ui: str
    descriptor_name: str
    descriptor_is_major: bool
    qualifiers: tuple[MeshQualifier, ...] = ()

    @property
    def is_major(self) -> bool:
        """Major topic on the descriptor or on any qualifier (older records mark only qualifiers)."""
        return self.descriptor_is_major or any(q.is_major for q in self.qualifiers)


class Keyword(NamedTuple):
    keyword: str
    owner: str | None
    is_major: bool


class Grant(NamedTuple):
    grant_id: str | None
    acronym: str | None
    agency: str | None
    country: str | None


class CommentCorrection(NamedTuple):
    ref_type: str  # RefType attribute, e.g. "RetractionIn", "ErratumFor"
    ref_pmid: int | None  # may be absent or empty in the XML
    ref_source: str | None
    note: str | None


class Chemical(NamedTuple):
    registry_number: str | None
    substance_ui: str | None
    substance_name: str


class ArticleId(NamedTuple):
    id_type: str
    value: str


@dataclass(frozen=True, slots=True)
class PubDate:
    text: str  # as published: "2020 Feb", "2013 Jan-Mar" (MedlineDate), "2019 Spring"
    year: int | None  # sortable year; from MedlineDate the first 4-digit year
    month: int | None  # 1..12 when known
    day: int | None


@dataclass(frozen=True, slots=True)
class PubmedRecord:
    """One PubmedArticle or PubmedBookArticle."""

    pmid: int
    pmid_version: int
    record_type: str  # "article" | "book"
    title: str  # plain text ("" only when neither ArticleTitle nor VernacularTitle has text)
    title_markup: str  # title with inline markup kept
    vernacular_title: str | None
    abstract: str | None  # plain text of all sections joined by "\n\n" (labels as "LABEL: text")
    abstract_sections: tuple[AbstractSection, ...]
    journal_title: str | None
    journal_iso_abbrev: str | None
    journal_issn: str | None
    volume: str | None
    issue: str | None
    pages: str | None  # MedlinePgn, or StartPage-EndPage
    pub_date: PubDate
    languages: tuple[str, ...]
    doi: str | None
    pmcid: str | None  # "PMC1234567"
    medline_status: str | None  # MedlineCitation@Status
    publication_status: str | None  # PubmedData/PublicationStatus (ppublish, epublish, aheadofprint)
    date_revised: dt.date | None
    date_completed: dt.date | None
    entrez_date: dt.date | None  # History PubMedPubDate[@PubStatus="entrez"] (or "pubmed")
    authors: tuple[Author, ...]
    publication_types: tuple[PublicationType, ...]
    mesh_headings: tuple[MeshHeading, ...]
    keywords: tuple[Keyword, ...]
    grants: tuple[Grant, ...]
    comments_corrections: tuple[CommentCorrection, ...]
    chemicals: tuple[Chemical, ...]
    article_ids: tuple[ArticleId, ...]
    raw_xml: str = field(compare=False)  # the element serialised as found (provenance, re-parsing)
    content_hash: str = field(default="", compare=False)  # sha256 hex of the parsed content

    def content_fields(self) -> dict:
        """Everything that defines the record's content (not its raw bytes), for hashing/diffing.

        As :func:`dataclasses.asdict` would give it: the nested items become dicts of their
        fields, sequences stay tuples, dates stay dates.
        """
        return {name: _as_plain(getattr(self, name)) for name in _CONTENT_FIELDS}


@dataclass(frozen=True, slots=True)
class DeleteCitation:
    """A PMID listed in a DeleteCitation element (baseline/update files)."""

    pmid: int


_CONTENT_FIELDS = tuple(
    f.name for f in dataclasses.fields(PubmedRecord) if f.name not in ("raw_xml", "content_hash")
)


def _as_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        if hasattr(value, "_fields"):  # one of the NamedTuple items
            return {name: _as_plain(item) for name, item in zip(value._fields, value)}
        return tuple(_as_plain(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
