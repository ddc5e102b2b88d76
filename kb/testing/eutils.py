"""A local stand-in for NCBI's E-utilities (esearch, efetch, epost, esummary) over PubMed XML files.

It answers on the paths NCBI uses (``/entrez/eutils/esearch.fcgi`` ...) with NCBI's shapes, error
bodies, caps and rate limits, so that kb (and Bio.Entrez) can be tested offline: point
``KB_EUTILS_URL`` at :attr:`EutilsServer.base_url`. Faults (5xx, 429, slow, truncated or reset
answers, backend errors, silently omitted records) can be queued with :meth:`EutilsServer.inject`
or over HTTP under ``/admin/``.

Library use::

    with EutilsServer([corpus_dir], rate=None) as server:
        os.environ["KB_EUTILS_URL"] = server.base_url
        server.inject("500", count=2, path="efetch")
        ...
        server.stats()["efetch"]

Command line (a developer tool; quiet unless ``--verbose``)::

    python -m kb.testing.eutils --port 0 [--rate N] [--api-key-rate N] \
        [--fault KIND[:COUNT][@ENDPOINT]] PATH...

Standard library and lxml only. It binds loopback addresses only.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import functools
import gzip
import html
import ipaddress
import json
import re
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from kb.testing import serve_until_signalled

__all__ = ["ENDPOINTS", "FAULT_KINDS", "EutilsServer", "main"]

EUTILS_PREFIX = "/entrez/eutils/"
ADMIN_PREFIX = "/admin/"
ENDPOINTS = ("esearch", "efetch", "epost", "esummary")
FAULT_KINDS = frozenset({"500", "502", "503", "429", "slow", "truncate", "reset", "error", "omit"})
_FAULT_PARAMS = {"slow": {"seconds"}, "omit": {"n"}, "error": {"message"}}

RETRY_AFTER_SECONDS = 2  # what NCBI sends with its 429s
NCBI_KEYLESS_RATE = 3  # shown in X-RateLimit-Limit when limiting is disabled
NCBI_API_KEY_RATE = 10
EFETCH_MAX_RETMAX = 10_000
ESEARCH_DEFAULT_RETMAX = 20
MAX_UID = 18446744073709551615

_XML_DECL = '<?xml version="1.0" encoding="UTF-8" ?>\n'
_ESEARCH_HEAD = (
    _XML_DECL + '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
)
_EPOST_HEAD = (
    _XML_DECL + '<!DOCTYPE ePostResult PUBLIC "-//NLM//DTD epost 20090526//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20090526/epost.dtd">'
)
_EFETCH_ERROR_HEAD = (
    _XML_DECL + '<!DOCTYPE eEfetchResult PUBLIC "-//NLM//DTD efetch 20131226//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20131226/efetch.dtd">\n'
)
_ESUMMARY_V1_HEAD = (
    _XML_DECL + '<!DOCTYPE eSummaryResult PUBLIC "-//NLM//DTD esummary v1 20041029//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20041029/esummary-v1.dtd">\n'
)
_ESUMMARY_V2_HEAD = (
    _XML_DECL + '<!DOCTYPE eSummaryResult PUBLIC "-//NLM//DTD esummary pubmed 20160808//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20160808/esummary_pubmed.dtd">\n'
)
_PUBMED_HEAD = (
    b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>"
)
_PUBMED_FOOT = b"</PubmedArticleSet>"

_XML_TYPE = "text/xml; charset=UTF-8"
_JSON_TYPE = "application/json; charset=UTF-8"
_HTML_TYPE = "text/html; charset=UTF-8"

_MSG_ID_EMPTY = "Supplied id parameter is empty."
_MSG_NO_CORRECT_IDS = "ID list is empty! Possibly it has no correct IDs."
_MSG_EMPTY_TERM = "Empty term and query_key - nothing todo"
_MSG_NO_ID_NOR_KEY = "Neither query_key nor id specified"
_MSG_EPOST_EMPTY = "Empty ID list; Nothing to store"
_MSG_EPOST_INVALID = f"Some IDs have invalid value and were omitted. Maximum ID value {MAX_UID}"
_MSG_BACKEND = (
    "Search Backend failed: Couldn't resolve #PMQuerySrv_2_0?dbaf=pubmed, the address table is empty."
)

_HTML_ERRORS = {
    500: (
        "NCBI/eutils202 - WWW Error 500 Diagnostic",
        "Internal Server Error",
        "The server encountered an internal error or misconfiguration and was unable to complete "
        "your request.",
    ),
    502: (
        "502 Bad Gateway",
        "Bad Gateway",
        "The proxy server received an invalid response from an upstream server.",
    ),
    503: (
        "503 Service Unavailable",
        "Service Unavailable",
        "Unable to route request! service name: /http/service/ratecontrol",
    ),
}

_API_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s\"']*")


def _mask_api_key(text: str) -> str:
    """``api_key=SECRET`` becomes ``api_key=***`` (for anything written to logs)."""
    return _API_KEY_IN_TEXT.sub(r"\1***", text)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=False)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Record:
    """One served record: its XML as loaded, casefolded search texts and its three dates."""

    pmid: int
    xml: bytes
    title: str
    abstract: str
    mesh: str  # one descriptor name per line
    major_mesh: str  # descriptors that are major topics (on the descriptor or a qualifier)
    keywords: str  # one keyword per line
    edat: dt.date
    mdat: dt.date
    pdat: dt.date


_XML_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": True,
}
_ARTICLE_TAGS = ("PubmedArticle", "PubmedBookArticle")
_MONTHS = {
    m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)
}
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}
_EPOCH = dt.date(1800, 1, 1)
_HISTORY_DATES = "PubmedData/History/PubMedPubDate | PubmedBookData/History/PubMedPubDate"
_PUB_DATE = "MedlineCitation/Article/Journal/JournalIssue/PubDate | BookDocument/Book/PubDate"


def _month_number(text: str | None) -> int | None:
    if not text:
        return None
    value = text.strip().lower()
    if value.isdigit():
        number = int(value)
        return number if 1 <= number <= 12 else None
    return _MONTHS.get(value[:3]) or _SEASONS.get(value)


def _make_date(year: int, month: int | None, day: int | None) -> dt.date | None:
    try:
        return dt.date(year, month or 1, day or 1)
    except ValueError:
        try:
            return dt.date(year, month or 1, 1)
        except ValueError:
            return None


def _element_date(elem: etree._Element | None) -> dt.date | None:
    """A date from ``Year/Month/Day`` (or ``Season``, or PubDate's free-text ``MedlineDate``)."""
    if elem is None:
        return None
    year = (elem.findtext("Year") or "").strip()
    if year.isdigit():
        day_text = (elem.findtext("Day") or "").strip()
        month = _month_number(elem.findtext("Month")) or _month_number(elem.findtext("Season"))
        return _make_date(int(year), month, int(day_text) if day_text.isdigit() else None)
    match = re.match(r"\s*(\d{4})(?:\s+([A-Za-z]+))?", elem.findtext("MedlineDate") or "")
    if match:
        return _make_date(int(match.group(1)), _month_number(match.group(2)), None)
    return None


def _joined_text(elements: Iterable[etree._Element]) -> str:
    return "\n".join(" ".join("".join(e.itertext()).split()) for e in elements).casefold()


def _index_record(elem: etree._Element) -> _Record | None:
    """Index one PubmedArticle / PubmedBookArticle element; None when it has no usable PMID."""
    pmid_text = (elem.findtext("MedlineCitation/PMID") or elem.findtext("BookDocument/PMID") or "")
    pmid_text = pmid_text.strip()
    if not _well_formed(pmid_text):
        return None
    history = {d.get("PubStatus"): d for d in elem.xpath(_HISTORY_DATES)}
    entrez = _element_date(history.get("entrez")) or _element_date(history.get("pubmed"))
    revised = _element_date(elem.find("MedlineCitation/DateRevised"))
    published = _element_date(next(iter(elem.xpath(_PUB_DATE)), None))
    edat = entrez or published or revised or _EPOCH
    descriptors = elem.xpath("MedlineCitation/MeshHeadingList/MeshHeading/DescriptorName")
    major = [
        d
        for d in descriptors
        if d.get("MajorTopicYN") == "Y"
        or any(q.get("MajorTopicYN") == "Y" for q in d.itersiblings("QualifierName"))
    ]
    return _Record(
        pmid=int(pmid_text),
        xml=etree.tostring(elem, encoding="UTF-8", with_tail=False),
        title=_joined_text(
            elem.xpath(
                "MedlineCitation/Article/ArticleTitle | MedlineCitation/Article/VernacularTitle"
                " | BookDocument/ArticleTitle | BookDocument/Book/BookTitle"
            )
        ),
        abstract=_joined_text(
            elem.xpath(
                "MedlineCitation/Article/Abstract/AbstractText"
                " | MedlineCitation/OtherAbstract/AbstractText | BookDocument/Abstract/AbstractText"
            )
        ),
        mesh=_joined_text(descriptors),
        major_mesh=_joined_text(major),
        keywords=_joined_text(
            elem.xpath("MedlineCitation/KeywordList/Keyword | BookDocument/KeywordList/Keyword")
        ),
        edat=edat,
        mdat=revised or edat,
        pdat=published or edat,
    )


_Deletion = tuple[int, ...]


def _expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read, in order; a folder gives its ``.xml``/``.xml.gz`` files, recursively, by name."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file() and p.name.endswith((".xml", ".xml.gz")))
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def _read_file(path: Path) -> Iterator[_Record | _Deletion]:
    """Records and DeleteCitation PMID lists of one PubMed XML file (plain or gzip), in file order.

    A ``MedlineCitationSet`` file (NLM's format until 2016) is served as efetch serves every
    record today: each ``MedlineCitation`` inside a ``PubmedArticle``, without the
    ``DateCreated`` that left the DTD in 2018 (Bio.Entrez would refuse it).
    """
    tags = (*_ARTICLE_TAGS, "MedlineCitation", "DeleteCitation")
    with (gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")) as stream:
        for _, elem in etree.iterparse(stream, events=("end",), tag=tags, **_XML_PARSER_OPTIONS):
            parent = elem.getparent()
            if elem.tag == "MedlineCitation" and (parent is None or parent.tag != "MedlineCitationSet"):
                continue  # a PubmedArticle's own: indexed with it
            if elem.tag == "DeleteCitation":
                yield tuple(int(p.text) for p in elem.iter("PMID") if (p.text or "").strip().isdigit())
            else:
                if elem.tag == "MedlineCitation":
                    article = etree.Element("PubmedArticle")
                    article.append(copy.deepcopy(elem))
                    article[0].tail = None
                    for created in article[0].findall("DateCreated"):
                        article[0].remove(created)
                    record = _index_record(article)
                else:
                    record = _index_record(elem)
                if record is not None:
                    yield record
            elem.clear(keep_tail=True)
            while elem.getprevious() is not None:
                del elem.getparent()[0]


# --------------------------------------------------------------------------------------------
# Search terms: PubMed's query syntax, the part kb and its tests use
# --------------------------------------------------------------------------------------------

_FIELD_ALIASES = {
    "all": "all",
    "all fields": "all",
    "tw": "all",
    "text word": "all",
    "tiab": "tiab",
    "title/abstract": "tiab",
    "ti": "ti",
    "title": "ti",
    "mh": "mh",
    "mesh": "mh",
    "mesh terms": "mh",
    "majr": "majr",
    "mesh major topic": "majr",
    "ot": "ot",
    "other term": "ot",
    "uid": "uid",
    "pmid": "uid",
    "edat": "edat",
    "date - entrez": "edat",
    "mdat": "mdat",
    "date - modification": "mdat",
    "dp": "pdat",
    "pdat": "pdat",
    "publication date": "pdat",
    "date - publication": "pdat",
}
_FIELD_NAMES = {
    "all": "All Fields",
    "tiab": "Title/Abstract",
    "ti": "Title",
    "mh": "MeSH Terms",
    "majr": "MeSH Major Topic",
    "ot": "Other Term",
    "uid": "UID",
    "edat": "Date - Entrez",
    "mdat": "Date - Modification",
    "pdat": "Date - Publication",
}
_TEXT_FIELDS = {
    "all": ("title", "abstract", "mesh", "keywords"),
    "tiab": ("title", "abstract"),
    "ti": ("title",),
    "ot": ("keywords",),
}
_MESH_FIELDS = {"mh": "mesh", "majr": "major_mesh"}
_WORD_FIELDS = _TEXT_FIELDS.keys() | _MESH_FIELDS.keys()
_DATE_TYPES = ("edat", "mdat", "pdat")
_BOOLEANS = ("AND", "OR", "NOT")
_TERM_TOKEN = re.compile(
    r"""\s*(?:(?P<open>\()|(?P<close>\))|"(?P<phrase>[^"]*)"?|\[(?P<tag>[^\]]*)\]?"""
    r"""|(?P<stray>\])|(?P<word>[^\s()"\[\]]+))"""
)
_WORD_SEPARATOR = r"[^\w\n]+"


@dataclass(frozen=True, slots=True)
class _Atom:
    """One search term: words or a phrase in one field (or a history reference ``#N``)."""

    text: str
    field: str  # a key of _FIELD_NAMES, or "history"
    quoted: bool = False
    unknown_tag: str | None = None


@dataclass(frozen=True, slots=True)
class _Bool:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Group:
    inner: _Node


@dataclass(frozen=True, slots=True)
class _Untagged:
    """A run of bare words, before automatic term mapping (:meth:`_Search.map_terms`)."""

    words: tuple[str, ...]


_Node = _Atom | _Bool | _Group | _Untagged


def _tokenize(term: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    for match in _TERM_TOKEN.finditer(term):
        kind = match.lastgroup
        if kind is None or kind == "stray":
            continue
        value = match.group(kind) or ""
        if kind == "word" and value.upper() in _BOOLEANS:
            tokens.append(("op", value.upper()))
        else:
            tokens.append((kind, value))
    return tokens


class _TermParser:
    """PubMed's grammar: AND/OR/NOT applied left to right, parentheses, adjacent terms ANDed.

    A run of bare words followed by a tag (``heart attack[tiab]``) is one phrase in that field;
    a run of untagged words stays an :class:`_Untagged` run for automatic term mapping.
    """

    def __init__(self, term: str) -> None:
        self._tokens = _tokenize(term)
        self._pos = 0

    def parse(self) -> _Node | None:
        node = self._expression()
        while self._pos < len(self._tokens):  # an unmatched ")": skip it, carry on
            self._pos += 1
            node = _and(node, self._expression())
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _expression(self) -> _Node | None:
        node: _Node | None = None
        op = "AND"
        while (token := self._peek()) is not None and token[0] != "close":
            if token[0] == "op":
                self._pos += 1
                if node is not None:
                    op = token[1]
                continue
            operand = self._operand()
            if operand is not None:
                node = operand if node is None else _Bool(op, node, operand)
                op = "AND"
        return node

    def _tag(self) -> str | None:
        token = self._peek()
        if token is not None and token[0] == "tag":
            self._pos += 1
            return token[1]
        return None

    def _operand(self) -> _Node | None:
        kind, value = self._tokens[self._pos]
        self._pos += 1
        if kind == "open":
            inner = self._expression()
            if self._peek() is not None:
                self._pos += 1  # the ")"
            return _Group(inner) if inner is not None else None
        if kind == "tag":  # a tag with no term before it
            return None
        if kind == "phrase":
            return _atom(value, self._tag(), quoted=True)
        words = [value]
        while (token := self._peek()) is not None and token[0] == "word":
            words.append(token[1])
            self._pos += 1
        tag = self._tag()
        if tag is not None:
            return _atom(" ".join(words), tag)
        return _Untagged(tuple(words))


def _and(left: _Node | None, right: _Node | None) -> _Node | None:
    if left is None or right is None:
        return left or right
    return _Bool("AND", left, right)


def _atom(text: str, tag: str | None, *, quoted: bool = False) -> _Atom:
    if tag is None:
        if not quoted and re.fullmatch(r"#\d+", text):
            return _Atom(text, "history")
        return _Atom(text, "all", quoted)
    key = _FIELD_ALIASES.get(" ".join(tag.lower().split()))
    if key is None:
        return _Atom(text, "all", quoted, unknown_tag=tag)
    return _Atom(text, key, quoted)


def _mesh_expansion(phrase: str, words: Sequence[str]) -> _Group:
    """What PubMed searches for untagged words that name a MeSH heading."""
    found: _Node = _Atom(phrase, "mh", quoted=True)
    if len(words) > 1:
        each: _Node | None = None
        for word in words:
            each = _and(each, _Atom(word, "all", quoted=True))
        assert each is not None
        found = _Bool("OR", found, _Group(each))
    return _Group(_Bool("OR", found, _Atom(phrase, "all", quoted=True)))


def _translate(node: _Node) -> str:
    """A PubMed-like QueryTranslation of a parsed term."""
    if isinstance(node, _Untagged):
        return " AND ".join(f"{w}[All Fields]" for w in node.words)
    if isinstance(node, _Group):
        return f"({_translate(node.inner)})"
    if isinstance(node, _Bool):
        return f"{_translate(node.left)} {node.op} {_translate(node.right)}"
    if node.field == "history":
        return node.text
    text = f'"{node.text}"' if node.quoted else node.text
    return f"{text}[{_FIELD_NAMES[node.field]}]"


def _parse_date(text: str, *, end: bool) -> dt.date | None:
    """YYYY, YYYY/MM or YYYY/MM/DD (also with - or .): the first day, or with ``end`` the last."""
    match = re.fullmatch(r"\s*(\d{4})(?:[/.-](\d{1,2})(?:[/.-](\d{1,2}))?)?\s*", text)
    if not match:
        return None
    year, month, day = int(match.group(1)), match.group(2), match.group(3)
    try:
        if day is not None:
            return dt.date(year, int(month), int(day))
        if month is not None:
            first = dt.date(year, int(month), 1)
            if not end:
                return first
            return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    except ValueError:
        return None


def _date_range(text: str) -> tuple[dt.date, dt.date] | None:
    low, _, high = text.partition(":")
    start = _parse_date(low, end=False)
    stop = _parse_date(high or low, end=True)
    return (start, stop) if start and stop else None


def _text_pattern(text: str, *, whole_line: bool) -> re.Pattern[str] | None:
    """Token-sequence match on casefolded text; ``word*`` is a prefix; None when there is no word."""
    words = re.findall(r"\w+\*?", text.casefold())
    if not words:
        return None
    body = _WORD_SEPARATOR.join(
        re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) for w in words
    )
    if whole_line:
        return re.compile(rf"^[^\w\n]*{body}[^\w\n]*$", re.MULTILINE)
    return re.compile(rf"(?<!\w){body}(?!\w)")


class _TermSet(NamedTuple):
    term: str
    field: str
    count: int
    explode: str


@dataclass
class _Search:
    """Evaluates a parsed term over a snapshot of the records, noting what NCBI would report."""

    records: dict[int, _Record]
    history: Callable[[int], Sequence[int] | None]
    phrases_not_found: list[str] = field(default_factory=list)
    quoted_not_found: list[str] = field(default_factory=list)
    fields_not_found: list[str] = field(default_factory=list)
    translations: list[tuple[str, str]] = field(default_factory=list)  # TranslationSet (From, To)

    @functools.cached_property
    def headings(self) -> frozenset[str]:
        """The MeSH headings of the served records, casefolded: PubMed's term-mapping table here."""
        return frozenset(line for r in self.records.values() for line in r.mesh.split("\n") if line)

    def map_terms(self, node: _Node) -> _Node:
        """PubMed's automatic term mapping, for MeSH headings only.

        The longest run of untagged words that names a heading becomes
        ``("w1 w2"[MeSH Terms] OR ("w1"[All Fields] AND "w2"[All Fields]) OR "w1 w2"[All Fields])``
        and a TranslationSet entry; other untagged words are All Fields terms, ANDed. The hits
        are the same either way (a heading is part of All Fields); the translation is PubMed's.
        """
        if isinstance(node, _Group):
            return _Group(self.map_terms(node.inner))
        if isinstance(node, _Bool):
            return _Bool(node.op, self.map_terms(node.left), self.map_terms(node.right))
        if not isinstance(node, _Untagged):
            return node
        words, mapped, start = node.words, None, 0
        while start < len(words):
            stop = next(
                (
                    end
                    for end in range(len(words), start, -1)
                    if " ".join(words[start:end]).casefold() in self.headings
                ),
                None,
            )
            if stop is None:
                mapped, start = _and(mapped, _atom(words[start], None)), start + 1
                continue
            phrase = " ".join(words[start:stop])
            expansion = _mesh_expansion(phrase.casefold(), [w.casefold() for w in words[start:stop]])
            self.translations.append((phrase, _translate(expansion.inner)))
            mapped, start = _and(mapped, expansion), stop
        assert mapped is not None  # a run has at least one word
        return mapped

    def stack(self, node: _Node) -> list[_TermSet | str]:
        """The TranslationStack: the query in postfix, a TermSet per term and operators."""
        if isinstance(node, _Group):
            return [*self.stack(node.inner), "GROUP"]
        if isinstance(node, _Bool):
            return [*self.stack(node.left), *self.stack(node.right), node.op]
        if isinstance(node, _Untagged):
            raise TypeError("map_terms() first")
        explode = "Y" if node.field == "mh" else "N"
        field_name = _FIELD_NAMES.get(node.field, "All Fields")
        return [_TermSet(_translate(node), field_name, len(self._atom(node)), explode)]

    def run(self, node: _Node) -> set[int]:
        if isinstance(node, _Group):
            return self.run(node.inner)
        if isinstance(node, _Bool):
            left, right = self.run(node.left), self.run(node.right)
            if node.op == "AND":
                return left & right
            return left | right if node.op == "OR" else left - right
        if isinstance(node, _Untagged):
            return self.run(self.map_terms(node))
        found = self._atom(node)
        if node.unknown_tag is not None:
            self.fields_not_found.append(node.unknown_tag)
        if not found and node.field in _WORD_FIELDS:
            (self.quoted_not_found if node.quoted else self.phrases_not_found).append(
                f'"{node.text}"' if node.quoted else node.text
            )
        return found

    def _atom(self, atom: _Atom) -> set[int]:
        records = self.records.values()
        if atom.field == "history":
            return set(self.history(int(atom.text[1:])) or ()) & self.records.keys()
        if atom.field == "uid":
            low, _, high = atom.text.partition(":")
            if not low.strip().isdigit() or not (high or low).strip().isdigit():
                return set()
            first, last = int(low), int(high or low)
            return {r.pmid for r in records if first <= r.pmid <= last}
        if atom.field in _DATE_TYPES:
            window = _date_range(atom.text)
            if window is None:
                return set()
            return {r.pmid for r in records if window[0] <= getattr(r, atom.field) <= window[1]}
        mesh = _MESH_FIELDS.get(atom.field)
        pattern = _text_pattern(atom.text, whole_line=mesh is not None)
        if pattern is None:
            return set()
        fields = (mesh,) if mesh else _TEXT_FIELDS[atom.field]
        return {r.pmid for r in records if any(pattern.search(getattr(r, f)) for f in fields)}


# --------------------------------------------------------------------------------------------
# Document summaries
# --------------------------------------------------------------------------------------------

_RECORD_STATUS = {
    "MEDLINE": "PubMed - indexed for MEDLINE",
    "In-Process": "PubMed - in process",
    "In-Data-Review": "PubMed - in process",
    "Publisher": "PubMed - as supplied by publisher",
}


@dataclass(frozen=True, slots=True)
class _Summary:
    """The fields of an ESummary DocSum / DocumentSummary, taken from the record's XML."""

    pmid: int
    pubdate: str
    epubdate: str
    source: str
    authors: list[str]
    title: str
    volume: str
    issue: str
    pages: str
    langs: list[str]
    nlm_unique_id: str
    issn: str
    essn: str
    pubtypes: list[str]
    record_status: str
    pub_status: str
    article_ids: list[tuple[str, str]]
    history: list[tuple[str, str]]  # (PubStatus, "YYYY/MM/DD HH:MM")
    has_abstract: bool
    full_journal_name: str
    elocation_id: str
    sort_pub_date: str

    @property
    def doi(self) -> str:
        return next((value for kind, value in self.article_ids if kind == "doi"), "")

    @property
    def so(self) -> str:
        """The citation's source line, e.g. ``1979 Feb;10(1):56-66``."""
        issue = f"({self.issue})" if self.issue else ""
        pages = f":{self.pages}" if self.pages else ""
        return f"{self.pubdate};{self.volume}{issue}{pages}"


def _summarize(record: _Record) -> _Summary:
    root = etree.fromstring(record.xml, etree.XMLParser(**_XML_PARSER_OPTIONS))
    article, journal = "MedlineCitation/Article/", "MedlineCitation/Article/Journal/"

    def text(*paths: str) -> str:
        """Whitespace-normalised text of the first path that exists."""
        found = root.xpath(" | ".join(paths))
        return " ".join("".join(found[0].itertext()).split()) if found else ""

    def texts(*paths: str) -> list[str]:
        return [e.text or "" for e in root.xpath(" | ".join(paths))]

    pubdate_el = next(iter(root.xpath(_PUB_DATE)), None)
    pubdate = ""
    if pubdate_el is not None:
        parts = (pubdate_el.findtext(n) for n in ("Year", "Season", "Month", "Day"))
        pubdate = pubdate_el.findtext("MedlineDate") or " ".join(p for p in parts if p)
    epub_date = _element_date(root.find(f"{article}ArticleDate[@DateType='Electronic']"))
    authors = []
    for author in root.xpath(f"{article}AuthorList/Author | BookDocument/AuthorList/Author"):
        parts = (author.findtext(n) for n in ("LastName", "Initials", "Suffix"))
        name = author.findtext("CollectiveName") or " ".join(p for p in parts if p)
        if name:
            authors.append(name)
    elocation = root.find(f"{article}ELocationID")
    ids = root.xpath("PubmedData/ArticleIdList/ArticleId | PubmedBookData/ArticleIdList/ArticleId")
    return _Summary(
        pmid=record.pmid,
        pubdate=pubdate,
        epubdate=epub_date.strftime("%Y %b %d") if epub_date else "",
        source=text("MedlineCitation/MedlineJournalInfo/MedlineTA") or text(f"{journal}ISOAbbreviation"),
        authors=authors,
        title=text(f"{article}ArticleTitle", "BookDocument/ArticleTitle", "BookDocument/Book/BookTitle"),
        volume=text(f"{journal}JournalIssue/Volume"),
        issue=text(f"{journal}JournalIssue/Issue"),
        pages=text(f"{article}Pagination/MedlinePgn"),
        langs=texts(f"{article}Language", "BookDocument/Language"),
        nlm_unique_id=text("MedlineCitation/MedlineJournalInfo/NlmUniqueID"),
        issn=text(f"{journal}ISSN[@IssnType='Print']"),
        essn=text(f"{journal}ISSN[@IssnType='Electronic']"),
        pubtypes=texts(f"{article}PublicationTypeList/PublicationType", "BookDocument/PublicationType"),
        record_status=_RECORD_STATUS.get(root.xpath("string(MedlineCitation/@Status)"), "PubMed"),
        pub_status=text("PubmedData/PublicationStatus", "PubmedBookData/PublicationStatus"),
        article_ids=[(e.get("IdType", "pubmed"), e.text or "") for e in ids],
        history=[(d.get("PubStatus", ""), _history_date(d)) for d in root.xpath(_HISTORY_DATES)],
        has_abstract=bool(record.abstract),
        full_journal_name=text(f"{journal}Title"),
        elocation_id=f"{elocation.get('EIdType')}: {elocation.text}" if elocation is not None else "",
        sort_pub_date=record.pdat.strftime("%Y/%m/%d 00:00"),
    )


def _history_date(elem: etree._Element) -> str:
    """``2001/08/03 10:00``, as ESummary shows a PubMedPubDate."""
    day = _element_date(elem) or _EPOCH
    hour, minute = (int(t) if t.isdigit() else 0 for t in (_text(elem, "Hour"), _text(elem, "Minute")))
    return f"{day:%Y/%m/%d} {hour:02d}:{minute:02d}"


def _text(elem: etree._Element, path: str) -> str:
    return (elem.findtext(path) or "").strip()


def _docsum_v1(s: _Summary) -> str:
    def item(name: str, value: object, kind: str = "String") -> str:
        return f'\t<Item Name="{name}" Type="{kind}">{_esc(value)}</Item>\n'

    def items(name: str, entries: Iterable[tuple[str, str]], kind: str = "String") -> str:
        inner = "".join(f'\t\t<Item Name="{n}" Type="{kind}">{_esc(v)}</Item>\n' for n, v in entries)
        body = f"\n{inner}\t" if inner else ""
        return f'\t<Item Name="{name}" Type="List">{body}</Item>\n'

    return (
        f"<DocSum>\n\t<Id>{s.pmid}</Id>\n"
        + item("PubDate", s.pubdate, "Date")
        + item("EPubDate", s.epubdate, "Date")
        + item("Source", s.source)
        + items("AuthorList", (("Author", a) for a in s.authors))
        + item("LastAuthor", s.authors[-1] if s.authors else "")
        + item("Title", s.title)
        + item("Volume", s.volume)
        + item("Issue", s.issue)
        + item("Pages", s.pages)
        + items("LangList", (("Lang", lang) for lang in s.langs))
        + item("NlmUniqueID", s.nlm_unique_id)
        + item("ISSN", s.issn)
        + item("ESSN", s.essn)
        + items("PubTypeList", (("PubType", p) for p in s.pubtypes))
        + item("RecordStatus", s.record_status)
        + item("PubStatus", s.pub_status)
        + items("ArticleIds", s.article_ids)
        + (item("DOI", s.doi) if s.doi else "")  # only records with a DOI have this item
        + items("History", s.history, "Date")
        + items("References", ())
        + item("HasAbstract", int(s.has_abstract), "Integer")
        + item("PmcRefCount", 0, "Integer")  # the stand-in knows no PMC citations
        + item("FullJournalName", s.full_journal_name)
        + item("ELocationID", s.elocation_id)
        + item("SO", s.so)
        + "</DocSum>\n"
    )


def _docsum_v2(s: _Summary) -> str:
    def tag(name: str, value: object) -> str:
        return f"\t<{name}>{_esc(value)}</{name}>\n"

    def strings(name: str, inner: str, values: Iterable[str]) -> str:
        listed = "".join(f"\t\t<{inner}>{_esc(v)}</{inner}>\n" for v in values)
        return f"\t<{name}>\n{listed}\t</{name}>\n"

    authors = "".join(
        f"\t\t<Author>\n\t\t\t<Name>{_esc(a)}</Name>\n\t\t\t<AuthType>Author</AuthType>\n"
        "\t\t\t<ClusterID></ClusterID>\n\t\t</Author>\n"
        for a in s.authors
    )
    ids = "".join(
        f"\t\t<ArticleId>\n\t\t\t<IdType>{_esc(k)}</IdType>\n\t\t\t<IdTypeN>1</IdTypeN>\n"
        f"\t\t\t<Value>{_esc(v)}</Value>\n\t\t</ArticleId>\n"
        for k, v in s.article_ids
    )
    return (
        f'<DocumentSummary uid="{s.pmid}">\n'
        + tag("PubDate", s.pubdate)
        + tag("EPubDate", s.epubdate)
        + tag("Source", s.source)
        + f"\t<Authors>\n{authors}\t</Authors>\n"
        + tag("LastAuthor", s.authors[-1] if s.authors else "")
        + tag("Title", s.title)
        + tag("Volume", s.volume)
        + tag("Issue", s.issue)
        + tag("Pages", s.pages)
        + strings("Lang", "string", s.langs)
        + tag("NlmUniqueID", s.nlm_unique_id)
        + tag("ISSN", s.issn)
        + tag("ESSN", s.essn)
        + strings("PubType", "flag", s.pubtypes)
        + tag("RecordStatus", s.record_status)
        + tag("PubStatus", s.pub_status)
        + f"\t<ArticleIds>\n{ids}\t</ArticleIds>\n"
        + tag("FullJournalName", s.full_journal_name)
        + tag("ELocationID", s.elocation_id)
        + tag("DocType", "citation")
        + tag("SortPubDate", s.sort_pub_date)
        + "</DocumentSummary>\n"
    )


# --------------------------------------------------------------------------------------------
# Answers, faults, rate limiting
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Answer:
    """An HTTP answer whose body is kept as parts (record XML is never copied into one string)."""

    status: int
    content_type: str
    parts: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    ids_served: int = 0

    @property
    def length(self) -> int:
        return sum(len(p) for p in self.parts)


def _xml(text: str, status: int = 200) -> _Answer:
    return _Answer(status, _XML_TYPE, [text.encode("utf-8")])


def _json(payload: object, status: int = 200) -> _Answer:
    return _Answer(status, _JSON_TYPE, [json.dumps(payload, separators=(",", ":")).encode("utf-8")])


def _html_error(status: int) -> _Answer:
    title, heading, message = _HTML_ERRORS[status]
    body = (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
        f"<title>{title}</title>\n</head><body>\n<h1>{heading}</h1>\n<p>{message}</p>\n</body></html>\n"
    )
    return _Answer(status, _HTML_TYPE, [body.encode("utf-8")])


def _error_xml(endpoint: str, message: str, status: int = 200) -> _Answer:
    """An E-utility's ``<ERROR>`` body in that utility's result element, as NCBI words it."""
    error = f"<ERROR>{_esc(message)}</ERROR>"
    if endpoint == "esearch":
        return _xml(f"{_ESEARCH_HEAD}<eSearchResult>{error}</eSearchResult>\n", status)
    if endpoint == "epost":
        return _xml(f"{_EPOST_HEAD}\n<ePostResult>\n\t{error}\n</ePostResult>\n", status)
    if endpoint == "esummary":
        return _xml(f"{_ESUMMARY_V1_HEAD}<eSummaryResult>\n\t{error}\n</eSummaryResult>\n", status)
    return _xml(f"{_EFETCH_ERROR_HEAD}<eFetchResult>\n\t{error}\n</eFetchResult>", status)


@dataclass(slots=True)
class _Fault:
    kind: str
    remaining: int
    endpoint: str | None
    params: dict[str, Any]

    def matches(self, endpoint: str) -> bool:
        if self.kind == "omit" and endpoint != "efetch":
            return False
        return self.endpoint is None or self.endpoint == endpoint


def _endpoint_name(path: str) -> str:
    """``efetch``, ``efetch.fcgi`` and ``/entrez/eutils/efetch.fcgi`` all name ``efetch``."""
    return path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".fcgi")


class _RateLimiter:
    """NCBI-style sliding one-second windows, one per caller (an IP, or an API key)."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, caller: str, limit: float | None) -> tuple[bool, int]:
        """Count a request; returns (allowed, requests in the window including this one).

        Refused requests do not enter the window, as a caller that backs off gets through again.
        """
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(caller, deque())
            while hits and now - hits[0] >= 1.0:
                hits.popleft()
            count = len(hits) + 1
            if limit is not None and count > limit:
                return False, count
            hits.append(now)
            return True, count


def _ids_from(params: dict[str, list[str]]) -> list[str]:
    """All comma-separated values of (possibly repeated) ``id`` parameters, blanks dropped."""
    return [part.strip() for value in params.get("id", ()) for part in value.split(",") if part.strip()]


def _well_formed(uid: str) -> bool:
    return uid.isascii() and uid.isdigit() and 0 < int(uid) <= MAX_UID


def _first(params: dict[str, list[str]], name: str, default: str = "") -> str:
    values = params.get(name)
    return values[0].strip() if values else default


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    value = _first(params, name)
    return int(value) if value.isdigit() else default


def _dedupe(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: EutilsServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early is routine here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_STAT_COUNTS = ("requests", *ENDPOINTS, "other", "429", "faults_served", "ids_fetched")


class EutilsServer:
    """PubMed E-utilities over local XML files, on a loopback port, in a background thread.

    ``rate``/``api_key_rate``: requests per second allowed per IP without a key / per API key
    (None disables the limit). ``valid_api_keys``: when given, other keys get HTTP 400.
    ``max_esearch``: how many hits of a search can be paged through (NCBI: 9,999).
    ``translation_stack``: add a TranslationStack to esearch answers, as Entrez's other
    databases (PMC, protein, ...) still do; PubMed's own esearch dropped it (2020).
    ``time_source``: "today" for ``reldate`` (default :meth:`datetime.date.today`).
    ``verbose``: log each request to stderr (with ``api_key=***``).
    """

    def __init__(
        self,
        paths: Iterable[str | Path] = (),
        *,
        rate: float | None = 3.0,
        api_key_rate: float | None = 10.0,
        host: str = "127.0.0.1",
        port: int = 0,
        max_esearch: int = 9999,
        translation_stack: bool = False,
        time_source: Callable[[], dt.date] | None = None,
        valid_api_keys: Collection[str] | None = None,
        verbose: bool = False,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self.rate = rate
        self.api_key_rate = api_key_rate
        self.max_esearch = max_esearch
        self.translation_stack = translation_stack
        self.valid_api_keys = frozenset(valid_api_keys) if valid_api_keys is not None else None
        self.verbose = verbose
        self._requested_port = port
        self._time_source = time_source or dt.date.today
        self._lock = threading.RLock()
        self._records: dict[int, _Record] = {}
        self._history: dict[str, list[tuple[int, ...]]] = {}
        self._faults: list[_Fault] = []
        self._counts: Counter[str] = Counter()
        self._log: list[dict[str, Any]] = []
        self._limiter = _RateLimiter()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.load(*paths)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EutilsServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the E-utilities stand-in is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="eutils-stand-in",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (answers being slowed down are cut short)."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> EutilsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the E-utilities stand-in is not running: call start() first")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What KB_EUTILS_URL is set to, e.g. ``http://127.0.0.1:41234/entrez/eutils/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{EUTILS_PREFIX}"

    # -- records -----------------------------------------------------------------------------

    def load(self, *paths: str | Path) -> None:
        """Add or replace records from files/folders; later PMIDs win, DeleteCitation removes."""
        self._apply(paths, replace=False)

    def replace_records(self, *paths: str | Path) -> None:
        """Serve exactly the records of ``paths`` (e.g. a "before" and an "after" state)."""
        self._apply(paths, replace=True)

    def _apply(self, paths: Sequence[str | Path], *, replace: bool) -> None:
        """Read every file first (a bad file changes nothing), then apply them in order."""
        operations = [op for path in _expand_paths(paths) for op in _read_file(path)]
        with self._lock:
            if replace:
                self._records = {}
            for op in operations:
                if isinstance(op, _Record):
                    self._records[op.pmid] = op
                else:
                    for pmid in op:
                        self._records.pop(pmid, None)

    def add_record_xml(
        self, xml: str | bytes, *, edat: dt.date | None = None, mdat: dt.date | None = None
    ) -> int:
        """Add or replace one ``<PubmedArticle>``/``<PubmedBookArticle>``; returns its PMID."""
        data = xml.encode("utf-8") if isinstance(xml, str) else xml
        root = etree.fromstring(data, etree.XMLParser(**_XML_PARSER_OPTIONS))
        record = _index_record(root) if root.tag in _ARTICLE_TAGS else None
        if record is None:
            raise ValueError("expected one <PubmedArticle> or <PubmedBookArticle> with a PMID")
        record = dataclasses.replace(record, edat=edat or record.edat, mdat=mdat or record.mdat)
        with self._lock:
            self._records[record.pmid] = record
        return record.pmid

    def add_copies(self, pmids: Iterable[int], like: int) -> None:
        """Serve every PMID of ``pmids`` as a copy of the served record ``like``: searches find
        each with ``like``'s texts and dates, and efetch answers with ``like``'s XML as it is (its
        PMID is not rewritten, and no memory is spent per copy on XML). For scale runs where
        records are counted and searched, not fetched: a million tracked studies of which a few
        change (scripts/bench_search.py --refresh). Raises KeyError when ``like`` is not served."""
        with self._lock:
            template = self._records[int(like)]
            for pmid in pmids:
                self._records[int(pmid)] = dataclasses.replace(template, pmid=int(pmid))

    def set_dates(
        self,
        pmid: int,
        *,
        edat: dt.date | None = None,
        mdat: dt.date | None = None,
        pdat: dt.date | None = None,
    ) -> None:
        """Override the dates esearch filters and sorts on, until the record is loaded again.

        Raises KeyError for a PMID that is not served.
        """
        with self._lock:
            record = self._records[int(pmid)]
            self._records[record.pmid] = dataclasses.replace(
                record, edat=edat or record.edat, mdat=mdat or record.mdat, pdat=pdat or record.pdat
            )

    @property
    def pmids(self) -> list[int]:
        """The PMIDs being served, ascending."""
        with self._lock:
            return sorted(self._records)

    # -- faults and stats --------------------------------------------------------------------

    def inject(self, fault: str, *, count: int = 1, path: str | None = None, **params: Any) -> None:
        """Queue a fault for the next ``count`` requests to ``path`` (an endpoint; None = any).

        Faults are served after rate limiting. Kinds: ``500``/``502``/``503`` (HTML error page),
        ``429`` (as when over the rate), ``slow`` (wait ``seconds=5``, then answer), ``truncate``
        (full Content-Length, half the body, then close), ``reset`` (close without answering),
        ``error`` (200 with the utility's ``<ERROR>``; ``message=``), ``omit`` (efetch only:
        leave out the last ``n=1`` records).
        """
        kind = str(fault)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        unknown = set(params) - _FAULT_PARAMS.get(kind, set())
        if unknown:
            raise ValueError(f"fault {kind!r} takes no parameter(s) {sorted(unknown)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        endpoint = _endpoint_name(path) if path else None
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {path!r}; expected one of {ENDPOINTS}")
        with self._lock:
            self._faults.append(_Fault(kind, count, endpoint, dict(params)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def stats(self) -> dict[str, Any]:
        """What was asked since the last reset.

        Counts: ``requests`` (every E-utility request, 429s included), one per endpoint,
        ``other`` (E-utilities the stand-in lacks), ``429``, ``faults_served``, ``ids_fetched``
        (records in complete efetch answers); and ``log``: one dict per request with
        ``endpoint``, ``method``, ``params`` (``api_key`` shown as ``***``), ``status`` (None when
        the connection was reset) and ``fault``.
        """
        with self._lock:
            counts = {name: self._counts[name] for name in _STAT_COUNTS}
            return {**counts, "log": [dict(entry) for entry in self._log]}

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()

    # -- request handling (called from the handler threads) ----------------------------------

    def _serve(
        self, endpoint: str, method: str, params: dict[str, list[str]], client_ip: str
    ) -> tuple[_Answer | None, bool]:
        """Answer one E-utility request: (the answer, None to reset the connection; truncate?)."""
        api_key = _first(params, "api_key")
        caller, limit = (api_key, self.api_key_rate) if api_key else (client_ip, self.rate)
        nominal = limit if limit is not None else (NCBI_API_KEY_RATE if api_key else NCBI_KEYLESS_RATE)
        fault: _Fault | None = None
        count = 0
        answer: _Answer | None
        if api_key and self.valid_api_keys is not None and api_key not in self.valid_api_keys:
            answer = _json(
                {"error": "API key invalid", "api-key": api_key, "type": "api-key", "status": "unknown"},
                400,
            )
        else:
            allowed, count = self._limiter.hit(caller, limit)
            fault = self._take_fault(endpoint) if allowed else None
            if not allowed or (fault is not None and fault.kind == "429"):
                answer = _too_many(caller, count, nominal)
            else:
                answer = self._answer_or_fault(endpoint, params, fault)
        truncate = fault is not None and fault.kind == "truncate"
        if answer is not None:
            answer.headers.setdefault("X-RateLimit-Limit", f"{nominal:g}")
            answer.headers.setdefault("X-RateLimit-Remaining", str(max(0, int(nominal) - count)))
        self._record_request(endpoint, method, params, answer, fault, truncate)
        return answer, truncate

    def _answer_or_fault(
        self, endpoint: str, params: dict[str, list[str]], fault: _Fault | None
    ) -> _Answer | None:
        kind = fault.kind if fault is not None else None
        options = fault.params if fault is not None else {}
        if kind in ("500", "502", "503"):
            return _html_error(int(kind))
        if kind == "error":
            return _error_xml(endpoint, str(options.get("message", _MSG_BACKEND)))
        if kind == "reset":
            return None
        if kind == "slow":
            self._stopping.wait(float(options.get("seconds", 5.0)))
        return self._answer(endpoint, params, omit=int(options.get("n", 1)) if kind == "omit" else 0)

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(endpoint):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record_request(
        self,
        endpoint: str,
        method: str,
        params: dict[str, list[str]],
        answer: _Answer | None,
        fault: _Fault | None,
        truncated: bool,
    ) -> None:
        shown = {k: "***" if k == "api_key" else ",".join(v) for k, v in params.items()}
        status = answer.status if answer is not None else None
        with self._lock:
            self._counts["requests"] += 1
            self._counts[endpoint if endpoint in ENDPOINTS else "other"] += 1
            self._counts["429"] += int(status == 429)
            self._counts["faults_served"] += int(fault is not None)
            if answer is not None and not truncated:
                self._counts["ids_fetched"] += answer.ids_served
            self._log.append(
                {
                    "endpoint": endpoint,
                    "method": method,
                    "params": shown,
                    "status": status,
                    "fault": fault.kind if fault is not None else None,
                }
            )

    def _answer(self, endpoint: str, params: dict[str, list[str]], omit: int) -> _Answer:
        if endpoint not in ENDPOINTS:
            message = f"{endpoint} is not served by the E-utilities stand-in\n"
            return _Answer(404, "text/plain; charset=UTF-8", [message.encode()])
        db = _first(params, "db", "pubmed") or "pubmed"
        if db != "pubmed":
            return _error_xml(endpoint, f"Invalid db name specified: {db}")
        if endpoint == "esearch":
            return self._esearch(params)
        if endpoint == "efetch":
            return self._efetch(params, omit)
        if endpoint == "epost":
            return self._epost(params)
        return self._esummary(params)

    # -- history -----------------------------------------------------------------------------

    def _store(self, webenv: str, pmids: Sequence[int]) -> tuple[str, int]:
        """Store PMIDs under ``webenv`` (a new WebEnv if unknown); returns (WebEnv, query_key)."""
        with self._lock:
            if webenv not in self._history:
                webenv = f"MCID_{secrets.token_hex(12)}"
                self._history[webenv] = []
            self._history[webenv].append(tuple(pmids))
            return webenv, len(self._history[webenv])

    def _recall(self, webenv: str, query_key: int) -> tuple[int, ...] | None:
        with self._lock:
            sets = self._history.get(webenv)
            return sets[query_key - 1] if sets and 0 < query_key <= len(sets) else None

    def _history_ids(self, params: dict[str, list[str]], endpoint: str) -> list[int] | _Answer:
        """The slice ``retstart``/``retmax`` of the set at ``WebEnv``/``query_key``, or an error.

        ``query_key`` defaults to 1 and ``retmax`` to (and at most) 10,000.
        """
        key = _int_param(params, "query_key", 1)
        stored = self._recall(_first(params, "webenv"), key)
        if stored is None:
            return _error_xml(endpoint, f"Unable to obtain query #{key}")
        start = _int_param(params, "retstart", 0)
        size = min(_int_param(params, "retmax", EFETCH_MAX_RETMAX), EFETCH_MAX_RETMAX)
        return list(stored[start : start + size])

    # -- the four E-utilities ----------------------------------------------------------------

    def _esearch(self, params: dict[str, list[str]]) -> _Answer:
        as_json = _first(params, "retmode").lower() == "json"
        webenv = _first(params, "webenv")
        term = _first(params, "term")
        if not term and _first(params, "query_key").isdigit():
            term = f"#{_first(params, 'query_key')}"
        node = _TermParser(term).parse()
        if node is None:
            return _esearch_error(_MSG_EMPTY_TERM, as_json)
        with self._lock:
            records = dict(self._records)
        search = _Search(records, lambda key: self._recall(webenv, key))
        node = search.map_terms(node)
        found = search.run(node)
        translation = f"({_translate(node)})"
        stack = search.stack(node) if self.translation_stack else None
        window = self._date_window(params)
        if window is not None:
            datetype, start, stop = window
            found = {p for p in found if start <= getattr(records[p], datetype) <= stop}
            translation += f" AND {start:%Y/%m/%d}:{stop:%Y/%m/%d}[{_FIELD_NAMES[datetype]}]"
        if _first(params, "sort").lower().replace("+", "_").replace(" ", "_") == "pub_date":
            by_date = sorted((records[p] for p in found), key=lambda r: (r.pdat, r.pmid), reverse=True)
            ordered = [r.pmid for r in by_date]
        else:
            ordered = sorted(found, reverse=True)  # PubMed's "most recent": newest PMID first
        count = len(ordered)
        if _first(params, "rettype").lower() == "count":
            if as_json:
                return _json({"header": _JSON_HEADER, "esearchresult": {"count": str(count)}})
            return _xml(f"{_ESEARCH_HEAD}<eSearchResult><Count>{count}</Count></eSearchResult>\n")
        retstart = _int_param(params, "retstart", 0)
        retmax = _int_param(params, "retmax", ESEARCH_DEFAULT_RETMAX)
        cap = self.max_esearch
        # PubMed refuses a retstart past the cap only when there are hits past it; a query with
        # fewer hits just gets an empty page (third-party live probes, 2026).
        if retstart > cap - 1 and count > cap:
            return _esearch_error(_retstart_message(cap), as_json, status=400)
        messages: list[str] = []
        if retmax > cap:
            retmax = max(0, cap - retstart)
            messages.append(f"Restrictions achieved. start and count adjusted to {retstart}, {retmax}")
        page = ordered[retstart : min(retstart + retmax, cap)]
        if count == 0:
            messages.append("No items found.")
        history: tuple[str, int] | None = None
        if _first(params, "usehistory").lower() == "y":
            history = self._store(webenv, ordered)
        if as_json:
            return _esearch_json(count, page, retstart, history, translation, search, messages)
        return _esearch_xml(count, page, retstart, history, translation, search, messages, stack)

    def _date_window(self, params: dict[str, list[str]]) -> tuple[str, dt.date, dt.date] | None:
        """(datetype, first, last) from ``mindate``+``maxdate`` or ``reldate``; None when absent."""
        datetype = _first(params, "datetype", "pdat").lower()
        if datetype not in _DATE_TYPES:
            datetype = "pdat"
        low, high = _first(params, "mindate"), _first(params, "maxdate")
        if low and high:
            start, stop = _parse_date(low, end=False), _parse_date(high, end=True)
            return (datetype, start, stop) if start and stop else None
        reldate = _first(params, "reldate")
        if reldate.isdigit():
            today = self._time_source()
            today = today.date() if isinstance(today, dt.datetime) else today
            return datetype, today - dt.timedelta(days=int(reldate)), today
        return None

    def _efetch(self, params: dict[str, list[str]], omit: int) -> _Answer:
        retmode = _first(params, "retmode", "xml").lower()
        rettype = _first(params, "rettype", "abstract").lower()
        if retmode != "xml" or rettype not in ("abstract", "xml"):
            return _Answer(200, _XML_TYPE, [])  # what NCBI sends for a rettype it does not know
        if "id" in params:
            raw = _ids_from(params)
            if not raw:
                return _error_xml("efetch", _MSG_ID_EMPTY)
            wanted = _dedupe(int(uid) for uid in raw if _well_formed(uid))
            if not wanted:
                return _error_xml("efetch", _MSG_NO_CORRECT_IDS, 400)
        elif _first(params, "webenv"):
            found = self._history_ids(params, "efetch")
            if isinstance(found, _Answer):
                return found
            wanted = found
        else:
            return _error_xml("efetch", _MSG_NO_CORRECT_IDS, 400)
        with self._lock:
            records = [self._records[p] for p in wanted if p in self._records]
        if omit:
            records = records[: max(0, len(records) - omit)]
        if not records:
            return _Answer(200, _XML_TYPE, [_PUBMED_HEAD, _PUBMED_FOOT])
        parts = [_PUBMED_HEAD, b"\n"]
        for record in records:
            parts += (record.xml, b"\n")
        parts.append(_PUBMED_FOOT)
        return _Answer(200, _XML_TYPE, parts, ids_served=len(records))

    def _epost(self, params: dict[str, list[str]]) -> _Answer:
        raw = _ids_from(params)
        valid = _dedupe(int(uid) for uid in raw if _well_formed(uid))
        invalid = [uid for uid in raw if not _well_formed(uid)]
        # Invalid IDs are named in an <ERROR>, no longer in an <InvalidIdList> (NCBI's epost3.xml
        # in ../shared/corpus/eutils); the valid ones are stored all the same.
        errors = [_MSG_EPOST_INVALID] if invalid else []
        if not valid:
            body = "".join(f"\n\t<ERROR>{_esc(e)}</ERROR>" for e in [_MSG_EPOST_EMPTY, *errors])
            return _xml(f"{_EPOST_HEAD}<ePostResult>{body}</ePostResult>\n")
        webenv, key = self._store(_first(params, "webenv"), valid)
        body = f"\n\t<QueryKey>{key}</QueryKey>\n\t<WebEnv>{webenv}</WebEnv>"
        body += "".join(f"\n\t<ERROR>{_esc(e)}</ERROR>" for e in errors)
        return _xml(f"{_EPOST_HEAD}<ePostResult>{body}\n</ePostResult>\n")

    def _esummary(self, params: dict[str, list[str]]) -> _Answer:
        if "id" in params:
            wanted = _dedupe(int(uid) for uid in _ids_from(params) if _well_formed(uid))
        elif _first(params, "query_key") and _first(params, "webenv"):
            found = self._history_ids(params, "esummary")
            if isinstance(found, _Answer):
                return found
            wanted = found
        else:
            return _error_xml("esummary", _MSG_NO_ID_NOR_KEY)
        if not wanted:
            return _error_xml("esummary", _MSG_NO_CORRECT_IDS)
        with self._lock:
            found_records = {p: self._records.get(p) for p in wanted}
        if _first(params, "version") == "2.0":
            docs = "".join(
                _docsum_v2(_summarize(r)) if r is not None else _MISSING_SUMMARY_V2.format(uid=p)
                for p, r in found_records.items()
            )
            return _xml(
                f'{_ESUMMARY_V2_HEAD}<eSummaryResult>\n<DocumentSummarySet status="OK">\n'
                f"<DbBuild>Build-stand-in</DbBuild>\n{docs}</DocumentSummarySet>\n</eSummaryResult>\n"
            )
        docs = "".join(
            _docsum_v1(_summarize(r)) if r is not None else _MISSING_SUMMARY_V1.format(uid=p)
            for p, r in found_records.items()
        )
        return _xml(f"{_ESUMMARY_V1_HEAD}<eSummaryResult>\n{docs}\n</eSummaryResult>\n")

    # -- admin (JSON over HTTP; neither rate limited nor counted) -----------------------------

    def _admin(self, method: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            if (method, name) == ("POST", "faults"):
                options = {k: v for k, v in body.items() if k not in ("fault", "count", "path")}
                count = int(body.get("count", 1))
                self.inject(str(body["fault"]), count=count, path=body.get("path"), **options)
                return 200, {"ok": True}
            if (method, name) == ("DELETE", "faults"):
                self.clear_faults()
                return 200, {"ok": True}
            if (method, name) == ("GET", "stats"):
                return 200, self.stats()
            if (method, name) == ("POST", "reset"):
                self.reset_stats()
                return 200, {"ok": True}
            if (method, name) == ("POST", "load"):
                paths = [str(p) for p in body.get("paths", [])]
                (self.replace_records if body.get("replace") else self.load)(*paths)
                return 200, {"ok": True, "records": len(self.pmids)}
        except (KeyError, TypeError, ValueError, OSError, etree.XMLSyntaxError) as exc:
            return 400, {"error": f"{type(exc).__name__}: {exc}"}
        return 404, {"error": f"no admin endpoint {method} /admin/{name}"}


_JSON_HEADER = {"type": "esearch", "version": "0.3"}
_MISSING_SUMMARY_V1 = "<ERROR>UID={uid}: cannot get document summary</ERROR>\n"
_MISSING_SUMMARY_V2 = (
    '<DocumentSummary uid="{uid}">\n\t<error>cannot get document summary</error>\n</DocumentSummary>\n'
)


def _too_many(caller: str, count: int, limit: float) -> _Answer:
    """NCBI's 429: JSON naming the caller (IP or key), the requests in the window and the limit."""
    body = {"error": "API rate limit exceeded", "api-key": caller, "count": str(count)}
    answer = _json({**body, "limit": f"{limit:g}"}, 429)
    answer.headers.update({"Retry-After": str(RETRY_AFTER_SECONDS), "X-RateLimit-Remaining": "0"})
    return answer


def _retstart_message(cap: int) -> str:
    return (
        f"Search Backend failed: Exception:\n'retstart' cannot be larger than {cap - 1}. For PubMed, "
        f"ESearch can only retrieve the first {cap:,} records matching the query. To obtain more "
        f"than {cap:,} PubMed records, consider using EDirect that contains additional logic to batch "
        "PubMed search results automatically so that an arbitrary number can be retrieved. For details "
        "see https://www.ncbi.nlm.nih.gov/books/NBK25499/"
    )


def _esearch_error(message: str, as_json: bool, status: int = 200) -> _Answer:
    if as_json:
        return _json({"header": _JSON_HEADER, "esearchresult": {"ERROR": message}}, status)
    return _error_xml("esearch", message, status)


def _esearch_xml(
    count: int,
    page: list[int],
    retstart: int,
    history: tuple[str, int] | None,
    translation: str,
    search: _Search,
    messages: list[str],
    stack: list[_TermSet | str] | None,
) -> _Answer:
    """NCBI's esearch XML, down to where it puts (and does not put) whitespace."""
    parts = [f"<Count>{count}</Count><RetMax>{len(page)}</RetMax><RetStart>{retstart}</RetStart>"]
    if history is not None:
        parts.append(f"<QueryKey>{history[1]}</QueryKey><WebEnv>{history[0]}</WebEnv>")
    ids = "".join(f"<Id>{p}</Id>\n" for p in page)
    parts.append(f"<IdList>\n{ids}</IdList>" if page else "<IdList/>")
    translations = "".join(
        f"<Translation>     <From>{_esc(low)}</From>     <To>{_esc(high)}</To>    </Translation>"
        for low, high in search.translations
    )
    parts.append(f"<TranslationSet>{translations}</TranslationSet>" if translations else "<TranslationSet/>")
    if stack is not None:
        items = "".join(
            f"   <OP>{item}</OP>"
            if isinstance(item, str)
            else f"   <TermSet>    <Term>{_esc(item.term)}</Term>    <Field>{_esc(item.field)}</Field>"
            f"    <Count>{item.count}</Count>    <Explode>{item.explode}</Explode>   </TermSet>"
            for item in stack
        )
        parts.append(f"<TranslationStack>{items}  </TranslationStack>")
    parts.append(f"<QueryTranslation>{_esc(translation)}</QueryTranslation>")
    errors = [f"<PhraseNotFound>{_esc(p)}</PhraseNotFound>" for p in search.phrases_not_found]
    errors += [f"<FieldNotFound>{_esc(f)}</FieldNotFound>" for f in search.fields_not_found]
    if errors:
        parts.append(f"<ErrorList>{''.join(errors)}</ErrorList>")
    warnings = [
        f"<QuotedPhraseNotFound>{_esc(p)}</QuotedPhraseNotFound>" for p in search.quoted_not_found
    ]
    warnings += [f"<OutputMessage>{_esc(m)}</OutputMessage>" for m in messages]
    if warnings:
        parts.append(f"<WarningList>{''.join(warnings)}</WarningList>")
    return _xml(f"{_ESEARCH_HEAD}<eSearchResult>{''.join(parts)}</eSearchResult>\n")


def _esearch_json(
    count: int,
    page: list[int],
    retstart: int,
    history: tuple[str, int] | None,
    translation: str,
    search: _Search,
    messages: list[str],
) -> _Answer:
    result: dict[str, Any] = {"count": str(count), "retmax": str(len(page)), "retstart": str(retstart)}
    if history is not None:
        result.update({"querykey": str(history[1]), "webenv": history[0]})
    result["idlist"] = [str(p) for p in page]
    result["translationset"] = [{"from": low, "to": high} for low, high in search.translations]
    result["querytranslation"] = translation
    if search.phrases_not_found or search.fields_not_found:
        result["errorlist"] = {
            "phrasesnotfound": search.phrases_not_found,
            "fieldsnotfound": search.fields_not_found,
        }
    if search.quoted_not_found or messages:
        result["warninglist"] = {
            "phrasesignored": [],
            "quotedphrasesnotfound": search.quoted_not_found,
            "outputmessages": messages,
        }
    return _json({"header": _JSON_HEADER, "esearchresult": result})


def _check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: this server has no access control."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to bind {host!r}: the E-utilities stand-in listens on loopback only "
            "(127.0.0.1, ::1, localhost)"
        )


