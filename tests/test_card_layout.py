"""Issue 12: cards in the example's exact layout, and a curator's loop that never mangles text.

The example card ``../shared/examples/card-31902683.txt`` is the specification (acceptance 1 is
``test_cards.py::test_the_example_card_round_trips``). Here: what an analyst finds in the rows
(2), the Hypothesis round trip (3), refusals (4), --dry-run / --replace / the typo warning (5),
lint against the PubMed record (6), review, history, revert, delete and the editor (7), and the
other forms and older cards (8).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb.cards import textformat as tf
from kb.cards.data import CardView
from kb.cards.model import CardDoc, Item
from kb.cards.render import card_json, render
from kb.cards.textformat import CardFormatError, parse_card, read_card

from .records import write_set
from .test_cards import EXAMPLE, KB_CARD, LEGACY_CARD, UNCHANGED, _editor, _session, kb

EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8") if EXAMPLE.is_file() else ""


def _import(db: URL, tmp_path: Path, body: str, *args: str, name: str = "card.txt"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return kb(db, "curate", "import", *args, str(path))


# --------------------------------------------------------------------------------------------
# 2. The rows, as an analyst reads them
# --------------------------------------------------------------------------------------------


def test_an_analyst_finds_every_piece_of_the_example_in_its_own_place(db_url: URL) -> None:
    assert kb(db_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    engine = kbdb.create_kb_engine(db_url)
    try:
        with engine.connect() as conn:
            card = conn.execute(text(
                "SELECT headline, quick_summary, what_research_found, who_was_studied, how_long, what_they_took, "
                "curated_study_type, key_findings, study_design, dosage_administration, results_efficacy, "
                "technical_limitations, clinical_relevance FROM cards WHERE pmid = 31902683")).mappings().one()
            notes = conn.execute(text("SELECT label, audience FROM notes WHERE pmid = 31902683 ORDER BY position")).all()
            limits = conn.execute(text(
                "SELECT label, audience FROM limitations WHERE pmid = 31902683 ORDER BY position")).all()
            findings = conn.execute(text("SELECT count(*) FROM findings WHERE pmid = 31902683")).scalar()
    finally:
        engine.dispose()
    lines = EXAMPLE_TEXT.split("\n")

    def after(heading: str) -> str:
        return lines[lines.index(heading) + 1]

    assert card["headline"] == "Vitamin B12 Deficiency & Blood Clots: What You Need to Know"
    assert card["quick_summary"] == lines[1].removeprefix("Quick Summary: ")
    assert card["what_research_found"] == after("What The Research Found")
    assert card["who_was_studied"] == after("Study Details").removeprefix("- Who was studied: ")
    assert card["how_long"].startswith("The study reviewed existing medical information")
    assert card["what_they_took"].startswith("The study focused on the impact of Vitamin B12 deficiency")
    assert card["curated_study_type"] == "Observational Study"
    assert notes == [(label, "lay") for label in
                     ("Get Tested", "Early Diagnosis Matters", "Supplementation is Key", "Know the Symptoms")]
    assert limits == [(label, "lay") for label in
                      ("More Research Needed", "Not a Cure-All", "Focus on Severe Deficiency")]
    assert findings == 0
    for column, heading in (("key_findings", "Key Findings"), ("study_design", "Study Design"),
                            ("dosage_administration", "Dosage & Administration"),
                            ("results_efficacy", "Results & Efficacy"), ("technical_limitations", "Limitations"),
                            ("clinical_relevance", "Clinical Relevance")):
        assert card[column] == after(heading), column
        assert "\n" not in card[column] and heading not in card[column]
    # the Limitations paragraph is searchable ('prospective' is only there)
    found = kb(db_url, "search", "prospective", "--format", "csv")
    assert found.exit_code == 0 and "31902683" in found.stdout, found.output


# --------------------------------------------------------------------------------------------
# 3. Hypothesis: generated cards in this layout
# --------------------------------------------------------------------------------------------

_ALPHABET = st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\n\r\x85")
_PUNCT = st.sampled_from(["", ".", "!", "?", ",", " — ", " & ", "'", "(x)", "µg", "é", "日本", "😀", "/", "-", "%"])


@st.composite
def _line(draw: st.DrawFn) -> str:
    """A paragraph line: ends with a full stop unless the reader would take it for a heading."""
    body = draw(st.text(_ALPHABET, min_size=1, max_size=30)).strip() or "x"
    value = f"{body}{draw(_PUNCT)} {draw(st.text(_ALPHABET, max_size=20))}".strip() + "."
    return value


_free = _line().filter(lambda t: not t.startswith(("-", "#", *tf.NOTICE_MARKERS)) and not tf.close_heading(t)
                        and not tf.SOURCE_LINE.match(t) and not t.casefold().startswith("quick summary:"))
_label = st.builds(lambda a, p, b: f"{a}{p}{b}".strip(),
                   st.text(_ALPHABET, min_size=1, max_size=12).map(str.strip).filter(bool), _PUNCT,
                   st.text(_ALPHABET, max_size=10)).filter(lambda t: tf.label_problem(t) is None and t
                                                           and not t.startswith(("-", "#")))
_text = _line().filter(lambda t: not t.startswith(("-", "#")))
_labelled = st.lists(st.builds(Item, text=_text, label=_label), max_size=4)
_optional = st.lists(st.builds(Item, text=_text.filter(lambda t: ": " not in t), label=st.none() | _label), max_size=3)
_paragraphs = st.lists(_free, max_size=3).map("\n\n".join)


@st.composite
def layout_cards(draw: st.DrawFn) -> CardDoc:
    doc = CardDoc(pmid=draw(st.integers(1, 99_999_999)),
                  headline=draw(_free.filter(lambda t: t not in tf.HEADINGS)),
                  quick_summary=draw(_line()),
                  study_type=draw(st.sampled_from(["Observational Study", "Review", "Randomized Controlled Trial"])),
                  reference_title=draw(st.just("") | _free.filter(lambda t: not t.startswith(
                      ("Source:", "Title:", "Year:", tf.PUBLISHED)))),
                  reference_year=draw(st.none() | st.integers(1900, 2030)))
    for name in ("what_research_found", "key_findings", "study_design", "dosage_administration",
                 "results_efficacy", "technical_limitations", "clinical_relevance"):
        setattr(doc, name, draw(_paragraphs))
    for name in ("who_was_studied", "how_long", "what_they_took"):
        setattr(doc, name, draw(st.just("") | _line()))
    doc.notes, doc.limitations = draw(_labelled), draw(_labelled)
    for name in ("findings", "technical_findings", "technical_notes", "technical_limitation_items"):
        setattr(doc, name, draw(_optional))
    return doc


def _view(doc: CardDoc) -> CardView:
    study = {"pmid": doc.pmid, "title": doc.reference_title, "journal": "", "year": doc.reference_year,
             "type": doc.study_type, "design": "Other", "title_markup": None, "doi": None,
             "url": f"https://pubmed.ncbi.nlm.nih.gov/{doc.pmid}/"}
    return CardView(doc=doc, study=study, status="published", generated=False)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(layout_cards())
def test_generated_cards_read_back_in_every_form(doc: CardDoc) -> None:
    """render -> read -> render gives identical bytes, and the text, Markdown and JSON forms
    all read back to the same card."""
    text_form = render(_view(doc), "text")
    assert "\n\n" not in text_form
    back = read_card(text_form)
    assert back.warnings == []
    assert back.doc.same_content(doc), text_form
    assert render(_view(back.doc), "text") == text_form
    assert parse_card(render(_view(doc), "md")).same_content(doc)
    assert CardDoc.from_json(json.loads(render(_view(doc), "json"))["card"]).same_content(doc)


def _rows(conn, pmid: int) -> tuple:  # type: ignore[no-untyped-def]
    card = conn.execute(text("SELECT * FROM cards WHERE pmid = :p"), {"p": pmid}).mappings().one()
    kept = {k: v for k, v in card.items() if k not in ("revision", "created_at", "updated_at", "status", "curator")}
    items = [conn.execute(text(f"SELECT audience, position, label, text, source FROM {t} WHERE pmid = :p "
                               "ORDER BY audience, position"), {"p": pmid}).all()
             for t in ("findings", "limitations", "notes")]
    return kept, items


def test_export_then_import_gives_the_same_rows(sqlite_url: URL, tmp_path: Path) -> None:
    """Generated cards stored, exported, deleted and imported again: the same rows."""
    from kb import curate

    kbdb.upgrade(sqlite_url, "head")
    engine = kbdb.create_kb_engine(sqlite_url)

    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.function_scoped_fixture])
    @given(layout_cards())
    def round_trip(doc: CardDoc) -> None:
        with Session(engine) as s, s.begin():
            curate.save_card(s, doc, action="import", author="t", status="published")
        with Session(engine) as s:
            exported = curate.export_cards(s, [doc.pmid], tmp_path)[0]
        with engine.connect() as conn:
            before = _rows(conn, doc.pmid)
        with Session(engine) as s, s.begin():
            curate.delete_card(s, doc.pmid, author="t")
        with Session(engine) as s, s.begin():
            curate.import_card(s, curate.read_card_file(exported), status="published", author="t")
        with engine.connect() as conn:
            assert _rows(conn, doc.pmid) == before
        with Session(engine) as s, s.begin():
            curate.delete_card(s, doc.pmid, author="t")

    try:
        round_trip()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# 4. Refused: with the line and a suggestion, nothing stored
# --------------------------------------------------------------------------------------------

# The example as a curator fixed it by hand for kb's previous reader (issue 12): title-case Study
# Details labels and Title:/Source:/Year: lines; that reader merged 'Limitations' into the paragraph.
SILENT_MERGE = (EXAMPLE_TEXT.replace("- Who was studied:", "- Who Was Studied:").replace("- How long:", "- How Long:")
                .replace("- What they took:", "- What They Took:")
                .replace("\nVitamin B12 deficiency and metabolism-mediated thrombotic microangiopathy (MM-TMA).\n"
                         "Source: PubMed\nPublished: 2020\n",
                         "\nTitle: Vitamin B12 deficiency and metabolism-mediated thrombotic microangiopathy (MM-TMA).\n"
                         "Source: Transfus Apher Sci\nYear: 2020\n"))


@pytest.mark.parametrize("case, edit, expected", [
    ("Safety heading", lambda t: t.replace("Clinical Relevance\n", "Safety\nNo adverse events were reported.\n"
                                                                   "Clinical Relevance\n"),
     "line 29: 'Safety' looks like a heading, and the card has no such heading"),
    ("misspelt heading", lambda t: t.replace("Study Limitations\n", "Study Limitatons\n"),
     "line 14: 'Study Limitatons' looks like a mistyped heading: did you mean 'Study Limitations'?"),
    ("stray line in Study Details", lambda t: t.replace("- How long:", "Nobody was followed up.\n- How long:"),
     "line 7: a stray line in 'Study Details': 'Nobody was followed up.'; it takes only '- Who was studied: …'"),
    ("unlabelled bullet", lambda t: t.replace("- Get Tested: If you", "- If you"),
     "line 10: a bullet under 'What This Means For You' needs a label: write '- <Label>: If you have"),
    ("misspelt detail label", lambda t: t.replace("- How long:", "- How Lnog:"),
     "line 7: 'Study Details' does not take '- How Lnog: The study reviewed"),
    ("the old silent merge", lambda t: SILENT_MERGE,
     "line 27: 'Limitations' belongs to the current card layout, but line 6 has title-case Study Details labels"),
])
def test_lines_the_reader_cannot_place_are_refused(sqlite_url: URL, tmp_path: Path, case: str, edit, expected) -> None:  # type: ignore[no-untyped-def]
    result = _import(sqlite_url, tmp_path, edit(EXAMPLE_TEXT))
    assert result.exit_code == 1, case
    assert expected in result.stderr, result.stderr
    kbdb.upgrade(sqlite_url, "head")
    with _session(sqlite_url) as s:
        assert s.get(m.Study, 31902683) is None and s.get(m.Card, 31902683) is None
        assert s.scalar(text("SELECT count(*) FROM card_revisions")) == 0


def test_the_old_silent_merge_names_its_fix() -> None:
    with pytest.raises(CardFormatError) as info:
        parse_card(SILENT_MERGE)
    assert info.value.problems == [
        "line 27: 'Limitations' belongs to the current card layout, but line 6 has title-case Study Details labels "
        "('Who Was Studied'), from kb's previous layout: write the whole card in one layout (the current one: see "
        "kb curate edit's template)"]


# --------------------------------------------------------------------------------------------
# 5. --dry-run, --replace and the typo warning
# --------------------------------------------------------------------------------------------


def test_dry_run_shows_the_diff_and_replace_is_required(empty_db_url: URL, tmp_path: Path) -> None:
    # a dry run only reads: like every read-only command, it does not create the database
    missing = kb(empty_db_url, "curate", "import", "--dry-run", str(EXAMPLE))
    assert missing.exit_code == 3 and "kb db upgrade" in missing.stderr
    assert kb(empty_db_url, "db", "upgrade").exit_code == 0
    dry = kb(empty_db_url, "curate", "import", "--dry-run", str(EXAMPLE))
    assert dry.exit_code == 0 and dry.stdout.startswith("--- (no card)\n+++ imported card 31902683\n")
    assert "nothing stored" in dry.stderr
    with _session(empty_db_url) as s:
        assert s.get(m.Card, 31902683) is None and s.get(m.Study, 31902683) is None
    assert kb(empty_db_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    changed = EXAMPLE_TEXT.replace("- Get Tested: If you have", "- Get Tested: When you have")
    dry = _import(empty_db_url, tmp_path, changed, "--dry-run")
    assert dry.exit_code == 0
    assert "\n-- Get Tested: If you have symptoms" in dry.stdout and "\n+- Get Tested: When you have" in dry.stdout
    refused = _import(empty_db_url, tmp_path, changed)
    assert refused.exit_code == 1
    assert "PMID 31902683 already has a card (revision 1) with different text: add --replace" in refused.stderr
    with _session(empty_db_url) as s:
        assert s.get(m.Card, 31902683).revision == 1
    assert kb(empty_db_url, "curate", "import", str(EXAMPLE)).exit_code == 0  # the same text: no --replace needed
    replaced = _import(empty_db_url, tmp_path, changed, "--replace")
    assert replaced.exit_code == 0, replaced.output
    with _session(empty_db_url) as s:
        assert s.get(m.Card, 31902683).revision == 2
        old = s.scalar(text("SELECT card_text FROM card_revisions WHERE pmid = 31902683 AND revision = 1"))
        assert old == EXAMPLE_TEXT


def test_a_pmid_one_digit_off_is_named_by_its_title(sqlite_url: URL, tmp_path: Path) -> None:
    assert kb(sqlite_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    _load_issue_record(sqlite_url, tmp_path)
    typo = _import(sqlite_url, tmp_path, EXAMPLE_TEXT.replace("(PMID: 31902683)", "(PMID: 31902693)"))
    assert typo.exit_code == 0
    assert ("warning: PMID 31902693 is not in the knowledge base: a placeholder study is made for it. A stored study "
            "has the same or nearly the same title (PMID 31902683 'Vitamin B12 deficiency and metabolism-mediated "
            "thrombotic microangiopathy (MM-TMA).'): is the PMID mistyped?") in typo.stderr
    near = _import(sqlite_url, tmp_path, EXAMPLE_TEXT.replace("(PMID: 31902683)", "(PMID: 31902684)")
                   .replace("microangiopathy (MM-TMA).", "microangiopathy (MMTMA)"), name="near.txt")
    assert "(PMID 31902683 'Vitamin B12 deficiency" in near.stderr


# --------------------------------------------------------------------------------------------
# 6. Lint against the PubMed record, as PubMed lists PMID 31902683 (issue 12's facts only)
# --------------------------------------------------------------------------------------------

ISSUE_RECORD = (
    '<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">31902683</PMID>'
    '<Article PubModel="Print"><Journal><JournalIssue CitedMedium="Print"><Volume>59</Volume><Issue>1</Issue>'
    "<PubDate><Year>2020</Year><Month>Feb</Month></PubDate></JournalIssue>"
    "<ISOAbbreviation>Transfus Apher Sci</ISOAbbreviation></Journal>"
    "<ArticleTitle>Vitamin B12 deficiency and metabolism-mediated thrombotic microangiopathy (MM-TMA).</ArticleTitle>"
    "<Pagination><MedlinePgn>102717</MedlinePgn></Pagination>"
    '<ELocationID EIdType="doi" ValidYN="Y">10.1016/j.transci.2019.102717</ELocationID>'
    '<PublicationTypeList><PublicationType UI="D016454">Review</PublicationType></PublicationTypeList>'
    "</Article></MedlineCitation><PubmedData><ArticleIdList>"
    '<ArticleId IdType="pubmed">31902683</ArticleId><ArticleId IdType="doi">10.1016/j.transci.2019.102717</ArticleId>'
    "</ArticleIdList></PubmedData></PubmedArticle>"
)


def _load_issue_record(db: URL, tmp_path: Path) -> None:
    write_set(tmp_path / "31902683.xml", [ISSUE_RECORD])
    loaded = kb(db, "load", str(tmp_path / "31902683.xml"))
    assert loaded.exit_code == 0, loaded.output


def test_lint_and_import_report_the_type_against_pubmeds_record(db_url: URL, tmp_path: Path) -> None:
    _load_issue_record(db_url, tmp_path)
    with _session(db_url) as s:
        study = s.get(m.Study, 31902683)
        assert (study.pub_year, study.journal_iso_abbrev, study.doi) == (2020, "Transfus Apher Sci",
                                                                        "10.1016/j.transci.2019.102717")
    disagreement = "the card calls it 'Observational Study', but PubMed lists it as Review (Review)"
    imported = kb(db_url, "curate", "import", str(EXAMPLE))
    assert imported.exit_code == 0
    assert f"warning: PMID 31902683: {disagreement} (the card is stored as written)" in imported.stderr
    assert "not in the knowledge base" not in imported.stderr
    lint = kb(db_url, "curate", "lint", "31902683")
    assert lint.exit_code == 1 and lint.stdout == f"31902683\ttype\t{disagreement}\n"
    shown = kb(db_url, "card", "31902683")
    assert shown.stdout == EXAMPLE_TEXT + "\n"  # the curated type, PubMed's (same) title and year
    data = json.loads(kb(db_url, "card", "31902683", "--format", "json").stdout)
    assert (data["study"]["curated_type"], data["study"]["pubmed_type"]) == ("Observational Study", "Review")
    assert data["card"]["study_type"] == "Observational Study"


# --------------------------------------------------------------------------------------------
# 7. review, history, revert, delete; the editor
# --------------------------------------------------------------------------------------------


def test_review_clears_needs_review_and_records_who_and_when(db_url: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    assert kb(db_url, "curate", "import", "--status", "draft", str(EXAMPLE)).exit_code == 0
    engine = kbdb.create_kb_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE cards SET needs_review = :t, review_reason = 'record changed'"), {"t": True})
    finally:
        engine.dispose()
    monkeypatch.setenv("KB_CURATOR", "rita")
    result = kb(db_url, "curate", "review", "31902683")
    assert result.exit_code == 0 and "PMID 31902683: reviewed (revision 2)" in result.stderr
    with _session(db_url) as s:
        card = s.get(m.Card, 31902683)
        assert (card.status, card.needs_review, card.review_reason, card.reviewed_by) == ("reviewed", False, None, "rita")
        assert card.reviewed_at is not None
    assert not kb(db_url, "card", "31902683").stdout.startswith("📝")
    meta = json.loads(kb(db_url, "card", "31902683", "--format", "json").stdout)["curation"]
    assert meta["reviewed_by"] == "rita" and meta["reviewed_at"]
    assert kb(db_url, "curate", "review", "999").exit_code == 1


def test_history_revert_and_delete(db_url: URL, tmp_path: Path) -> None:
    assert kb(db_url, "curate", "import", "--status", "draft", "--author", "ana", str(EXAMPLE)).exit_code == 0
    changed = EXAMPLE_TEXT.replace("- Get Tested: If you have", "- Get Tested: When you have")
    assert _import(db_url, tmp_path, changed, "--replace", "--status", "draft").exit_code == 0
    assert kb(db_url, "curate", "status", "31902683", "published").exit_code == 0
    history = kb(db_url, "curate", "history", "31902683")
    heads = [line.split("\t") for line in history.stdout.splitlines() if line.startswith("revision ")]
    assert [(h[0], h[2], h[3], h[4]) for h in heads] == [
        ("revision 1", "ana", "import", "(none) -> draft"), ("revision 2", heads[1][2], "import", "draft -> draft"),
        ("revision 3", heads[2][2], "status", "draft -> published")]
    assert "-- Get Tested: If you have" in history.stdout and "+- Get Tested: When you have" in history.stdout
    reverted = kb(db_url, "curate", "revert", "31902683", "1")
    assert reverted.exit_code == 0 and "revision 1 restored as revision 4" in reverted.stderr
    assert kb(db_url, "card", "31902683").stdout == EXAMPLE_TEXT + "\n"
    with _session(db_url) as s:
        assert s.get(m.Card, 31902683).status == "published"
    assert kb(db_url, "curate", "revert", "31902683", "9").exit_code == 1
    deleted = kb(db_url, "curate", "delete", "31902683")
    assert deleted.exit_code == 0 and "the placeholder study was removed" in deleted.stderr
    with _session(db_url) as s:
        assert s.get(m.Card, 31902683) is None and s.get(m.Study, 31902683) is None
        kept = s.execute(text("SELECT revision, action, status_from, status_to FROM card_revisions "
                              "WHERE pmid = 31902683 ORDER BY revision")).all()
        assert [tuple(r) for r in kept][-2:] == [(4, "revert", "published", "published"),
                                                 (5, "delete", "published", None)]
    from .reliability.support import card_problems

    engine = kbdb.create_kb_engine(db_url)
    try:
        with engine.connect() as conn:  # the reliability suite's integrity check: a deleted card is whole
            assert card_problems(conn, [31902683]) == []
    finally:
        engine.dispose()
    last = kb(db_url, "curate", "history", "31902683").stdout
    assert "revision 5\t" in last and "\tdelete\tpublished -> (deleted)" in last
    # the deleted card comes back from its history
    assert kb(db_url, "curate", "revert", "31902683", "4").exit_code == 0
    assert kb(db_url, "card", "31902683").stdout == EXAMPLE_TEXT + "\n"


def test_delete_keeps_a_real_study(sqlite_url: URL, tmp_path: Path) -> None:
    _load_issue_record(sqlite_url, tmp_path)
    assert kb(sqlite_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    result = kb(sqlite_url, "curate", "delete", "31902683")
    assert result.exit_code == 0 and "placeholder" not in result.stderr
    with _session(sqlite_url) as s:
        assert s.get(m.Study, 31902683) is not None and s.get(m.Card, 31902683) is None
    assert kb(sqlite_url, "card", "31902683").stdout.startswith("📝 DRAFT: Generated from the PubMed record")


def test_edit_opens_the_full_skeleton_with_comments(sqlite_url: URL, tmp_path: Path, kb_env: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sparse = re.sub(r"\nStudy Limitations\n(- .*\n)+", "\n", EXAMPLE_TEXT)
    assert _import(sqlite_url, tmp_path, sparse).exit_code == 0
    edited = EXAMPLE_TEXT.replace("- How long: The study reviewed", "- How long: It reviewed")
    monkeypatch.setenv("EDITOR", _editor(tmp_path, [edited]))
    result = kb(sqlite_url, "curate", "edit", "31902683", "--author", "ed")
    assert result.exit_code == 0 and "saved revision 2" in result.stderr, result.output
    seen = (tmp_path / "seen-0").read_text(encoding="utf-8")
    assert seen.startswith("# The card of PMID 31902683. Lines starting with '# ' are dropped when you save.\n")
    assert "\nStudy Limitations\n# Bullets '- <Label>: <text>'; every bullet needs its label.\nTechnical" in seen
    without_comments = "\n".join(line for line in seen.splitlines() if not line.startswith("#"))
    assert parse_card(without_comments).same_content(parse_card(sparse))
    with _session(sqlite_url) as s:
        assert s.get(m.Card, 31902683).how_long == "It reviewed existing medical information, so there wasn't a " \
                                                   "specific study duration."


def _headline_editor(tmp_path: Path) -> str:
    """An $EDITOR that changes the headline of the text it is given, and nothing else."""
    script = tmp_path / "ed.py"
    script.write_text("import pathlib, sys\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text(encoding='utf-8').replace('What You Need to Know', 'Know This'), "
                      "encoding='utf-8')\n", encoding="utf-8")
    return f"{sys.executable} {script}"


def test_edit_of_an_empty_skeleton_keeps_empty_details(sqlite_url: URL, tmp_path: Path, kb_env: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The skeleton of a card without Study Details has '- How long:' lines; saved as they are,
    with a new headline, they store nothing."""
    no_details = re.sub(r"\nStudy Details\n(- .*\n)+", "\n", EXAMPLE_TEXT)
    assert _import(sqlite_url, tmp_path, no_details).exit_code == 0
    monkeypatch.setenv("EDITOR", _headline_editor(tmp_path))
    result = kb(sqlite_url, "curate", "edit", "31902683")
    assert result.exit_code == 0 and "saved revision 2" in result.stderr, result.output
    with _session(sqlite_url) as s:
        card = s.get(m.Card, 31902683)
        assert card.headline.endswith("Know This") and card.how_long is None


