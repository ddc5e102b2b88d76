"""The served records: PubMed XML files read into indexed :class:`_Record` entries."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

MAX_UID = 18446744073709551615


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


def _well_formed(uid: str) -> bool:
    return uid.isascii() and uid.isdigit() and 0 < int(uid) <= MAX_UID
