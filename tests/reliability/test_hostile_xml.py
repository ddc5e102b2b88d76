"""Hostile PubMed XML through `kb load` (issue 7, scenario 1), on SQLite and PostgreSQL.

Every file starts with four good records (two batches of two: ``--batch-size 2``), then holds the
hostile part, then one more good record. Each file is loaded by ``kb load`` in a process of its
own (forked from a harness that has kb imported already, see :class:`KbRunner`) whose peak RSS
(``os.wait4``: the process and the parser process it forks) and wall time are measured: under
300 MB and 30 s. Two outcomes are acceptable:

* **refused**: exit 1 and one ``Error:`` line naming the file and the line; the two earlier
  batches stored whole (every child row present), nothing of the hostile record nor of anything
  after it, and ``source_files`` says ``failed``;
* **safe**: exit 0, everything stored, and nothing the hostile part pointed at (a local file, a
  secret file, a URL on a local HTTP server) anywhere in the database; the server saw no request.

What the parser does (kb/pubmed/parse.py): no DTD is loaded, no entity is resolved, no network is
touched, and libxml2's default limits (no ``huge_tree``) stop entity amplification, nesting
deeper than 256 elements and text nodes over 10 MB.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import models as m

from ..conftest import url_text
from ..records import article
from .support import database_text, db_url  # noqa: F401 - db_url is a fixture

MAX_RSS_MB = 300
MAX_SECONDS = 30
GOOD = 4  # good records before the hostile part: two batches of --batch-size 2
BATCH = 2
CHILDREN = {"authors": 1, "publication_types": 1, "abstract_sections": 1, "article_ids": 1}


# --------------------------------------------------------------------------------------------
# Running kb load and looking at the database
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("Error:")]


# The kb processes are forked from a small harness that has already imported kb: a fresh
# `python -m kb` costs a second or more of imports on a busy machine, and every case needs one.
# Each case still runs the real CLI in a process of its own, whose peak RSS wait4 reports (the
# harness's imports included, so the figure is an upper bound of a `kb load`).
_HARNESS = r"""
import json, os, sys, threading, time
from kb.cli import cli
import alembic.command, alembic.runtime.migration, alembic.script, psycopg  # what every kb command imports
for line in sys.stdin:
    job = json.loads(line)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(job["cwd"])
            os.environ.clear()
            os.environ.update(job["env"])
            out = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(err, 2)
            try:
                cli.main(args=job["args"], prog_name="kb")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    killer = threading.Timer(job["timeout"], os.kill, (pid, 9))
    killer.start()
    _, status, usage = os.wait4(pid, 0)
    killer.cancel()
    print(json.dumps({"code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
                      "seconds": time.monotonic() - start}), flush=True)
"""


class KbRunner:
    """Runs `kb ARGS` in a forked process of its own and reports its exit code, time and peak RSS."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _HARNESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env={**os.environ})

    def __call__(self, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> Run:
        out, err = cwd / "kb.stdout", cwd / "kb.stderr"
        job = {"args": args, "env": env, "cwd": str(cwd), "stdout": str(out), "stderr": str(err), "timeout": timeout}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return Run(answer["code"], out.read_text("utf-8", "replace"), err.read_text("utf-8", "replace"),
                   answer["seconds"], answer["maxrss_kb"] / 1024)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)




@pytest.fixture(scope="module")
def forked_kb() -> Iterator[KbRunner]:
    runner = KbRunner()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def schema_db(db_url: URL) -> URL:
    """The module's database (one per kind), upgraded once: each case stores its own PMID range."""
    kbdb.upgrade(db_url, "head")
    return db_url



def rows_by_pmid(url: URL, low: int, high: int) -> dict[str, dict[int, int]]:
    """For studies and every PubMed-side table: row count per PMID in [low, high] (abstract
    sections as analysts read them: the view abstract_sections, migration 0013)."""
    tables = ["studies", *[t.__tablename__ for t in m.CHILD_TABLES], "abstract_sections", "study_revisions",
              "study_events", "fetch_failures"]
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: dict(conn.execute(text(f"SELECT pmid, count(*) FROM {name} WHERE pmid BETWEEN :lo AND :hi "
                                             "GROUP BY pmid"), {"lo": low, "hi": high}).all())
                for name in tables
            }
    finally:
        engine.dispose()


