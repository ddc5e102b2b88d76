"""Small PubMed records for tests that need control over PMIDs, dates and links.

Shaped like NCBI's PubmedArticle (2025 DTD); real corpus records are used wherever a test is about
parsing real data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from xml.sax.saxutils import escape

HEADER = (
    '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
)


def article(
    pmid: int,
    title: str,
    *,
    year: int = 2020,
    revised: dt.date = dt.date(2021, 1, 5),
    entrez: dt.date = dt.date(2020, 3, 1),
    pub_types: Iterable[tuple[str, str]] = (("D016428", "Journal Article"),),
    links: Iterable[tuple[str, int]] = (),
    abstract: str = "An abstract.",
    journal: tuple[str, str] = ("Journal of Tests", "J Tests"),
    issue: tuple[str, str, str] = ("1", "", ""),
    doi: str | None = None,
    keywords: Iterable[str] = (),
) -> str:
    """A PubmedArticle; ``journal`` is (title, ISO abbreviation), ``issue`` (volume, issue, pages)."""
    types = "".join(f'<PublicationType UI="{ui}">{escape(name)}</PublicationType>' for ui, name in pub_types)
    comments = "".join(
        f'<CommentsCorrections RefType="{ref_type}"><RefSource>Ref</RefSource><PMID Version="1">{ref}</PMID>'
        "</CommentsCorrections>"
        for ref_type, ref in links
    )
    comments = f"<CommentsCorrectionsList>{comments}</CommentsCorrectionsList>" if comments else ""
    kws = "".join(f'<Keyword MajorTopicYN="N">{escape(k)}</Keyword>' for k in keywords)
    kws = f'<KeywordList Owner="NOTNLM">{kws}</KeywordList>' if kws else ""
    pages = f"<Pagination><MedlinePgn>{issue[2]}</MedlinePgn></Pagination>" if issue[2] else ""
    elocation = f'<ELocationID EIdType="doi" ValidYN="Y">{escape(doi)}</ELocationID>' if doi else ""
    doi_id = f'<ArticleId IdType="doi">{escape(doi)}</ArticleId>' if doi else ""
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>'
        f"<DateRevised><Year>{revised.year}</Year><Month>{revised.month:02d}</Month><Day>{revised.day:02d}</Day></DateRevised>"
        f'<Article PubModel="Print"><Journal><ISSN IssnType="Print">1234-5678</ISSN><JournalIssue CitedMedium="Print">'
        f"<Volume>{issue[0]}</Volume>{f'<Issue>{issue[1]}</Issue>' if issue[1] else ''}"
        f"<PubDate><Year>{year}</Year><Month>Feb</Month></PubDate></JournalIssue>"
        f"<Title>{escape(journal[0])}</Title><ISOAbbreviation>{escape(journal[1])}</ISOAbbreviation></Journal>"
        f"<ArticleTitle>{escape(title)}</ArticleTitle>"
        f"{pages}{elocation}"
        f"<Abstract><AbstractText>{escape(abstract)}</AbstractText></Abstract>"
        f'<AuthorList CompleteYN="Y"><Author ValidYN="Y"><LastName>Doe</LastName><ForeName>Jane</ForeName>'
        f"<Initials>J</Initials></Author></AuthorList><Language>eng</Language>"
        f"<PublicationTypeList>{types}</PublicationTypeList></Article>{comments}{kws}</MedlineCitation>"
        f'<PubmedData><History><PubMedPubDate PubStatus="entrez"><Year>{entrez.year}</Year><Month>{entrez.month}</Month>'
        f"<Day>{entrez.day}</Day></PubMedPubDate></History><PublicationStatus>ppublish</PublicationStatus>"
        f'<ArticleIdList><ArticleId IdType="pubmed">{pmid}</ArticleId>'
        f"{doi_id}</ArticleIdList></PubmedData></PubmedArticle>"
    )


def write_set(path: Path, articles: Iterable[str], deleted: Iterable[int] = ()) -> Path:
    deletions = "".join(f'<PMID Version="1">{p}</PMID>' for p in deleted)
    body = "\n".join(articles)
    tail = f"<DeleteCitation>{deletions}</DeleteCitation>" if deletions else ""
    path.write_text(f"{HEADER}<PubmedArticleSet>\n{body}\n{tail}</PubmedArticleSet>\n", encoding="utf-8")
    return path
