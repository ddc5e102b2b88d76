"""PubMed's query syntax, the part kb and its tests use: parsing, term mapping, evaluation."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from kb.testing.eutils.records import _Record


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
