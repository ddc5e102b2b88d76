"""Streaming parser for PubMed XML: efetch answers, baseline and update files.

:func:`iter_pubmed_xml` feeds a file to an :class:`lxml.etree.XMLPullParser` and yields one
:class:`~kb.pubmed.records.PubmedRecord` per ``PubmedArticle``/``PubmedBookArticle`` (or per
``MedlineCitation`` under the old ``MedlineCitationSet`` root) and one
:class:`~kb.pubmed.records.DeleteCitation` per PMID listed in ``DeleteCitation``. Each record's
element is cleared and dropped from the tree once it has been read, so memory stays flat whatever
the size of the file.

The parser never loads a DTD, never expands entities and never touches the network, so an
external entity (``<!ENTITY x SYSTEM "file:///etc/passwd">``) is never read and an entity bomb is
never expanded; libxml2's default limits (``huge_tree=False``) refuse giant text nodes.

Speed matters here (a baseline file holds 30,000 records): apart from libxml2's own parse and the
``raw_xml`` serialisation, the time goes into touching elements and into Python bytecode. So the
code reads each container's children once as a list (``elem[:]``; an lxml child iterator, with or
without a tag filter, costs several times more to set up), tells children apart by comparing
``tag`` strings, reads text and attributes inline rather than through small helpers, builds the
record items with ``tuple.__new__`` (they are NamedTuples), and collects the content-hash tokens
of every item while it has the values at hand (see :func:`compute_content_hash`).
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from lxml import etree

from kb.errors import ParseError
from kb.pubmed.pmids import MAX_PMID
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

__all__ = ["compute_content_hash", "iter_pubmed_xml", "open_pubmed_file"]

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
# Root elements of PubMed XML that may hold no record at all (an empty set is a load of nothing).
_SET_TAGS = frozenset(("PubmedArticleSet", "MedlineCitationSet", "PubmedBookArticleSet", *_RECORD_TAGS))
_MAX_PMID = MAX_PMID
_MAX_VERSION = 2**31 - 1  # studies.pmid_version is an INTEGER column
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
# The record builders list the field values by position (PubmedRecord(*values, ...) is cheaper
# than keywords): refuse to run against a PubmedRecord whose fields they do not know.
if _HASHED_FIELDS != (
    "pmid", "pmid_version", "record_type", "title", "title_markup", "vernacular_title",
    "abstract", "abstract_sections", "journal_title", "journal_iso_abbrev", "journal_issn",
    "volume", "issue", "pages", "pub_date", "languages", "doi", "pmcid", "medline_status",
    "publication_status", "date_revised", "date_completed", "entrez_date", "authors",
    "publication_types", "mesh_headings", "keywords", "grants", "comments_corrections",
    "chemicals", "article_ids",
):  # fmt: skip
    raise ImportError("PubmedRecord's fields changed: update the builders in kb.pubmed.parse")

# Content-hash tokens (see compute_content_hash). XML 1.0 cannot carry any of these characters,
# not even as character references, so no parsed string contains one or equals a marker.
_SEP = "\x1f"  # between tokens
_NONE = "\x00"
_TRUE = "\x01"
_FALSE = "\x02"
_END = "\x03"  # closes every sequence
_ESCAPED = "\x04"  # starts the JSON form of a string that holds a reserved character
_BOOL = (_FALSE, _TRUE)  # indexed by a bool
_HASH_VERSION = "kb.pubmed.content/2"  # first token; change it whenever the token rules change
_RESERVED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")  # the C0 controls XML 1.0 forbids

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

    The content is every field but ``raw_xml`` and ``content_hash``, written as a flat list of
    string tokens, joined with U+001F and encoded as UTF-8:

    * the first token names this scheme (``kb.pubmed.content/2``); then each field in declaration
      order, and within a nested item (an :class:`~kb.pubmed.records.Author`, the
      :class:`~kb.pubmed.records.PubDate` ...) each of its fields in declaration order;
    * a string is itself, an int its decimal digits, a date its ISO form; None is U+0000, True
      U+0001, False U+0002; a sequence is its items followed by U+0003.

    XML cannot carry U+0000-U+0008, U+000B, U+000C or U+000E-U+001F, so no parsed string holds
    a separator or equals a marker, and the token list (hence the record) can be read back from
    the joined text: any change of a parsed value changes the digest, while reformatting the
    XML changes no value and so not the digest. (A string that does hold one of those characters
    -- only possible in a record built by hand -- is written as U+0004 plus its JSON form.)

    The parser collects the same tokens while it builds each record; this function is for records
    built any other way, and gives the same digest for the parser's records.
    """
    tokens = [_HASH_VERSION]
    for name in _HASHED_FIELDS:
        _add_tokens(getattr(record, name), tokens)
    return _sha256(_SEP.join(tokens).encode("utf-8")).hexdigest()


