"""A malformed record partway through a file: `kb load` keeps every whole batch before it (issue 11).

lxml 6.2's ``iterparse`` raised before handing over the records completed in the same read buffer,
so the good records before a fault were lost in small files while lxml 6.0 kept them. kb now feeds a
pull parser bounded chunks and drains its events after every feed (kb/pubmed/parse.py), and these
tests pin the outcome down whatever lxml's buffering: for faults of several kinds, after N good real
records, in a small file (parsed in-process) and in one over 2 MB (parsed in a second process), the
stored studies are exactly the whole batches before the fault, each whole, nothing of the faulty
batch is stored, and the error names the file and the line of the fault.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import func, select

from kb import db as kbdb
from kb import models as m
from kb.cli import cli
from kb.ingest import PIPELINE_MIN_BYTES
from kb.pubmed.parse import iter_pubmed_xml

from .conftest import url_text

BATCH = 20
_PMID = re.compile(rb'<PMID Version="(\d+)">\d+</PMID>')


@pytest.fixture(scope="module")
def templates(corpus: Path) -> list[bytes]:
    """Real PubmedArticle records of the corpus (each at most 16 KB), as bytes."""
    out = []
    for path in sorted(corpus.rglob("*.xml")):
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
        if root.tag != "PubmedArticleSet":
            continue
        for elem in root.iterchildren("PubmedArticle"):
            xml = etree.tostring(elem, encoding="utf-8")
            if len(xml) <= 16_000:
                out.append(xml)
    assert len(out) >= 100
    return out


def _record(templates: list[bytes], index: int, pmid: int) -> bytes:
    """A real record, renumbered: only its own PMID (the first) changes."""
    return _PMID.sub(rb'<PMID Version="\1">' + str(pmid).encode() + b"</PMID>", templates[index % len(templates)], 1)


# Each fault turns a good record into a malformed one; returns the bytes and the offset of the fault.
def _invalid_utf8(record: bytes) -> tuple[bytes, int]:
    at = record.index(b"<ArticleTitle>") + len(b"<ArticleTitle>")
    return record[:at] + b"\xff\xfe" + record[at:], at


def _mismatched_tag(record: bytes) -> tuple[bytes, int]:
    at = record.index(b"</ArticleTitle>")
    return record[:at] + b"</Title>" + record[at + len(b"</ArticleTitle>"):], at


def _truncated(record: bytes) -> tuple[bytes, int]:
    """The file ends in the middle of this record (a download cut short)."""
    cut = record.index(b"</Journal>")
    return record[:cut], cut


FAULTS: dict[str, Callable[[bytes], tuple[bytes, int]]] = {
    "invalid-utf8": _invalid_utf8,
    "mismatched-tag": _mismatched_tag,
    "truncated": _truncated,
}


def _write(path: Path, templates: list[bytes], good: int, fault: str, base: int, pad_to: int = 0) -> int:
    """``good`` records, one broken by ``fault``, then good ones again (none after a truncation).

    With ``pad_to``, more good records come after the fault until the file holds that many bytes,
    so the file's size (and the parse path it takes) does not depend on ``good``. Returns the line
    of the fault."""
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'
    parts = [head]
    parts += [_record(templates, i, base + i) + b"\n" for i in range(good)]
    broken, offset = FAULTS[fault](_record(templates, good, base + good))
    prefix = b"".join(parts)
    line = (prefix + broken[:offset]).count(b"\n") + 1
    parts.append(broken)
    if fault != "truncated":
        parts.append(b"\n")
        size, i = len(prefix) + len(broken), good + 1
        while i <= good + 3 or size < pad_to:
            record = _record(templates, i, base + i) + b"\n"
            parts.append(record)
            size += len(record)
            i += 1
        parts.append(b"</PubmedArticleSet>\n")
    path.write_bytes(b"".join(parts))
    return line


CHILDREN = {"authors": m.Author, "publication_types": m.PublicationType, "article_ids": m.ArticleId}


def _stored(url) -> tuple[set[int], dict[str, dict[int, int]]]:  # type: ignore[no-untyped-def]
    """The stored PMIDs, and per child table the row count of each PMID."""
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            pmids = set(conn.execute(select(m.Study.pmid)).scalars())
            children = {
                name: dict(conn.execute(select(table.pmid, func.count()).group_by(table.pmid)).all())
                for name, table in CHILDREN.items()
            }
        return pmids, children
    finally:
        engine.dispose()


def _expected_children(path: Path, pmids: set[int]) -> dict[str, dict[int, int]]:
    """What the whole records of ``pmids`` in ``path`` hold, read from the file itself."""
    out: dict[str, dict[int, int]] = {name: {} for name in CHILDREN}
    root = etree.parse(str(path), etree.XMLParser(recover=True, resolve_entities=False, no_network=True)).getroot()
    for elem in root.iterchildren("PubmedArticle"):
        pmid = int(elem.findtext("MedlineCitation/PMID"))
        if pmid in pmids:
            (record,) = iter_pubmed_xml(io.BytesIO(b"<PubmedArticleSet>" + etree.tostring(elem) + b"</PubmedArticleSet>"))
            for name, count in (("authors", len(record.authors)), ("publication_types", len(record.publication_types)),
                                ("article_ids", len(record.article_ids))):
                if count:
                    out[name][pmid] = count
    return out


def _check(db_url, path: Path, good: int, line: int, base: int) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["--db", url_text(db_url), "load", "--quiet", "--batch-size", str(BATCH), str(path)])
    assert result.exit_code == 1, result.output
    errors = [row for row in result.stderr.splitlines() if row.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"Error: {path}, line {line}: "), errors[0]
    kept = good - good % BATCH  # the whole batches before the fault
    assert f"{kept} records of {path.name} before the failed batch are stored" in errors[0]
    pmids, children = _stored(db_url)
    assert pmids == set(range(base, base + kept))
    # every stored study is whole: its authors, publication types and ids are all there
    assert children == _expected_children(path, pmids)
    assert sum(map(len, children.values())) >= 2 * kept


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("good", [0, 1, BATCH - 1, BATCH, 2 * BATCH + 7, 5 * BATCH])
def test_small_file_keeps_the_batches_before_a_fault(db_url, templates, tmp_path: Path, fault: str, good: int) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"small-{fault}-{good}.xml"
    line = _write(path, templates, good, fault, base=40_000_000)
    assert path.stat().st_size < PIPELINE_MIN_BYTES  # parsed in-process
    _check(db_url, path, good, line, 40_000_000)


LARGE_CASES = [(fault, good) for fault in ("invalid-utf8", "mismatched-tag") for good in (3, BATCH * 17)] + [
    ("truncated", BATCH * 17), ("truncated", 411)]  # a truncated file needs ~260 good records to pass 2 MB


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "good"), LARGE_CASES)
def test_large_file_keeps_the_batches_before_a_fault(sqlite_url, templates, tmp_path: Path, fault: str, good: int) -> None:  # type: ignore[no-untyped-def]
    """Over 2 MB, the file is parsed in a second process (KB_LOAD_PIPELINE) and sent in batches."""
    path = tmp_path / f"large-{fault}-{good}.xml"
    line = _write(path, templates, good, fault, base=50_000_000, pad_to=PIPELINE_MIN_BYTES + 300_000)
    assert path.stat().st_size > PIPELINE_MIN_BYTES
    _check(sqlite_url, path, good, line, 50_000_000)


def test_truncated_right_after_a_whole_batch(sqlite_url, templates, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The file ends just after the closing tag of the last record of a batch: that batch is whole
    and stored (lxml's close() makes up 'end' events only for elements left open)."""
    path = tmp_path / "cut-at-batch-end.xml.gz"
    records = b"".join(_record(templates, i, 60_000_000 + i) + b"\n" for i in range(2 * BATCH))
    data = b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n' + records
    path.write_bytes(gzip.compress(data))
    result = CliRunner().invoke(cli, ["--db", url_text(sqlite_url), "load", "--quiet", "--batch-size", str(BATCH), str(path)])
    assert result.exit_code == 1
    assert "Premature end of data" in result.stderr
    pmids, children = _stored(sqlite_url)
    assert pmids == set(range(60_000_000, 60_000_000 + 2 * BATCH))
    assert children == _expected_children(path, pmids)