def scalar(url: URL, sql: str, **params: object) -> object:
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# The hostile files
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    outcome: str  # "refused" or "safe"
    build: Callable[[Path, int], Path]  # (directory, first PMID) -> the file
    secrets: tuple[str, ...] = ()  # must appear nowhere in the database
    error_has: str = ""  # a phrase the Error: line must hold
    line: bool = True  # the Error: line names a line number
    check: Callable[[URL, int], list[str]] | None = None  # further checks; returns problems


def _document(path: Path, base: int, hostile: str, *, doctype: str = "", tail: bool = True) -> Path:
    good = "\n".join(article(base + i, f"Good record {i}") for i in range(GOOD))
    after = article(base + GOOD + 1, "The record after the hostile one") if tail else ""
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n<PubmedArticleSet>\n{good}\n{hostile}\n'
                    f"{after}\n</PubmedArticleSet>\n", encoding="utf-8")
    return path


def _with_abstract(pmid: int, abstract_xml: str, title: str = "Hostile record") -> str:
    """A record whose AbstractText content is raw XML (entities, elements)."""
    return article(pmid, title, abstract="@@ABSTRACT@@").replace("@@ABSTRACT@@", abstract_xml)


def _with_pmid(pmid_text: str) -> str:
    return re.sub(r'<PMID Version="1">\d+</PMID>', f'<PMID Version="1">{pmid_text}</PMID>', article(1, "Bad PMID"), 1)


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that serves a DTD and an entity and records every request."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            body = b'<!ENTITY leak "NETWORK-LEAK-7b1e">' if self.path.endswith(".dtd") else b"NETWORK-LEAK-7b1e"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def huge_text_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Four good records, then one whose AbstractText is a single 100 MB text node (written in
    1 MB blocks, never held in memory whole), then one more good record. PMIDs from 900_001."""
    path = tmp_path_factory.mktemp("huge") / "huge-text-node.xml"
    base = 900_001
    head, foot = _with_abstract(base + GOOD, "@@SPLIT@@").split("@@SPLIT@@")
    block = ("Lorem ipsum dolor sit amet " * 40_000)[:1_000_000]  # 1 MB, no markup
    with path.open("w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n')
        fh.write("\n".join(article(base + i, f"Good record {i}") for i in range(GOOD)) + "\n")
        fh.write(head)
        for _ in range(100):
            fh.write(block)
        fh.write(foot + "\n" + article(base + GOOD + 1, "After") + "\n</PubmedArticleSet>\n")
    assert path.stat().st_size > 100_000_000
    yield path
    path.unlink()


def _leaking_dtd(path: Path, secret: Path) -> Path:
    """A DTD declaring an entity that would read ``secret`` and one with inline text."""
    path.write_text(f'<!ENTITY leak SYSTEM "{secret.as_uri()}">\n<!ENTITY inline "KB-DTD-INLINE-SECRET-91c3">')
    return path


def _secret_file(directory: Path) -> tuple[Path, str]:
    secret = "KB-SECRET-FILE-CONTENT-4f9a2c"
    path = directory / "secret.txt"
    path.write_text(secret + "\n", encoding="utf-8")
    return path, secret


def _passwd_lines() -> tuple[str, ...]:
    try:
        lines = Path("/etc/passwd").read_text().splitlines()
    except OSError:
        return ()
    return tuple(line for line in lines if len(line) > 8)


def _duplicates_check(url: URL, base: int) -> list[str]:
    problems = []
    for pmid, expected in ((base + 100, "Second version, same batch"), (base + 200, "Second version, later batch")):
        title = scalar(url, "SELECT title FROM studies WHERE pmid = :p", p=pmid)
        if title != expected:
            problems.append(f"PMID {pmid}: title {title!r}, expected the later record's {expected!r}")
        authors = scalar(url, "SELECT count(*) FROM authors WHERE pmid = :p", p=pmid)
        if authors != 1:
            problems.append(f"PMID {pmid}: {authors} author rows (the later record has 1)")
    return problems


def _nesting_check(url: URL, base: int) -> list[str]:
    abstract = scalar(url, "SELECT abstract FROM studies WHERE pmid = :p", p=base + GOOD)
    return [] if abstract == "deep text" else [f"the nested abstract was stored as {abstract!r}"]


def _no_article_check(url: URL, base: int) -> list[str]:
    title = scalar(url, "SELECT title FROM studies WHERE pmid = :p", p=base + GOOD)
    return [] if title == "" else [f"a record without Article got title {title!r}"]


LONG = "X" * 300


def _over_long_check(url: URL, base: int) -> list[str]:
    """Values longer than their VARCHAR columns are cut to fit, the same on both databases."""
    pmid = base + GOOD
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            got = {
                "language": conn.execute(text("SELECT language FROM studies WHERE pmid = :p"), {"p": pmid}).scalar(),
                "volume": conn.execute(text("SELECT volume FROM studies WHERE pmid = :p"), {"p": pmid}).scalar(),
                "journal_issn": conn.execute(text("SELECT journal_issn FROM studies WHERE pmid = :p"),
                                             {"p": pmid}).scalar(),
                "initials": conn.execute(text("SELECT initials FROM authors WHERE pmid = :p"), {"p": pmid}).scalar(),
                "nlm_category": conn.execute(text("SELECT nlm_category FROM abstract_sections WHERE pmid = :p"),
                                             {"p": pmid}).scalar(),
                "ui": conn.execute(text("SELECT ui FROM publication_types WHERE pmid = :p"), {"p": pmid}).scalar(),
                "title": conn.execute(text("SELECT title FROM studies WHERE pmid = :p"), {"p": pmid}).scalar(),
            }
    finally:
        engine.dispose()
    languages = ";".join(f"l{i:02d}" for i in range(30))
    expected = {"language": languages[:64], "volume": LONG[:64], "journal_issn": LONG[:16], "initials": LONG[:32],
                "nlm_category": LONG[:32], "ui": LONG[:16], "title": "Over-long codes " + LONG}
    return [f"{k}: stored {str(got[k])[:80]!r}, expected {v[:80]!r}" for k, v in expected.items() if got[k] != v]


def _over_long(pmid: int) -> str:
    record = article(pmid, "Over-long codes " + LONG)
    record = record.replace("<Language>eng</Language>", "".join(f"<Language>l{i:02d}</Language>" for i in range(30)))
    record = record.replace("<Volume>1</Volume>", f"<Volume>{LONG}</Volume>")
    record = record.replace('<ISSN IssnType="Print">1234-5678</ISSN>', f'<ISSN IssnType="Print">{LONG}</ISSN>')
    record = record.replace("<Initials>J</Initials>", f"<Initials>{LONG}</Initials>")
    record = record.replace("<AbstractText>", f'<AbstractText NlmCategory="{LONG}">')
    return record.replace('<PublicationType UI="D016428">', f'<PublicationType UI="{LONG}">')


def _huge_numbers(pmid: int) -> str:
    big = "123456789012345678901"
    record = article(pmid, "Huge numbers")
    record = record.replace("<PubDate><Year>2020</Year><Month>Feb</Month></PubDate>",
                            f"<PubDate><Year>{big}</Year><Month>Feb</Month><Day>{big}</Day></PubDate>")
    record = record.replace("<DateRevised><Year>2021</Year>", f"<DateRevised><Year>{big}</Year>")
    return record.replace('<PubMedPubDate PubStatus="entrez"><Year>2020</Year>',
                          f'<PubMedPubDate PubStatus="entrez"><Year>{big}</Year>')


def _huge_numbers_check(url: URL, base: int) -> list[str]:
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT pub_year, pub_month, pub_day, date_revised, entrez_date FROM studies "
                                    "WHERE pmid = :p"), {"p": base + GOOD}).one()
    finally:
        engine.dispose()
    return [] if tuple(row) == (None, 2, None, None, None) else [f"stored {tuple(row)}"]


def cases(server_url: str) -> list[Case]:
    def xxe_passwd(d: Path, base: int) -> Path:
        return _document(d / "xxe-passwd.xml", base, _with_abstract(base + GOOD, "Before &xxe; after", "T &xxe;"),
                         doctype='<!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>')

    def xxe_secret(d: Path, base: int) -> Path:
        secret, _ = _secret_file(d)
        return _document(d / "xxe-secret.xml", base, _with_abstract(base + GOOD, "&leak;"),
                         doctype=f'<!DOCTYPE PubmedArticleSet [<!ENTITY leak SYSTEM "{secret.as_uri()}">]>')

    def xxe_parameter(d: Path, base: int) -> Path:
        secret, _ = _secret_file(d)
        dtd = _leaking_dtd(d / "evil.dtd", secret)
        return _document(d / "xxe-parameter.xml", base, _with_abstract(base + GOOD, "&leak; &inline;"),
                         doctype=f'<!DOCTYPE PubmedArticleSet [<!ENTITY % ext SYSTEM "{dtd.as_uri()}"> %ext;]>')

    def xxe_external_dtd(d: Path, base: int) -> Path:
        secret, _ = _secret_file(d)
        dtd = _leaking_dtd(d / "external.dtd", secret)
        return _document(d / "xxe-external-dtd.xml", base, _with_abstract(base + GOOD, "&leak; &inline;"),
                         doctype=f'<!DOCTYPE PubmedArticleSet SYSTEM "{dtd.as_uri()}">')

    def xxe_network(d: Path, base: int) -> Path:
        return _document(d / "xxe-network.xml", base, _with_abstract(base + GOOD, "&net; &leak;"),
                         doctype=f'<!DOCTYPE PubmedArticleSet SYSTEM "{server_url}/evil.dtd" '
                                 f'[<!ENTITY net SYSTEM "{server_url}/entity">]>')

    def xinclude(d: Path, base: int) -> Path:
        secret, _ = _secret_file(d)
        return _document(d / "xinclude.xml", base, _with_abstract(
            base + GOOD, f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret.as_uri()}" '
                         'parse="text"/>'))

    def xxe_attribute(d: Path, base: int) -> Path:
        secret, _ = _secret_file(d)
        record = _with_abstract(base + GOOD, "text").replace("<AbstractText>", '<AbstractText Label="&leak;">')
        return _document(d / "xxe-attribute.xml", base, record,
                         doctype=f'<!DOCTYPE PubmedArticleSet [<!ENTITY leak SYSTEM "{secret.as_uri()}">]>')

    def billion_laughs(d: Path, base: int) -> Path:
        entities = '<!ENTITY lol0 "lol">' + "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
        return _document(d / "billion-laughs.xml", base, _with_abstract(base + GOOD, "&lol9;"),
                         doctype=f"<!DOCTYPE PubmedArticleSet [{entities}]>")

    def quadratic(d: Path, base: int) -> Path:
        return _document(d / "quadratic-blowup.xml", base, _with_abstract(base + GOOD, "&a;" * 50_000),
                         doctype=f'<!DOCTYPE PubmedArticleSet [<!ENTITY a "{"x" * 50_000}">]>')

    def deep(d: Path, base: int) -> Path:
        return _document(d / "deep-nesting.xml", base,
                         _with_abstract(base + GOOD, "<i>" * 100_000 + "deep" + "</i>" * 100_000))

    def nested_200(d: Path, base: int) -> Path:
        return _document(d / "nested-200.xml", base,
                         _with_abstract(base + GOOD, "<i>" * 100 + "<sup>" * 100 + "deep text" + "</sup>" * 100
                                        + "</i>" * 100))

    def invalid_utf8(d: Path, base: int) -> Path:
        path = _document(d / "invalid-utf8.xml", base, _with_abstract(base + GOOD, "@@BYTES@@"))
        path.write_bytes(path.read_bytes().replace(b"@@BYTES@@", b"caf\xc3 \xff\xfe \xed\xa0\x80 \xc0\xaf"))
        return path

    def pmid_case(name: str, value: str) -> Callable[[Path, int], Path]:
        return lambda d, base: _document(d / f"{name}.xml", base, _with_pmid(value))

    def duplicates(d: Path, base: int) -> Path:
        # batch 1: good, good | batch 2: good, good | batch 3: A v1, A v2 | batch 4: B v1, x | batch 5: B v2, good
        records = [
            article(base + 100, "First version, same batch"),
            article(base + 100, "Second version, same batch").replace(
                "<ForeName>Jane</ForeName>", "<ForeName>Joan</ForeName>"),
            article(base + 200, "First version, later batch"),
            article(base + 201, "Filler"),
            article(base + 200, "Second version, later batch"),
        ]
        return _document(d / "duplicates.xml", base, "\n".join(records))

    def no_citation(d: Path, base: int) -> Path:
        record = "<PubmedArticle><PubmedData><ArticleIdList><ArticleId IdType=\"pubmed\">" \
                 f"{base + GOOD}</ArticleId></ArticleIdList></PubmedData></PubmedArticle>"
        return _document(d / "no-medline-citation.xml", base, record)

    def no_pmid(d: Path, base: int) -> Path:
        record = re.sub(r'<PMID Version="1">\d+</PMID>', "", article(base + GOOD, "No PMID"), 1)
        return _document(d / "no-pmid.xml", base, record)

    def no_article(d: Path, base: int) -> Path:
        record = re.sub(r"<Article .*</Article>", "", article(base + GOOD, "No Article"), 1, re.S)
        return _document(d / "no-article.xml", base, record)

    secrets = ("KB-SECRET-FILE-CONTENT-4f9a2c", "KB-DTD-INLINE-SECRET-91c3", "NETWORK-LEAK-7b1e")
    return [
        Case("xxe-etc-passwd", "safe", xxe_passwd, secrets=_passwd_lines()),
        Case("xxe-secret-file", "safe", xxe_secret, secrets=secrets),
        Case("xxe-parameter-entity", "safe", xxe_parameter, secrets=secrets),
        Case("xxe-external-dtd", "safe", xxe_external_dtd, secrets=secrets),
        Case("xxe-network", "safe", xxe_network, secrets=secrets),
        Case("xinclude", "safe", xinclude, secrets=secrets),
        Case("xxe-in-attribute", "refused", xxe_attribute, secrets=secrets, error_has="external entity"),
        Case("billion-laughs", "refused", billion_laughs, error_has="amplification"),
        Case("quadratic-blowup", "refused", quadratic, error_has="amplification"),
        Case("nesting-100000", "refused", deep, error_has="depth"),
        Case("nesting-200", "safe", nested_200, check=_nesting_check),
        Case("invalid-utf8", "refused", invalid_utf8, error_has="encoding"),
        Case("pmid-20-digits", "refused", pmid_case("pmid-20-digits", "12345678901234567890"),
             error_has="out of range"),
        Case("pmid-zero", "refused", pmid_case("pmid-zero", "0"), error_has="out of range"),
        Case("pmid-not-numeric", "refused", pmid_case("pmid-not-numeric", "12ab34"), error_has="not a number"),
        Case("pmid-arabic-digits", "refused", pmid_case("pmid-arabic-digits", "١٢٣٤"), error_has="not a number"),
        Case("duplicate-pmids", "safe", duplicates, check=_duplicates_check),
        Case("missing-medline-citation", "refused", no_citation, error_has="no MedlineCitation"),
        Case("missing-pmid", "refused", no_pmid, error_has="no PMID"),
        Case("missing-article", "safe", no_article, check=_no_article_check),
        # Regressions (issue 7): these failed the whole batch with "unexpected DataError" on
        # PostgreSQL (VARCHAR limits) and "unexpected OverflowError" on both databases.
        Case("over-long-codes", "safe", lambda d, base: _document(d / "over-long.xml", base, _over_long(base + GOOD)),
             check=_over_long_check),
        Case("huge-numbers", "safe", lambda d, base: _document(d / "huge-numbers.xml", base, _huge_numbers(base + GOOD)),
             check=_huge_numbers_check),
        Case("pmid-version-huge", "refused", lambda d, base: _document(
            d / "pmid-version-huge.xml", base,
            article(base + GOOD, "v").replace('<PMID Version="1">', '<PMID Version="123456789012345678901">', 1)),
            error_has="PMID Version"),
    ]


# --------------------------------------------------------------------------------------------
# Checking one load
# --------------------------------------------------------------------------------------------


def check_load(case: Case, run: Run, url: URL, path: Path, base: int) -> tuple[list[str], int, int]:
    """Problems with one load, records lost, studies half-written."""
    problems: list[str] = []
    if run.peak_rss_mb > MAX_RSS_MB:
        problems.append(f"peak RSS {run.peak_rss_mb:.0f} MB > {MAX_RSS_MB} MB")
    if run.seconds > MAX_SECONDS:
        problems.append(f"took {run.seconds:.1f} s > {MAX_SECONDS} s")
    if "Traceback" in run.stderr:
        problems.append("a traceback on stderr")
    counts = rows_by_pmid(url, base, base + 999)
    stored = set(counts["studies"])
    good = {base + i for i in range(GOOD)}
    lost = len(good - stored)
    half = 0
    for pmid in stored:  # every stored study has all its child rows (the records are built alike)
        if any(counts[t].get(pmid, 0) < n for t, n in CHILDREN.items()) and case.name != "missing-article":
            half += 1
    if lost:
        problems.append(f"good records of earlier batches lost: {sorted(good - stored)}")
    if half:
        problems.append(f"{half} studies half-written")
    if case.outcome == "refused":
        if run.code != 1:
            problems.append(f"exit code {run.code}, expected 1")
        if len(run.errors) != 1:
            problems.append(f"{len(run.errors)} Error: lines, expected one: {run.stderr[-2000:]!r}")
        else:
            error = run.errors[0]
            if path.name not in error:
                problems.append(f"the Error: line does not name {path.name}: {error[:300]!r}")
            if case.line and not re.search(r", line \d+:", error):
                problems.append(f"the Error: line names no line: {error[:300]!r}")
            if case.error_has.lower() not in error.lower():
                problems.append(f"the Error: line does not say {case.error_has!r}: {error[:300]!r}")
        extra = stored - good
        if extra:
            problems.append(f"stored from the failed batch or after it: {sorted(extra)}")
        for table, by_pmid in counts.items():
            leftovers = set(by_pmid) - good
            if leftovers:
                problems.append(f"{table} has rows of PMIDs that must not be stored: {sorted(leftovers)}")
        status = scalar(url, "SELECT status FROM source_files WHERE name = :n ORDER BY id DESC", n=path.name)
        if status != "failed":
            problems.append(f"source_files status {status!r}, expected 'failed'")
    else:
        if run.code != 0 or run.errors:
            problems.append(f"exit code {run.code}: {run.stderr[-2000:]!r}")
        if base + GOOD + 1 not in stored:
            problems.append("the record after the hostile one was not stored")
    if case.secrets:
        dump = database_text(url)
        leaked = [s for s in case.secrets if s in dump]
        if leaked:
            problems.append(f"content the file pointed at is in the database: {leaked[:3]}")
    if case.check is not None:
        problems += case.check(url, base)
    return problems, lost, half


CASE_NAMES = [case.name for case in cases("http://127.0.0.1:9")]  # the names only; the tests build their own


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_hostile_xml_file(schema_db: URL, scenario, tmp_path: Path,  # type: ignore[no-untyped-def]
                          hostile_server: tuple[str, list[str]], forked_kb: KbRunner, case_name: str) -> None:
    """One hostile file through `kb load` (``-k`` picks one: ``-k 'billion-laughs and sqlite'``)."""
    server_url, hits = hostile_server
    hits.clear()
    index = CASE_NAMES.index(case_name)
    case = next(c for c in cases(server_url) if c.name == case_name)
    base = 10_000 * (index + 1)
    directory = tmp_path / case.name
    directory.mkdir()
    path = case.build(directory, base)
    run = forked_kb(["load", "--batch-size", str(BATCH), str(path)], _env(schema_db), directory)
    problems, lost, half = check_load(case, run, schema_db, path, base)
    scenario.runs += 1
    scenario.failures += bool(problems)
    scenario.records_lost += lost
    scenario.half_written += half
    scenario.notes.append(f"{case.name}: {case.outcome}, exit {run.code}, {run.peak_rss_mb:.0f} MB, {run.seconds:.1f} s")
    if hits:
        scenario.failures += 1
        problems.append(f"the parser made network requests: {hits}")
    assert not problems, "\n".join(problems)
    assert scenario.failures == scenario.records_lost == scenario.half_written == 0


def test_hundred_megabyte_text_node(schema_db: URL, scenario, tmp_path: Path,  # type: ignore[no-untyped-def]
                                    huge_text_file: Path, forked_kb: KbRunner) -> None:
    """A 100 MB text node is refused by libxml2's 10 MB limit: bounded memory and time, the
    earlier batches kept, nothing of the huge record stored. Both parse paths (the second
    process a file this size gets, and in-process)."""
    case = Case("huge-text-node", "refused", lambda d, b: huge_text_file, error_has="too long")
    problems: list[str] = []
    for pipeline in ("1", "0"):
        if pipeline == "0":  # start over: the same PMIDs again
            engine = kbdb.create_kb_engine(schema_db)
            with engine.begin() as conn:
                for table in [t.__tablename__ for t in m.CHILD_TABLES] + ["study_revisions", "studies"]:
                    conn.execute(text(f"DELETE FROM {table} WHERE pmid BETWEEN 900000 AND 900999"))
            engine.dispose()
        run = forked_kb(["load", "--batch-size", str(BATCH), str(huge_text_file)],
                     {**_env(schema_db), "KB_LOAD_PIPELINE": pipeline}, tmp_path)
        found, lost, half = check_load(case, run, schema_db, huge_text_file, 900_001)
        scenario.runs += 1
        scenario.failures += bool(found)
        scenario.records_lost += lost
        scenario.half_written += half
        scenario.notes.append(f"pipeline={pipeline}: exit {run.code}, {run.peak_rss_mb:.0f} MB, {run.seconds:.1f} s")
        problems += [f"KB_LOAD_PIPELINE={pipeline}: {p}" for p in found]
    assert not problems, "\n".join(problems)
    assert scenario.failures == scenario.records_lost == scenario.half_written == 0


def _env(url: URL) -> dict[str, str]:
    return {**os.environ, "KB_DATABASE_URL": url_text(url)}
