"""Helpers shared by the reliability scenarios (issue 7, part A).

* databases cloned from a prepared template (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE``
  on PostgreSQL), so every run starts from the same state in well under a second;
* :class:`DbState`: what a scenario compares — stored PMIDs and content hashes, child-row counts,
  topic links, queued fetch failures, curated text and card revisions, search-index rows, SQLite's
  own checks;
* :func:`problems`: the integrity check every scenario runs after every run or kill (with
  :func:`card_problems`: no half-written card);
* the template every scenario starts from: part of ``ncbiutils/multiple.xml`` stored, some of it
  as an older version of the record, curated cards on those, and one saved topic.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import shutil
import sqlite3
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import etree
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb import store
from kb.cards.model import ITEM_LISTS, PARAGRAPH_FIELDS, CardDoc
from kb.cli import cli
from kb.pubmed.parse import iter_pubmed_xml
from kb.pubmed.records import DeleteCitation, PubmedRecord

from kb.testing.eutils import EutilsServer

from ..conftest import STAND_IN_RATE, STAND_IN_RETRY_AFTER, _create_pg_database, _drop_pg_database, create_pg_from_template

CORPUS_FILE = Path("ncbiutils") / "multiple.xml"  # 100 records
TOPIC_NAME = "mrna"
TOPIC_QUERY = "mrna[tiab]"  # about a third of multiple.xml
CHILD_TABLE_NAMES = tuple(t.__tablename__ for t in m.CHILD_TABLES)
CARD_FIELDS = ("headline", "quick_summary", "what_research_found", "who_was_studied", "how_long", "what_they_took",
               "key_findings", "study_design", "dosage_administration", "results_efficacy", "technical_limitations",
               "clinical_relevance", "curated_study_type", "status", "curator", "record_content_hash")
BAD_OUTPUT = ("Traceback", "database is locked", "unexpected ", "deadlock detected", "could not serialize")


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------------------------
# Corpus records
# --------------------------------------------------------------------------------------------


def parse_records(*paths: Path) -> list[PubmedRecord]:
    return [r for p in paths for r in iter_pubmed_xml(p) if not isinstance(r, DeleteCitation)]


def shape(record: PubmedRecord) -> dict[str, int]:
    """Child rows per table that storing ``record`` writes."""
    children = store.prepare(record, "file").children
    return {name: len(children[name]) for name in CHILD_TABLE_NAMES}


def shapes(records: Iterable[PubmedRecord]) -> dict[str, dict[str, int]]:
    """content_hash -> child rows per table, for every version of a record a scenario can store."""
    return {r.content_hash: shape(r) for r in records}


def articles(path: Path) -> dict[int, etree._Element]:
    """The ``PubmedArticle`` elements of a file, by PMID."""
    tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    return {int(a.findtext("MedlineCitation/PMID")): a for a in tree.iterfind("PubmedArticle")}


def older_version(article: etree._Element) -> etree._Element:
    """The same record as it might have looked earlier: another title, an older DateRevised,
    one author fewer (so its child rows differ from the current version's)."""
    old = copy.deepcopy(article)
    title = old.find("MedlineCitation/Article/ArticleTitle")
    title.text = "Preliminary version: " + "".join(title.itertext())
    for child in list(title):
        title.remove(child)
    revised = old.find("MedlineCitation/DateRevised")
    if revised is not None:
        revised.find("Year").text = "2001"
    authors = old.find("MedlineCitation/Article/AuthorList")
    if authors is not None and len(authors) > 1:
        authors.remove(authors[-1])
    return old


def write_articles(path: Path, elements: Iterable[etree._Element]) -> Path:
    body = b"\n".join(etree.tostring(e, encoding="UTF-8") for e in elements)
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n' + body
                     + b"\n</PubmedArticleSet>\n")
    return path


# --------------------------------------------------------------------------------------------
# Running kb
# --------------------------------------------------------------------------------------------