class _Handler(BaseHTTPRequestHandler):
    """Parses requests, hands them to the :class:`EutilsServer`, writes (or sabotages) answers."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "kb-eutils-stand-in"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Request lines go to stderr only with ``verbose``, and never with an API key in them."""
        if self.server.app.verbose:
            line = f"{self.address_string()} - [{self.log_date_time_string()}] {format % args}\n"
            sys.stderr.write(_mask_api_key(line))

    def _dispatch(self, method: str) -> None:
        try:
            path = urlsplit(self.path).path
            body = self._read_body()
            if path.startswith(ADMIN_PREFIX):
                self._do_admin(method, path.removeprefix(ADMIN_PREFIX).strip("/"), body)
            elif path.startswith(EUTILS_PREFIX) and method in ("GET", "POST"):
                self._do_eutils(method, path.removeprefix(EUTILS_PREFIX), body)
            else:
                self._send(_Answer(404, "text/plain; charset=UTF-8", [b"not found\n"]))
        except ConnectionError:
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug in the stand-in must show; the client gets a 500
            traceback.print_exc()
            message = b"internal error in the E-utilities stand-in\n"
            self._send(_Answer(500, "text/plain; charset=UTF-8", [message]))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _do_eutils(self, method: str, name: str, body: bytes) -> None:
        """GET query and form-encoded POST body both count; parameter names are case-insensitive."""
        params: dict[str, list[str]] = {}
        sources = [urlsplit(self.path).query]
        if body and self.headers.get_content_type() == "application/x-www-form-urlencoded":
            sources.append(body.decode("utf-8", "replace"))
        for source in sources:
            for key, values in parse_qs(source, keep_blank_values=True).items():
                params.setdefault(key.lower(), []).extend(values)
        endpoint = name.removesuffix(".fcgi")
        answer, truncate = self.server.app._serve(endpoint, method, params, self.client_address[0])
        if answer is None:  # the "reset" fault: close the connection without a word
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        self._send(answer, truncate=truncate)

    def _do_admin(self, method: str, name: str, body: bytes) -> None:
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            status, result = 400, {"error": "the body must be a JSON object"}
        else:
            status, result = self.server.app._admin(method, name, payload)
        self._send(_json(result, status))

    def _send(self, answer: _Answer, *, truncate: bool = False) -> None:
        """Write the answer; with ``truncate`` announce the full length but send only half."""
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(answer.length))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        budget = answer.length // 2 if truncate else answer.length
        for part in answer.parts:
            if budget <= 0:
                break
            self.wfile.write(part[:budget])
            budget -= len(part)
        self.wfile.flush()
        if truncate:
            self.close_connection = True


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _fault_spec(text: str) -> tuple[str, int, str | None]:
    """``KIND[:COUNT][@ENDPOINT]``, e.g. ``500:2@efetch``."""
    spec, _, endpoint = text.partition("@")
    kind, _, count = spec.partition(":")
    if kind not in FAULT_KINDS or (count and not count.isdigit()):
        kinds = ", ".join(sorted(FAULT_KINDS))
        raise argparse.ArgumentTypeError(f"expected KIND[:COUNT][@ENDPOINT] with KIND one of {kinds}")
    return kind, int(count or 1), endpoint or None


