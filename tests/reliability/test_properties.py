"""Property-based round trips (issue 7, scenario 3), on SQLite and PostgreSQL.

Hypothesis generates PubMed records -- PMIDs and versions; titles and abstract sections with inline
``<i>``/``<b>``/``<sup>``/``<sub>``/``<u>`` markup, nested, around arbitrary Unicode (astral and
combining characters, NBSP, U+2028, noncharacters, XML metacharacters; only code points XML 1.0
allows); authors with collective names, suffixes, affiliations and ORCIDs written every way PubMed
writes them (and invalid ones); investigators; MeSH headings with qualifiers and major flags;
keywords; publication types; dates (Year/Month/Day with month names, abbreviations and numbers,
seasons, MedlineDate ranges, impossible days); comments/corrections -- writes each as XML, parses it
with :func:`kb.pubmed.parse.iter_pubmed_xml`, stores it with :func:`kb.store.store_records`, reads
every row back from the database and compares it field by field with what was generated.

The documented normalisation the comparison applies:

* mixed-content text (titles, abstract sections, collective names, keywords, affiliations): runs of
  XML whitespace (space, tab, CR, LF) collapse to one space and are stripped at the ends; other
  spaces (NBSP, U+2028 …) are kept. The markup form keeps the inline tags, with ``&``, ``<``, ``>``
  escaped. A title with no text at all is "" (markup too);
* leaf text (names, UIs, codes, the journal fields, attribute values): stripped (``str.strip``);
* ORCIDs: the bare hyphenated form with an upper-case check character, from a URL, a compact or a
  spaced form; anything else is no ORCID (the first valid one of an author counts);
* dates: the year only when within 1..9999, the day only with a month (1..31), impossible dates none.

Also: storing the same record again reports it unchanged (no revision); changing one generated
part reports it updated, with that part's field(s) in ``study_revisions.changed_fields``.

Cards: Hypothesis generates curated cards in issue 12's layout -- every paragraph field (one or more
paragraphs), bullets with labels in every list and without where the layout allows it, study
details, study type, reference title and year (or none), text of arbitrary Unicode with Jinja2 and HTML syntax, Markdown metacharacters, the
format's own words (``Quick Summary:``, ``Year: 2020``) inside lines, tabs and inner spaces -- writes
each in kb's card text format (a writer of this module's own, from the layout in
``kb/cards/textformat.py``), imports the file with ``kb curate import`` into the database, and
``kb card`` must print the file again byte for byte; so must importing the card's ``--format md``
form instead. Left out are lines the format reserves: a paragraph that is a heading, looks like one
(a short capitalised phrase without a full stop), starts with ``- `` or a notice mark, or is kb's
source or PMID line.

``max_examples`` comes from ``scaled``; ``derandomize=True`` makes every run the same.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from dataclasses import dataclass, replace
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import models as m
from kb import search, store
from kb.pubmed.parse import iter_pubmed_xml

from .conftest import scaled
from .support import db_url  # noqa: F401 - db_url is a fixture

EXAMPLES = scaled(20, 400)
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,  # nothing written to .hypothesis/ in the tree
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

# --------------------------------------------------------------------------------------------
# Characters and text
# --------------------------------------------------------------------------------------------

XML_SPACE = " \t\n\r"
_ILLEGAL = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
SPECIAL = ["<", ">", "&", '"', "'", "]]>", "&amp;", "é", "e\u0301", "a\u0308\u0304", "𝔘", "😀", "🏳️‍🌈", "\u00a0",
           "\u2028", "\u2029", "\u0085", "\u200b", "\ufeff", "\ufffd", "\ufdd0", "\U0010fffd", "\u202e", "ß", "ﬁ",
           "Ω", "İ", "日本語", "עברית", "\x7f", "\x9f", "%", "\\", ";", "--", "/*"]

any_char = st.characters(exclude_categories=["Cs"], exclude_characters=_ILLEGAL + XML_SPACE)
word = st.one_of(st.text(any_char, min_size=1, max_size=6), st.sampled_from(SPECIAL),
                 st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), min_size=1, max_size=8))
space_run = st.sampled_from([" ", " ", " ", "  ", "\n", " \t ", "\r\n", "\n    "])
INLINE_TAGS = ("i", "b", "sup", "sub", "u")


def collapse(value: str) -> str:
    return re.sub(r"[ \t\n\r]+", " ", value).strip(" ")


@st.composite
def spaced_words(draw: st.DrawFn, min_words: int = 1, max_words: int = 4) -> str:
    words = draw(st.lists(word, min_size=min_words, max_size=max_words))
    out = draw(st.sampled_from(["", "", " ", "\n  "]))
    for i, w in enumerate(words):
        out += (draw(space_run) if i else "") + w
    return out + draw(st.sampled_from(["", "", " ", "\n"]))


@dataclass(frozen=True)
class Mixed:
    """Mixed content: a sequence of text pieces and inline elements."""

    parts: tuple[str | tuple[str, Mixed], ...]

    def xml(self) -> str:
        return "".join(escape(p) if isinstance(p, str) else f"<{p[0]}>{p[1].xml()}</{p[0]}>" for p in self.parts)

    def plain_raw(self) -> str:
        return "".join(p if isinstance(p, str) else p[1].plain_raw() for p in self.parts)

    def markup_raw(self) -> str:
        return "".join(_escape(p) if isinstance(p, str) else f"<{p[0]}>{p[1].markup_raw()}</{p[0]}>"
                       for p in self.parts)

    @property
    def plain(self) -> str:
        return collapse(self.plain_raw())

    @property
    def markup(self) -> str:
        return collapse(self.markup_raw())

    @property
    def has_elements(self) -> bool:
        return any(not isinstance(p, str) for p in self.parts)


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mixed(max_depth: int = 3) -> st.SearchStrategy[Mixed]:
    leaf = spaced_words().map(lambda s: Mixed((s,)))

    def extend(children: st.SearchStrategy[Mixed]) -> st.SearchStrategy[Mixed]:
        piece = st.one_of(spaced_words(), st.tuples(st.sampled_from(INLINE_TAGS), children))
        return st.lists(piece, min_size=1, max_size=4).map(lambda ps: Mixed(tuple(ps)))

    return st.recursive(leaf, extend, max_leaves=5)


leaf_text = spaced_words(1, 4)  # leaf elements: stripped, inner spacing kept as written
plain_code = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), min_size=1, max_size=10)
ui = st.builds(lambda p, n: f"{p}{n:06d}", st.sampled_from("DQC"), st.integers(0, 999_999))


def leaf(value: str | None, *, attribute: bool = False) -> str | None:
    """What the parser keeps of a leaf element's text (XML turns CR LF and CR into LF in text; an
    attribute written with quoteattr keeps them as character references), stripped."""
    if value and not attribute:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return (value.strip() or None) if value else None


# --------------------------------------------------------------------------------------------
# The generated record
# --------------------------------------------------------------------------------------------


@st.composite
def orcids(draw: st.DrawFn) -> tuple[str, str | None]:
    """(as written in the XML, the normalised ORCID or None)."""
    if draw(st.integers(0, 5)) == 0:
        bad = draw(st.sampled_from(["1234", "0000-0002-9948-47834", "abcd-efgh-ijkl-mnop", "0000-0002-9948-478Y",
                                    "https://orcid.org/", "", "００００-０００２-９９４８-４７８３"]))
        return bad, None
    digits = draw(st.text(st.sampled_from("0123456789"), min_size=15, max_size=15))
    check = draw(st.sampled_from("0123456789Xx"))
    compact = digits + check
    hyphenated = "-".join(compact[i:i + 4] for i in range(0, 16, 4))
    form = draw(st.sampled_from([
        hyphenated, compact, f"https://orcid.org/{hyphenated}", f"http://orcid.org/{compact}",
        f"orcid.org/{hyphenated}", f"https://ORCID.org/{hyphenated}", " ".join(compact[i:i + 4] for i in range(0, 16, 4)),
        f"  {hyphenated}\n", f"https://www.orcid.org/{hyphenated}",
    ]))
    return form, hyphenated.upper()


@dataclass(frozen=True)
class GenAuthor:
    last: str | None = None
    fore: str | None = None
    initials: str | None = None
    suffix: str | None = None
    collective: Mixed | None = None
    orcids: tuple[tuple[str, str | None], ...] = ()
    affiliations: tuple[Mixed, ...] = ()
    investigator: bool = False

    def xml(self) -> str:
        tag = "Investigator" if self.investigator else "Author"
        parts = []
        if self.collective is not None:
            parts.append(f"<CollectiveName>{self.collective.xml()}</CollectiveName>")
        for name, value in (("LastName", self.last), ("ForeName", self.fore), ("Initials", self.initials),
                            ("Suffix", self.suffix)):
            if value is not None:
                parts.append(f"<{name}>{escape(value)}</{name}>")
        for written, _ in self.orcids:
            parts.append(f'<Identifier Source="ORCID">{escape(written)}</Identifier>')
        for affiliation in self.affiliations:
            parts.append(f"<AffiliationInfo><Affiliation>{affiliation.xml()}</Affiliation></AffiliationInfo>")
        return f'<{tag} ValidYN="Y">{"".join(parts)}</{tag}>'

    def expected(self) -> dict[str, Any]:
        orcid = next((norm for _, norm in self.orcids if norm), None)
        return {
            "last_name": leaf(self.last), "fore_name": leaf(self.fore), "initials": leaf(self.initials),
            "suffix": leaf(self.suffix),
            "collective_name": (self.collective.plain or None) if self.collective is not None else None,
            "orcid": orcid, "affiliations": [a.plain for a in self.affiliations if a.plain],
            "is_investigator": self.investigator,
        }


@st.composite
def authors(draw: st.DrawFn, investigator: bool = False) -> GenAuthor:
    if draw(st.integers(0, 4)) == 0:
        return GenAuthor(collective=draw(mixed()), orcids=(), investigator=investigator)
    short = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=3)
    return GenAuthor(
        last=draw(leaf_text),
        fore=draw(st.none() | leaf_text),
        initials=draw(st.none() | short),
        suffix=draw(st.none() | st.sampled_from(["Jr", "Sr", "II", "III", " 2nd "])),
        orcids=tuple(draw(st.lists(orcids(), max_size=2))),
        affiliations=tuple(draw(st.lists(mixed(), max_size=1))),
        investigator=investigator,
    )


@dataclass(frozen=True)
class GenMesh:
    ui: str
    name: str
    major: bool
    qualifiers: tuple[tuple[str, str, bool], ...]

    def xml(self) -> str:
        quals = "".join(f'<QualifierName UI="{q}" MajorTopicYN="{"Y" if mj else "N"}">{escape(n)}</QualifierName>'
                        for q, n, mj in self.qualifiers)
        return (f'<MeshHeading><DescriptorName UI="{self.ui}" MajorTopicYN="{"Y" if self.major else "N"}">'
                f"{escape(self.name)}</DescriptorName>{quals}</MeshHeading>")

    def expected(self) -> dict[str, Any]:
        return {"descriptor_ui": self.ui, "descriptor_name": leaf(self.name) or "",
                "is_major": self.major or any(q[2] for q in self.qualifiers),
                "qualifiers": [{"ui": q, "name": leaf(n) or "", "is_major": mj} for q, n, mj in self.qualifiers]}


mesh = st.builds(GenMesh, ui, leaf_text, st.booleans(), st.lists(st.tuples(ui, leaf_text, st.booleans()),
                                                                    max_size=2).map(tuple))

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FULL_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December"]


@st.composite
def pub_dates(draw: st.DrawFn) -> tuple[str, tuple[str, int | None, int | None, int | None]]:
    """(the PubDate XML, expected (text, year, month, day))."""
    year = draw(st.integers(1800, 2030))
    kind = draw(st.sampled_from(["year", "month", "day", "season", "medline", "bad-day", "year-day"]))
    if kind == "year":
        return f"<Year>{year}</Year>", (str(year), year, None, None)
    if kind in ("month", "day", "bad-day"):
        number = draw(st.integers(1, 12))
        month = draw(st.sampled_from([MONTHS[number - 1], FULL_MONTHS[number - 1], f"{number:02d}", str(number),
                                      MONTHS[number - 1].upper()]))
        if kind == "month":
            return f"<Year>{year}</Year><Month>{month}</Month>", (f"{year} {month}", year, number, None)
        day = draw(st.integers(1, 31)) if kind == "day" else draw(st.sampled_from([0, 32, 99, 10**20]))
        expected_day = day if 1 <= day <= 31 else None
        return (f"<Year>{year}</Year><Month>{month}</Month><Day>{day}</Day>",
                (f"{year} {month} {day}", year, number, expected_day))
    if kind == "year-day":  # a day without a month is no day
        return f"<Year>{year}</Year><Day>12</Day>", (f"{year} 12", year, None, None)
    if kind == "season":
        season = draw(st.sampled_from(["Spring", "Summer", "Fall", "Autumn", "Winter"]))
        return f"<Year>{year}</Year><Season>{season}</Season>", (f"{year} {season}", year, None, None)
    a, b = draw(st.integers(0, 11)), draw(st.integers(0, 11))
    medline: list[tuple[str, int | None]] = [
        (f"{year} {MONTHS[a]}-{MONTHS[b]}", a + 1),
        (f"{year}-{year + 1}", None),
        (f"{year} Winter", None),
        (f"{year} {MONTHS[a]} {a + 1}-{a + 10}", a + 1),
        (f"{year} Dec-{year + 1} Jan", 12),
        (f"{year}-{year + 1} {MONTHS[b]}", None),  # the month is read from the first two words only
    ]
    text_, leading_month = draw(st.sampled_from(medline))
    return f"<MedlineDate>{text_}</MedlineDate>", (text_, year, leading_month, None)


@st.composite
def dates(draw: st.DrawFn) -> tuple[tuple[int, int, int], dt.date | None]:
    y, mo, d = draw(st.integers(1900, 2030)), draw(st.integers(1, 12)), draw(st.integers(1, 31))
    try:
        return (y, mo, d), dt.date(y, mo, d)
    except ValueError:
        return (y, mo, d), None


ENTREZ = ' PubStatus="entrez"'
REF_TYPES = ["RetractionIn", "RetractionOf", "ErratumIn", "ErratumFor", "CommentIn", "CommentOn", "UpdateIn",
             "UpdateOf", "ExpressionOfConcernIn", "Cites", "ReprintIn"]


@st.composite
def corrections(draw: st.DrawFn) -> tuple[str, str, str | None, str | None]:
    """(ref_type, ref_source, PMID text or None, note or None)."""
    pmid = draw(st.none() | st.integers(1, 99_999_999).map(str) | st.sampled_from(["0", "123456789", " 42 ", "x1"]))
    return draw(st.sampled_from(REF_TYPES)), draw(leaf_text), pmid, draw(st.none() | leaf_text)


def _ref_pmid(value: str | None) -> int | None:
    value = value.strip() if value else None
    if not value or not value.isdigit():
        return None
    number = int(value)
    return number if 0 < number <= 99_999_999 else None


@dataclass(frozen=True)
class GenRecord:
    pmid: int
    version: int
    title: Mixed
    sections: tuple[tuple[str | None, str | None, Mixed], ...]
    authors: tuple[GenAuthor, ...]
    investigators: tuple[GenAuthor, ...]
    mesh: tuple[GenMesh, ...]
    keywords: tuple[tuple[Mixed, bool], ...]
    keyword_owner: str | None
    pub_types: tuple[tuple[str, str], ...]
    pub_date: tuple[str, tuple[str, int | None, int | None, int | None]]
    revised: tuple[tuple[int, int, int], dt.date | None]
    entrez: tuple[tuple[int, int, int], dt.date | None]
    journal: tuple[str, str | None, str | None, str | None]  # title, ISO abbreviation, volume, issue
    pages: str | None
    languages: tuple[str, ...]
    doi: str | None
    pmc: str | None
    corrections: tuple[tuple[str, str, str | None, str | None], ...]
    status: str

    # -- the XML ---------------------------------------------------------------------------------

    def xml(self) -> str:
        def ymd(tag: str, parts: tuple[int, int, int], attrs: str = "") -> str:
            y, mo, d = parts
            return f"<{tag}{attrs}><Year>{y}</Year><Month>{mo:02d}</Month><Day>{d:02d}</Day></{tag}>"

        title, iso, volume, issue = self.journal
        sections = "".join(
            "<AbstractText"
            + (f" Label={quoteattr(label)}" if label is not None else "")
            + (f' NlmCategory="{category}"' if category is not None else "")
            + f">{body.xml()}</AbstractText>"
            for label, category, body in self.sections
        )
        abstract = f"<Abstract>{sections}</Abstract>" if self.sections else ""
        author_list = (f'<AuthorList CompleteYN="Y">{"".join(a.xml() for a in self.authors)}</AuthorList>'
                       if self.authors else "")
        investigators = (f'<InvestigatorList>{"".join(a.xml() for a in self.investigators)}</InvestigatorList>'
                         if self.investigators else "")
        pub_types = "".join(f'<PublicationType UI="{u}">{escape(n)}</PublicationType>' for u, n in self.pub_types)
        mesh = f'<MeshHeadingList>{"".join(h.xml() for h in self.mesh)}</MeshHeadingList>' if self.mesh else ""
        owner = f" Owner={quoteattr(self.keyword_owner)}" if self.keyword_owner is not None else ""
        keywords = (f"<KeywordList{owner}>"
                    + "".join(f'<Keyword MajorTopicYN="{"Y" if mj else "N"}">{k.xml()}</Keyword>'
                              for k, mj in self.keywords) + "</KeywordList>") if self.keywords else ""
        links = "".join(
            f'<CommentsCorrections RefType="{t}"><RefSource>{escape(src)}</RefSource>'
            + (f'<PMID Version="1">{escape(p)}</PMID>' if p is not None else "")
            + (f"<Note>{escape(n)}</Note>" if n is not None else "") + "</CommentsCorrections>"
            for t, src, p, n in self.corrections
        )
        links = f"<CommentsCorrectionsList>{links}</CommentsCorrectionsList>" if links else ""
        ids = f'<ArticleId IdType="pubmed">{self.pmid}</ArticleId>'
        if self.doi:
            ids += f'<ArticleId IdType="doi">{escape(self.doi)}</ArticleId>'
        if self.pmc:
            ids += f'<ArticleId IdType="pmc">{self.pmc}</ArticleId>'
        optional = "".join(f"<{tag}>{escape(value)}</{tag}>" for tag, value in (("Volume", volume), ("Issue", issue))
                           if value is not None)
        pagination = f"<Pagination><MedlinePgn>{escape(self.pages)}</MedlinePgn></Pagination>" if self.pages else ""
        return (
            f'<PubmedArticle><MedlineCitation Status="{self.status}" Owner="NLM">'
            f'<PMID Version="{self.version}">{self.pmid}</PMID>{ymd("DateRevised", self.revised[0])}'
            f'<Article PubModel="Print"><Journal><ISSN IssnType="Print">1234-5678</ISSN>'
            f'<JournalIssue CitedMedium="Print">{optional}<PubDate>{self.pub_date[0]}</PubDate></JournalIssue>'
            f"<Title>{escape(title)}</Title>"
            + (f"<ISOAbbreviation>{escape(iso)}</ISOAbbreviation>" if iso is not None else "")
            + f"</Journal><ArticleTitle>{self.title.xml()}</ArticleTitle>{pagination}{abstract}{author_list}"
            + "".join(f"<Language>{lang}</Language>" for lang in self.languages)
            + f"<PublicationTypeList>{pub_types}</PublicationTypeList></Article>"
            f"{links}{mesh}{investigators}{keywords}</MedlineCitation>"
            f"<PubmedData><History>{ymd('PubMedPubDate', self.entrez[0], ENTREZ)}</History>"
            f"<PublicationStatus>ppublish</PublicationStatus><ArticleIdList>{ids}</ArticleIdList></PubmedData>"
            "</PubmedArticle>"
        )

    def document(self) -> bytes:
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n{self.xml()}\n</PubmedArticleSet>\n'
                .encode("utf-8"))

    # -- what the database must hold ---------------------------------------------------------------

    def expected(self) -> dict[str, Any]:
        title = self.title.plain
        sections = [
            {"label": leaf(label, attribute=True), "nlm_category": category, "text": body.plain, "text_markup": body.markup}
            for label, category, body in self.sections
        ]
        parts = [f"{s['label']}: {s['text']}" if s["label"] else s["text"] for s in sections]
        journal_title, iso, volume, issue = self.journal
        text_, year, month, day = self.pub_date[1]
        return {
            "studies": {
                "pmid": self.pmid, "pmid_version": self.version, "title": title,
                "title_markup": self.title.markup if title else "",
                "abstract": "\n\n".join(p for p in parts if p) or None,
                "journal_title": leaf(journal_title), "journal_iso_abbrev": leaf(iso), "volume": leaf(volume),
                "issue": leaf(issue), "pages": leaf(self.pages), "pub_date_text": text_, "pub_year": year,
                "pub_month": month, "pub_day": day, "language": ";".join(self.languages) or None,
                "doi": leaf(self.doi), "pmcid": self.pmc, "medline_status": self.status,
                "date_revised": self.revised[1], "entrez_date": self.entrez[1],
            },
            "abstract_sections": sections,
            "authors": [a.expected() for a in (*self.authors, *self.investigators)],
            "publication_types": [{"ui": u, "name": leaf(n) or ""} for u, n in self.pub_types],
            "mesh_headings": [h.expected() for h in self.mesh],
            "keywords": [{"keyword": k.plain, "owner": leaf(self.keyword_owner, attribute=True), "is_major": mj}
                         for k, mj in self.keywords if k.plain],
            "comments_corrections": [{"ref_type": t, "ref_pmid": _ref_pmid(p), "ref_source": leaf(src),
                                      "note": leaf(n)} for t, src, p, n in self.corrections],
            "article_ids": [{"id_type": "pubmed", "value": str(self.pmid)}]
            + ([{"id_type": "doi", "value": leaf(self.doi)}] if leaf(self.doi) else [])
            + ([{"id_type": "pmc", "value": self.pmc}] if self.pmc else []),
        }


@st.composite
def records(draw: st.DrawFn) -> GenRecord:
    return GenRecord(
        pmid=draw(st.integers(1, 99_999_999)),
        version=draw(st.sampled_from([1, 1, 1, 2, 3])),
        title=draw(mixed()),
        sections=tuple(draw(st.lists(st.tuples(
            st.none() | leaf_text,
            st.none() | st.sampled_from(["BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS", "UNASSIGNED"]),
            mixed()), max_size=3))),
        authors=tuple(draw(st.lists(authors(), max_size=3))),
        investigators=tuple(draw(st.lists(authors(investigator=True), max_size=2))),
        mesh=tuple(draw(st.lists(mesh, max_size=3))),
        keywords=tuple(draw(st.lists(st.tuples(mixed(), st.booleans()), max_size=3))),
        keyword_owner=draw(st.none() | st.sampled_from(["NOTNLM", "NLM", "KIE", " NOTNLM "])),
        pub_types=tuple(draw(st.lists(st.tuples(ui, leaf_text), min_size=1, max_size=3))),
        pub_date=draw(pub_dates()),
        revised=draw(dates()),
        entrez=draw(dates()),
        journal=(draw(leaf_text), draw(st.none() | leaf_text), draw(st.none() | plain_code),
                 draw(st.none() | plain_code)),
        pages=draw(st.none() | st.sampled_from(["1-10", "e1234", "S1-S5; quiz S6", "123-45"])),
        languages=tuple(draw(st.lists(st.sampled_from(["eng", "fre", "ger", "spa", "chi", "jpn"]), min_size=1,
                                      max_size=3))),
        doi=draw(st.none() | st.builds(lambda a, b: f"10.{a}/{b}", st.integers(1000, 99999), leaf_text)),
        pmc=draw(st.none() | st.integers(1, 9_999_999).map(lambda n: f"PMC{n}")),
        corrections=tuple(draw(st.lists(corrections(), max_size=2))),
        status=draw(st.sampled_from(["MEDLINE", "PubMed-not-MEDLINE", "In-Process", "Publisher"])),
    )


# --------------------------------------------------------------------------------------------
# Parse, store, read back
# --------------------------------------------------------------------------------------------


def parse(doc: bytes):  # type: ignore[no-untyped-def]
    (record,) = list(iter_pubmed_xml(io.BytesIO(doc), name="generated"))
    return record


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def read_back(conn, pmid: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    columns = {
        "abstract_sections": ("label", "nlm_category", "text", "text_markup"),
        "authors": ("last_name", "fore_name", "initials", "suffix", "collective_name", "orcid", "affiliations",
                    "is_investigator"),
        "publication_types": ("ui", "name"),
        "mesh_headings": ("descriptor_ui", "descriptor_name", "is_major", "qualifiers"),
        "keywords": ("keyword", "owner", "is_major"),
        "comments_corrections": ("ref_type", "ref_pmid", "ref_source", "note"),
        "article_ids": ("id_type", "value"),
    }
    study_cols = ("pmid", "pmid_version", "title", "title_markup", "abstract", "journal_title", "journal_iso_abbrev",
                  "volume", "issue", "pages", "pub_date_text", "pub_year", "pub_month", "pub_day", "language", "doi",
                  "pmcid", "medline_status", "date_revised", "entrez_date")
    row = conn.execute(text(f"SELECT {', '.join(study_cols)} FROM studies WHERE pmid = :p"), {"p": pmid}).one_or_none()
    out: dict[str, Any] = {"studies": dict(zip(study_cols, row)) if row is not None else None}
    for table, cols in columns.items():
        # text_markup is stored only where it differs from text (migration 0011): read it as kb documents.
        select_cols = ", ".join("COALESCE(text_markup, text)" if c == "text_markup" else c for c in cols)
        rows = conn.execute(text(f"SELECT {select_cols} FROM {table} WHERE pmid = :p ORDER BY position"),
                            {"p": pmid}).all()
        out[table] = [{c: (_json(v) if c in ("affiliations", "qualifiers") else
                           bool(v) if c.startswith("is_") else v) for c, v in zip(cols, r)} for r in rows]
    for key in ("date_revised", "entrez_date"):
        value = out["studies"] and out["studies"][key]
        if isinstance(value, str):  # SQLite through text() returns ISO strings
            out["studies"][key] = dt.date.fromisoformat(value)
    return out


def differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    problems = []
    if got["studies"] is None:
        return ["the study is not in the database"]
    for key, value in expected["studies"].items():
        if got["studies"][key] != value:
            problems.append(f"studies.{key}: got {got['studies'][key]!r}, expected {value!r}")
    for table in expected:
        if table == "studies":
            continue
        want, have = expected[table], got[table]
        if len(want) != len(have):
            problems.append(f"{table}: {len(have)} rows, expected {len(want)}: {have!r} vs {want!r}")
            continue
        for i, (w, h) in enumerate(zip(want, have)):
            for key in w:
                if w[key] != h[key]:
                    problems.append(f"{table}[{i}].{key}: got {h[key]!r}, expected {w[key]!r}")
    return problems


PUBMED_TABLES = [t.__tablename__ for t in m.CHILD_TABLES] + ["study_revisions", "study_events"]


def forget(conn, pmid: int) -> None:  # type: ignore[no-untyped-def]
    """Remove a PMID from every PubMed-side table (and, first, from the search index: SQLite's reads
    the text it indexed from these tables)."""
    search.unindex_studies(conn, [pmid])
    for table in PUBMED_TABLES:
        conn.execute(text(f"DELETE FROM {table} WHERE pmid = :p"), {"p": pmid})
    conn.execute(text("DELETE FROM studies WHERE pmid = :p"), {"p": pmid})


class Db:
    def __init__(self, url: URL) -> None:
        kbdb.upgrade(url, "head")
        self.engine = kbdb.create_kb_engine(url)
        self.sessions = kbdb.make_sessionmaker(self.engine, write=True)

    def store(self, record) -> store.StoreResult:  # type: ignore[no-untyped-def]
        with self.sessions.begin() as session:
            return store.store_records(session, [record], source="file")

    def read(self, pmid: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return read_back(conn, pmid)

    def forget(self, pmid: int) -> None:
        with self.engine.begin() as conn:
            forget(conn, pmid)

    def revisions(self, pmid: int) -> list[list[str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT changed_fields FROM study_revisions WHERE pmid = :p ORDER BY id"),
                                {"p": pmid}).scalars().all()
        return [_json(r) for r in rows]




@pytest.fixture(scope="module")
def database(db_url: URL):  # type: ignore[no-untyped-def]
    db = Db(db_url)
    yield db
    db.engine.dispose()


# --------------------------------------------------------------------------------------------
# The properties
# --------------------------------------------------------------------------------------------


def test_generated_records_round_trip(database: Db, scenario) -> None:  # type: ignore[no-untyped-def]
    @SETTINGS
    @given(records())
    def round_trip(gen: GenRecord) -> None:
        scenario.runs += 1
        database.forget(gen.pmid)
        try:
            result = database.store(parse(gen.document()))
            assert result.new == [gen.pmid], result
            stored = database.read(gen.pmid)
            scenario.records_lost += stored["studies"] is None
            problems = differences(gen.expected(), stored)
            assert not problems, "\n".join(problems) + "\n\nXML:\n" + gen.xml()
        finally:
            database.forget(gen.pmid)

    run_counting_failures(scenario, round_trip)
    assert scenario.runs >= EXAMPLES


MUTATIONS: dict[str, set[str]] = {
    # what is changed: the fields that may be reported (the first must be)
    "title": {"title", "title_markup"},
    "abstract": {"abstract_sections", "abstract"},
    "author": {"authors"},
    "mesh": {"mesh_headings"},
    "keyword": {"keywords"},
    "pub_year": {"pub_date"},
    "volume": {"volume"},
    "publication_type": {"publication_types"},
    "correction": {"comments_corrections"},
}


def mutate(gen: GenRecord, kind: str, extra: str) -> GenRecord:
    marker = Mixed((f"changed {extra}",))
    if kind == "title":
        return replace(gen, title=Mixed((*gen.title.parts, " ", ("i", marker))))
    if kind == "abstract":
        return replace(gen, sections=(*gen.sections, ("EXTRA", None, marker)))
    if kind == "author":
        return replace(gen, authors=(*gen.authors, GenAuthor(last=f"Changed{extra}")))
    if kind == "mesh":
        return replace(gen, mesh=(*gen.mesh, GenMesh("D999999", f"Changed {extra}", True, ())))
    if kind == "keyword":
        return replace(gen, keywords=(*gen.keywords, (marker, False)))
    if kind == "pub_year":
        return replace(gen, pub_date=("<Year>1799</Year>", ("1799", 1799, None, None)))
    if kind == "volume":
        title, iso, volume, issue = gen.journal
        return replace(gen, journal=(title, iso, f"V{extra}" if volume != f"V{extra}" else "other", issue))
    if kind == "publication_type":
        return replace(gen, pub_types=(*gen.pub_types, ("D000001", f"Changed {extra}")))
    return replace(gen, corrections=(*gen.corrections, ("CommentIn", f"Changed {extra}", "12345", None)))


def test_same_record_unchanged_and_one_change_reported(database: Db, scenario) -> None:  # type: ignore[no-untyped-def]
    @SETTINGS
    @given(records(), st.sampled_from(sorted(MUTATIONS)), st.text("abcxyz0123", min_size=1, max_size=5))
    def revisions(gen: GenRecord, kind: str, extra: str) -> None:
        scenario.runs += 1
        database.forget(gen.pmid)
        try:
            assert database.store(parse(gen.document())).new == [gen.pmid]
            again = database.store(parse(gen.document()))  # the same record: unchanged, no revision
            assert again.unchanged == [gen.pmid] and not again.updated, again
            assert database.revisions(gen.pmid) == []

            changed = mutate(gen, kind, extra)
            result = database.store(parse(changed.document()))
            assert result.updated == [gen.pmid], (kind, result)
            (fields,) = database.revisions(gen.pmid)
            allowed = MUTATIONS[kind]
            assert fields and set(fields) <= allowed, (kind, fields)
            primary = {"title": "title", "abstract": "abstract_sections", "pub_year": "pub_date"}.get(kind)
            assert primary is None or primary in fields, (kind, fields)
            problems = differences(changed.expected(), database.read(gen.pmid))
            assert not problems, "\n".join(problems)

            assert database.store(parse(changed.document())).unchanged == [gen.pmid]
            assert len(database.revisions(gen.pmid)) == 1
        finally:
            database.forget(gen.pmid)

    run_counting_failures(scenario, revisions)
    assert scenario.runs >= EXAMPLES


def run_counting_failures(scenario, test) -> None:  # type: ignore[no-untyped-def]
    """Run a Hypothesis test, counting a failure in the scenario's figures."""
    try:
        test()
    except BaseException:
        scenario.failures += 1
        raise