def _add_tokens(value: Any, tokens: list[str]) -> None:
    """Append the hash tokens of one content value (see :func:`compute_content_hash`)."""
    if value is None:
        tokens.append(_NONE)
    elif value is True or value is False:
        tokens.append(_BOOL[value])
    elif isinstance(value, str):
        tokens.append(_ESCAPED + json.dumps(value) if _RESERVED.search(value) else value)
    elif isinstance(value, int):
        tokens.append(str(int(value)))
    elif isinstance(value, dt.date):
        tokens.append(value.isoformat())
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple item
        for item in value:
            _add_tokens(item, tokens)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _add_tokens(getattr(value, f.name), tokens)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _add_tokens(item, tokens)
        tokens.append(_END)
    else:
        raise TypeError(f"cannot hash a {type(value).__name__}")


def _digest(values: list[Any], sequence_tokens: dict[int, Sequence[str]]) -> str:
    """The content hash of a record being built, from its field values in field order and the
    tokens the builders collected for its sequence fields (by field position)."""
    tokens = [_HASH_VERSION]
    for i, value in enumerate(values):
        kind = type(value)
        if kind is str:
            tokens.append(value)
        elif value is None:
            tokens.append(_NONE)
        elif i in sequence_tokens:
            tokens += sequence_tokens[i]
        elif kind is int:
            tokens.append(str(value))
        elif kind is PubDate:
            year, month, day = value.year, value.month, value.day
            tokens += (
                value.text,
                _NONE if year is None else str(year),
                _NONE if month is None else str(month),
                _NONE if day is None else str(day),
            )
        elif kind is dt.date:
            tokens.append(value.isoformat())
        else:  # an empty or merged sequence the builders left to this
            _add_tokens(value, tokens)
    return _sha256(_SEP.join(tokens).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Reading the document


@contextmanager
def _open_path(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a file for binary reading, through gzip when it starts with the gzip magic bytes."""
    with open_pubmed_file(path) as (stream, _raw):
        yield stream


@contextmanager
def open_pubmed_file(path: str | os.PathLike[str]) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(stream, raw file): the stream to parse (decompressed when the file starts with the gzip
    magic bytes) and the file itself, whose ``tell()`` says how many of its bytes were read."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw, raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield unzipped, raw


_CHUNK = 64 * 1024  # bytes fed to the parser at a time; its events are drained after each feed


def _iter_stream(stream: IO[bytes], label: str) -> Iterator[PubmedRecord | DeleteCitation]:
    """Feed ``stream`` to a pull parser in bounded chunks and turn each record element into data.

    ``lxml.etree.iterparse`` is not used: when it meets malformed XML it raises before handing
    over the records completed in the same read buffer, and how much it reads at a time changes
    between lxml releases (6.2 lost the good records of small files that 6.0 kept). A pull parser
    is fed :data:`_CHUNK` bytes at a time, its events are drained after every feed, and when a
    feed fails the events that libxml2 completed before the fault are still drained and yielded
    before the error is raised. So every record that ends before the fault is yielded, whatever
    lxml's buffering, and nothing after it. (A failed ``close()`` is different: lxml then makes up
    'end' events for the elements left open, which are not read.)
    """
    parser = etree.XMLPullParser(
        events=("end",),
        tag=_RECORD_TAGS,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    read = stream.read
    found = 0
    try:
        while chunk := read(_CHUNK):
            try:
                parser.feed(chunk)
            except etree.XMLSyntaxError as exc:
                # The events drained now are the elements libxml2 closed before the fault.
                yield from _records(parser.read_events(), label)
                raise ParseError(_syntax_message(exc, parser.error_log, label)) from exc
            for item in _records(parser.read_events(), label):
                found += 1
                yield item
        try:
            root = parser.close()
        except etree.XMLSyntaxError as exc:
            # close() ends every element still open (a truncated record) with a made-up 'end'
            # event: those are half records, so none of the events it adds is read.
            raise ParseError(_syntax_message(exc, parser.error_log, label)) from exc
        for item in _records(parser.read_events(), label):
            found += 1
            yield item
        if not found and root is not None and root.tag not in _SET_TAGS:
            # Well-formed XML of another kind (an HTML error page, an esearch answer) holds no
            # record: say so rather than report a load of nothing.
            raise ParseError(f"{label}: not PubMed XML: its root element is <{root.tag}>, not <PubmedArticleSet> "
                             "or <MedlineCitationSet> (an efetch answer, a baseline or an update file)")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ParseError(
            f"{label}: the compressed data is damaged or truncated ({exc}); download the file again"
        ) from exc


def _records(
    events: Iterator[tuple[str, etree._Element]], label: str
) -> Iterator[PubmedRecord | DeleteCitation]:
    """The records of the events drained from the pull parser, in document order."""
    for _event, elem in events:
        tag = elem.tag
        if tag == "PubmedArticle":
            record = _article_record(elem, label)
        elif tag == "MedlineCitation":
            if not _is_top_level_citation(elem):
                continue  # the MedlineCitation inside a PubmedArticle: read with its parent
            record = _medline_record(elem, elem, None, label)
        elif tag == "PubmedBookArticle":
            record = _book_record(elem, label)
        else:  # DeleteCitation
            deleted = [_pmid(pmid, label) for pmid in elem.iterchildren("PMID")]
            _release(elem)
            for pmid in deleted:
                yield DeleteCitation(pmid)
            continue
        _release(elem)
        yield record


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
    if not (version.isascii() and version.isdigit()) or not 1 <= int(version) <= _MAX_VERSION:
        raise _fail(label, pmid, f"PMID Version {version!r} is not a number from 1 to {_MAX_VERSION}")
    return _pmid(pmid, label), int(version)


# --------------------------------------------------------------------------------------------
# Records
#
# Lookups go through _index (one pass over an element's children) and single passes over the
# children of each list item rather than find()/findtext(), which run lxml's ElementPath
# machinery for every single field. "The first X child" is the rule throughout, as with find().
#
# The builders of the sequence fields return the items and the items' hash tokens (see
# compute_content_hash); _finish takes the hash over those and the scalar fields.


def _article_record(elem: etree._Element, label: str) -> PubmedRecord:
    """A PubmedArticle: MedlineCitation plus PubmedData."""
    citation = data = None
    for child in elem[:]:
        tag = child.tag
        if tag == "MedlineCitation":
            if citation is None:
                citation = child
        elif tag == "PubmedData":
            if data is None:
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
    article_ids, ids_tokens = _article_ids(pubmed_data.get("ArticleIdList"))
    entrez_date = _entrez_date(pubmed_data.get("History"))
    title, title_markup, vernacular = _title(
        article.get("ArticleTitle"), article.get("VernacularTitle")
    )
    sections, sections_tokens = _abstract_sections(article.get("Abstract"))
    languages, languages_tokens = _languages(article_el)
    authors, authors_tokens = _authors(article.get("AuthorList"), cit.get("InvestigatorList"))
    types, types_tokens = _publication_types(article.get("PublicationTypeList"))
    mesh, mesh_tokens = _mesh_headings(cit.get("MeshHeadingList"))
    keywords, keywords_tokens = _keywords(citation) if "KeywordList" in cit else _NO_ITEMS
    grants, grants_tokens = _grants(article.get("GrantList"))
    links, links_tokens = _comments_corrections(cit.get("CommentsCorrectionsList"))
    chemicals, chemicals_tokens = _chemicals(cit.get("ChemicalList"))
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
        languages,
        _doi(article_ids, article_el),
        _first_id(article_ids, "pmc"),  # pmcid
        (status.strip() or None) if status else None,  # medline_status
        _leaf(pubmed_data.get("PublicationStatus")),
        _date(cit.get("DateRevised")),
        _date(cit.get("DateCompleted")),
        entrez_date,
        authors,
        types,
        mesh,
        keywords,
        grants,
        links,
        chemicals,
        article_ids,
    ]
    tokens = {
        _AT_SECTIONS: sections_tokens,
        _AT_LANGUAGES: languages_tokens,
        _AT_AUTHORS: authors_tokens,
        _AT_TYPES: types_tokens,
        _AT_MESH: mesh_tokens,
        _AT_KEYWORDS: keywords_tokens,
        _AT_GRANTS: grants_tokens,
        _AT_LINKS: links_tokens,
        _AT_CHEMICALS: chemicals_tokens,
        _AT_IDS: ids_tokens,
    }
    return _finish(elem, values, tokens)


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
            _article_ids(document.get("ArticleIdList"))[0]
            + _article_ids(book_data.get("ArticleIdList"))[0]
        )
    )
    entrez_date = _entrez_date(book_data.get("History"))
    title, title_markup, vernacular = _title(
        document.get("ArticleTitle"), document.get("VernacularTitle"), book.get("BookTitle")
    )
    sections, sections_tokens = _abstract_sections(document.get("Abstract"))
    languages, languages_tokens = _languages(document_el)
    authors, authors_tokens = _authors(
        _book_authors(document_el, book_el), document.get("InvestigatorList")
    )
    types, types_tokens = _publication_types(document_el)
    keywords, keywords_tokens = _keywords(document_el)
    grants, grants_tokens = _grants(document.get("GrantList"))
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
        languages,
        _doi(article_ids, document_el),
        _first_id(article_ids, "pmc"),  # pmcid
        None,  # medline_status
        _leaf(book_data.get("PublicationStatus")),
        _date(document.get("DateRevised")),
        None,  # date_completed
        entrez_date,
        authors,
        types,
        (),  # mesh_headings
        keywords,
        grants,
        (),  # comments_corrections
        (),  # chemicals
        article_ids,
    ]
    tokens = {
        _AT_SECTIONS: sections_tokens,
        _AT_LANGUAGES: languages_tokens,
        _AT_AUTHORS: authors_tokens,
        _AT_TYPES: types_tokens,
        _AT_KEYWORDS: keywords_tokens,
        _AT_GRANTS: grants_tokens,
    }  # the empty sequences and the merged article_ids: _digest works them out
    return _finish(elem, values, tokens)


def _finish(
    elem: etree._Element, values: list[Any], sequence_tokens: dict[int, Sequence[str]]
) -> PubmedRecord:
    """Build the record from its content-field values, its raw XML and its content hash."""
    return PubmedRecord(  # type: ignore[call-arg]  # (mypy cannot count *values)
        *values,
        _tostring(elem, encoding="unicode", with_tail=False),
        _digest(values, sequence_tokens),
    )


_NO_ITEMS: tuple[tuple[()], Sequence[str]] = ((), (_END,))  # an absent list, and its tokens
_AT_SECTIONS = _HASHED_FIELDS.index("abstract_sections")
_AT_LANGUAGES = _HASHED_FIELDS.index("languages")
_AT_AUTHORS = _HASHED_FIELDS.index("authors")
_AT_TYPES = _HASHED_FIELDS.index("publication_types")
_AT_MESH = _HASHED_FIELDS.index("mesh_headings")
_AT_KEYWORDS = _HASHED_FIELDS.index("keywords")
_AT_GRANTS = _HASHED_FIELDS.index("grants")
_AT_LINKS = _HASHED_FIELDS.index("comments_corrections")
_AT_CHEMICALS = _HASHED_FIELDS.index("chemicals")
_AT_IDS = _HASHED_FIELDS.index("article_ids")


# --------------------------------------------------------------------------------------------
# Text


def _index(elem: etree._Element | None) -> dict[Any, etree._Element]:
    """The first child of each tag name ({} for None)."""
    if elem is None:
        return {}
    return {child.tag: child for child in elem[::-1]}


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
    for child in elem[:]:
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


def _abstract_sections(
    abstract: etree._Element | None,
) -> tuple[tuple[AbstractSection, ...], Sequence[str]]:
    """The AbstractText sections of Abstract (OtherAbstract is not read), and their tokens."""
    if abstract is None:
        return _NO_ITEMS
    sections = []
    tokens: list[str] = []
    for part in abstract[:]:
        if part.tag != "AbstractText":
            continue
        text, markup = _mixed(part)
        label = part.get("Label")
        label = (label.strip() or None) if label else None
        category = part.get("NlmCategory")
        category = (category.strip() or None) if category else None
        item = (label, category, text, markup)
        sections.append(_new(AbstractSection, item))
        tokens += (
            _NONE if label is None else label,
            _NONE if category is None else category,
            text,
            markup,
        )
    tokens.append(_END)
    return tuple(sections), tokens


def _abstract_text(sections: tuple[AbstractSection, ...]) -> str | None:
    parts = [f"{s.label}: {s.text}" if s.label else s.text for s in sections]
    return "\n\n".join(p for p in parts if p) or None


def _languages(container: etree._Element | None) -> tuple[tuple[str, ...], Sequence[str]]:
    if container is None:
        return _NO_ITEMS
    languages = []
    for child in container[:]:
        if child.tag == "Language":
            text = child.text
            if text:
                text = text.strip()
                if text:
                    languages.append(text)
    tokens = languages.copy()
    tokens.append(_END)
    return tuple(languages), tokens


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


def _in_range(value: int | None, low: int, high: int) -> int | None:
    return value if value is not None and low <= value <= high else None


def _date(elem: etree._Element | None) -> dt.date | None:
    """A Year/Month/Day element as a date; None when missing or impossible."""
    if elem is None:
        return None
    year = month = day = None
    for child in elem[:]:  # of repeated parts the last counts
        tag = child.tag
        if tag == "Year":
            year = child.text
        elif tag == "Month":
            month = child.text
        elif tag == "Day":
            day = child.text
    year, month, day = _number(year), _month(month), _number(day)
    if year is None or month is None or day is None:
        return None
    try:
        return dt.date(year, month, day)
    except (ValueError, OverflowError):  # OverflowError: a year too big for a C long
        return None


def _entrez_date(history: etree._Element | None) -> dt.date | None:
    """History's "entrez" date, else its "pubmed" date."""
    if history is None:
        return None
    dates = {d.get("PubStatus"): d for d in history[:] if d.tag == "PubMedPubDate"}
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
        year = _in_range(_number(y), 1, 9999)  # a 20-digit "year" is none (and fits no column)
        month = _month(m) if m else _leading_month(season or "")
        day = _in_range(_number(d), 1, 31) if month else None
    if year is not None:
        return PubDate(text, year, month, day)
    electronic = _date(article_date)
    if electronic is not None:
        return PubDate(
            text or _date_text(electronic), electronic.year, electronic.month, electronic.day
        )
    if entrez is not None:
        return PubDate(text or str(entrez.year), entrez.year, None, None)
    return PubDate(text, None, month, day)


def _date_text(date: dt.date) -> str:
    return f"{date.year} {_MONTH_ABBREV[date.month]} {date.day}"


# --------------------------------------------------------------------------------------------
# Identifiers


def _article_ids(id_list: etree._Element | None) -> tuple[tuple[ArticleId, ...], Sequence[str]]:
    """Direct ArticleId children only (never those of ReferenceList citations)."""
    if id_list is None:
        return _NO_ITEMS
    ids = []
    tokens: list[str] = []
    for item in id_list[:]:
        if item.tag != "ArticleId":
            continue
        value = item.text
        if value:
            value = value.strip()
            if value:
                id_type = item.get("IdType")
                id_type = (id_type and id_type.strip()) or "pubmed"
                ids.append(_new(ArticleId, (id_type, value)))
                tokens += (id_type, value)
    tokens.append(_END)
    return tuple(ids), tokens


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
    for location in container[:]:
        if (
            location.tag == "ELocationID"
            and location.get("EIdType") == "doi"
            and location.get("ValidYN") != "N"
        ):
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
# The per-item code below runs hundreds of times in a large record, so it reads text and
# attributes inline, builds each item with _new and adds the item's hash tokens right away.


def _book_authors(
    document: etree._Element, book: etree._Element | None
) -> etree._Element | None:
    """The chapter's AuthorList, else the book's (an AuthorList Type="editors" is not authors)."""
    for container in (document, book):
        if container is None:
            continue
        for author_list in container[:]:
            if author_list.tag == "AuthorList" and author_list.get("Type", "authors") == "authors":
                return author_list
    return None


def _authors(
    author_list: etree._Element | None, investigators: etree._Element | None
) -> tuple[tuple[Author, ...], Sequence[str]]:
    """AuthorList authors, then InvestigatorList investigators; of repeated name elements in
    one author the last counts, of ORCID identifiers the first valid one."""
    authors: list[Author] = []
    tokens: list[str] = []
    for container, item_tag, is_investigator in (
        (author_list, "Author", False),
        (investigators, "Investigator", True),
    ):
        if container is None:
            continue
        for elem in container[:]:
            if elem.tag != item_tag:
                continue
            last = fore = initials = suffix = collective = orcid = None
            affiliations = []
            for child in elem[:]:
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
                    for affiliation in child[:]:  # the first Affiliation
                        if affiliation.tag == "Affiliation":
                            if len(affiliation):
                                text = _mixed(affiliation)[0]
                            else:
                                text = affiliation.text
                                text = _collapse(text) if text else None
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
            authors.append(
                _new(
                    Author,
                    (
                        last,
                        fore,
                        initials,
                        suffix,
                        collective,
                        orcid,
                        tuple(affiliations),
                        is_investigator,
                    ),
                )
            )
            tokens += (
                _NONE if last is None else last,
                _NONE if fore is None else fore,
                _NONE if initials is None else initials,
                _NONE if suffix is None else suffix,
                _NONE if collective is None else collective,
                _NONE if orcid is None else orcid,
            )
            tokens += affiliations
            tokens += (_END, _BOOL[is_investigator])
    tokens.append(_END)
    return tuple(authors), tokens


def _publication_types(
    container: etree._Element | None,
) -> tuple[tuple[PublicationType, ...], Sequence[str]]:
    """PublicationType children of a PublicationTypeList (or of a BookDocument)."""
    if container is None:
        return _NO_ITEMS
    types = []
    tokens: list[str] = []
    for item in container[:]:
        if item.tag != "PublicationType":
            continue
        ui, name = item.get("UI"), item.text
        ui = (ui and ui.strip()) or ""
        name = (name and name.strip()) or ""
        types.append(_new(PublicationType, (ui, name)))
        tokens += (ui, name)
    tokens.append(_END)
    return tuple(types), tokens


def _mesh_headings(
    mesh_list: etree._Element | None,
) -> tuple[tuple[MeshHeading, ...], Sequence[str]]:
    """MeshHeadings with their first DescriptorName (headings without one are skipped)."""
    if mesh_list is None:
        return _NO_ITEMS
    headings = []
    tokens: list[str] = []
    for heading in mesh_list[:]:
        if heading.tag != "MeshHeading":
            continue
        descriptor = None
        qualifiers = []
        qualifier_tokens: list[str] = []
        for child in heading[:]:
            tag = child.tag
            if tag == "DescriptorName":
                if descriptor is None:
                    descriptor = child
            elif tag == "QualifierName":
                ui, name = child.get("UI"), child.text
                ui = ui.strip() if ui else ""
                name = name.strip() if name else ""
                major = child.get("MajorTopicYN") == "Y"
                qualifiers.append(_new(MeshQualifier, (ui, name, major)))
                qualifier_tokens += (ui, name, _BOOL[major])
        if descriptor is None:
            continue
        ui, name = descriptor.get("UI"), descriptor.text
        ui = ui.strip() if ui else ""
        name = name.strip() if name else ""
        major = descriptor.get("MajorTopicYN") == "Y"
        headings.append(_new(MeshHeading, (ui, name, major, tuple(qualifiers))))
        tokens += (ui, name, _BOOL[major])
        tokens += qualifier_tokens
        tokens.append(_END)
    tokens.append(_END)
    return tuple(headings), tokens


def _keywords(container: etree._Element) -> tuple[tuple[Keyword, ...], Sequence[str]]:
    """Every Keyword of every KeywordList, with the list's Owner."""
    keywords = []
    tokens: list[str] = []
    for keyword_list in container[:]:
        if keyword_list.tag != "KeywordList":
            continue
        owner = _clean(keyword_list.get("Owner"))
        owner_token = _NONE if owner is None else owner
        for keyword in keyword_list[:]:
            if keyword.tag != "Keyword":
                continue
            text = _plain(keyword)
            if text:
                major = keyword.get("MajorTopicYN") == "Y"
                keywords.append(_new(Keyword, (text, owner, major)))
                tokens += (text, owner_token, _BOOL[major])
    tokens.append(_END)
    return tuple(keywords), tokens


def _grants(grant_list: etree._Element | None) -> tuple[tuple[Grant, ...], Sequence[str]]:
    if grant_list is None:
        return _NO_ITEMS
    grants = []
    tokens: list[str] = []
    for grant in grant_list[:]:
        if grant.tag != "Grant":
            continue
        parts = _index(grant)
        item = (_leaf(parts.get("GrantID")), _leaf(parts.get("Acronym")), _leaf(parts.get("Agency")),
                _leaf(parts.get("Country")))
        grants.append(_new(Grant, item))
        tokens += [_NONE if value is None else value for value in item]
    tokens.append(_END)
    return tuple(grants), tokens


def _comments_corrections(
    cc_list: etree._Element | None,
) -> tuple[tuple[CommentCorrection, ...], Sequence[str]]:
    if cc_list is None:
        return _NO_ITEMS
    links = []
    tokens: list[str] = []
    for link in cc_list[:]:
        if link.tag != "CommentsCorrections":
            continue
        parts = _index(link)
        ref_pmid = _number(_leaf(parts.get("PMID")))
        if not ref_pmid or ref_pmid > _MAX_PMID:
            ref_pmid = None
        ref_type = link.get("RefType")
        ref_type = (ref_type and ref_type.strip()) or ""
        source, note = _leaf(parts.get("RefSource")), _leaf(parts.get("Note"))
        links.append(_new(CommentCorrection, (ref_type, ref_pmid, source, note)))
        tokens += (
            ref_type,
            _NONE if ref_pmid is None else str(ref_pmid),
            _NONE if source is None else source,
            _NONE if note is None else note,
        )
    tokens.append(_END)
    return tuple(links), tokens


def _chemicals(chemical_list: etree._Element | None) -> tuple[tuple[Chemical, ...], Sequence[str]]:
    """Chemicals; a RegistryNumber of "0" means none."""
    if chemical_list is None:
        return _NO_ITEMS
    chemicals = []
    tokens: list[str] = []
    for chemical in chemical_list[:]:
        if chemical.tag != "Chemical":
            continue
        parts = _index(chemical)
        registry, substance = parts.get("RegistryNumber"), parts.get("NameOfSubstance")
        if registry is not None:
            registry = registry.text
            registry = (registry.strip() or None) if registry else None
            if registry == "0":
                registry = None
        if substance is None:
            ui = None
            name = ""
        else:
            ui, name = substance.get("UI"), substance.text
            ui = (ui.strip() or None) if ui else None
            name = (name and name.strip()) or ""
        chemicals.append(_new(Chemical, (registry, ui, name)))
        tokens += (
            _NONE if registry is None else registry,
            _NONE if ui is None else ui,
            name,
        )
    tokens.append(_END)
    return tuple(chemicals), tokens