def _rate(text: str) -> float | None:
    value = float(text)
    return value if value > 0 else None


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kb.testing.eutils",
        description="Serve PubMed XML files as a local stand-in for NCBI E-utilities (KB_EUTILS_URL).",
    )
    add = parser.add_argument
    add("paths", nargs="*", metavar="PATH", help="PubMed XML files or folders (.xml, .xml.gz)")
    add("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8080, help="port; 0 picks a free one (default 8080)")
    add("--rate", type=_rate, default=3.0, help="requests/s per IP without api_key; 0: no limit")
    add("--api-key-rate", type=_rate, default=10.0, help="requests/s per api_key; 0: no limit")
    add("--valid-api-key", action="append", metavar="KEY", help="accept only these keys (repeat)")
    add("--max-esearch", type=int, default=9999, help="esearch hits that can be paged (NCBI: 9999)")
    add(
        "--translation-stack",
        action="store_true",
        help="add a TranslationStack to esearch answers (as PMC's esearch; PubMed's has none)",
    )
    add(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="KIND[:COUNT][@ENDPOINT]",
        help=f"queue a fault at start (repeat); KIND: {', '.join(sorted(FAULT_KINDS))}",
    )
    add("--verbose", action="store_true", help="log requests to stderr (api_key masked)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until Ctrl-C or SIGTERM."""
    parser = _argument_parser()
    args = parser.parse_args(argv)
    try:
        server = EutilsServer(
            args.paths,
            rate=args.rate,
            api_key_rate=args.api_key_rate,
            host=args.host,
            port=args.port,
            max_esearch=args.max_esearch,
            translation_stack=args.translation_stack,
            valid_api_keys=args.valid_api_key,
            verbose=args.verbose,
        )
    except (ValueError, OSError, etree.XMLSyntaxError) as exc:
        parser.error(str(exc))
    for kind, count, endpoint in args.fault:
        server.inject(kind, count=count, path=endpoint)
    try:
        server.start()
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc}")
    print(
        f"serving {len(server.pmids)} records on {server.base_url} — set KB_EUTILS_URL to this",
        file=sys.stderr,
        flush=True,
    )
    return serve_until_signalled(server.stop)


if __name__ == "__main__":
    sys.exit(main())
