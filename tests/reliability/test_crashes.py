"""Crashes (issue 7, scenario 2): `kb load`, `kb ingest`, `kb refresh` and `kb curate import`
processes killed with SIGKILL at random (seeded) points, on SQLite and PostgreSQL.

Each kill starts from the same template database (part of the corpus stored, some of it as older
versions with curated cards, one saved topic). Most kills wait until a random number of studies
(for ``kb curate import``: of card revisions) has been stored (so they land among the batches, or
between two card files); the others come at a random moment after the start (start-up, schema
check, searches, the tracked-study pass). After each kill the database must pass an integrity
check — SQLite's ``integrity_check`` and ``foreign_key_check``; on both: every study's child rows
are exactly those of one parsed version of its record, it has its search-index row, no
``topic_studies`` row points nowhere, a topic's watermark has moved only with all its links, no
curated text changed (for an import: every card is either as before or as imported, whole), no
card is half-written (its ``card_revisions`` row for its current revision is there and holds its
paragraphs and bullets) — and, with no parser process left behind, a rerun of the same command
must end in the fault-free state (same PMIDs and content hashes, for a refresh the same topic
links, for an import the same cards, bullets, revisions and placeholder studies, as a reference
run that was never killed).

``kb curate import`` imports the cards of ``multiple.xml`` as ``kb curate draft --missing`` and
``kb curate export --all`` write them (on a copy of the template with the whole file loaded: the
template's curated cards among them), and ``tests/data/card-31902683-kb.txt``: the template's
stored studies get new card revisions, the others placeholder studies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import models as m

from ..records import article, write_set
from .conftest import Scenario, scaled
from .support import (
    CORPUS_FILE,
    TOPIC_NAME,
    Databases,
    DbState,
    bad_output,
    build_template,
    calm_server,
    eutils_env,
    kb,
    kb_argv,
    parse_records,
    problems,
    read_state,
    serve_template_records,
    shapes,
    subprocess_env,
)

SEED = 4_200_000
KILLS = scaled(ci=8, full=52)
COMMANDS = ("load", "ingest", "refresh", "curate-import")
BIG_RECORDS = 1150  # > 2 MiB: `kb load` parses it in a second process
KB_CARD = Path(__file__).parents[1] / "data" / "card-31902683-kb.txt"


def big_file(path: Path) -> Path:
    """Synthetic records, enough for kb load's two-process pipeline."""
    filler = " ".join(f"Outcome {i} was measured at baseline and after twelve weeks of follow-up." for i in range(10))
    records = [article(41_000_000 + i, f"Synthetic cohort study {i} of vitamin D", abstract=f"Cohort {i}. {filler}")
               for i in range(BIG_RECORDS)]
    write_set(path, records)
    assert path.stat().st_size > 2 * 2**20
    return path


def card_files(dbs: Databases, template_url: URL, corpus: Path, outdir: Path) -> list[Path]:
    """The cards of the corpus file as kb drafts and exports them (the template's curated cards
    among them), and kb's own example card (a PMID not stored: a placeholder study)."""
    url = dbs.clone(template_url)
    try:
        for args in (("load", "--quiet", str(corpus / CORPUS_FILE)), ("curate", "draft", "--missing"),
                     ("curate", "export", "--all", str(outdir))):
            result = kb(url, *args)
            assert result.exit_code == 0, (args, result.output)
    finally:
        dbs.drop(url)
    return [*sorted(outdir.iterdir()), KB_CARD]


def _progress(engine, name: str) -> int:  # type: ignore[no-untyped-def]
    """What a command has stored so far: studies, or for an import card revisions."""
    table = m.CardRevision if name == "curate-import" else m.Study
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _stored(state: DbState, name: str) -> int:
    return len(state.curated["revisions"]) if name == "curate-import" else len(state.studies)


def _by_pmid(curated: dict) -> dict[int, tuple]:
    """A curated snapshot per PMID: (card, bullets, revisions)."""
    out: dict[int, tuple] = {}
    for key, at in (("cards", 0), ("items", 1), ("revisions", 0)):
        for row in curated[key]:
            out.setdefault(row[at], ([], [], []))[("cards", "items", "revisions").index(key)].append(row)
    return out