def test_edit_reopens_with_the_errors_as_comments(sqlite_url: URL, tmp_path: Path, kb_env: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert kb(sqlite_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    invalid = EXAMPLE_TEXT.replace("Study Limitations\n", "Study Limitatons\n")
    monkeypatch.setenv("EDITOR", _editor(tmp_path, [invalid, EXAMPLE_TEXT]))
    result = kb(sqlite_url, "curate", "edit", "31902683")
    assert result.exit_code == 0 and "PMID 31902683: no changes" in result.stderr
    reopened = (tmp_path / "seen-1").read_text(encoding="utf-8")
    assert reopened == ("# kb did not save the card:\n"
                        "#   line 17: 'Study Limitatons' looks like a mistyped heading: did you mean "
                        "'Study Limitations'?\n"
                        "# Fix the card below and save; save it unchanged to give up. (These lines are dropped.)\n"
                        + invalid)
    assert reopened.split("\n")[16] == "Study Limitatons"  # the line number counts the file as reopened


def test_edit_that_returns_at_once_without_changes(sqlite_url: URL, tmp_path: Path, kb_env: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert kb(sqlite_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    monkeypatch.setenv("EDITOR", _editor(tmp_path, [UNCHANGED]))
    result = kb(sqlite_url, "curate", "edit", "31902683")
    assert result.exit_code == 0
    assert result.stderr == "PMID 31902683: no changes (does your editor need --wait?)\n"
    with _session(sqlite_url) as s:
        assert s.get(m.Card, 31902683).revision == 1


# --------------------------------------------------------------------------------------------
# 8. Markdown and HTML, cards stored before, kb's previous layout
# --------------------------------------------------------------------------------------------


def _headings(md: str) -> list[str]:
    return [re.sub(r"^#+ ", "", line) for line in md.splitlines() if re.match(r"^#{2,3} ", line)]


def test_markdown_and_html_show_the_same_sections_in_the_same_order(sqlite_url: URL) -> None:
    assert kb(sqlite_url, "curate", "import", str(KB_CARD)).exit_code == 0
    md = kb(sqlite_url, "card", "31902683", "--format", "md").stdout
    page = lxml.html.fromstring(kb(sqlite_url, "card", "31902683", "--format", "html").stdout)
    html = [h.text_content() for h in page.xpath("//article//h2 | //article//h3")]
    txt = kb(sqlite_url, "card", "31902683").stdout.splitlines()
    in_text = [line for line in txt if line in tf.HEADINGS]
    assert _headings(md) == html == in_text
    assert in_text[-3:] == ["Limitations", "Clinical Relevance", "Original Study Reference"]
    assert page.xpath("string(//h3[.='Limitations']/following-sibling::p[1])").startswith("A case series")


def test_cards_stored_before_render_in_the_new_layout(db_url: URL) -> None:
    """A card as kb stored it before issue 12 (technical limitations as bullets, no paragraph),
    written with plain SQL into the schema before migration 0008, which only adds columns:
    rendered in the new layout, and it reads back unchanged; its old revision is kept."""
    kbdb.upgrade(db_url, "0007")
    engine = kbdb.create_kb_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO studies (pmid, pmid_version, record_type, title, title_markup, pub_year, "
                              "evidence_status, is_retracted, is_deleted, is_placeholder, source) VALUES "
                              "(7, 1, 'article', 'A title', 'A title', 2019, 'ok', :f, :f, :f, 'file')"),
                         {"f": False})
            conn.execute(text("INSERT INTO cards (pmid, headline, quick_summary, who_was_studied, results_efficacy, "
                              "status, revision, needs_review, extracted_fields, created_at, updated_at) VALUES "
                              "(7, 'Old card', 'Short.', 'Adults', 'It worked.', 'published', 1, :f, '[]', "
                              "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"f": False})
            conn.execute(text("INSERT INTO limitations (pmid, position, audience, label, text, source, created_at, updated_at) "
                              "VALUES (7, 0, 'technical', 'Small', 'Ten people.', 'curator', CURRENT_TIMESTAMP, "
                              "CURRENT_TIMESTAMP), (7, 0, 'lay', 'Few People', 'Only ten.', 'curator', "
                              "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO card_revisions (pmid, revision, author, created_at, action, card_text, "
                              "content) VALUES (7, 1, 'old', CURRENT_TIMESTAMP, 'import', 'Old card', '{}')"))
    finally:
        engine.dispose()
    kbdb.upgrade(db_url, "head")
    history = kb(db_url, "curate", "history", "7", "--no-diff").stdout
    assert history.endswith("\told\timport\tstatus not recorded\n")
    shown = kb(db_url, "card", "7").stdout
    assert shown == ("Old card\nQuick Summary: Short.\nStudy Details\n- Who was studied: Adults\n"
                     "Study Limitations\n- Few People: Only ten.\nTechnical Analysis Details\nResults & Efficacy\n"
                     "It worked.\nLimitations\n- Small: Ten people.\n"
                     "Source: PubMed | Type: Other | Year: 2019\nOriginal Study Reference\nA title\nSource: PubMed\n"
                     "Published: 2019\n📄 Read Full Study (PMID: 7)\n")
    assert parse_card(shown).technical_limitation_items == [Item(text="Ten people.", label="Small")]


def test_the_previous_layout_still_imports_with_a_warning(sqlite_url: URL) -> None:
    result = kb(sqlite_url, "curate", "import", str(LEGACY_CARD))
    assert result.exit_code == 0, result.output
    assert ("is in kb's previous card layout (title-case Study Details labels; 'Title:'/'Year:' lines in the "
            "reference; a journal on the reference's 'Source:' line; blank lines between sections), which is "
            "deprecated") in result.stderr
    shown = kb(sqlite_url, "card", "31902683").stdout
    assert shown == KB_CARD.read_text(encoding="utf-8").replace(
        "Limitations\nA case series from one centre, without a comparison group; the PLASMIC score cut-offs were "
        "not validated.\n", "")
    with _session(sqlite_url) as s:
        assert s.get(m.Card, 31902683).reference_source == "Transfus Apher Sci"
    legacy = LEGACY_CARD.read_text(encoding="utf-8").replace(
        "\nSource: PubMed | Type:", "\nTechnical Limitations\n- Single Centre: One hospital.\n\nSource: PubMed | Type:")
    read = read_card(legacy)
    assert read.doc.technical_limitation_items == [Item(text="One hospital.", label="Single Centre")]
    assert "'Technical Limitations'" in read.warnings[0]


def test_json_form_imports(sqlite_url: URL, tmp_path: Path) -> None:
    assert kb(sqlite_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    (tmp_path / "card.json").write_text(kb(sqlite_url, "card", "31902683", "--format", "json").stdout, encoding="utf-8")
    other = URL.create("sqlite", database=str(tmp_path / "other.sqlite3"))
    assert kb(other, "curate", "import", str(tmp_path / "card.json")).exit_code == 0
    assert kb(other, "card", "31902683").stdout == EXAMPLE_TEXT + "\n"
    (tmp_path / "bad.json").write_text("[1, 2]", encoding="utf-8")
    bad = kb(other, "curate", "import", str(tmp_path / "bad.json"))
    assert bad.exit_code == 1 and "is not the JSON of a card" in bad.stderr


def test_card_json_carries_the_notice_lines() -> None:
    doc = parse_card(EXAMPLE_TEXT)
    view = CardView(doc=doc, study={"pmid": 31902683, "title": doc.reference_title, "year": 2020,
                                    "type": doc.study_type, "url": "u", "title_markup": None},
                    status="draft", generated=False)
    from kb.cards.data import Notice

    view.notices = [Notice("draft", "📝", "DRAFT", "This card has not been reviewed yet.")]
    text_form = render(view, "text")
    assert text_form.startswith("📝 DRAFT: This card has not been reviewed yet.\nVitamin B12 Deficiency & Blood")
    assert read_card(text_form).doc.same_content(doc)
    assert card_json(view)["notices"][0]["title"] == "DRAFT"


def test_edit_keeps_the_cards_own_lines_that_start_like_comments(sqlite_url: URL, tmp_path: Path, kb_env: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """'# of patients: 12' is a paragraph of the card, not one of the template's comments."""
    paragraph = "# of patients: 12 in all."
    card = EXAMPLE_TEXT.replace("Study Design\n", f"Study Design\n{paragraph}\n")
    assert _import(sqlite_url, tmp_path, card).exit_code == 0
    monkeypatch.setenv("EDITOR", _headline_editor(tmp_path))
    assert kb(sqlite_url, "curate", "edit", "31902683").exit_code == 0
    with _session(sqlite_url) as s:
        assert s.get(m.Card, 31902683).study_design.startswith(f"{paragraph}\n\nThis observational study")


def test_a_colon_followed_by_two_spaces_is_not_a_label() -> None:
    """Found by the reliability suite: '- NŀĄ:  0 0' came back as label 'NŀĄ' and text '0 0' (a
    space lost). A label is followed by exactly ': ' and the text."""
    assert tf.split_label("NŀĄ:  0 0") == Item(text="NŀĄ:  0 0")
    assert tf.split_label("Get Tested: now") == Item(text="now", label="Get Tested")


def test_edit_gives_up_when_the_same_invalid_text_comes_back(sqlite_url: URL, tmp_path: Path, kb_env: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor (a script) that writes the same invalid card every time, over kb's error lines:
    kb stops at the second refusal instead of reopening for ever."""
    assert kb(sqlite_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    invalid = EXAMPLE_TEXT.replace("Study Limitations\n", "Study Limitatons\n")
    monkeypatch.setenv("EDITOR", _editor(tmp_path, [invalid, invalid, EXAMPLE_TEXT]))
    result = kb(sqlite_url, "curate", "edit", "31902683")
    assert result.exit_code == 2 and "the card was not saved" in result.stderr
    assert len(list(tmp_path.glob("seen-*"))) == 2


def test_trailing_spaces_of_a_stored_card_need_no_replace(sqlite_url: URL) -> None:
    """A card stored with a trailing space (written by hand, or before the reader dropped them)
    exports without it; importing that needs no --replace: the format cannot carry the space."""
    assert kb(sqlite_url, "curate", "import", str(EXAMPLE)).exit_code == 0
    engine = kbdb.create_kb_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE cards SET quick_summary = quick_summary || '  '"))
    finally:
        engine.dispose()
    dry = kb(sqlite_url, "curate", "import", "--dry-run", str(EXAMPLE))
    assert dry.stdout == f"# {EXAMPLE}: PMID 31902683 unchanged\n"
    again = kb(sqlite_url, "curate", "import", str(EXAMPLE))
    assert again.exit_code == 0, again.output
