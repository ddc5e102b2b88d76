"""Streaming parser for PubMed XML: efetch answers, baseline and update files.

:func:`iter_pubmed_xml` walks a file with :func:`lxml.etree.iterparse` and yields one
:class:`~kb.pubmed.records.PubmedRecord` per ``PubmedArticle``/``PubmedBookArticle`` (or per
``MedlineCitation`` under the old ``MedlineCitationSet`` root) and one
:class:`~kb.pubmed.records.DeleteCitation` per PMID listed in ``DeleteCitation``. Each record's
element is cleared and dropped from the tree once it has been read, so memory stays flat whatever
the size of the file.

The parser never loads a DTD, never expands entities and never touches the network, so an
external entity (``<!ENTITY x SYSTEM "file:///etc/passwd">``) is never read and an entity bomb is
never expanded; libxml2's default limits (``huge_tree=False``) refuse giant text nodes.

Speed: parsing should cost little more than libxml2's own pass over the file, so the code on the
per-item paths (authors, MeSH headings, chemicals, identifiers ...) walks each element's children
once, reads text and attributes directly, builds the record items with ``tuple.__new__`` (they are
NamedTuples) and takes the content hash with the C JSON encoder over those tuples, without a
Python callback per object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from lxml import etree

from kb.errors import ParseError
from kb.pubmed.records import (
    AbstractSection,
    ArticleId,
    Author,
    Chemical,
    CommentCorrection,
    DeleteCitation,
    Grant,
    Keyword,
    MeshHeading,
    MeshQualifier,
    PubDate,
    PublicationType,
    PubmedRecord,
)

__all__ = ["compute_content_hash", "iter_pubmed_xml"]

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
_MAX_PMID = 99_999_999
_GZIP_MAGIC = b"\x1f\x8b"
_XML_SPACE = re.compile(r"[ \t\n\r]+")  # XML whitespace only; NBSP and thin spaces are kept
_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)")
_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_MONTH_ABBREV = {number: name.title() for name, number in _MONTHS.items()}
_HASHED_FIELDS = tuple(
    f.name for f in dataclasses.fields(PubmedRecord) if f.name not in ("raw_xml", "content_hash")
)
# Positions in the content-field values that the hash writes differently (see _digest)
_AT_PUB_DATE = _HASHED_FIELDS.index("pub_date")
_AT_DATES = tuple(
    _HASHED_FIELDS.index(name) for name in ("date_revised", "date_completed", "entrez_date")
)
# Canonical JSON for the content hash: no spaces, non-ASCII kept, tuples as arrays. The C encoder
# does all of it; every value handed to it is already a str, int, bool, None, list or tuple.
_encode_json = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False
).encode
_sha256 = hashlib.sha256
_new = tuple.__new__  # builds a NamedTuple item without the Python-level __new__ of its class
_tostring = etree.tostring


# --------------------------------------------------------------------------------------------
# Public API


def iter_pubmed_xml(
    source: str | os.PathLike[str] | IO[bytes], *, name: str | None = None
) -> Iterator[PubmedRecord | DeleteCitation]:
    """Yield the records of a PubMed XML document in document order.

    ``source`` is a path (gzip-compressed files are recognised by their magic bytes and
    decompressed) or a binary file-like object such as an HTTP response body. ``name`` labels the
    source in error messages; it defaults to the path (or the stream's ``name`` attribute).

    Yields a :class:`PubmedRecord` (with ``content_hash`` filled in) for every ``PubmedArticle``,
    ``PubmedBookArticle`` and top-level ``MedlineCitation``, and a :class:`DeleteCitation` for
    every PMID inside ``DeleteCitation``.

    Raises :class:`~kb.errors.ParseError` naming the source and the line when the XML is
    malformed or truncated, or when a record has no usable PMID. Records before the fault have
    already been yielded by then.
    """
    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        with _open_path(source) as stream:
            yield from _iter_stream(stream, label)
    else:
        label = name or str(getattr(source, "name", None) or "<stream>")
        yield from _iter_stream(source, label)


def compute_content_hash(record: PubmedRecord) -> str:
    """Return the sha256 hex digest of the record's parsed content (not of its raw XML).

    The digest is taken over canonical JSON of the content fields (every field but ``raw_xml``
    and ``content_hash``): a JSON array of their values in declaration order, each nested item
    (:class:`~kb.pubmed.records.Author`, :class:`~kb.pubmed.records.PubDate` ...) as the array of
    its own field values in declaration order, sequences as arrays, dates as ISO strings; no
    spaces, non-ASCII characters as themselves, UTF-8. Reformatting the XML does not change it;
    any change of a parsed value does (JSON tells ``1`` from ``"1"`` and ``true``, and arrays
    keep the nesting unambiguous).

    The parser computes the same digest while it builds each record; this function is for
    records built any other way.
    """
    return _digest([_canonical(getattr(record, name)) for name in _HASHED_FIELDS])


def _canonical(value: Any) -> Any:
    """A content value as the plain JSON-able structure the digest is taken over."""
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (tuple, list)):  # also the NamedTuple items
        return [_canonical(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [_canonical(getattr(value, f.name)) for f in dataclasses.fields(value)]
    raise TypeError(f"cannot hash a {type(value).__name__}")


def _digest(values: list[Any]) -> str:
    """sha256 hex of the canonical JSON of a list of content-field values, in field order.

    The parser's values are already plain but for ``pub_date`` and the dates, which are
    rewritten in place (so pass a copy).
    """
    pub = values[_AT_PUB_DATE]
    if type(pub) is PubDate:
        values[_AT_PUB_DATE] = (pub.text, pub.year, pub.month, pub.day)
    for i in _AT_DATES:
        date = values[i]
        if date is not None and type(date) is not str:
            values[i] = date.isoformat()
    return _sha256(_encode_json(values).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Reading the document


@contextmanager
def _open_path(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a file for binary reading, through gzip when it starts with the gzip magic bytes."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield unzipped


def _iter_stream(stream: IO[bytes], label: str) -> Iterator[PubmedRecord | DeleteCitation]:
    """Run iterparse over ``stream`` and turn each record element into data objects."""
    events = etree.iterparse(
        stream,
        events=("end",),
        tag=_RECORD_TAGS,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        for _event, elem in events:
            tag = elem.tag
            if tag == "DeleteCitation":
                items: list[PubmedRecord | DeleteCitation] = [
                    DeleteCitation(_pmid(pmid, label)) for pmid in elem.iterchildren("PMID")
                ]
            elif tag == "PubmedArticle":
                items = [_article_record(elem, label)]
            elif tag == "PubmedBookArticle":
                items = [_book_record(elem, label)]
            elif _is_top_level_citation(elem):
                items = [_medline_record(elem, elem, None, label)]
            else:  # the MedlineCitation inside a PubmedArticle: read with its parent
                continue
            _release(elem)
            yield from items
    except etree.XMLSyntaxError as exc:
        raise ParseError(_syntax_message(exc, events.error_log, label)) from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ParseError(
            f"{label}: the compressed data is damaged or truncated ({exc}); download the file again"
        ) from exc


def _is_top_level_citation(elem: etree._Element) -> bool:
    """A MedlineCitation that is a record of its own (2016-style MedlineCitationSet files)."""
    parent = elem.getparent()
    return parent is None or parent.tag == "MedlineCitationSet"


def _release(elem: etree._Element) -> None:
    """Free a processed element and every earlier sibling so the tree does not grow."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _syntax_message(exc: etree.XMLSyntaxError, log: etree._ListErrorLog, label: str) -> str:
    """``"<label>, line N: <libxml2 message>"``.

    Taken from this parse's own error log when it has the error: lxml's exception can lose the
    position (an undefined entity with ``resolve_entities=False`` becomes "no element found" at
    line 0) and its message repeats the position.
    """
    error = log.last_error
    if error is not None:
        line, message = error.line, error.message
    else:
        line, message = exc.lineno, exc.msg or "malformed XML"
        suffix = f", line {line}, column {exc.position[1]}"
        if message.endswith(suffix):
            message = message[: -len(suffix)]
    return f"{label}, line {max(line, 1)}: {message} (the XML is malformed or truncated)"


def _fail(label: str, elem: etree._Element, problem: str) -> ParseError:
    return ParseError(f"{label}, line {elem.sourceline}: {problem}; the record cannot be loaded")


def _pmid(elem: etree._Element, label: str) -> int:
    """The PMID in ``elem`` as an int in 1..99,999,999, else ParseError."""
    text = (elem.text or "").strip()
    if not (text.isascii() and text.isdigit()):
        raise _fail(label, elem, f"PMID {text!r} is not a number")
    value = int(text)
    if not 0 < value <= _MAX_PMID:
        raise _fail(label, elem, f"PMID {value} is out of range (1..{_MAX_PMID})")
    return value


def _record_pmid(
    pmid: etree._Element | None, container: etree._Element, label: str
) -> tuple[int, int]:
    """(PMID, Version) of a record; Version defaults to 1."""
    if pmid is None:
        raise _fail(label, container, f"{container.tag} has no PMID")
    version = (pmid.get("Version") or "1").strip()
    if not (version.isascii() and version.isdigit()) or int(version) < 1:
        raise _fail(label, pmid, f"PMID Version {version!r} is not a positive number")
    return _pmid(pmid, label), int(version)


# --------------------------------------------------------------------------------------------
# Records
#
# Lookups go through _index (one pass over an element's children) and single passes over the
# children of each list item rather than find()/findtext(), which run lxml's ElementPath
# machinery for every single field. "The first X child" is the rule throughout, as with find().


def _article_record(elem: etree._Element, label: str) -> PubmedRecord:
    """A PubmedArticle: MedlineCitation plus PubmedData."""
    citation = data = None
    for child in reversed(elem):
        tag = child.tag
        if tag == "MedlineCitation":
            citation = child
        elif tag == "PubmedData":
            data = child
    if citation is None:
        raise _fail(label, elem, "PubmedArticle has no MedlineCitation")
    return _medline_record(elem, citation, data, label)


def _medline_record(
    elem: etree._Element,
    citation: etree._Element,
    data: etree._Element | None,
    label: str,
) -> PubmedRecord:
    """A MedlineCitation with its PubmedData (None in old MedlineCitationSet files)."""
    cit = _index(citation)
    pmid, version = _record_pmid(cit.get("PMID"), citation, label)
    article_el = cit.get("Article")
    article = _index(article_el)
    journal = _index(article.get("Journal"))
    issue = _index(journal.get("JournalIssue"))
    pubmed_data = _index(data)
    article_ids = _article_ids(pubmed_data.get("ArticleIdList"))
    entrez_date = _entrez_date(pubmed_data.get("History"))
    title, title_markup, vernacular = _title(
        article.get("ArticleTitle"), article.get("VernacularTitle")
    )
    sections = _abstract_sections(article.get("Abstract"))
    status = citation.get("Status")
    values = [  # in PubmedRecord's field order
        pmid,
        version,
        "article",
        title,
        title_markup,
        vernacular,
        _abstract_text(sections),
        sections,
        _leaf(journal.get("Title")),  # journal_title
        _leaf(journal.get("ISOAbbreviation")),
        _leaf(journal.get("ISSN")),
        _leaf(issue.get("Volume")),
        _leaf(issue.get("Issue")),
        _pages(article.get("Pagination")),
        _pub_date(issue.get("PubDate"), article.get("ArticleDate"), entrez_date),
        _languages(article_el),
        _doi(article_ids, article_el),
        _first_id(article_ids, "pmc"),  # pmcid
        (status.strip() or None) if status else None,  # medline_status
        _leaf(pubmed_data.get("PublicationStatus")),
        _date(cit.get("DateRevised")),
        _date(cit.get("DateCompleted")),
        entrez_date,
        _authors(article.get("AuthorList"), cit.get("InvestigatorList")),
        _publication_types(article.get("PublicationTypeList")),
        _mesh_headings(cit.get("MeshHeadingList")),
        _keywords(citation) if "KeywordList" in cit else (),
        _grants(article.get("GrantList")),
        _comments_corrections(cit.get("CommentsCorrectionsList")),
        _chemicals(cit.get("ChemicalList")),
        article_ids,
    ]
    return _finish(elem, values)


def _book_record(elem: etree._Element, label: str) -> PubmedRecord:
    """A PubmedBookArticle: BookDocument plus PubmedBookData (books carry no MeSH or journal).

    The book's title stands in for the journal title, and for the title when the record is a
    whole book rather than a chapter.
    """
    parts = _index(elem)
    document_el = parts.get("BookDocument")
    if document_el is None:
        raise _fail(label, elem, "PubmedBookArticle has no BookDocument")
    document = _index(document_el)
    pmid, version = _record_pmid(document.get("PMID"), document_el, label)
    book_el = document.get("Book")
    book = _index(book_el)
    book_data = _index(parts.get("PubmedBookData"))
    article_ids = tuple(
        dict.fromkeys(
            _article_ids(document.get("ArticleIdList"))
            + _article_ids(book_data.get("ArticleIdList"))
        )
    )
    entrez_date = _entrez_date(book_data.get("History"))
    title, title_markup, vernacular = _title(
        document.get("ArticleTitle"), document.get("VernacularTitle"), book.get("BookTitle")
    )
    sections = _abstract_sections(document.get("Abstract"))
    values = [  # in PubmedRecord's field order
        pmid,
        version,
        "book",
        title,
        title_markup,
        vernacular,
        _abstract_text(sections),
        sections,
        _plain(book.get("BookTitle")),  # journal_title
        None,  # journal_iso_abbrev
        None,  # journal_issn
        _leaf(book.get("Volume")),
        None,  # issue
        _pages(document.get("Pagination")),
        _pub_date(book.get("PubDate"), document.get("ContributionDate"), entrez_date),
        _languages(document_el),
        _doi(article_ids, document_el),
        _first_id(article_ids, "pmc"),  # pmcid
        None,  # medline_status
        _leaf(book_data.get("PublicationStatus")),
        _date(document.get("DateRevised")),
        None,  # date_completed
        entrez_date,
        _authors(_book_authors(document_el, book_el), document.get("InvestigatorList")),
        _publication_types(document_el),
        (),  # mesh_headings
        _keywords(document_el),
        _grants(document.get("GrantList")),
        (),  # comments_corrections
        (),  # chemicals
        article_ids,
    ]
    return _finish(elem, values)


def _finish(elem: etree._Element, values: list[Any]) -> PubmedRecord:
    """Build the record from its content-field values, its raw XML and its content hash."""
    content_hash = _digest(values.copy())
    return PubmedRecord(*values, _tostring(elem, encoding="unicode", with_tail=False), content_hash)


# --------------------------------------------------------------------------------------------
# Text


def _index(elem: etree._Element | None) -> dict[Any, etree._Element]:
    """The first child of each tag name ({} for None)."""
    if elem is None:
        return {}
    return {child.tag: child for child in reversed(elem)}


def _clean(value: str | None) -> str | None:
    """Strip; empty becomes None."""
    if value is None:
        return None
    return value.strip() or None


def _leaf(elem: etree._Element | None) -> str | None:
    """Stripped text of a text-only element; None when missing or empty."""
    if elem is None:
        return None
    text = elem.text
    return (text.strip() or None) if text else None


def _collapse(text: str) -> str:
    """Collapse runs of XML whitespace to one space and strip them from the ends."""
    if "\n" in text or "\t" in text or "\r" in text or "  " in text:
        return _XML_SPACE.sub(" ", text).strip(" ")
    return text.strip(" ")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mixed(elem: etree._Element | None) -> tuple[str, str]:
    """Plain text and inner markup of a mixed-content element (``("", "")`` when missing).

    Plain text flattens inline tags and MathML; markup keeps the tags (with the ``mml`` prefix
    and its namespace declaration). Whitespace runs collapse to one space in both, and
    whitespace-only text inside MathML is dropped, so re-indenting the XML changes neither.
    """
    if elem is None:
        return "", ""
    if not len(elem):  # plain text: the markup is the escaped text
        text = elem.text
        if not text:
            return "", ""
        text = _collapse(text)
        return text, _escape(text)
    plain: list[str] = []
    markup: list[str] = []
    _walk(elem, plain, markup, namespace="")
    return _collapse("".join(plain)), _collapse("".join(markup))


def _walk(elem: etree._Element, plain: list[str], markup: list[str], namespace: str) -> None:
    """Append the text and serialised children of ``elem`` (not its own tags)."""
    in_math = namespace == _MATHML_NS
    _add_text(elem.text, in_math, plain, markup)
    for child in elem:
        tag = child.tag
        if isinstance(tag, str):  # an entity reference left unexpanded has no str tag: skipped
            child_ns, _, local = tag.rpartition("}")
            child_ns = child_ns + "}" if child_ns else ""
            name = f"{child.prefix}:{local}" if child.prefix else local
            markup.append(_start_tag(child, name, child_ns, declare=child_ns != namespace))
            _walk(child, plain, markup, child_ns)
            markup.append(f"</{name}>")
        _add_text(child.tail, in_math, plain, markup)


def _add_text(text: str | None, in_math: bool, plain: list[str], markup: list[str]) -> None:
    if not text:
        return
    if in_math:  # MathML whitespace between and around tokens is not content
        text = text.strip(" \t\n\r")
        if not text:
            return
    plain.append(text)
    markup.append(_escape(text))


def _start_tag(elem: etree._Element, name: str, namespace: str, *, declare: bool) -> str:
    parts = [name]
    if declare and namespace:
        uri = namespace[1:-1]
        parts.append(f'xmlns:{elem.prefix}="{uri}"' if elem.prefix else f'xmlns="{uri}"')
    for key, value in elem.attrib.items():
        value = _escape(value).replace('"', "&quot;")
        parts.append(f'{_attribute_name(elem, key)}="{value}"')
    return "<" + " ".join(parts) + ">"


def _attribute_name(elem: etree._Element, key: str) -> str:
    if not key.startswith("{"):
        return key
    uri, _, local = key[1:].partition("}")
    prefix = next((p for p, u in elem.nsmap.items() if u == uri and p), None)
    return f"{prefix}:{local}" if prefix else local


def _plain(elem: etree._Element | None) -> str | None:
    """Flattened text of an element that may hold inline tags; None when empty."""
    if elem is None:
        return None
    if not len(elem):
        text = elem.text
        return (_collapse(text) or None) if text else None
    return _mixed(elem)[0] or None


def _title(
    title_el: etree._Element | None,
    vernacular_el: etree._Element | None,
    book_title_el: etree._Element | None = None,
) -> tuple[str, str, str | None]:
    """(title, title_markup, vernacular_title).

    An empty title falls back to the vernacular title, then to a book's BookTitle.
    """
    title, markup = _mixed(title_el)
    vernacular, vernacular_markup = _mixed(vernacular_el)
    if not title:
        title, markup = (vernacular, vernacular_markup) if vernacular else _mixed(book_title_el)
    return title, markup, vernacular or None


def _abstract_sections(abstract: etree._Element | None) -> tuple[AbstractSection, ...]:
    """The AbstractText sections of Abstract (OtherAbstract is not read)."""
    if abstract is None:
        return ()
    sections = []
    for part in abstract.iterchildren("AbstractText"):
        text, markup = _mixed(part)
        label = part.get("Label")
        category = part.get("NlmCategory")
        sections.append(
            _new(
                AbstractSection,
                (
                    (label.strip() or None) if label else None,
                    (category.strip() or None) if category else None,
                    text,
                    markup,
                ),
            )
        )
    return tuple(sections)


def _abstract_text(sections: tuple[AbstractSection, ...]) -> str | None:
    parts = [f"{s.label}: {s.text}" if s.label else s.text for s in sections]
    return "\n\n".join(p for p in parts if p) or None


def _languages(container: etree._Element | None) -> tuple[str, ...]:
    if container is None:
        return ()
    languages = []
    for language in container.iterchildren("Language"):
        text = language.text
        if text:
            text = text.strip()
            if text:
                languages.append(text)
    return tuple(languages)


def _pages(pagination: etree._Element | None) -> str | None:
    """MedlinePgn, else StartPage-EndPage."""
    parts = _index(pagination)
    medline = _leaf(parts.get("MedlinePgn"))
    if medline:
        return medline
    start, end = _leaf(parts.get("StartPage")), _leaf(parts.get("EndPage"))
    if start and end:
        return f"{start}-{end}"
    return start or end


# --------------------------------------------------------------------------------------------
# Dates


def _month(value: str | None) -> int | None:
    """1..12 from "Feb", "February", "02" or "2"."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        number = int(value)
        return number if 1 <= number <= 12 else None
    return _MONTHS.get(value[:3].lower()) if value.isalpha() else None


def _number(value: str | None) -> int | None:
    value = value.strip() if value else None
    return int(value) if value and value.isascii() and value.isdigit() else None


def _date(elem: etree._Element | None) -> dt.date | None:
    """A Year/Month/Day element as a date; None when missing or impossible."""
    if elem is None:
        return None
    parts = {child.tag: child.text for child in elem}
    year, day = _number(parts.get("Year")), _number(parts.get("Day"))
    month = _month(parts.get("Month"))
    if year is None or month is None or day is None:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _entrez_date(history: etree._Element | None) -> dt.date | None:
    """History's "entrez" date, else its "pubmed" date."""
    if history is None:
        return None
    dates = {d.get("PubStatus"): d for d in history.iterchildren("PubMedPubDate")}
    return _date(dates.get("entrez")) or _date(dates.get("pubmed"))


def _leading_month(text: str) -> int | None:
    """The month a free-text date starts with, after any year: "2013 Jan-Mar" -> 1."""
    for word in text.replace("-", " ").split()[:2]:
        if _YEAR.fullmatch(word):
            continue
        return _MONTHS.get(word[:3].lower()) if word.isalpha() else None
    return None


def _pub_date(
    pub: etree._Element | None, article_date: etree._Element | None, entrez: dt.date | None
) -> PubDate:
    """PubDate as published; without a year there, the ArticleDate, then the entrez year."""
    parts = _index(pub)
    medline = _leaf(parts.get("MedlineDate"))
    if medline:
        found = _YEAR.search(medline)
        text, month, day = medline, _leading_month(medline), None
        year = int(found.group()) if found else None
    else:
        y, m, d = _leaf(parts.get("Year")), _leaf(parts.get("Month")), _leaf(parts.get("Day"))
        season = _leaf(parts.get("Season"))
        text = " ".join(p for p in (y, m or season, d) if p)
        year = _number(y)
        month = _month(m) if m else _leading_month(season or "")
        day = _number(d) if month else None
    if year is not None:
        return PubDate(text=text, year=year, month=month, day=day)
    electronic = _date(article_date)
    if electronic is not None:
        return PubDate(
            text or _date_text(electronic), electronic.year, electronic.month, electronic.day
        )
    if entrez is not None:
        return PubDate(text or str(entrez.year), entrez.year, None, None)
    return PubDate(text=text, year=None, month=month, day=day)


def _date_text(date: dt.date) -> str:
    return f"{date.year} {_MONTH_ABBREV[date.month]} {date.day}"


# --------------------------------------------------------------------------------------------
# Identifiers


def _article_ids(id_list: etree._Element | None) -> tuple[ArticleId, ...]:
    """Direct ArticleId children only (never those of ReferenceList citations)."""
    if id_list is None:
        return ()
    ids = []
    for item in id_list.iterchildren("ArticleId"):
        value = item.text
        if value:
            value = value.strip()
            if value:
                id_type = item.get("IdType")
                ids.append(_new(ArticleId, ((id_type and id_type.strip()) or "pubmed", value)))
    return tuple(ids)


def _first_id(ids: tuple[ArticleId, ...], id_type: str) -> str | None:
    for item in ids:
        if item[0] == id_type:
            return item[1]
    return None


def _doi(ids: tuple[ArticleId, ...], container: etree._Element | None) -> str | None:
    """ArticleId doi, else a valid ELocationID doi."""
    doi = _first_id(ids, "doi")
    if doi or container is None:
        return doi
    for location in container.iterchildren("ELocationID"):
        if location.get("EIdType") == "doi" and location.get("ValidYN") != "N":
            value = _clean(location.text)
            if value:
                return value
    return None


def _orcid(value: str | None) -> str | None:
    """The bare hyphenated ORCID ("0000-0002-9948-4783") from any URL or compact form."""
    if not value:
        return None
    value = value.strip()
    prefix_end = value.lower().rfind("orcid.org/")
    if prefix_end >= 0:
        value = value[prefix_end + len("orcid.org/") :]
    compact = value.replace("-", "").replace(" ", "").upper()
    if len(compact) != 16 or not compact.isascii():
        return None
    if not (compact[:15].isdigit() and (compact[15].isdigit() or compact[15] == "X")):
        return None
    return "-".join(compact[i : i + 4] for i in range(0, 16, 4))


# --------------------------------------------------------------------------------------------
# Lists
#
# The per-item code below runs hundreds of times per large record: one pass over each item's
# children, text and attributes read inline, items built with _new.


def _book_authors(
    document: etree._Element, book: etree._Element | None
) -> etree._Element | None:
    """The chapter's AuthorList, else the book's (an AuthorList Type="editors" is not authors)."""
    for container in (document, book):
        if container is None:
            continue
        for author_list in container.iterchildren("AuthorList"):
            if author_list.get("Type", "authors") == "authors":
                return author_list
    return None


def _authors(
    author_list: etree._Element | None, investigators: etree._Element | None
) -> tuple[Author, ...]:
    """AuthorList authors, then InvestigatorList investigators."""
    authors = []
    if author_list is not None:
        for author in author_list.iterchildren("Author"):
            authors.append(_author(author, False))
    if investigators is not None:
        for investigator in investigators.iterchildren("Investigator"):
            authors.append(_author(investigator, True))
    return tuple(authors)


def _author(elem: etree._Element, is_investigator: bool) -> Author:
    """One Author or Investigator; of repeated name elements the last counts."""
    last = fore = initials = suffix = collective = orcid = None
    affiliations = []
    for child in elem:
        tag = child.tag
        if tag == "LastName":
            text = child.text
            last = text and (text.strip() or None)
        elif tag == "ForeName":
            text = child.text
            fore = text and (text.strip() or None)
        elif tag == "Initials":
            text = child.text
            initials = text and (text.strip() or None)
        elif tag == "AffiliationInfo":
            for affiliation in child:  # the first Affiliation
                if affiliation.tag == "Affiliation":
                    text = _plain(affiliation)
                    if text:
                        affiliations.append(text)
                    break
        elif tag == "Identifier":
            if orcid is None and child.get("Source") == "ORCID":
                orcid = _orcid(child.text)
        elif tag == "Suffix":
            text = child.text
            suffix = text and (text.strip() or None)
        elif tag == "CollectiveName":
            collective = _plain(child)
    return _new(
        Author,
        (last, fore, initials, suffix, collective, orcid, tuple(affiliations), is_investigator),
    )


def _publication_types(container: etree._Element | None) -> tuple[PublicationType, ...]:
    """PublicationType children of a PublicationTypeList (or of a BookDocument)."""
    if container is None:
        return ()
    types = []
    for item in container.iterchildren("PublicationType"):
        ui, name = item.get("UI"), item.text
        types.append(
            _new(PublicationType, ((ui and ui.strip()) or "", (name and name.strip()) or ""))
        )
    return tuple(types)


def _mesh_headings(mesh_list: etree._Element | None) -> tuple[MeshHeading, ...]:
    """MeshHeadings with their first DescriptorName (headings without one are skipped)."""
    if mesh_list is None:
        return ()
    headings = []
    for heading in mesh_list.iterchildren("MeshHeading"):
        descriptor = None
        qualifiers = []
        for child in heading:
            tag = child.tag
            if tag == "QualifierName":
                ui, name = child.get("UI"), child.text
                qualifiers.append(
                    _new(
                        MeshQualifier,
                        (
                            ui.strip() if ui else "",
                            name.strip() if name else "",
                            child.get("MajorTopicYN") == "Y",
                        ),
                    )
                )
            elif tag == "DescriptorName" and descriptor is None:
                descriptor = child
        if descriptor is None:
            continue
        ui, name = descriptor.get("UI"), descriptor.text
        headings.append(
            _new(
                MeshHeading,
                (
                    ui.strip() if ui else "",
                    name.strip() if name else "",
                    descriptor.get("MajorTopicYN") == "Y",
                    tuple(qualifiers),
                ),
            )
        )
    return tuple(headings)


def _keywords(container: etree._Element) -> tuple[Keyword, ...]:
    """Every Keyword of every KeywordList, with the list's Owner."""
    keywords = []
    for keyword_list in container.iterchildren("KeywordList"):
        owner = _clean(keyword_list.get("Owner"))
        for keyword in keyword_list.iterchildren("Keyword"):
            text = _plain(keyword)
            if text:
                keywords.append(_new(Keyword, (text, owner, keyword.get("MajorTopicYN") == "Y")))
    return tuple(keywords)


def _grants(grant_list: etree._Element | None) -> tuple[Grant, ...]:
    if grant_list is None:
        return ()
    grants = []
    for grant in grant_list.iterchildren("Grant"):
        parts = _index(grant)
        grants.append(
            _new(
                Grant,
                (
                    _leaf(parts.get("GrantID")),
                    _leaf(parts.get("Acronym")),
                    _leaf(parts.get("Agency")),
                    _leaf(parts.get("Country")),
                ),
            )
        )
    return tuple(grants)


def _comments_corrections(cc_list: etree._Element | None) -> tuple[CommentCorrection, ...]:
    if cc_list is None:
        return ()
    links = []
    for link in cc_list.iterchildren("CommentsCorrections"):
        pmid = source = note = None
        for child in reversed(link):  # backwards, so the first of each tag is kept
            tag = child.tag
            if tag == "RefSource":
                source = child
            elif tag == "PMID":
                pmid = child
            elif tag == "Note":
                note = child
        ref_pmid = _number(_leaf(pmid))
        ref_type = link.get("RefType")
        links.append(
            _new(
                CommentCorrection,
                (
                    (ref_type and ref_type.strip()) or "",
                    ref_pmid if ref_pmid and ref_pmid <= _MAX_PMID else None,
                    _leaf(source),
                    _leaf(note),
                ),
            )
        )
    return tuple(links)


def _chemicals(chemical_list: etree._Element | None) -> tuple[Chemical, ...]:
    """Chemicals; a RegistryNumber of "0" means none."""
    if chemical_list is None:
        return ()
    chemicals = []
    for chemical in chemical_list.iterchildren("Chemical"):
        registry = substance = None
        for child in reversed(chemical):  # backwards, so the first of each tag is kept
            tag = child.tag
            if tag == "NameOfSubstance":
                substance = child
            elif tag == "RegistryNumber":
                registry = child
        if registry is not None:
            registry = registry.text
            registry = (registry.strip() or None) if registry else None
            if registry == "0":
                registry = None
        if substance is None:
            chemicals.append(_new(Chemical, (registry, None, "")))
            continue
        ui, name = substance.get("UI"), substance.text
        chemicals.append(
            _new(
                Chemical,
                (registry, (ui.strip() or None) if ui else None, (name and name.strip()) or ""),
            )
        )
    return tuple(chemicals)