def between(now: dict, before: dict, after: dict) -> tuple[dict, list[int]]:
    """The curated snapshot an interrupted import may leave: each card as ``before`` or as
    ``after``, whole (``after`` for a card that is neither), and the PMIDs that were neither."""
    now_, before_, after_ = _by_pmid(now), _by_pmid(before), _by_pmid(after)
    expected: dict[str, list] = {"cards": [], "items": [], "revisions": []}
    neither = []
    for pmid in sorted(now_.keys() | before_.keys() | after_.keys()):
        empty = ([], [], [])
        state = now_.get(pmid, empty)
        if state not in (before_.get(pmid, empty), after_.get(pmid, empty)):
            neither.append(pmid)
        chosen = state if state == before_.get(pmid, empty) else after_.get(pmid, empty)
        for key, rows in zip(("cards", "items", "revisions"), chosen):
            expected[key] += rows
    return {key: sorted(rows) for key, rows in expected.items()}, neither


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_at_random_points(scenario: Scenario, db_url: URL, corpus: Path, tmp_path: Path) -> None:
    dbs = Databases(db_url, tmp_path)
    server = calm_server().start()
    rng = random.Random(SEED)
    failures: list[str] = []
    kills = half = curated_changed = lost = 0
    landed: list[str] = []
    try:
        template = build_template(db_url, corpus, tmp_path)
        serve_template_records(server, template, corpus)
        (tmp_path / "rate").mkdir()
        env = eutils_env(server, tmp_path / "rate", paced=False, NCBI_API_KEY="reliability-suite", KB_EUTILS_TIMEOUT="5",
                         KB_CURATOR="crash-suite")
        big = big_file(tmp_path / "big.xml")
        cards = card_files(dbs, template.url, corpus, tmp_path / "cards")
        known = {**template.known, **shapes(parse_records(big))}
        pmid_file = tmp_path / "pmids.txt"
        pmid_file.write_text("\n".join(map(str, template.pmids)) + "\n")
        commands = {
            "load": ("load", "--quiet", "--batch-size", "100", str(big), str(corpus / "ncbiutils" / "multiple.xml")),
            "ingest": ("ingest", "--quiet", "--batch-size", "10", "--from", str(pmid_file)),
            "refresh": ("refresh", "--quiet", "--batch-size", "5"),
            # (--status draft: drafts of records without an abstract have no Quick Summary yet)
            "curate-import": ("curate", "import", "--quiet", "--status", "draft", *map(str, cards)),
        }

        # The references: each command run once on the template, never killed.
        refs = {}
        for name, args in commands.items():
            url = dbs.clone(template.url)
            result = kb(url, *args, env=env)
            assert result.exit_code == 0, (name, result.output)
            refs[name] = read_state(url)
            curated = refs[name].curated if name == "curate-import" else template.state.curated
            found, _, _ = problems(refs[name], known, curated)
            assert not found, (name, found)
            dbs.drop(url)
        assert refs["refresh"].links and refs["refresh"].topics[TOPIC_NAME] is not None
        imported = refs["curate-import"]
        assert len(imported.curated["revisions"]) == len(cards) == len(imported.curated["cards"])
        assert set(template.state.studies) < {c[0] for c in imported.curated["cards"]}
        assert imported.placeholders and not template.state.placeholders

        attempt = 0
        while kills < KILLS and attempt < KILLS * 3:
            name = COMMANDS[attempt % len(COMMANDS)]
            attempt += 1
            ref = refs[name]
            url = dbs.clone(template.url)
            watcher = kbdb.create_kb_engine(url, readonly=url.get_backend_name() == "sqlite")
            errors: list[str] = []
            try:
                before = _stored(template.state, name)
                total = _stored(ref, name)
                by_progress = rng.random() < 0.7 and total - before > 2
                threshold = before + rng.randint(1, total - before - 1) if by_progress else 0
                delay = rng.uniform(0.0, 0.05) if by_progress else rng.uniform(0.3, 2.5)
                unit = "card revisions" if name == "curate-import" else "studies"
                where = f"after {threshold - before} new {unit}" if by_progress else f"at {delay:.2f} s"
                log = tmp_path / "killed.stderr"
                with log.open("wb") as stderr:  # a file, not a pipe: an orphaned child must not hold us up
                    proc = subprocess.Popen(kb_argv(*commands[name]), env=subprocess_env(url, env),
                                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
                started = time.monotonic()
                if by_progress:
                    while proc.poll() is None and time.monotonic() - started < 60:
                        if _progress(watcher, name) >= threshold:
                            break
                        time.sleep(0.02)
                    time.sleep(delay)
                else:
                    while proc.poll() is None and time.monotonic() - started < delay:
                        time.sleep(0.01)
                if proc.poll() is not None:  # it finished first: not a kill, try another point
                    continue
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                kills += 1
                landed.append(f"{name} {where}")
                deadline = time.monotonic() + 5
                while _group_alive(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _group_alive(proc.pid):  # the orphaned parser process of kb load
                    errors.append("a process of the killed command was still running 5 s later")
                    os.killpg(proc.pid, signal.SIGKILL)
                errors += [f"killed process printed: {line}" for line in bad_output(log.read_text(errors="replace"))]
                watcher.dispose()

                state = read_state(url)
                expected = template.state.curated
                if name == "curate-import":
                    expected, neither = between(state.curated, template.state.curated, ref.curated)
                    if neither:
                        errors.append(f"after the kill: cards neither as before nor as imported: {neither[:20]}")
                found, half_count, changed = problems(state, known, expected)
                half += half_count
                curated_changed += changed
                errors += [f"after the kill: {p}" for p in found]
                for topic, watermark in state.topics.items():
                    if watermark is not None and {p for t, p in ref.links if t == topic} - {p for t, p in state.links}:
                        errors.append(f"topic {topic}: the watermark moved without all its links")
                strays = [p for p, h in state.studies.items()
                          if h not in (ref.studies.get(p), template.state.studies.get(p))]
                if strays:
                    errors.append(f"after the kill: stored as neither the old nor the new version: {strays}")

                rerun = kb(url, *commands[name], env=env)
                errors += [f"rerun: user saw: {line}" for line in bad_output(rerun.output)]
                state = read_state(url)
                found, half_count, changed = problems(state, known, ref.curated)
                half += half_count
                curated_changed += changed
                errors += [f"after the rerun: {p}" for p in found]
                diff = {p for p in ref.studies.keys() | state.studies.keys() if state.studies.get(p) != ref.studies.get(p)}
                unlinked = {p for _, p in ref.links - state.links}
                uncarded = {p for p, rows in _by_pmid(ref.curated).items() if _by_pmid(state.curated).get(p) != rows}
                lost += len(diff | unlinked | uncarded)
                if state.placeholders != ref.placeholders:
                    errors.append(f"after the rerun: placeholder studies {sorted(state.placeholders ^ ref.placeholders)[:20]} "
                                  "differ from the reference")
                if rerun.exit_code != 0 or diff or state.links != ref.links or state.failures or uncarded:
                    errors.append(f"the rerun (exit {rerun.exit_code}) left studies {sorted(diff)[:20]}, links "
                                  f"{sorted(unlinked)[:20]}, queued {sorted(state.failures)[:20]}, cards "
                                  f"{sorted(uncarded)[:20]} different from the reference: {rerun.stderr[-500:]!r}")
                if name == "refresh" and any(status == "running" for _, status in state.runs):
                    errors.append(f"refresh_runs still 'running' after the rerun: {state.runs}")
            finally:
                watcher.dispose()
                dbs.drop(url)
            if errors:
                failures.append(f"kill {kills} ({name}, {where}): " + "; ".join(errors))
    finally:
        server.stop()
        dbs.close()

    scenario.runs = kills
    scenario.failures = len(failures)
    scenario.records_lost = lost
    scenario.half_written = half
    scenario.curated_changed = curated_changed
    scenario.notes = [f"kills: {'; '.join(landed)}"] + failures[:20]
    assert kills == KILLS, f"only {kills} of {KILLS} kills landed before the command finished"
    assert failures == [], "\n".join(failures)
    assert (lost, half, curated_changed) == (0, 0, 0)


_WRITER = """
import sys, time
from pathlib import Path
from kb.ingest import _pipelined_batches
batches = _pipelined_batches(Path(sys.argv[1]), int(sys.argv[2]))
next(batches)
print("writing the first batch", flush=True)
time.sleep(120)
"""


def test_parser_process_ends_when_kb_load_is_killed(scenario: Scenario, tmp_path: Path) -> None:
    """Regression: `kb load` parses a large file in a second process, at most two batches ahead of
    the writer. When the writer was killed (SIGKILL) while that parser had already sent its last
    batches, the parser waited for ever, at exit, to hand them over: an orphan process holding the
    parsed batches, until someone killed it. Found by the kill scenario above (a killed load's
    stderr pipe never closed)."""
    big = big_file(tmp_path / "big.xml")
    half = BIG_RECORDS // 2 + 1  # two batches: the parser is done while the writer stores the first
    proc = subprocess.Popen(kb_argv()[:1] + ["-c", _WRITER, str(big), str(half)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "writing the first batch"
        time.sleep(3)  # the parser sends its last batch and starts exiting
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphaned = _group_alive(proc.pid)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
    scenario.runs = 1
    scenario.failures = int(orphaned)
    assert not orphaned, "the parser process of a killed kb load was still running 5 s later"
