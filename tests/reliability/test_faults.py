"""Network faults (issue 7, scenario 1): `kb ingest` and `kb refresh` against a stand-in E-utilities
server that answers with randomly chosen faults (seeded, so a failure can be replayed).

Every run starts from the same template database (part of the corpus stored, some of it as older
versions with curated cards, one saved topic) and meets 1–3 queued faults: 500/502/503 pages,
connection resets, answers slower than a short ``KB_EUTILS_TIMEOUT``, truncated bodies, ``<ERROR>``
bodies, silently omitted records; one run in 25 (one at CI scale) is a 429 storm against a
rate-limited server, which must then have counted no 429 beyond the injected ones.

After the run the database must equal the fault-free result (a reference database built once per
test), or differ from it by exactly what the run reported as failed (queued in ``fetch_failures``)
or not found; curated text must be byte-identical; then one run without faults must close the gap
exactly. A run for which any of that does not hold counts as a failure.

Runs other than the storms carry an API key, which only makes kb pace itself at 10 requests/s
instead of 3 (the stand-in has no limit): the CI-scale suite stays short.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb import models as m
from kb.testing.eutils import EutilsServer

from .conftest import Scenario, scaled
from .support import (
    Databases,
    DbState,
    Template,
    articles,
    bad_output,
    build_template,
    calm_server,
    eutils_env,
    kb,
    older_version,
    parse_listing,
    problems,
    read_state,
    serve_template_records,
    write_articles,
)

SEED = 20261123
RUNS = scaled(ci=12, full=200)
TRIES = 3
TIMEOUT = 0.6  # KB_EUTILS_TIMEOUT of the faulted runs ("slow" answers come 0.3 s later)
FAULT_KINDS = ("500", "502", "503", "reset", "truncate", "error", "slow", "omit")
MISSING_PMIDS = (99_999_971, 99_999_972)  # not served: always "not found"
STORM_EVERY = 25  # runs 1, 26, 51, … (0-based) meet a 429 storm on a rate-limited server


@dataclass
class Plan:
    kind: str  # "ingest", "refresh" or "storm" (an ingest)
    pmids: list[int] = field(default_factory=list)
    batch_size: int = 20
    faults: list[tuple[str, int, str | None, dict]] = field(default_factory=list)

    def describe(self) -> str:
        shown = ", ".join(f"{k}x{c}@{p or 'any'}{'' if not o else o}" for k, c, p, o in self.faults)
        return f"{self.kind} ({len(self.pmids)} PMIDs, batch {self.batch_size}) faults [{shown}]"


def make_plan(rng: random.Random, index: int, template: Template) -> Plan:
    if index % STORM_EVERY == 1:
        # As many 429s in a row as the client tries: the first page fails, the next one gets through.
        return Plan("storm", pmids=rng.sample(template.pmids, 40), faults=[("429", TRIES, "efetch", {})])
    kind = "refresh" if rng.random() < 0.35 else "ingest"
    plan = Plan(kind, batch_size=rng.choice((10, 15, 20)))
    if kind == "ingest":
        plan.pmids = rng.sample(template.pmids, rng.randint(20, 45))
        plan.pmids += rng.sample(template.carded, 2)  # a carded study whose record changed
        if rng.random() < 0.25:
            plan.pmids.append(rng.choice(MISSING_PMIDS))
        plan.pmids = list(dict.fromkeys(plan.pmids))
    for _ in range(rng.randint(1, 3)):
        fault = rng.choice(FAULT_KINDS)
        if kind == "ingest" or fault == "omit":
            path = "efetch"
        else:
            path = rng.choice(("efetch", "efetch", "esearch", "epost", None))
        options: dict = {}
        count = rng.randint(1, 3)
        if fault == "slow":
            options, count = {"seconds": TIMEOUT + 0.3}, rng.randint(1, 2)
        elif fault == "omit":
            options = {"n": rng.randint(1, 3)}
        plan.faults.append((fault, count, path, options))
    return plan


def _reported_not_found(url: URL) -> int:
    """Not-found PMIDs the last refresh run recorded (per topic and in the tracked pass)."""
    counts = _last_run_counts(url) or {}
    total = sum(int(t.get("not_found", 0)) for t in counts.get("topics", {}).values())
    return total + int(counts.get("tracked", {}).get("not_found", 0))


class Checker:
    """Compares one faulted run with the fault-free references and records what went wrong."""

    def __init__(self, template: Template, ref_ingest: DbState, ref_refresh: DbState) -> None:
        self.template = template
        self.ref_ingest = ref_ingest
        self.ref_refresh = ref_refresh
        self.half_written = 0
        self.curated_changed = 0
        self.records_lost = 0

    def integrity(self, state: DbState, errors: list[str], when: str) -> None:
        found, half, curated = problems(state, self.template.known, self.template.state.curated)
        self.half_written += half
        self.curated_changed += curated
        errors += [f"{when}: {p}" for p in found]

    def expected_ingest(self, pmids: list[int]) -> dict[int, str | None]:
        expected = dict(self.template.state.studies)
        for p in pmids:
            if p in self.ref_ingest.studies:
                expected[p] = self.ref_ingest.studies[p]
        return expected

    def after_ingest(self, plan: Plan, result, url: URL, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
        stderr = result.stderr
        errors += [f"user saw: {line}" for line in bad_output(result.output)]
        failed, not_found = parse_listing(stderr, "failed"), parse_listing(stderr, "not found")
        if failed is None or not_found is None:
            errors.append(f"cannot read the run's report: {stderr!r}")
            return
        state = read_state(url)
        self.integrity(state, errors, "after the faulted run")
        expected = self.expected_ingest(plan.pmids)
        diff = {p for p in expected.keys() | state.studies.keys() if state.studies.get(p) != expected.get(p)}
        no_effect = {p for p in plan.pmids if self.template.state.studies.get(p) == expected.get(p)}
        reported = failed | not_found
        if result.exit_code != (1 if reported else 0):
            errors.append(f"exit code {result.exit_code} with failed {sorted(failed)} not found {sorted(not_found)}")
        if diff - reported:
            errors.append(f"differs from the fault-free result without being reported: {sorted(diff - reported)}")
        if reported - diff - no_effect:
            errors.append(f"reported failed/not found but stored as expected: {sorted(reported - diff - no_effect)}")
        if failed & not_found:
            errors.append(f"reported both failed and not found: {sorted(failed & not_found)}")
        if state.failures != failed:
            errors.append(f"fetch_failures {sorted(state.failures)} != reported failed {sorted(failed)}")

    def after_ingest_retry(self, plan: Plan, result, url: URL, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
        errors += [f"retry: user saw: {line}" for line in bad_output(result.output)]
        state = read_state(url)
        self.integrity(state, errors, "after the retry")
        expected = self.expected_ingest(plan.pmids)
        diff = {p for p in expected.keys() | state.studies.keys() if state.studies.get(p) != expected.get(p)}
        self.records_lost += len(diff)
        if diff:
            errors.append(f"the retry without faults left {sorted(diff)} different from the fault-free result")
        missing = {p for p in plan.pmids if p not in self.ref_ingest.studies}
        not_found = parse_listing(result.stderr, "not found")
        if state.failures or result.exit_code != (1 if missing else 0) or not_found != missing:
            errors.append(f"retry: exit {result.exit_code}, queued {sorted(state.failures)}, not found {not_found}")

    def after_refresh(self, result, url: URL, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
        errors += [f"user saw: {line}" for line in bad_output(result.output)]
        state = read_state(url)
        self.integrity(state, errors, "after the faulted run")
        ref, before = self.ref_refresh, self.template.state
        strays = [p for p, h in state.studies.items() if h not in (ref.studies.get(p), before.studies.get(p))]
        if strays:
            errors.append(f"stored neither as before nor as the fault-free run stores them: {strays}")
        if state.links - ref.links:
            errors.append(f"links the fault-free run does not make: {sorted(state.links - ref.links)}")
        diff = {p for p in ref.studies.keys() | state.studies.keys() if state.studies.get(p) != ref.studies.get(p)}
        unlinked = {p for _, p in ref.links - state.links}
        status = state.runs[-1][1] if state.runs else None
        if result.exit_code == 0:
            if diff or unlinked or state.failures or status != "success":
                errors.append(f"exit 0 ({status}) but differs from the fault-free result: studies {sorted(diff)}, "
                              f"links {sorted(unlinked)}, queued {sorted(state.failures)}")
        elif result.exit_code == 1:
            match = re.search(r"failed (\d+);", result.stderr)
            reported_failed = int(match.group(1)) if match else -1
            not_found = _reported_not_found(url)
            if reported_failed != len(state.failures):
                errors.append(f"reported failed {reported_failed}, queued {len(state.failures)}")
            if state.failures - diff:
                errors.append(f"queued but stored as expected: {sorted(state.failures - diff)}")
            if len(diff - state.failures) != not_found:
                errors.append(f"differs from the fault-free result by {sorted(diff - state.failures)} beyond the "
                              f"queued failures; the run reported {not_found} not found")
            if unlinked - diff:
                errors.append(f"stored but not linked to the topic: {sorted(unlinked - diff)}")
            if status != "partial":
                errors.append(f"exit 1 but the run is recorded as {status!r}")
        elif result.exit_code == 69:
            if status != "failed" or "Error:" not in result.stderr:
                errors.append(f"exit 69 but the run is recorded as {status!r}: {result.stderr!r}")
        else:
            errors.append(f"exit code {result.exit_code}: {result.output!r}")

    def after_refresh_retry(self, result, url: URL, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
        errors += [f"retry: user saw: {line}" for line in bad_output(result.output)]
        state = read_state(url)
        self.integrity(state, errors, "after the retry")
        ref = self.ref_refresh
        diff = {p for p in ref.studies.keys() | state.studies.keys() if state.studies.get(p) != ref.studies.get(p)}
        unlinked = {p for _, p in ref.links - state.links}
        self.records_lost += len(diff | unlinked)
        if result.exit_code != 0 or diff or unlinked or state.links != ref.links or state.failures:
            errors.append(f"the retry without faults (exit {result.exit_code}) left studies {sorted(diff)}, "
                          f"links {sorted(unlinked)}, queued {sorted(state.failures)} different from the "
                          f"fault-free result: {result.stderr!r}")


def test_network_faults(scenario: Scenario, db_url: URL, corpus: Path, tmp_path: Path) -> None:
    dbs = Databases(db_url, tmp_path)
    server = calm_server().start()
    storm_server = EutilsServer(rate=3.0).start()
    try:
        template = build_template(db_url, corpus, tmp_path)
        serve_template_records(server, template, corpus)
        serve_template_records(storm_server, template, corpus)
        # The calm server has no limit and kb goes at its pace; the storm run keeps NCBI's keyless
        # 3/s and its 2 s Retry-After.
        calm = eutils_env(server, tmp_path / "rate", paced=False, NCBI_API_KEY="reliability-suite",
                          KB_EUTILS_TRIES=str(TRIES))
        fast = {**calm, "KB_EUTILS_TIMEOUT": str(TIMEOUT)}
        storm = eutils_env(storm_server, tmp_path / "rate", KB_EUTILS_TRIES=str(TRIES))
        (tmp_path / "rate").mkdir()

        # The fault-free references, built once.
        ref_ingest_url = dbs.clone(template.url)
        result = kb(ref_ingest_url, "ingest", "--batch-size", "50", *map(str, template.pmids), env=calm)
        assert result.exit_code == 0, result.output
        ref_refresh_url = dbs.clone(template.url)
        result = kb(ref_refresh_url, "refresh", "--batch-size", "20", env=calm)
        assert result.exit_code == 0, result.output
        checker = Checker(template, read_state(ref_ingest_url), read_state(ref_refresh_url))
        assert len(checker.ref_refresh.links) >= 25, "the topic should find a good part of the corpus"
        assert checker.ref_ingest.studies.keys() == set(template.pmids)
        for ref in (checker.ref_ingest, checker.ref_refresh):
            found, half, curated = problems(ref, template.known, template.state.curated)
            assert not found, found
        dbs.drop(ref_ingest_url)
        dbs.drop(ref_refresh_url)

        rng = random.Random(SEED)
        failures: list[str] = []
        for index in range(RUNS):
            plan = make_plan(rng, index, template)
            url = dbs.clone(template.url)
            srv, env, retry_env = (storm_server, storm, storm) if plan.kind == "storm" else (server, fast, calm)
            errors: list[str] = []
            try:
                srv.clear_faults()
                srv.reset_stats()
                for kind, count, path, options in plan.faults:
                    srv.inject(kind, count=count, path=path, **options)
                if plan.kind == "refresh":
                    result = kb(url, "refresh", "--batch-size", str(plan.batch_size), env=env)
                    checker.after_refresh(result, url, errors)
                else:
                    args = ("ingest", "--batch-size", str(plan.batch_size), *map(str, plan.pmids))
                    result = kb(url, *args, env=env)
                    checker.after_ingest(plan, result, url, errors)
                    if plan.kind == "storm":
                        stats = srv.stats()
                        if stats["429"] != TRIES or stats["faults_served"] != TRIES:
                            errors.append(f"429 storm: the server answered {stats['429']} x 429 "
                                          f"({stats['faults_served']} injected): kb outran the rate limit")
                srv.clear_faults()
                if plan.kind == "refresh":
                    checker.after_refresh_retry(kb(url, "refresh", "--batch-size", "20", env=retry_env), url, errors)
                else:
                    retry = kb(url, "ingest", "--batch-size", "20", *map(str, plan.pmids), env=retry_env)
                    checker.after_ingest_retry(plan, retry, url, errors)
            finally:
                dbs.drop(url)
            if errors:
                failures.append(f"run {index}: {plan.describe()}: " + "; ".join(errors))
    finally:
        server.stop()
        storm_server.stop()
        dbs.close()

    scenario.runs = RUNS
    scenario.failures = len(failures)
    scenario.records_lost = checker.records_lost
    scenario.half_written = checker.half_written
    scenario.curated_changed = checker.curated_changed
    scenario.notes = failures[:20]
    assert failures == [], "\n".join(failures)
    assert (scenario.records_lost, scenario.half_written, scenario.curated_changed) == (0, 0, 0)


# --------------------------------------------------------------------------------------------
# Regression tests for the defects this scenario found (one run each, on SQLite: the defects were
# in the run logic, not in a database).
# --------------------------------------------------------------------------------------------


def _regression_setup(corpus: Path, tmp_path: Path, server: EutilsServer) -> dict[str, str]:
    server.replace_records(corpus / "ncbiutils" / "multiple.xml")
    (tmp_path / "rate").mkdir(exist_ok=True)
    return eutils_env(server, tmp_path / "rate", paced=False, NCBI_API_KEY="reliability-suite", KB_EUTILS_TRIES=str(TRIES))


def test_record_left_out_of_a_topic_fetch_is_fetched_next_time(scenario: Scenario, sqlite_url: URL, corpus: Path,
                                                              tmp_path: Path) -> None:
    """Before the fix the topic completed anyway: its watermark moved past the record, which no
    later refresh searched for again (lost for good), and the run said "success"."""
    with calm_server() as server:
        env = _regression_setup(corpus, tmp_path, server)
        assert kb(sqlite_url, "topic", "add", "mrna", "mrna[tiab]").exit_code == 0
        server.inject("omit", count=1, path="efetch", n=2)
        first = kb(sqlite_url, "refresh", "--batch-size", "50", env=env)
        state = read_state(sqlite_url)
        hits = int(re.search(r"topic mrna: (\d+) hits", first.stderr).group(1))
        second = kb(sqlite_url, "refresh", "--batch-size", "50", env=env)
        after = read_state(sqlite_url)
    scenario.runs = 1
    outcome = (first.exit_code, len(state.links), state.topics["mrna"] is None, second.exit_code, len(after.links))
    scenario.failures = int(outcome != (1, hits - 2, True, 0, hits))
    scenario.records_lost = hits - len(after.links)
    assert "2 PMIDs were not returned by efetch" in first.stderr, first.stderr
    assert outcome == (1, hits - 2, True, 0, hits), (first.stderr, second.stderr)
    assert after.topics["mrna"] is not None


def test_modified_record_left_out_is_reported(scenario: Scenario, sqlite_url: URL, corpus: Path,
                                              tmp_path: Path) -> None:
    """Before the fix a refresh whose re-fetch of a modified record came back without it said
    "success", exit 0, with the old version still stored."""
    source = corpus / "ncbiutils" / "multiple.xml"
    by_pmid = articles(source)
    pmid = sorted(by_pmid)[4]
    older = write_articles(tmp_path / "older.xml", [older_version(by_pmid[pmid])])
    with calm_server() as server:
        env = _regression_setup(corpus, tmp_path, server)
        server.set_dates(pmid, mdat=dt.date.today())
        assert kb(sqlite_url, "load", str(older)).exit_code == 0
        before = read_state(sqlite_url).studies[pmid]
        server.inject("omit", count=1, path="efetch", n=1)
        first = kb(sqlite_url, "refresh", env=env)
        stale = read_state(sqlite_url).studies[pmid]
        counts = _last_run_counts(sqlite_url)
        second = kb(sqlite_url, "refresh", env=env)
        after = read_state(sqlite_url).studies[pmid]
    scenario.runs = 1
    scenario.failures = int((first.exit_code, counts["tracked"]["not_found"], second.exit_code) != (1, 1, 0))
    scenario.records_lost = int(after == before)
    assert stale == before and after != before
    assert (first.exit_code, counts["tracked"]["not_found"]) == (1, 1), first.stderr
    assert "1 PMID was not returned by efetch" in first.stderr
    assert second.exit_code == 0, second.stderr


def test_pmid_not_found_on_retry_leaves_the_failure_queue(scenario: Scenario, sqlite_url: URL, corpus: Path,
                                                          tmp_path: Path) -> None:
    """Before the fix a queued PMID that E-utilities then answered "not found" for stayed queued:
    every later `kb ingest` retried it and exited 1, whatever it was asked for."""
    with calm_server() as server:
        env = _regression_setup(corpus, tmp_path, server)
        first_ids = [str(p) for p in server.pmids[:3]]
        server.inject("500", count=TRIES, path="efetch")
        failed = kb(sqlite_url, "ingest", *first_ids, str(MISSING_PMIDS[0]), env=env)
        queued = read_state(sqlite_url).failures
        retried = kb(sqlite_url, "ingest", str(server.pmids[10]), env=env)
        left = read_state(sqlite_url).failures
        later = kb(sqlite_url, "ingest", str(server.pmids[11]), env=env)
    scenario.runs = 1
    scenario.failures = int(bool(left) or later.exit_code != 0)
    assert failed.exit_code == 1 and len(queued) == 4
    assert retried.exit_code == 1 and f"not found (1): {MISSING_PMIDS[0]}" in retried.stderr, retried.stderr
    assert left == set()
    assert later.exit_code == 0 and "also retrying" not in later.stderr, later.stderr


def _last_run_counts(url: URL) -> dict:
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            counts = conn.execute(select(m.RefreshRun.counts).order_by(m.RefreshRun.id.desc())).scalars().first()
    finally:
        engine.dispose()
    return json.loads(counts) if isinstance(counts, str) else counts