def kb(url: URL, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """``kb --db URL ARGS`` in this process (Click's runner): as the user runs it, without the
    second of interpreter start-up a subprocess costs."""
    return CliRunner().invoke(cli, ["--db", url_text(url), *args], env=env, input=input)


def kb_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kb", *args]


def bad_output(text: str) -> list[str]:
    """Lines a user must never see: tracebacks, 'database is locked', unexpected errors."""
    return [line for line in text.splitlines() if any(bad in line for bad in BAD_OUTPUT)]


def parse_listing(stderr: str, label: str) -> set[int] | None:
    """PMIDs of a ``label (N): p1 p2 …`` line of kb ingest's summary; None when it was cut short."""
    for line in stderr.splitlines():
        if line.startswith(f"{label} ("):
            count = int(line[len(label) + 2 : line.index(")")])
            ids = {int(t) for t in line.split(":", 1)[1].split() if t.isdigit()}
            return ids if len(ids) == count else None
    return set()


# --------------------------------------------------------------------------------------------
# Databases: clones of a template
# --------------------------------------------------------------------------------------------


class Databases:
    """Fresh databases of the same kind as ``base`` (the test's own, from the ``db_url`` fixture).

    ``clone(template)`` copies a prepared database; everything made here is dropped by ``close``.
    """

    def __init__(self, base: URL, tmp_path: Path) -> None:
        self.base = base
        self.kind = base.get_backend_name()
        self.dir = tmp_path / "dbs"
        self.dir.mkdir(exist_ok=True)
        self._made: list[URL] = []
        self._admin = None
        if self.kind == "postgresql":
            self._admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def _name(self) -> str:
        return f"kb_rel_{uuid.uuid4().hex[:12]}"

    def new(self) -> URL:
        """An empty database."""
        if self.kind == "sqlite":
            url = URL.create("sqlite", database=str(self.dir / f"{self._name()}.sqlite3"))
        else:
            name = self._name()
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = self.base.set(database=name)
        self._made.append(url)
        return url

    def clone(self, template: URL) -> URL:
        if self.kind == "sqlite":
            source = Path(template.database)
            with sqlite3.connect(source) as conn:  # fold the WAL into the main file first
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            url = URL.create("sqlite", database=str(self.dir / f"{self._name()}.sqlite3"))
            shutil.copyfile(source, url.database)
            self._made.append(url)
            return url
        name = self._name()
        with self._admin.connect() as conn:
            create_pg_from_template(conn, name, template.database)
        url = self.base.set(database=name)
        self._made.append(url)
        return url

    def drop(self, url: URL) -> None:
        if url in self._made:
            self._made.remove(url)
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm", ".refresh.lock"):
                Path(url.database + suffix).unlink(missing_ok=True)
        else:
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))

    def close(self) -> None:
        for url in list(self._made):
            self.drop(url)
        if self._admin is not None:
            self._admin.dispose()


# --------------------------------------------------------------------------------------------
# The state of a database, and its integrity
# --------------------------------------------------------------------------------------------


@dataclass
class DbState:
    studies: dict[int, str | None] = field(default_factory=dict)  # pmid -> content_hash (placeholders apart)
    children: dict[int, dict[str, int]] = field(default_factory=dict)
    links: set[tuple[str, int]] = field(default_factory=set)  # (topic, pmid), exclusions apart
    dangling_links: int = 0
    failures: set[int] = field(default_factory=set)  # fetch_failures
    curated: dict = field(default_factory=dict)
    indexed: set[int] | None = None  # PMIDs with a study_search row (None: no index table)
    deleted: set[int] = field(default_factory=set)
    placeholders: set[int] = field(default_factory=set)  # studies known only from a card
    card_problems: list[str] = field(default_factory=list)  # half-written cards (card_problems)
    runs: list[tuple[int, str]] = field(default_factory=list)  # refresh_runs (id, status)
    topics: dict[str, dt.datetime | None] = field(default_factory=dict)  # name -> watermark
    sqlite_checks: list[str] = field(default_factory=list)  # integrity_check / foreign_key_check findings


