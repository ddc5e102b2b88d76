"""Concurrency (issue 7, scenario 3): for a while, on one database and one stand-in E-utilities
server limited to 3 requests/s (one shared ``KB_RATE_DIR``, as on one machine):

* two ``kb refresh`` loops (one refresh at a time: the loser must exit 75 with one clean line),
  while new studies of the topic keep appearing on the server;
* two ``kb ingest`` loops over different PMID sets;
* analysts' ``kb query`` and ``kb search`` loops;
* a curator's ``kb curate edit`` loop on one card, with a scripted ``$EDITOR`` that changes the
  headline and a bullet every time (``save N``), while the refreshes re-fetch that card's study.

Every process must end (no deadlock), nothing a user sees may be a traceback or "database is
locked", the server must count no 429, and at the end every process's work must be there: the
ingested records, the topic's studies, every edit's card revision (with that edit's text) and the
last edit on the card; the other curated cards as they were.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import models as m
from kb.testing.eutils import EutilsServer

from ..records import article, write_set
from .conftest import Scenario, scaled
from .support import (
    TOPIC_NAME,
    bad_output,
    build_template,
    eutils_env,
    kb_argv,
    parse_records,
    problems,
    read_state,
    serve_template_records,
    shapes,
    subprocess_env,
)

SECONDS = scaled(ci=10, full=300)
PROCESS_TIMEOUT = 120  # a process still running after this long counts as deadlocked
NEW_BASE = 42_000_000


@dataclass
class Outcome:
    loop: str
    argv: list[str]
    started: float
    code: int | None  # None: killed after PROCESS_TIMEOUT
    stdout: str
    stderr: str


@dataclass
class Shared:
    deadline: float
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)


def _loop(shared: Shared, name: str, argvs, env: dict[str, str], pause: float) -> None:  # type: ignore[no-untyped-def]
    for argv in argvs:
        if time.monotonic() >= shared.deadline:
            return
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            code = None
        with shared.lock:
            shared.outcomes.append(Outcome(name, argv, started, code, out, err))
        time.sleep(pause)


def _publisher(shared: Shared, server: EutilsServer, published: dict[int, tuple[float, str]]) -> None:
    """New studies of the topic appear on the server while the refreshes run."""
    today = dt.date.today()
    for i in itertools.count():
        if time.monotonic() >= shared.deadline - 2:
            return
        pmid = NEW_BASE + i
        xml = article(pmid, f"mRNA expression in newly published cohort {i}", entrez=today)
        server.add_record_xml(xml, edat=today, mdat=today)
        published[pmid] = (time.monotonic(), xml)
        time.sleep(1.5)


# The curator's $EDITOR: save N (counted in a file) gets a new headline and a new first limitation.
_EDITOR = """
import pathlib, sys
counter, card = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
lines = card.read_text(encoding="utf-8").split("\\n")
first = next(i for i, line in enumerate(lines) if not line.startswith("#"))  # kb's comment lines come first
lines[first] = f"Edited headline, save {n} \u2713"
at = next(i for i, line in enumerate(lines) if i > lines.index("Study Limitations") and not line.startswith("#"))
lines.insert(at, f"- Small Sample: edit {n}")
card.write_text("\\n".join(lines), encoding="utf-8")
print(f"editor: save {n}", file=sys.stderr)
"""
_SAVED = re.compile(r"^editor: save (\d+)\n(?:.*\n)*?PMID \d+: saved revision (\d+)$", re.M)


def edit_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "editor.py"
    script.write_text(_EDITOR, encoding="utf-8")
    out = {**env, "EDITOR": f"{sys.executable} {script} {tmp_path / 'edits'}", "KB_CURATOR": "concurrency"}
    out.pop("VISUAL", None)
    return out


def edits_saved(outcomes: list[Outcome]) -> dict[int, int]:
    """revision -> the editor's save number, for every kb curate edit that said it saved."""
    return {int(rev): int(n) for o in outcomes if o.argv[3] == "curate" for n, rev in _SAVED.findall(o.stderr)}