MIXED_CONTENT = {"ArticleTitle", "VernacularTitle", "AbstractText", "Keyword", "CollectiveName", "Affiliation"}


def _indent(elem, depth: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Re-indent like a pretty-printer, leaving text-only and mixed-content elements alone."""
    if elem.tag in MIXED_CONTENT or not len(elem):
        return
    pad = "\n" + "  " * (depth + 1)
    elem.text = pad
    for child in elem:
        _indent(child, depth + 1)
        child.tail = pad
    elem[-1].tail = "\n" + "  " * depth


def test_reformatting_the_xml_changes_nothing(database: Db, scenario) -> None:  # type: ignore[no-untyped-def]
    """Whitespace between elements and a different serialisation of the same content (e.g. as NCBI
    re-indents its files): the content hash is the same, so the record is unchanged."""
    from lxml import etree

    @SETTINGS
    @given(records())
    def reformatted(gen: GenRecord) -> None:
        scenario.runs += 1
        database.forget(gen.pmid)
        try:
            assert database.store(parse(gen.document())).new == [gen.pmid]
            tree = etree.fromstring(gen.document())
            _indent(tree)
            pretty = etree.tostring(tree, xml_declaration=True, encoding="ASCII")  # characters as references
            assert pretty != gen.document()
            result = database.store(parse(pretty))
            assert result.unchanged == [gen.pmid], result
        finally:
            database.forget(gen.pmid)

    run_counting_failures(scenario, reformatted)


# --------------------------------------------------------------------------------------------
# Cards: generated card -> card text file -> kb curate import -> kb card
# --------------------------------------------------------------------------------------------

from kb.cards import textformat as tf  # noqa: E402 - the cards part of the module
from kb.cards.model import CardDoc, Item  # noqa: E402

from .support import kb as kb_cli  # noqa: E402

CARD_SPECIAL = ["{{ 7*7 }}", "{% for x in y %}", "{% raw %}", "{#", "#}", "}}", "<script>alert(1)</script>",
                '"><img src=x onerror=alert(1)>', "&amp;", "&lt;", "**", "*", "_", "`", "\\", "\\*", "[x](y)",
                ">", "|", ":", ": ", "-", "—", "µg", "é", "e\u0301", "😀", "𝔘", "\u00a0", "\u200b", "\u2028",
                "\ufeff", "\t", "PMID: 1", "Year: 2020", "Title: x", "Source: PubMed", "Quick Summary:", "#", "+",
                "1.", "~", "⚠️", "📝", "📄", "日本語", "\u202e"]
card_char = st.characters(exclude_categories=["Cs", "Cc"])
card_word = st.one_of(st.text(card_char, min_size=1, max_size=8), st.sampled_from(CARD_SPECIAL),
                      st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
                              min_size=1, max_size=8))


@st.composite
def card_line(draw: st.DrawFn, max_words: int = 6) -> str:
    words = draw(st.lists(card_word, min_size=1, max_size=max_words))
    out = words[0]
    for w in words[1:]:
        out += draw(st.sampled_from([" ", " ", " ", "  ", "\t", " — "])) + w
    out = out.strip()
    return out if out else draw(st.sampled_from(CARD_SPECIAL[:10]))  # never empty: an empty bullet is refused


def _free_line(line: str) -> bool:
    """A line of text the format reads as text (not a heading, bullet, notice or kb's own line)."""
    return bool(line) and not (
        line.startswith(("- ", *tf.NOTICE_MARKERS)) or line == "-" or line in tf.HEADINGS
        or tf.READ_FULL_STUDY.match(line) or tf.SOURCE_LINE.match(line)
        or line.casefold().startswith(tf.QUICK_SUMMARY.casefold())
        or tf.looks_like_heading(line) or (len(line) <= 60 and tf.close_heading(line)))


text_line = card_line().filter(_free_line)
headline = text_line.filter(lambda t: not t.startswith(("# ", "\ufeff", tf.QUICK_SUMMARY)))
paragraphs = st.lists(text_line, min_size=0, max_size=2).map("\n\n".join)
label = card_line(3).filter(lambda t: tf.label_problem(t) is None)
card_items = st.lists(st.builds(Item, text=card_line(), label=st.none() | label), max_size=3)
labelled_items = st.lists(st.builds(Item, text=card_line(), label=label), max_size=3)
reference_title = card_line().filter(lambda t: not t.casefold().startswith(("source:", "title:", "year:", "published")))


@st.composite
def cards(draw: st.DrawFn) -> CardDoc:
    doc = CardDoc(
        pmid=draw(st.integers(1, 99_999_999)),
        headline=draw(headline),
        quick_summary=draw(text_line),
        study_type=draw(card_line(3).filter(lambda t: "| Year:" not in t)),
        reference_title=draw(st.just("") | reference_title),
        reference_year=draw(st.none() | st.integers(1000, 9999)),
    )
    for name in ("what_research_found", "key_findings", "study_design", "dosage_administration",
                 "results_efficacy", "technical_limitations", "clinical_relevance"):
        setattr(doc, name, draw(paragraphs))
    for name in ("who_was_studied", "how_long", "what_they_took"):
        setattr(doc, name, draw(st.just("") | card_line()))
    for name in ("findings", "technical_findings", "technical_notes", "technical_limitation_items"):
        setattr(doc, name, draw(card_items))
    for name in ("notes", "limitations"):  # the layout requires their labels
        setattr(doc, name, draw(labelled_items))
    return doc


def card_file(doc: CardDoc) -> str:
    """The card in kb's text format (issue 12's layout), as kb curate export and kb card write it
    (for a study known only from its card: the reference is the card's)."""
    lines = [doc.headline, f"{tf.QUICK_SUMMARY} {doc.quick_summary}"]

    def body(section: tf.Section) -> list[str]:
        out: list[str] = []
        if section.heading == "Study Details":
            return [f"- {label}: {getattr(doc, name)}" for label, name in tf.STUDY_DETAILS_LABELS.items()
                    if getattr(doc, name)]
        if section.paragraph:
            out += [p for p in getattr(doc, section.paragraph).split("\n\n") if p]
        if section.items:
            out += [f"- {tf.bullet_text(item)}" for item in getattr(doc, section.items)]
        return out

    for section in tf.SECTIONS:
        if section.has_content(doc):
            lines += [section.heading, *body(section)]
    technical = [s for s in tf.TECHNICAL_SECTIONS if s.has_content(doc)]
    if technical:
        lines += [tf.TECHNICAL]
        for section in technical:
            lines += [section.heading, *body(section)]
    year = doc.reference_year or ""
    lines += [f"Source: PubMed | Type: {doc.study_type} | Year: {year}", tf.REFERENCE,
              *([doc.reference_title] if doc.reference_title else []), tf.REFERENCE_SOURCE,
              *([f"{tf.PUBLISHED} {year}"] if year else []), f"📄 Read Full Study (PMID: {doc.pmid})"]
    return "\n".join(lines) + "\n"


def forget_card(conn, pmid: int) -> None:  # type: ignore[no-untyped-def]
    """Remove a card, its revisions and bullets, and its placeholder study."""
    search.unindex_studies(conn, [pmid])
    for table in ("card_revisions", "findings", "limitations", "notes", "cards"):
        conn.execute(text(f"DELETE FROM {table} WHERE pmid = :p"), {"p": pmid})
    conn.execute(text("DELETE FROM studies WHERE pmid = :p AND is_placeholder"), {"p": pmid})


def test_generated_cards_round_trip_through_the_database(database: Db, db_url: URL, scenario,  # type: ignore[no-untyped-def]
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    from .support import card_problems

    folder = tmp_path_factory.mktemp("cards")

    @SETTINGS
    @given(cards())
    def round_trip(doc: CardDoc) -> None:
        scenario.runs += 1
        expected = card_file(doc).encode("utf-8")
        with database.engine.begin() as conn:
            forget_card(conn, doc.pmid)
        try:
            for form in ("text", "md"):
                path = folder / f"card.{'md' if form == 'md' else 'txt'}"
                if form == "text":
                    path.write_bytes(expected)
                else:
                    shown = kb_cli(db_url, "card", str(doc.pmid), "--format", "md")
                    assert shown.exit_code == 0, shown.output
                    path.write_bytes(shown.stdout_bytes)
                    with database.engine.begin() as conn:
                        forget_card(conn, doc.pmid)
                imported = kb_cli(db_url, "curate", "import", str(path))
                assert imported.exit_code == 0, f"{form}: {imported.output}\n\nthe file:\n{path.read_text()}"
                shown = kb_cli(db_url, "card", str(doc.pmid))
                assert shown.exit_code == 0, shown.output
                if shown.stdout_bytes != expected:
                    scenario.curated_changed += 1
                assert shown.stdout_bytes.decode() == expected.decode(), f"{form}: kb card differs from the file"
                with database.engine.connect() as conn:
                    half = card_problems(conn, [doc.pmid])
                scenario.half_written += len(half)
                assert not half, half
        finally:
            with database.engine.begin() as conn:
                forget_card(conn, doc.pmid)

    run_counting_failures(scenario, round_trip)
    assert scenario.runs >= EXAMPLES