def read_state(url: URL) -> DbState:
    state = DbState()
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            s = m.Study
            for pmid, hash_, placeholder, deleted in conn.execute(
                select(s.pmid, s.content_hash, s.is_placeholder, s.is_deleted)
            ):
                if not placeholder:
                    state.studies[pmid] = hash_
                else:
                    state.placeholders.add(pmid)
                if deleted:
                    state.deleted.add(pmid)
            for table in m.CHILD_TABLES:
                name = table.__tablename__
                rows = conn.execute(text(f"SELECT pmid, count(*) FROM {name} GROUP BY pmid"))
                for pmid, count in rows:
                    state.children.setdefault(pmid, dict.fromkeys(CHILD_TABLE_NAMES, 0))[name] = count
            for pmid in state.studies:
                state.children.setdefault(pmid, dict.fromkeys(CHILD_TABLE_NAMES, 0))
            state.links = {
                (name, pmid)
                for name, pmid in conn.execute(
                    select(m.Topic.name, m.TopicStudy.pmid)
                    .join(m.Topic, m.Topic.id == m.TopicStudy.topic_id)
                    .where(m.TopicStudy.is_excluded.is_(False))
                )
            }
            state.dangling_links = conn.execute(text(
                "SELECT count(*) FROM topic_studies ts LEFT JOIN studies s ON s.pmid = ts.pmid "
                "LEFT JOIN topics t ON t.id = ts.topic_id WHERE s.pmid IS NULL OR t.id IS NULL"
            )).scalar_one()
            state.failures = set(conn.execute(select(m.FetchFailure.pmid)).scalars())
            state.runs = [tuple(r) for r in conn.execute(select(m.RefreshRun.id, m.RefreshRun.status).order_by(m.RefreshRun.id))]
            state.topics = dict(conn.execute(select(m.Topic.name, m.Topic.watermark)).all())
            if "study_search" in inspect(conn).get_table_names():
                column = "rowid" if url.get_backend_name() == "sqlite" else "pmid"
                state.indexed = set(conn.execute(text(f"SELECT {column} FROM study_search")).scalars())
            if url.get_backend_name() == "sqlite":
                integrity = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if integrity != ["ok"]:
                    state.sqlite_checks += [f"integrity_check: {r}" for r in integrity]
                state.sqlite_checks += [f"foreign_key_check: {tuple(r)}"
                                        for r in conn.exec_driver_sql("PRAGMA foreign_key_check")]
                if "study_search" in inspect(conn).get_table_names():
                    # FTS5 compares its index with the text it reads from the tables: an index that
                    # was not told a deleted study's text fails here (PRAGMA integrity_check passes)
                    try:
                        conn.execute(text("INSERT INTO study_search (study_search, rank) VALUES ('integrity-check', 1)"))
                    except DBAPIError as exc:
                        state.sqlite_checks.append(f"search index integrity-check: {exc.orig}")
                    finally:
                        conn.rollback()
            state.card_problems = card_problems(conn)
        with Session(engine) as session:
            state.curated = curated_snapshot(session)
    finally:
        engine.dispose()
    return state


def curated_snapshot(session: Session) -> dict:
    cards = sorted(tuple(getattr(c, f) for f in ("pmid", *CARD_FIELDS)) for c in session.scalars(select(m.Card)))
    items = sorted(
        (t.__tablename__, i.pmid, i.position, i.audience, i.label, i.text, i.source, i.author)
        for t in (m.Finding, m.Limitation, m.Note) for i in session.scalars(select(t))
    )
    revisions = sorted(tuple(r) for r in session.execute(select(
        m.CardRevision.pmid, m.CardRevision.revision, m.CardRevision.action, m.CardRevision.author,
        m.CardRevision.card_text)))
    return {"cards": cards, "items": items, "revisions": revisions}


_ITEM_TABLES = {"finding": m.Finding, "limitation": m.Limitation, "note": m.Note}