@pytest.mark.parametrize(("good", "large"), [(5 * BATCH + 7, False), (3 * BATCH, False), (BATCH * 17, True)])
def test_a_batch_of_several_chunks_is_one_transaction(sqlite_url, templates, tmp_path: Path, good: int,
                                                       large: bool) -> None:  # type: ignore[no-untyped-def]
    """kb load stores a batch (3,000 records by default) chunk by chunk (1,000) in one transaction:
    a fault in a later chunk takes back the chunks of its batch already stored, and nothing else."""
    from kb.errors import KbError
    from kb.ingest import load_files

    batch = 3 * BATCH  # three chunks of BATCH records a transaction
    path = tmp_path / f"chunks-{good}.xml"
    _write(path, templates, good, "mismatched-tag", base=70_000_000, pad_to=PIPELINE_MIN_BYTES + 300_000 if large else 0)
    assert (path.stat().st_size > PIPELINE_MIN_BYTES) == large  # the parser process sends the chunks
    engine = kbdb.create_kb_engine(sqlite_url)
    try:
        with pytest.raises(KbError) as failed:
            load_files(kbdb.make_sessionmaker(engine, write=True), [path], batch_size=batch, chunk_size=BATCH)
        kept = good - good % batch
        assert f"{kept} records of {path.name} before the failed batch are stored" in str(failed.value)
        pmids, children = _stored(sqlite_url)
        assert pmids == set(range(70_000_000, 70_000_000 + kept))
        assert children == _expected_children(path, pmids)
        with engine.connect() as conn:
            assert conn.execute(select(m.SourceFile.status, m.SourceFile.records)).one() == ("failed", kept)
    finally:
        engine.dispose()