def edit_problems(url: URL, pmid: int, saved: dict[int, int]) -> list[str]:
    """Every saved edit's revision is there with that edit's text, and the card is the last one."""
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            rows = dict(conn.execute(select(m.CardRevision.revision, m.CardRevision.content)
                                     .where(m.CardRevision.pmid == pmid)).all())
            card = conn.execute(select(m.Card.headline, m.Card.revision).where(m.Card.pmid == pmid)).one()
    finally:
        engine.dispose()
    out = []
    for revision, n in sorted(saved.items()):
        content = rows.get(revision)
        if content is None:
            out.append(f"card edit {n}: its revision {revision} is missing")
        elif (content["headline"], content["limitations"][0]["text"]) != (f"Edited headline, save {n} ✓",
                                                                            f"edit {n}"):
            out.append(f"card edit {n}: revision {revision} holds {content['headline']!r}")
    if saved and (card.revision, card.headline) != (max(saved), f"Edited headline, save {saved[max(saved)]} ✓"):
        out.append(f"the card is at revision {card.revision} ({card.headline!r}), not the last edit's")
    return out


def test_everything_at_once(scenario: Scenario, db_url: URL, corpus: Path, tmp_path: Path) -> None:
    rng = random.Random(7)
    server = EutilsServer(rate=3.0).start()
    try:
        template = build_template(db_url, corpus, tmp_path)
        serve_template_records(server, template, corpus)
        (tmp_path / "rate").mkdir()
        env = subprocess_env(db_url, eutils_env(server, tmp_path / "rate", KB_EUTILS_TIMEOUT="30",
                                                KB_EUTILS_BACKOFF="0.5", KB_EUTILS_TRIES="5"))
        ids = [p for p in template.pmids if p not in template.state.studies]
        rng.shuffle(ids)
        sets = {"ingest-a": sorted(ids[: len(ids) // 2]), "ingest-b": sorted(ids[len(ids) // 2 :])}
        slices = {name: [pmids[i : i + 8] for i in range(0, len(pmids), 8)] for name, pmids in sets.items()}

        def ingest_argvs(name: str):  # type: ignore[no-untyped-def]
            for chunk in itertools.cycle(slices[name]):
                yield kb_argv("ingest", "--quiet", "--batch-size", "4", *map(str, chunk))

        queries = [
            kb_argv("query", "--format", "csv", "SELECT count(*) AS n FROM study_overview"),
            kb_argv("query", "--format", "csv", "SELECT t.name, count(*) AS n FROM topic_studies ts JOIN topics t "
                    "ON t.id = ts.topic_id GROUP BY t.name"),
            kb_argv("query", "--format", "json", "SELECT pmid, title FROM studies WHERE pub_year >= :y "
                    "ORDER BY pmid LIMIT 20", "-p", "y=1990"),
        ]
        searches = [kb_argv("search", "mrna expression"), kb_argv("search", "tumor necrosis factor")]

        shared = Shared(deadline=time.monotonic() + SECONDS)
        published: dict[int, tuple[float, str]] = {}
        edited = template.carded[0]
        edit = kb_argv("curate", "edit", str(edited))
        threads = [
            threading.Thread(target=_loop, args=(shared, "refresh-1", itertools.repeat(kb_argv("refresh", "--quiet")), env, 0.3)),
            threading.Thread(target=_loop, args=(shared, "refresh-2", itertools.repeat(kb_argv("refresh", "--quiet")), env, 0.5)),
            threading.Thread(target=_loop, args=(shared, "ingest-a", ingest_argvs("ingest-a"), env, 0.2)),
            threading.Thread(target=_loop, args=(shared, "ingest-b", ingest_argvs("ingest-b"), env, 0.2)),
            threading.Thread(target=_loop, args=(shared, "query-1", itertools.cycle(queries), env, 0.5)),
            threading.Thread(target=_loop, args=(shared, "query-2", itertools.cycle(queries[::-1]), env, 0.7)),
            threading.Thread(target=_publisher, args=(shared, server, published)),
            threading.Thread(target=_loop, args=(shared, "curate-edit", itertools.repeat(edit), edit_env(env, tmp_path), 0.2)),
            threading.Thread(target=_loop, args=(shared, "search", itertools.cycle(searches), env, 0.7)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + PROCESS_TIMEOUT + 60)
        tail = time.monotonic() - shared.deadline  # how long the last processes ran past the end
        hung_threads = [t.name for t in threads if t.is_alive()]
        stats = server.stats()
    finally:
        server.stop()

    failures: list[str] = list(shared.errors)
    if hung_threads:
        failures.append(f"loops still running: {hung_threads}")
    outcomes = shared.outcomes
    for o in outcomes:
        command = o.argv[3]
        shown = f"{o.loop} ({' '.join(o.argv[3:6])}…)"
        if o.code is None:
            failures.append(f"{shown}: still running after {PROCESS_TIMEOUT} s (deadlock?)")
            continue
        seen = bad_output(o.stdout + "\n" + o.stderr)
        if seen:
            failures.append(f"{shown}: the user saw {seen[:3]}")
        if command == "refresh" and o.code == 75:
            lines = o.stderr.strip().splitlines()
            if len(lines) != 1 or not lines[0].startswith("Error: another kb refresh is running"):
                failures.append(f"{shown}: exit 75 without one clean line: {o.stderr!r}")
        elif o.code != 0:
            failures.append(f"{shown}: exit {o.code}: {o.stderr.strip()[-400:]!r}")
    if stats["429"]:
        failures.append(f"the server answered {stats['429']} x 429 (the shared rate limit was not kept)")

    # Every process's work is there at the end. (The edited card is checked on its own below; the
    # integrity check sees that it is whole: its paragraphs and bullets are its last revision's.)
    state = read_state(db_url)
    expected_curated = {key: sorted([r for r in rows if r[1 if key == "items" else 0] != edited]
                                    + [r for r in state.curated[key] if r[1 if key == "items" else 0] == edited])
                        for key, rows in template.state.curated.items()}
    new_file = write_set(tmp_path / "published.xml", [xml for _, xml in published.values()])
    known = {**template.known, **shapes(parse_records(new_file))}
    found, half, curated_changed = problems(state, known, expected_curated)
    failures += found
    reference = {r.pmid: r.content_hash for r in parse_records(corpus / "ncbiutils" / "multiple.xml")}
    lost = 0
    ingested = [o for o in outcomes if o.argv[3] == "ingest" and o.code == 0]
    for name, pmids in sets.items():
        done = {int(a) for o in ingested if o.loop == name for a in o.argv[7:]}
        wrong = [p for p in done if state.studies.get(p) != reference[p]]
        lost += len(wrong)
        if wrong:
            failures.append(f"{name}: ingested but not stored as served: {wrong}")
    refreshes = sorted((o.started for o in outcomes if o.argv[3] == "refresh" and o.code == 0))
    if not refreshes:
        failures.append("no refresh completed")
    else:
        linked = {p for t, p in state.links if t == TOPIC_NAME}
        due = [p for p, (at, _) in published.items() if at < refreshes[-1]]
        unlinked = [p for p in due if p not in linked]
        lost += len(unlinked)
        if unlinked:
            failures.append(f"published before the last successful refresh but not linked to the topic: {unlinked}")
    saved = edits_saved(outcomes)
    edits = sum(1 for o in outcomes if o.argv[3] == "curate")
    if not saved:
        failures.append("no card edit was saved")
    elif len(saved) != sum(1 for o in outcomes if o.argv[3] == "curate" and o.code == 0):
        failures.append(f"{edits} kb curate edit runs, {len(saved)} said which revision they saved")
    lost_edits = edit_problems(db_url, edited, saved)
    lost += len(lost_edits)
    failures += lost_edits
    unfinished = [run for run in state.runs if run[1] != "success"]
    if unfinished or len(state.runs) != sum(1 for o in outcomes if o.argv[3] == "refresh" and o.code == 0):
        failures.append(f"refresh_runs {state.runs} do not match the refreshes that ran")

    counts = {}
    for o in outcomes:
        key = f"{o.argv[3]} exit {o.code}"
        counts[key] = counts.get(key, 0) + 1
    scenario.runs = len(outcomes)
    scenario.failures = len(failures)
    scenario.records_lost = lost
    scenario.half_written = half
    scenario.curated_changed = int(curated_changed)
    scenario.notes = [f"{SECONDS} s: {dict(sorted(counts.items()))}; {stats['requests']} requests, "
                      f"{stats['429']} x 429; {len(published)} studies published; {len(saved)} card edits saved; "
                      f"the last process ended {tail:.1f} s after the end"]
    scenario.notes += failures[:20]
    print(scenario.notes[0])
    assert failures == [], "\n".join(failures)
    assert counts.get("refresh exit 0", 0) >= 1 and counts.get("ingest exit 0", 0) >= 2
    assert counts.get("search exit 0", 0) >= 1 and counts.get("query exit 0", 0) >= 1
    assert counts.get("curate exit 0", 0) >= 1
    assert (lost, half, curated_changed) == (0, 0, False)
