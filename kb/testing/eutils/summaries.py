"""Document summaries (ESummary version 1.0 DocSums and version 2.0 DocumentSummaries)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from kb.testing.eutils.answers import _esc
from kb.testing.eutils.records import (
    _EPOCH,
    _HISTORY_DATES,
    _PUB_DATE,
    _XML_PARSER_OPTIONS,
    _element_date,
    _Record,
)


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
