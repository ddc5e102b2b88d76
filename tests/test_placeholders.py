"""Placeholder studies: a PMID kb knows only from an imported card or a topic exclusion.

When nothing needs one any more (its card deleted, its topic removed), it goes, and it leaves the
search index whole: on SQLite the index (FTS5 with external content) must be told the text it
indexed before the study's row is deleted, or its entries stay behind for a study that is gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from kb.demo import sample_card_file, sample_record_files

from .conftest import kb

UNKNOWN = 11112222  # a PMID none of the sample records has


@pytest.fixture(params=["sqlite", "postgresql"])
def sample(request: pytest.FixtureRequest) -> URL:
    """A database with the six sample studies that ship with kb, on each backend."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    result = kb(url, "load", *map(str, sample_record_files()))
    assert result.exit_code == 0, result.output
    return url


def index_is_whole(url: URL) -> list[int]:
    """The PMIDs of index rows without a study (none when the index is whole); on SQLite FTS5's
    own integrity check must pass as well (it compares the index with the text it reads)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if url.get_backend_name() == "sqlite":
                conn.execute(text("INSERT INTO study_search (study_search, rank) VALUES ('integrity-check', 1)"))
                rows = conn.execute(text("SELECT rowid FROM study_search_docs WHERE pmid NOT IN (SELECT pmid FROM studies)"))
            else:
                rows = conn.execute(text("SELECT pmid FROM study_search WHERE pmid NOT IN (SELECT pmid FROM studies)"))
            return [r[0] for r in rows]
    finally:
        engine.dispose()


def studies(url: URL) -> set[int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT pmid FROM studies"))}
    finally:
        engine.dispose()


def placeholder_card(tmp_path: Path, pmid: int) -> Path:
    """The shipped example card, for a PMID kb does not hold."""
    source = sample_card_file().read_text(encoding="utf-8")
    path = tmp_path / f"card-{pmid}.txt"
    path.write_text(source.replace("31902683", str(pmid)), encoding="utf-8")
    return path


def test_deleting_the_card_of_a_placeholder_leaves_the_index_whole(sample: URL, tmp_path: Path) -> None:
    result = kb(sample, "curate", "import", str(placeholder_card(tmp_path, UNKNOWN)))
    assert result.exit_code == 0, result.output
    assert UNKNOWN in studies(sample)
    assert str(UNKNOWN) in kb(sample, "search", "thrombotic microangiopathy", "--format", "csv").stdout

    result = kb(sample, "curate", "delete", str(UNKNOWN))
    assert result.exit_code == 0, result.output
    assert "the placeholder study was removed" in result.output
    assert UNKNOWN not in studies(sample)
    assert index_is_whole(sample) == []
    assert str(UNKNOWN) not in kb(sample, "search", "thrombotic microangiopathy", "--format", "csv").stdout

    # The same PMID can come back, and the index stays whole.
    assert kb(sample, "curate", "import", str(placeholder_card(tmp_path, UNKNOWN))).exit_code == 0
    assert index_is_whole(sample) == []


def test_removing_a_topic_removes_the_placeholders_only_it_needed(sample: URL, tmp_path: Path) -> None:
    stored = min(studies(sample))
    only_here, also_elsewhere, with_card = 99999999, 99999998, UNKNOWN
    assert kb(sample, "topic", "add", "b12", "vitamin b12[tiab]").exit_code == 0
    assert kb(sample, "topic", "add", "anemia", "anemia[tiab]").exit_code == 0
    assert kb(sample, "curate", "import", str(placeholder_card(tmp_path, with_card))).exit_code == 0
    for pmid in (stored, only_here, also_elsewhere, with_card):
        assert kb(sample, "topic", "exclude", "b12", str(pmid)).exit_code == 0
    assert kb(sample, "topic", "exclude", "anemia", str(also_elsewhere)).exit_code == 0
    before = studies(sample)
    assert {only_here, also_elsewhere, with_card, stored} <= before

    result = kb(sample, "topic", "remove", "b12")
    assert result.exit_code == 0, result.output
    assert studies(sample) == before - {only_here}  # the stored study, the card's and the other topic's stay
    assert index_is_whole(sample) == []
