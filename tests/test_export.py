"""kb export studies: csv/jsonl rows for analysts; RIS, BibTeX and CSL-JSON read back by the
libraries reference managers rely on (rispy, bibtexparser 2, citeproc-py), on real PubMed records."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import bibtexparser
import pytest
import rispy
from bibtexparser.middlewares import LatexDecodingMiddleware, SeparateCoAuthors
from citeproc import Citation, CitationItem, CitationStylesBibliography, CitationStylesStyle, formatter
from citeproc.source.json import CiteProcJSON
from sqlalchemy import event, text, update
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import export as kbexport
from kb import models as m

from .conftest import kb

RETRACTED = 1752960  # ncbiutils/multiple.xml: Retracted Publication, RetractionIn
MARKUP = 37167981  # metapub: <i>&#x3bc;</i> in the title
COLLECTIVE = 30158200  # ncbiutils/markup.xml: a CollectiveName and 189 investigators
BOOK = 20301295  # GeneReviews, a whole book
METAPUB = ("11618220", "24084238", "30849835", "32490903", "32743745", "34709863", "35856662", "36176722",
           "37167981")



def load(db: URL, corpus: Path, *, full: bool = True) -> None:
    files = [corpus / "ncbiutils" / "multiple.xml"]
    if full:
        files += [corpus / "ncbiutils" / "pubmed.xml", corpus / "ncbiutils" / "markup.xml",
                  corpus / "klortho_efetch_pubmedbook_OLD2013DTD.xml",
                  *(corpus / "metapub" / f"{name}.xml" for name in METAPUB)]
    result = kb(db, "load", "--quiet", *map(str, files))
    assert result.exit_code == 0, result.output


def export(db: URL, *args: str) -> str:
    result = kb(db, "export", "studies", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


@dataclass(frozen=True)
class Expected:
    """What the database holds for one study, read with plain SQL."""

    title: str
    year: int | None
    doi: str | None
    first_author: str | None  # family name, or the collective name
    last_author: str | None
    is_retracted: bool


def expected_studies(db: URL) -> dict[int, Expected]:
    engine = kbdb.create_kb_engine(db)
    with engine.connect() as conn:
        families: dict[int, list[str]] = {}
        for pmid, family in conn.execute(text(
            "SELECT pmid, COALESCE(collective_name, last_name) FROM authors "
            "WHERE NOT is_investigator ORDER BY pmid, position"
        )):
            families.setdefault(pmid, []).append(family)
        studies = {
            pmid: Expected(title, year, doi, families.get(pmid, [None])[0], families.get(pmid, [None])[-1],
                           bool(retracted))
            for pmid, title, year, doi, retracted in conn.execute(text(
                "SELECT pmid, title, pub_year, doi, is_retracted FROM studies WHERE NOT is_placeholder ORDER BY pmid"
            ))
        }
    engine.dispose()
    return studies


def is_name_of(name: str, family: str | None) -> bool:
    """'Lantz, M' or a collective name as written is a name of family 'Lantz' / that collective."""
    return family is not None and (name == family or name.startswith(f"{family}, "))


# --------------------------------------------------------------------------------------------
# The whole database, every format, both backends
# --------------------------------------------------------------------------------------------


def check_ris(output: str, expected: dict[int, Expected]) -> None:
    records = rispy.loads(output)
    assert [int(r["accession_number"]) for r in records] == list(expected)
    for record in records:
        want = expected[int(record["accession_number"])]
        assert record.get("title", "") == want.title
        assert record.get("year") == (str(want.year) if want.year else None)
        assert record.get("doi") == want.doi
        authors = record.get("authors", [])
        assert bool(authors) == (want.first_author is not None)
        if authors:
            assert is_name_of(authors[0], want.first_author) and is_name_of(authors[-1], want.last_author)
        assert ("RETRACTED (PubMed)" in record.get("notes", [])) == want.is_retracted
        assert record["urls"] == [f"https://pubmed.ncbi.nlm.nih.gov/{record['accession_number']}/"]
    assert all(line == "" or line[2:6] == "  - " for line in output.splitlines())


def check_bibtex(output: str, expected: dict[int, Expected]) -> None:
    raw = bibtexparser.parse_string(output, append_middleware=[SeparateCoAuthors()])
    decoded = bibtexparser.parse_string(output, append_middleware=[LatexDecodingMiddleware()])
    assert not raw.failed_blocks and not decoded.failed_blocks
    assert [e.key for e in raw.entries] == [f"pmid{pmid}" for pmid in expected]
    for entry, plain in zip(raw.entries, decoded.entries):
        fields = {f.key: f.value for f in entry.fields}
        want = expected[int(fields["pmid"])]
        assert {f.key: f.value for f in plain.fields}.get("title", "") == want.title
        assert fields.get("year") == (str(want.year) if want.year else None)
        assert fields.get("doi") == want.doi
        names = [name.removeprefix("{").removesuffix("}") for name in fields.get("author", [])]
        assert bool(names) == (want.first_author is not None)
        if names:
            assert is_name_of(names[0], want.first_author) and is_name_of(names[-1], want.last_author)
        assert (fields.get("note") == "RETRACTED (PubMed)") == want.is_retracted


def check_csl(output: str, expected: dict[int, Expected]) -> None:
    items = json.loads(output)
    assert [item["id"] for item in items] == [f"pmid:{pmid}" for pmid in expected]
    for item in items:
        want = expected[int(item["PMID"])]
        assert item.get("title", "") == want.title
        assert item.get("DOI") == want.doi
        year = item.get("issued", {}).get("date-parts", [[None]])[0][0]
        assert year == want.year
        names = [a.get("literal") or a["family"] for a in item.get("author", [])]
        assert names[:1] == ([want.first_author] if want.first_author else [])
        assert names[-1:] == ([want.last_author] if want.last_author else [])
        assert ("RETRACTED" in item.get("note", "")) == want.is_retracted
    # every item renders with a real CSL processor and style
    style = CitationStylesStyle("harvard-cite-them-right", validate=False)
    bibliography = CitationStylesBibliography(style, CiteProcJSON(items), formatter.plain)
    for item in items:
        bibliography.register(Citation([CitationItem(item["id"])]))
    rendered = [str(entry) for entry in bibliography.bibliography()]
    assert len(rendered) == len(items)
    by_id = {item["id"]: item for item in items}
    for key, entry in zip(bibliography.keys, rendered):
        want = expected[int(by_id[key]["PMID"])]
        assert want.first_author is None or want.first_author in entry
        assert str(want.year) in entry if want.year else "no date" in entry


def check_rows(csv_text: str, jsonl_text: str, expected: dict[int, Expected]) -> None:
    table = list(csv.DictReader(io.StringIO(csv_text)))
    assert csv_text.splitlines()[0].split(",") == list(kbexport.ROW_COLUMNS)
    assert [int(row["pmid"]) for row in table] == list(expected)
    objects = [json.loads(line) for line in jsonl_text.splitlines()]
    assert [o["pmid"] for o in objects] == list(expected)
    for row, obj in zip(table, objects):
        want = expected[obj["pmid"]]
        assert row["title"] == obj["title"] == want.title
        assert row["doi"] == (want.doi or "") and obj["doi"] == want.doi
        assert isinstance(obj["authors"], list) and row["authors"] == "; ".join(obj["authors"])
        assert row["first_author"] == (obj["authors"][0] if obj["authors"] else "")
        assert row["is_retracted"] == str(want.is_retracted) and obj["is_retracted"] is want.is_retracted
        assert row["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{obj['pmid']}/"


def test_whole_database_in_every_format(db_url: URL, corpus: Path) -> None:
    load(db_url, corpus)
    expected = expected_studies(db_url)
    assert len(expected) > 100 and {RETRACTED, MARKUP, COLLECTIVE, BOOK} <= set(expected)
    check_ris(export(db_url, "--format", "ris"), expected)
    check_bibtex(export(db_url, "--format", "bibtex"), expected)
    check_csl(export(db_url, "--format", "csl-json"), expected)
    check_rows(export(db_url), export(db_url, "--format", "jsonl"), expected)


# --------------------------------------------------------------------------------------------
# Records checked by hand against their XML
# --------------------------------------------------------------------------------------------


@pytest.fixture
def loaded(sqlite_url: URL, corpus: Path) -> URL:
    load(sqlite_url, corpus)
    return sqlite_url


def one(db: URL, pmid: int, fmt: str) -> str:
    return export(db, "--pmid", str(pmid), "--format", fmt)


RETRACTED_TITLE = ("On the binding of tumor necrosis factor (TNF) to heparin and the release in vivo of the "
                   "TNF-binding protein I by heparin.")


def test_retracted_study(loaded: URL) -> None:
    (ris,) = rispy.loads(one(loaded, RETRACTED, "ris"))
    assert ris["type_of_reference"] == "JOUR"
    assert ris["title"] == RETRACTED_TITLE
    assert ris["authors"] == ["Lantz, M", "Thysell, H", "Nilsson, E", "Olsson, I"]
    assert (ris["year"], ris["date"]) == ("1991", "1991/12//")
    assert ris["secondary_title"] == "The Journal of clinical investigation"
    assert ris["alternate_title1"] == "J Clin Invest"
    assert (ris["volume"], ris["number"], ris["start_page"], ris["end_page"]) == ("88", "6", "2026", "2031")
    assert ris["doi"] == "10.1172/JCI115530" and ris["accession_number"] == "1752960"
    assert ris["notes"] == ["RETRACTED (PubMed)"]
    assert "Receptors, Tumor Necrosis Factor" in ris["keywords"]  # a major MeSH heading
    assert ris["abstract"].startswith("Tumor necrosis factor (TNF), a protein released by activated")

    bib = one(loaded, RETRACTED, "bibtex")
    assert bib.startswith("@article{pmid1752960,\n")
    assert "  title = {On the binding of tumor necrosis factor ({TNF}) to heparin" in bib
    assert "  author = {Lantz, M and Thysell, H and Nilsson, E and Olsson, I},\n" in bib
    assert "  pages = {2026--2031},\n" in bib and "  note = {RETRACTED (PubMed)}\n" in bib

    (item,) = json.loads(one(loaded, RETRACTED, "csl-json"))
    assert item["type"] == "article-journal" and item["issued"] == {"date-parts": [[1991, 12]]}
    assert item["author"][0] == {"family": "Lantz", "given": "M"}
    assert (item["container-title"], item["container-title-short"]) == ("The Journal of clinical investigation",
                                                                         "J Clin Invest")
    assert (item["page"], item["PMCID"], item["note"]) == ("2026-2031", "PMC295793", "RETRACTED (PubMed)")

    (row,) = csv.DictReader(io.StringIO(one(loaded, RETRACTED, "csv")))
    assert row["is_retracted"] == "True" and row["evidence_status"] == "retracted"
    assert row["authors"] == "Lantz M; Thysell H; Nilsson E; Olsson I" and row["first_author"] == "Lantz M"
    assert row["publication_types"] == "Journal Article; Research Support, Non-U.S. Gov't; Retracted Publication"
    assert row["journal_iso_abbrev"] == "J Clin Invest" and row["pub_date_text"] == "1991 Dec"


def test_title_with_inline_markup_and_greek(loaded: URL) -> None:
    title = ("Monte Carlo simulation of micro-x-ray fluorescence (\u03bc-XRF) based detection of "
             "immunomagnetically labeled tumor cells.")
    (ris,) = rispy.loads(one(loaded, MARKUP, "ris"))
    assert ris["title"] == title and ris["authors"] == ["Zambianchi, P", "Zambianchi, J K"]
    assert "micro-x-ray fluorescence (\u03bc-XRF)" in ris["keywords"]
    bib = one(loaded, MARKUP, "bibtex")
    assert ("  title = {Monte {Carlo} simulation of micro-x-ray fluorescence (\u03bc-{XRF}) based detection "
            "of immunomagnetically labeled tumor cells.},\n") in bib
    (entry,) = bibtexparser.parse_string(bib, append_middleware=[LatexDecodingMiddleware()]).entries
    assert entry["title"] == title
    (item,) = json.loads(one(loaded, MARKUP, "csl-json"))
    assert item["title"] == title and item["issued"] == {"date-parts": [[2023, 5, 30]]}
    assert item["DOI"] == "10.1088/1361-6560/acd48e" and "page" not in item


def test_collective_author_and_investigators_left_out(loaded: URL) -> None:
    group = "GEFOS/GENOMOS consortium and the 23andMe research team"
    (ris,) = rispy.loads(one(loaded, COLLECTIVE, "ris"))
    assert len(ris["authors"]) == 10  # the 189 investigators are not authors
    assert ris["authors"][0] == "Trajanoska, Katerina" and ris["authors"][-1] == group
    assert (ris["start_page"], ris.get("end_page")) == ("k3225", None)
    bib = one(loaded, COLLECTIVE, "bibtex")
    assert f"Rivadeneira, Fernando and {{{group}}}}},\n" in bib
    (entry,) = bibtexparser.parse_string(bib, append_middleware=[SeparateCoAuthors()]).entries
    assert len(entry["author"]) == 10 and entry["author"][-1] == f"{{{group}}}"
    (item,) = json.loads(one(loaded, COLLECTIVE, "csl-json"))
    assert item["author"][-1] == {"literal": group} and len(item["author"]) == 10
    (row,) = csv.DictReader(io.StringIO(one(loaded, COLLECTIVE, "csv")))
    assert row["authors"].startswith("Trajanoska K; Morris JA; ") and row["authors"].endswith(f"; {group}")


def test_book(loaded: URL) -> None:
    (ris,) = rispy.loads(one(loaded, BOOK, "ris"))
    assert (ris["type_of_reference"], ris["title"], ris["year"]) == ("BOOK", "GeneReviews\u2122", "1993")
    assert one(loaded, BOOK, "bibtex").startswith("@book{pmid20301295,\n  title = {{GeneReviews}\u2122},\n")
    (item,) = json.loads(one(loaded, BOOK, "csl-json"))
    assert (item["type"], item["title"], item["issued"]) == ("book", "GeneReviews\u2122", {"date-parts": [[1993]]})


# --------------------------------------------------------------------------------------------
# Selection, errors, -o FILE
# --------------------------------------------------------------------------------------------


def pmids_of(csv_text: str) -> list[int]:
    return [int(row["pmid"]) for row in csv.DictReader(io.StringIO(csv_text))]


def test_topic_pmid_and_placeholder_selection(sqlite_url: URL, corpus: Path) -> None:
    load(sqlite_url, corpus, full=False)
    everything = pmids_of(export(sqlite_url))
    assert len(everything) == 100 and everything == sorted(everything)
    linked, excluded, placeholder = everything[5], everything[1], everything[3]
    engine = kbdb.create_kb_engine(sqlite_url)
    with Session(engine) as s, s.begin():
        topic = m.Topic(name="tnf", query="tnf[tiab]")
        s.add(topic)
        s.flush()
        s.add_all([m.TopicStudy(topic_id=topic.id, pmid=linked), m.TopicStudy(topic_id=topic.id, pmid=placeholder),
                   m.TopicStudy(topic_id=topic.id, pmid=excluded, is_excluded=True)])
        s.execute(update(m.Study).where(m.Study.pmid == placeholder).values(is_placeholder=True))
        s.add(m.Card(pmid=linked, status="reviewed"))
    engine.dispose()

    assert pmids_of(export(sqlite_url)) == [p for p in everything if p != placeholder]
    (row,) = csv.DictReader(io.StringIO(export(sqlite_url, "--topic", "tnf")))
    assert (int(row["pmid"]), row["card_status"]) == (linked, "reviewed")
    named = export(sqlite_url, "--pmid", f"{linked},{placeholder}", "--pmid", str(RETRACTED), "--format", "jsonl")
    assert [json.loads(line)["pmid"] for line in named.splitlines()] == sorted([linked, placeholder, RETRACTED])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pmid", "1752960,5,99999999"], "2 PMIDs not in the knowledge base: 5 99999999"),
        (["--pmid", "17x"], "1 malformed PMID: '17x'"),
        (["--topic", "nope"], "no topic named 'nope'"),
        (["--topic", "nope", "--pmid", "1752960"], "by topic or by PMID, not both"),
    ],
)
def test_bad_selection_exits_2_and_writes_nothing(sqlite_url: URL, corpus: Path, tmp_path: Path,
                                                  args: list[str], message: str) -> None:
    load(sqlite_url, corpus, full=False)
    target = tmp_path / "out.ris"
    target.write_text("previous export\n")
    for extra in ([], ["-o", str(target)]):
        result = kb(sqlite_url, "export", "studies", "--format", "ris", *args, *extra)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.startswith("Error: ") and message in result.stderr
    assert target.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.ris")] == []


def test_output_file(sqlite_url: URL, corpus: Path, tmp_path: Path) -> None:
    load(sqlite_url, corpus, full=False)
    for fmt in ("csv", "jsonl", "ris", "bibtex", "csl-json"):
        target = tmp_path / f"studies.{fmt}"
        result = kb(sqlite_url, "export", "studies", "--format", fmt, "-o", str(target))
        assert result.exit_code == 0 and result.stdout == ""
        assert result.stderr == f"100 studies exported to {target}\n"
        assert target.read_text(encoding="utf-8") == export(sqlite_url, "--format", fmt)
    result = kb(sqlite_url, "export", "studies", "-o", str(tmp_path / "missing" / "studies.csv"))
    assert result.exit_code == 2 and "Error: cannot write" in result.stderr


# --------------------------------------------------------------------------------------------
# The library
# --------------------------------------------------------------------------------------------


def test_streams_in_chunks_with_one_query_per_table(sqlite_url: URL, corpus: Path) -> None:
    load(sqlite_url, corpus, full=False)
    engine = kbdb.create_kb_engine(sqlite_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with Session(engine) as session:
        pmids = kbexport.select_pmids(session)
        statements.clear()
        chunked = list(kbexport.iter_studies(session, pmids, chunk_size=30))
        assert len(statements) == 4 * 5  # 4 chunks x (studies, authors, types, MeSH, keywords)
        assert chunked == list(kbexport.iter_studies(session, pmids))
    engine.dispose()
    assert [s.pmid for s in chunked] == pmids


@pytest.mark.parametrize(
    ("pages", "first", "last", "bibtex"),
    [
        ("2026-31", "2026", "2031", "2026--2031"),
        ("89-95", "89", "95", "89--95"),
        ("99-104", "99", "104", "99--104"),
        ("L688-93", "L688", "L693", "L688--L693"),
        ("C854-61", "C854", "C861", "C854--C861"),
        ("90S-93S", "90S", "93S", "90S--93S"),
        ("e157-e161", "e157", "e161", "e157--e161"),
        ("1161-1176", "1161", "1176", "1161--1176"),
        ("123-5, 130-2", "123", "132", "123--125, 130--132"),
        ("k3225", "k3225", None, "k3225"),
    ],
)
def test_medline_pages(pages: str, first: str, last: str | None, bibtex: str) -> None:
    assert kbexport.page_range(pages) == (first, last)
    assert kbexport.expand_pages(pages, "--") == bibtex


def test_book_chapter_and_name_suffix() -> None:
    chapter = kbexport.ExportStudy(
        pmid=123, record_type="book", title="Vitamin B12 deficiency", abstract=None, journal_title="StatPearls",
        journal_iso_abbrev=None, journal_issn=None, volume=None, issue=None, pages=None, pub_date_text="2024 Jan",
        pub_year=2024, pub_month=1, pub_day=None, language="eng", doi=None, pmcid=None, evidence_status="ok",
        is_retracted=False, card_status=None, authors=(kbexport.ExportAuthor("Smith", "John A", "JA", "Jr", None),),
        publication_types=("Review",), mesh_major=(), keywords=(),
    )
    (ris,) = rispy.loads(kbexport.ris_record(chapter))
    assert (ris["type_of_reference"], ris["secondary_title"]) == ("CHAP", "StatPearls")
    assert (ris["authors"], ris["date"]) == (["Smith, John A, Jr"], "2024/01//")
    assert kbexport.bibtex_entry(chapter).startswith(
        "@incollection{pmid123,\n  title = {Vitamin {B12} deficiency},\n  author = {Smith, Jr, John A},\n"
        "  booktitle = {StatPearls},\n"
    )
    item = kbexport.csl_item(chapter)
    assert (item["type"], item["container-title"]) == ("chapter", "StatPearls")
    assert item["author"] == [{"family": "Smith", "given": "John A", "suffix": "Jr"}]
    assert item["issued"] == {"date-parts": [[2024, 1]]}


def test_bibtex_escaping() -> None:
    assert kbexport.bibtex_escape("100% of R&D #1 a_b {x} $5 ~ ^ \\ Müller\n  β") == (
        r"100\% of R\&D \#1 a\_b \textbraceleft{}x\textbraceright{} \$5 \textasciitilde{} "
        r"\textasciicircum{} \textbackslash{} Müller β"
    )
    assert kbexport.bibtex_title("Effects of IL-6 & mRNA on 50% of Aβ {x}") == (
        r"Effects of {IL}-6 \& {mRNA} on 50\% of {Aβ} \textbraceleft{}x\textbraceright{}"
    )
    assert kbexport.bibtex_name(kbexport.ExportAuthor(None, None, None, None, "A & B Group")) == r"{A \& B Group}"
