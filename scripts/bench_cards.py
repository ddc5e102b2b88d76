#!/usr/bin/env python3
"""Static-site benchmark: `kb cards build` (kb.cards.site.build_site) for N studies.

Builds N studies (default 30,000) from the corpus records in ../shared, cloned with fresh PMIDs
and stored through kb's ingest path as scripts/bench_search.py does (its helpers), gives a third
of them a curated card through kb.curate.save_card (a full card: every section, lay and
technical bullets), and puts a tenth of them in a topic. Then, each in a fresh process:

  (a) build_site for all N studies into an empty directory: cards/s and peak RSS,
  (b) a rebuild into the same directory (pages whose content is unchanged are not rewritten),
  (c) the reference, measured in the same run: the card_study query run for every study, one
      study at a time, without drafting or rendering (the per-card query kb card starts with),
  (d) for context, reading every card with kb.cards.site.load_cards (batched queries and
      drafts, no rendering) and the same plus rendering each page (no writing).

Prints cards/s, the ratio (a)/(c) and peak RSS, and whether the target (>= 1,000 cards/s) is met.

Usage: scripts/bench_cards.py [--studies 30000] [--workdir DIR] [--keep] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import URL

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import bench_ingest  # noqa: E402  (FIRST_PMID, CORPUS)
import bench_search  # noqa: E402  (templates, load: N cloned studies through kb.store)

from kb import curate  # noqa: E402
from kb import db as kbdb  # noqa: E402
from kb import models as m  # noqa: E402
from kb.cards.model import CardDoc, Item  # noqa: E402

TARGET_CARDS_PER_S = 1_000.0
CURATE_BATCH = 500
STUDY_TYPES = ("Randomized Controlled Trial", "Meta-Analysis", "Observational Study", "Systematic Review")

# Runs in a fresh process: one measurement, printed as JSON with the process's peak RSS.
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from sqlalchemy import select
from sqlalchemy.engine import make_url
from kb import db as kbdb, models as m
from kb.cards.data import run_query
from kb.cards.render import render
from kb.cards.site import build_site, load_cards

url, what, outdir = make_url(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
engine = kbdb.create_kb_engine(url, readonly=True)
factory = kbdb.make_sessionmaker(engine)
with factory.begin() as session:
    pmids = session.scalars(select(m.Study.pmid).order_by(m.Study.pmid)).all()
    start, cpu = time.perf_counter(), time.process_time()
    if what == "build":
        count = build_site(session, outdir).cards
    elif what == "query":
        count = sum(len(run_query(session, "card_study", pmid=p)) for p in pmids)
    elif what == "read":
        count = sum(1 for _ in load_cards(session, pmids))
    elif what == "render":
        count = sum(1 for v in load_cards(session, pmids) if render(v, "html", relative_root="../"))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
engine.dispose()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"count": count, "seconds": elapsed, "cpu_s": cpu,
                  "rss_mb": usage.ru_maxrss / 1024}))
"""


def realistic_card(pmid: int, title: str, n: int) -> CardDoc:
    """A curated card as a curator writes one: every section filled, a few bullets each."""
    subject = (title or "this supplement").rstrip(".")[:90]
    people, weeks = 40 + n % 900, 4 + n % 48
    return CardDoc(
        pmid=pmid,
        headline=f"What a study of {subject.lower()} found",
        quick_summary=f"In {people} adults followed for {weeks} weeks, the treatment modestly improved the main "
                      f"outcome compared with placebo; the effect was small and the study was short.",
        what_research_found=f"Researchers compared the treatment with a placebo in {people} adults. Those who "
                            f"took it improved a little more than those who did not.\n\nThe benefit was "
                            f"clearest in people who started with low levels.",
        findings=[Item("Blood levels rose in most people who took it.", "Levels"),
                  Item(f"Symptoms improved by about {n % 30 + 5}% more than with placebo.", "Symptoms"),
                  Item("Side effects were rare and mild.", "Safety")],
        who_was_studied=f"{people} adults aged 18 to 75 with low baseline levels",
        how_long=f"{weeks} weeks",
        what_they_took=f"{(n % 8 + 1) * 500} IU daily, or a matching placebo",
        notes=[Item("Ask your doctor before you start a supplement.", "Talk To Your Doctor"),
               Item("A blood test shows whether your levels are low.", "Get Tested")],
        limitations=[Item(f"Only {people} people took part.", "Small Study"),
                     Item(f"{weeks} weeks is too short to see long-term effects.", "Short Follow-up")],
        key_findings="The primary outcome improved (mean difference 0.4, 95% CI 0.1 to 0.7; p = 0.01).",
        technical_findings=[Item("Secondary outcomes did not differ between groups.", "Secondary Outcomes")],
        study_design="Randomised, double-blind, placebo-controlled, parallel-group trial at two centres.",
        dosage_administration="Oral capsules once daily with a meal; adherence checked by pill counts.",
        results_efficacy="Intention-to-treat analysis of all randomised participants; 8% lost to follow-up.",
        clinical_relevance="A modest benefit in deficient adults; unlikely to matter for people with normal levels.",
        technical_notes=[Item("Funded by a public research council.", "Funding")],
        technical_limitations="Single country; mostly white participants, which limits generalisability.",
        study_type=STUDY_TYPES[n % len(STUDY_TYPES)],
    )


