"""Regressions found by the reliability suite's card scenarios (issue 7): the card text format's
reader, its Markdown form, curated text in the PostgreSQL search index, and how a statement
PostgreSQL refuses is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb.cards.textformat import CardFormatError, parse_card

from .conftest import kb

KB_CARD = Path(__file__).parent / "data" / "card-31902683-kb.txt"



def test_a_card_without_reference_year_title_or_source_reads_back(sqlite_url: URL, tmp_path: Path) -> None:
    """kb prints 'Year: ' (and 'Title: ', 'Source: ', '| Year: ') for what the card does not state.
    The reader strips trailing spaces, so it saw 'Year:': it refused the reference lines, and it
    took the 'Source: PubMed | Type: … | Year:' line for text of the section above (the card's
    Clinical Relevance grew a paragraph, and its study type was lost) -- kb could not read back its
    own card, nor save it unchanged from kb curate edit."""
    text = KB_CARD.read_text(encoding="utf-8")
    # (issue 12's layout leaves out the title and 'Published:' lines the card cannot fill)
    bare = (text.replace("| Year: 2020\n", "| Year: \n").replace("Vitamin B12 deficiency and thrombotic "
            "microangiopathy: a diagnostic challenge\n", "").replace("Published: 2020\n", ""))
    doc = parse_card(bare)
    assert doc.study_type == "Observational Study"
    assert doc.clinical_relevance == parse_card(text).clinical_relevance
    assert (doc.reference_title, doc.reference_source, doc.reference_year) == ("", "", None)
    (tmp_path / "bare.txt").write_text(bare, encoding="utf-8")
    assert kb(sqlite_url, "curate", "import", str(tmp_path / "bare.txt")).exit_code == 0
    shown = kb(sqlite_url, "card", "31902683")
    assert shown.stdout == bare
    (tmp_path / "again.txt").write_text(shown.stdout, encoding="utf-8")
    again = kb(sqlite_url, "curate", "import", str(tmp_path / "again.txt"))
    assert again.exit_code == 0 and "imported 0 cards (1 unchanged" in again.stderr, again.output


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07", "\x0b", "\x7f"])
def test_control_characters_are_refused_with_their_line(char: str) -> None:
    """A NUL byte reached the database: PostgreSQL failed with 'unexpected DataError' (and the rest
    of a multi-file import was not attempted); SQLite stored it. Other control characters (an
    ANSI escape sequence, say) reached the terminal through kb card. Tab stays allowed."""
    text = KB_CARD.read_text(encoding="utf-8").replace("Can Look", f"Can{char}Look")
    with pytest.raises(CardFormatError) as info:
        parse_card(text)
    assert info.value.problems == [f"line 1: a control character (U+{ord(char):04X}) is not allowed in a card"]
    assert parse_card(text.replace(char, "\t")).headline.startswith("Vitamin B12 Deficiency Can\tLook")


def test_a_nul_byte_fails_that_file_only(db_url: URL, tmp_path: Path) -> None:
    bad = tmp_path / "nul.txt"
    bad.write_text(KB_CARD.read_text(encoding="utf-8").replace("(PMID: 31902683)", "(PMID: 31902684)")
                   .replace("Small Numbers:", "Small\x00Numbers:"), encoding="utf-8")
    result = kb(db_url, "curate", "import", str(bad), str(KB_CARD))
    assert result.exit_code == 1, result.output
    assert "line 14: a control character (U+0000)" in result.stderr and "unexpected" not in result.stderr
    with Session(kbdb.create_kb_engine(db_url)) as s:
        assert s.scalars(select(m.Card.pmid)).all() == [31902683]
        assert s.get(m.Study, 31902684) is None


def test_a_label_with_an_asterisk_survives_the_markdown_form(sqlite_url: URL, tmp_path: Path) -> None:
    """kb escapes '*' in Markdown ('\\*'); the reader's bold-label pattern stopped at any '*', so
    '- **P\\*0.05 Level:** text' came back as a bullet without a label whose text began '**P*0.05'."""
    text = KB_CARD.read_text(encoding="utf-8").replace("- Get Tested:", "- Get *Tested* {{ 7*7 }}:")
    (tmp_path / "card.txt").write_text(text, encoding="utf-8")
    assert kb(sqlite_url, "curate", "import", str(tmp_path / "card.txt")).exit_code == 0
    md = kb(sqlite_url, "card", "31902683", "--format", "md").stdout
    assert "- **Get \\*Tested\\* \\{\\{ 7\\*7 \\}\\}:** If you" in md
    back = parse_card(md)
    assert back.notes[0].label == "Get *Tested* {{ 7*7 }}"
    assert back.same_content(parse_card(text))


@pytest.mark.postgres
def test_enormous_curated_text_is_indexed_on_postgresql(pg_url: URL, tmp_path: Path) -> None:
    """A card with megabytes of distinct words: PostgreSQL refused its search-index row ('string is
    too long for tsvector', max 1 MB), and kb reported that as 'cannot connect to PostgreSQL'
    (exit 69). The index now takes the first part of each text column; the card is stored whole."""
    words = " ".join(f"w{i}x" for i in range(400_000))  # 2.8 MB
    text = KB_CARD.read_text(encoding="utf-8").replace("- Small Numbers: The", f"- Small Numbers: {words} The")
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    result = kb(pg_url, "curate", "import", str(tmp_path / "big.txt"))
    assert result.exit_code == 0, result.output
    with Session(kbdb.create_kb_engine(pg_url)) as s:
        assert s.scalar(select(func.length(m.Limitation.text)).where(m.Limitation.position == 0)) > len(words)
    found = kb(pg_url, "search", "w17x", "--format", "csv")
    assert found.exit_code == 0 and "31902683" in found.stdout, found.output
    assert kb(pg_url, "card", "31902683").stdout == text


@pytest.mark.parametrize("paragraph", ["+ 5 µg daily", "---", "* starred", "-5 °C storage", "***"])
def test_a_paragraph_that_starts_like_a_list_item_survives_the_markdown_form(sqlite_url: URL, tmp_path: Path,
                                                                            paragraph: str) -> None:
    """Markdown takes a line starting '+ ' for a list item and '---' for a rule, and so does kb's
    reader of its Markdown form; kb did not escape them: a Clinical Relevance paragraph '+ 5 µg
    daily' came back as a bullet, one in Results & Efficacy was refused ('takes no bullets'), a
    paragraph '---' was dropped."""
    text = KB_CARD.read_text(encoding="utf-8")
    for heading in ("Results & Efficacy\n", "Clinical Relevance\n"):
        text = text.replace(heading, f"{heading}{paragraph}\n")
    (tmp_path / "card.txt").write_text(text, encoding="utf-8")
    assert kb(sqlite_url, "curate", "import", str(tmp_path / "card.txt")).exit_code == 0
    md = kb(sqlite_url, "card", "31902683", "--format", "md").stdout
    (tmp_path / "card.md").write_text(md, encoding="utf-8")
    other = URL.create("sqlite", database=str(tmp_path / "other.sqlite3"))
    result = kb(other, "curate", "import", str(tmp_path / "card.md"))
    assert result.exit_code == 0, result.output
    assert kb(other, "card", "31902683").stdout == text


@pytest.mark.postgres
def test_a_statement_postgresql_refuses_is_not_reported_as_no_connection(pg_url: URL) -> None:
    """Every OperationalError of a write was reported as 'cannot connect to PostgreSQL … Check that
    the server is running' (exit 69), though psycopg raises OperationalError for statements the
    server refuses too (the oversized tsvector above, lock timeouts, deadlocks)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from kb.errors import EXIT_FAILURE, EXIT_UNAVAILABLE

    engine = create_engine(pg_url)
    try:
        with pytest.raises(OperationalError) as refused, engine.connect() as conn:
            conn.execute(text("SELECT to_tsvector('simple', string_agg(md5(i::text), ' ')) "
                              "FROM generate_series(1, 40000) i"))
    finally:
        engine.dispose()
    error = kbdb.explain_operational_error(pg_url, refused.value)
    assert error.exit_code == EXIT_FAILURE
    assert str(error) == ("PostgreSQL refused the operation: string is too long for tsvector "
                          "(1450948 bytes, max 1048575 bytes)")
    unreachable = create_engine(pg_url.set(port=1))
    with pytest.raises(OperationalError) as down, unreachable.connect():
        pass
    error = kbdb.explain_operational_error(pg_url, down.value)
    assert error.exit_code == EXIT_UNAVAILABLE and "cannot connect to PostgreSQL" in str(error)


def test_a_text_card_with_a_paragraph_starting_with_a_hash_is_not_read_as_markdown(sqlite_url: URL,
                                                                                   tmp_path: Path) -> None:
    """The reader took any card whose first 20 lines had one starting '# ' for kb's Markdown form:
    a paragraph '# of patients: 12 \\ 3 *drugs*' lost its '# ' and its backslash, on import and on
    every kb curate edit of the card. kb's Markdown form is recognised by its headline now."""
    paragraph = "# of patients: 12 \\ 3 *drugs* [sic] _x_"
    text = KB_CARD.read_text(encoding="utf-8").replace("What The Research Found\n",
                                                       f"What The Research Found\n{paragraph}\n")
    assert parse_card(text).what_research_found == paragraph
    (tmp_path / "card.txt").write_text(text, encoding="utf-8")
    assert kb(sqlite_url, "curate", "import", str(tmp_path / "card.txt")).exit_code == 0
    assert kb(sqlite_url, "card", "31902683").stdout == text
    md = kb(sqlite_url, "card", "31902683", "--format", "md").stdout
    assert parse_card(md).same_content(parse_card(text))  # the Markdown form is still recognised
    warned = "> **⚠️ RETRACTED:** PubMed lists this study as retracted.\n\n" + md
    assert parse_card(warned).same_content(parse_card(text))