def card_problems(conn, pmids: Iterable[int] | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    """Half-written cards: a card saved by kb (revision > 0) must have the ``card_revisions`` row of
    its current revision as its latest, and its paragraphs, reference and bullets (``findings``,
    ``limitations``, ``notes``) must be that revision's content JSON. A card written directly
    (revision 0, the template's and legacy rows) has no revisions. Revisions need their card, unless
    the latest records its deletion (kb curate delete)."""
    wanted = None if pmids is None else set(pmids)
    c = m.Card
    cards = {row.pmid: row for row in conn.execute(select(c)) if wanted is None or row.pmid in wanted}
    revisions: dict[int, dict[int, dict]] = {}
    for pmid, revision, content in conn.execute(
            select(m.CardRevision.pmid, m.CardRevision.revision, m.CardRevision.content)):
        if wanted is None or pmid in wanted:
            revisions.setdefault(pmid, {})[revision] = content
    items: dict[tuple[int, str, str], list[tuple]] = {}
    for kind, table in _ITEM_TABLES.items():
        for row in conn.execute(select(table.pmid, table.audience, table.label, table.text, table.source)
                                .order_by(table.pmid, table.audience, table.position)):
            items.setdefault((row.pmid, kind, row.audience), []).append((row.label, row.text, row.source))
    def deleted(saved: dict[int, dict]) -> bool:  # kb curate delete: its revision holds no content
        content = saved[max(saved)]
        return not (json.loads(content) if isinstance(content, str) else content)

    out = [f"{pmid}: card_revisions rows without a card" for pmid in sorted(set(revisions) - set(cards))
           if not deleted(revisions[pmid])]
    for pmid, card in sorted(cards.items()):
        saved = revisions.get(pmid, {})
        if not card.revision and not saved:
            continue
        if max(saved, default=0) != card.revision:
            out.append(f"{pmid}: card at revision {card.revision}, latest card_revisions row {max(saved, default=None)}")
            continue
        content = saved[card.revision]
        doc = CardDoc.from_json(json.loads(content) if isinstance(content, str) else content)
        differ = [f for f in PARAGRAPH_FIELDS if (getattr(card, f) or "") != getattr(doc, f)]
        differ += [name for name, col in (("study_type", "curated_study_type"), ("reference_title", "reference_title"),
                                          ("reference_source", "reference_source")) if (getattr(card, col) or "") != getattr(doc, name)]
        if card.reference_year != doc.reference_year:
            differ.append("reference_year")
        for name, (kind, audience) in ITEM_LISTS.items():
            if items.get((pmid, kind, audience), []) != [(i.label, i.text, i.source) for i in getattr(doc, name)]:
                differ.append(name)
        if differ:
            out.append(f"{pmid}: the card differs from its revision {card.revision} in {', '.join(differ)}")
    return out


def half_written(state: DbState, known: dict[str, dict[str, int]]) -> list[str]:
    """Studies whose stored rows are not those of one whole parsed record."""
    out = []
    for pmid, hash_ in sorted(state.studies.items()):
        expected = known.get(hash_ or "")
        if expected is None:
            out.append(f"{pmid}: content hash {hash_!r} is no version of the record kb was given")
        elif state.children.get(pmid) != expected:
            out.append(f"{pmid}: child rows {state.children.get(pmid)} instead of {expected}")
        elif state.indexed is not None and pmid not in state.deleted and pmid not in state.indexed:
            out.append(f"{pmid}: no row in the search index")
    stray = sorted(set(state.children) - set(state.studies))
    out += [f"{pmid}: child rows without a study" for pmid in stray]
    return out


def problems(state: DbState, known: dict[str, dict[str, int]], curated_before: dict) -> tuple[list[str], int, bool]:
    """(every integrity finding, studies half-written, curated text changed)."""
    found = list(state.sqlite_checks)
    half = half_written(state, known) + state.card_problems
    found += half
    if state.dangling_links:
        found.append(f"{state.dangling_links} topic_studies rows point at no study or topic")
    curated_changed = state.curated != curated_before
    if curated_changed:
        found.append("curated text changed")
    return found, len(half), curated_changed


# --------------------------------------------------------------------------------------------
# The template every scenario starts from
# --------------------------------------------------------------------------------------------


@dataclass
class Template:
    url: URL
    pmids: list[int]  # every PMID of the corpus file, ascending
    carded: list[int]  # stored as an older version, with a curated card
    identical: list[int]  # stored as served, one of them with a card
    known: dict[str, dict[str, int]]  # content hash -> child rows, every version
    state: DbState
    older_file: Path


def add_cards(url: URL, pmids: Sequence[int]) -> None:
    engine = kbdb.create_kb_engine(url)
    try:
        with Session(engine) as s, s.begin():
            for pmid in pmids:
                study = s.get(m.Study, pmid)
                s.add(m.Card(pmid=pmid, headline=f"Headline {pmid} <b>&amp; “quotes”", quick_summary="Summary\tline two ",
                             what_research_found="Found ✓", clinical_relevance="Relevant.", status="published",
                             curator="cur", record_content_hash=study.content_hash))
                s.add(m.Finding(pmid=pmid, position=0, label="Get Tested", text=f"Finding {pmid}\ttabbed"))
                # (issue 12's layout requires the label of a lay limitation; its text is one line)
                s.add(m.Limitation(pmid=pmid, position=0, label="Small Sample", text="Ten people"))
                s.add(m.Note(pmid=pmid, position=0, audience="technical", text="Note  with  spaces"))
    finally:
        engine.dispose()


def build_template(url: URL, corpus: Path, workdir: Path, *, carded: int = 5, identical: int = 4) -> Template:
    """Store ``carded`` records as older versions with cards and ``identical`` ones as served (the
    first with a card too), and save topic ``mrna``."""
    source = corpus / CORPUS_FILE
    by_pmid = articles(source)
    pmids = sorted(by_pmid)
    carded_ids = pmids[3 : 3 + 9 * carded : 9][:carded]
    identical_ids = [p for p in pmids[5::17] if p not in carded_ids][:identical]
    older = [older_version(by_pmid[p]) for p in carded_ids]
    older_file = write_articles(workdir / "older-versions.xml", [*older, *(by_pmid[p] for p in identical_ids)])
    result = kb(url, "load", "--quiet", str(older_file))
    assert result.exit_code == 0, result.output
    result = kb(url, "topic", "add", TOPIC_NAME, TOPIC_QUERY)
    assert result.exit_code == 0, result.output
    add_cards(url, [*carded_ids, identical_ids[0]])
    known = shapes(parse_records(source, older_file))
    return Template(url, pmids, carded_ids, identical_ids, known, read_state(url), older_file)


def serve_template_records(server, template: Template, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    """The stand-in serves the current records; the carded ones were modified today (so a
    refresh re-fetches them)."""
    server.replace_records(corpus / CORPUS_FILE)
    for pmid in template.carded:
        server.set_dates(pmid, mdat=dt.date.today())


def calm_server() -> EutilsServer:
    """A stand-in without a rate limit whose 429s (injected ones only) ask for a short wait: the
    faults are all served, only the waiting is shorter (the shared fixture's settings)."""
    return EutilsServer(rate=None, api_key_rate=None, retry_after=STAND_IN_RETRY_AFTER)


def eutils_env(server, rate_dir: Path, *, paced: bool = True, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """kb's settings for ``server``. ``paced``: kb keeps NCBI's pace (3/s, 10/s with a key), for the
    scenarios about the rate limit; otherwise it goes at the stand-in's pace (calm_server)."""
    env = {"KB_EUTILS_URL": server.base_url, "KB_RATE_DIR": str(rate_dir), "NCBI_EMAIL": "kb-tests@example.org",
           "KB_EUTILS_BACKOFF": "0.01", "KB_EUTILS_TRIES": "3", "KB_EUTILS_TIMEOUT": "10"}
    if not paced:
        env["KB_EUTILS_RATE"] = str(STAND_IN_RATE)
    env.update(extra)
    return env


def subprocess_env(url: URL, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra, "KB_DATABASE_URL": url_text(url)}
    env.pop("KB_DEBUG", None)
    return env


# Shared by the hostile-input, property and secret scenarios. A test module uses the fixture by
# importing it: `from .support import db_url`.
@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[URL]:
    """One database per database kind for this whole module (its tests share it and leave it as
    they found it): the schema is built once, not once per test."""
    if request.param == "sqlite":
        yield make_url(f"sqlite:///{tmp_path_factory.mktemp('db') / 'kb.sqlite3'}")
        return
    admin = request.getfixturevalue("pg_admin_url")
    url = _create_pg_database(admin)
    try:
        yield url
    finally:
        _drop_pg_database(admin, url)


def database_text(url: URL) -> str:
    """Every row of every table (index and shadow tables included) as text."""
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if url.get_backend_name() == "sqlite":
                return "\n".join(raw.iterdump())
            tables = conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' ORDER BY table_name")).scalars().all()
            parts = []
            cur = raw.cursor()
            for name in tables:
                with cur.copy(f'COPY "{name}" TO STDOUT') as copy:
                    parts.append(f"-- {name}\n" + b"".join(bytes(block) for block in copy).decode("utf-8"))
            return "\n".join(parts)
    finally:
        engine.dispose()