def curate_cards(url: URL, pmids: list[int]) -> float:
    """Save a curated card (kb.curate.save_card) for each of ``pmids``; return the seconds."""
    engine = kbdb.create_kb_engine(url)
    factory = kbdb.make_sessionmaker(engine, write=True)
    start = time.perf_counter()
    for first in range(0, len(pmids), CURATE_BATCH):
        chunk = pmids[first:first + CURATE_BATCH]
        with factory.begin() as session:
            titles = dict(session.execute(select(m.Study.pmid, m.Study.title).where(m.Study.pmid.in_(chunk))).all())
            for n, pmid in enumerate(chunk, first):
                status = ("published", "reviewed", "draft")[n % 3]
                curate.save_card(session, realistic_card(pmid, titles.get(pmid) or "", n), action="import",
                                 author="bench", status=status)
    engine.dispose()
    return time.perf_counter() - start


def add_topic(url: URL, pmids: list[int]) -> None:
    engine = kbdb.create_kb_engine(url)
    with kbdb.make_sessionmaker(engine, write=True).begin() as session:
        topic = m.Topic(name="vitamin d", query="vitamin d[tiab]")
        session.add(topic)
        session.flush()
        session.execute(insert(m.TopicStudy), [{"topic_id": topic.id, "pmid": p} for p in pmids])
    engine.dispose()


def child(url: URL, what: str, outdir: Path) -> dict:
    os.sync()  # start each run with no dirty pages of the previous one waiting to be written
    proc = subprocess.run([sys.executable, "-c", CHILD, url.render_as_string(hide_password=False), what,
                           str(outdir)], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"the {what} run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_database(url: URL, studies: int, workdir: Path) -> None:
    """N cloned corpus studies, a third of them with a curated card, a tenth in a topic."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{url.database}{suffix}").unlink(missing_ok=True)
    recs = bench_search.templates()
    print(f"corpus: {len(recs)} records; {studies} studies; workdir {workdir}", flush=True)
    load_s = bench_search.load(url, recs, studies, "SQLite")
    pmids = [bench_ingest.FIRST_PMID + i for i in range(studies)]
    curated = pmids[::3]
    curate_s = curate_cards(url, curated)
    add_topic(url, pmids[::10])
    print(f"stored {studies} studies in {load_s:.0f} s; {len(curated)} curated cards (kb.curate.save_card) "
          f"in {curate_s:.0f} s; a topic with {len(pmids[::10])} studies", flush=True)


def site_size(outdir: Path) -> tuple[int, float, float]:
    pages = list((outdir / "cards").glob("*.html"))
    total = sum(p.stat().st_size for p in pages)
    return len(pages), total / 2**20, (outdir / "index.html").stat().st_size / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=30_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="Keep the workdir (database and site).")
    parser.add_argument("--reuse", action="store_true",
                        help="Use the database a previous run left in --workdir (same --studies) as it is.")
    args = parser.parse_args()
    if not bench_ingest.CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {bench_ingest.CORPUS} (../shared beside the checkout)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kb-bench-cards-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / f"cards-{args.studies}.sqlite3"
    url = URL.create("sqlite", database=str(db))
    if args.reuse and db.exists():
        print(f"reusing {db}", flush=True)
    else:
        make_database(url, args.studies, workdir)

    outdir = workdir / "site"
    shutil.rmtree(outdir, ignore_errors=True)
    build = child(url, "build", outdir)
    pages, pages_mb, index_mb = site_size(outdir)
    rebuild = child(url, "build", outdir)
    query = child(url, "query", outdir)
    read = child(url, "read", outdir)
    rendered = child(url, "render", outdir)
    assert build["count"] == rebuild["count"] == pages == args.studies, (build, rebuild, pages)
    assert query["count"] == read["count"] == rendered["count"] == args.studies

    def rate(r: dict) -> float:
        return r["count"] / r["seconds"]

    print()
    print(f"site: {pages} card pages ({pages_mb:.0f} MB), index.html {index_mb:.1f} MB")
    for label, r in (("(a) build_site, empty directory: ", build), ("(b) build_site, rebuild in place:", rebuild)):
        print(f"{label} {rate(r):>6.0f} cards/s  {r['seconds']:5.1f} s wall, {r['cpu_s']:5.1f} s CPU "
              f"(wall beyond CPU: waiting on the disk or for a CPU)  peak RSS {r['rss_mb']:.0f} MB")
    print(f"(c) reference: card_study query per study (no drafting, no rendering): {rate(query):.0f} studies/s "
          f"({query['seconds']:.1f} s)")
    print(f"(d) context: load_cards only {rate(read):.0f} cards/s ({read['seconds']:.1f} s); "
          f"load_cards + render {rate(rendered):.0f} cards/s ({rendered['seconds']:.1f} s)")
    print(f"ratio build / reference: {rate(build) / rate(query):.2f} "
          f"(the build reads, drafts, renders and writes every card in {build['seconds'] / query['seconds']:.2f}x "
          f"the time of one bare query per card)")
    ok = rate(build) >= TARGET_CARDS_PER_S
    print(f"target >= {TARGET_CARDS_PER_S:,.0f} cards/s: {'met' if ok else 'MISSED'} "
          f"({rate(build):.0f} cards/s at {args.studies} studies, peak RSS {build['rss_mb']:.0f} MB)")
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    elif args.keep:
        print(f"kept {workdir}")


if __name__ == "__main__":
    main()
