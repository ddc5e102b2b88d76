#!/usr/bin/env python3
"""Curation benchmark: `kb curate draft --missing` and `kb curate import FILE...` for N studies.

Stores N studies (default 2,000) from the corpus records in ../shared, cloned with fresh PMIDs
and stored through kb's ingest path as scripts/bench_search.py does (its helpers), twice: a
database to draft in and an empty-handed one to import into. Then, each in a fresh process:

  (a) draft: kb.curate.draft_cards for every study in one transaction (what `kb curate draft
      --missing` does),
  (b) the reference, measured in the same run: the same cards read and rendered one at a time
      in kb's text format (load_card + export_text: what `kb card` and `kb curate export` do
      per card), nothing written,
  (c) export: kb.curate.export_cards of every card into a directory (`kb curate export --all`),
  (d) import: every exported file read and imported into the other database, one transaction
      per file (what `kb curate import --status draft FILE...` does),
  (e) the imported cards exported again and compared with (c) byte for byte (a check, not timed).

Prints cards/s (wall) and CPU seconds of each, and the cost of drafting and of importing a card
as a multiple of the reference (b): how many renderings of the card one save costs.

Usage: scripts/bench_curate.py [--studies 2000] [--workdir DIR] [--keep] [--pg] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL, make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import bench_ingest  # noqa: E402  (CORPUS, scratch_pg_database)
import bench_search  # noqa: E402  (templates, load: N cloned studies through kb.store)

# Runs in a fresh process: one measurement, printed as JSON.
CHILD = r"""
import json, sys, time
from pathlib import Path
from sqlalchemy import select
from sqlalchemy.engine import make_url
from kb import curate, db as kbdb, models as m
from kb.cards.data import load_card

url, what, folder = make_url(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
engine = kbdb.create_kb_engine(url)
factory = kbdb.make_sessionmaker(engine, write=what in ("draft", "import"))
start, cpu = time.perf_counter(), time.process_time()
if what == "draft":
    with factory.begin() as session:
        count = len(curate.draft_cards(session, None, author="bench")[0])
elif what == "render":
    with factory.begin() as session:
        pmids = session.scalars(select(m.Card.pmid).order_by(m.Card.pmid)).all()
        count = sum(1 for p in pmids if curate.export_text(load_card(session, p)))
elif what == "export":
    with factory.begin() as session:
        count = len(curate.export_cards(session, None, folder))
elif what == "import":
    count = 0
    for path in sorted(folder.iterdir()):
        with factory.begin() as session:
            read = curate.read_card_file(path)
            count += curate.import_card(session, read, status="draft", author="bench")[0].changed
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
engine.dispose()
print(json.dumps({"count": count, "seconds": elapsed, "cpu_s": cpu}))
"""


def child(url: URL, what: str, folder: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, url.render_as_string(hide_password=False), what, str(folder)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"the {what} run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def databases(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, URL, URL]]:
    """(label, drafts database, import database): two SQLite files, or two scratch PostgreSQL
    databases (dropped afterwards)."""
    if not args.pg:
        yield ("SQLite", URL.create("sqlite", database=str(workdir / "drafts.sqlite3")),
               URL.create("sqlite", database=str(workdir / "imports.sqlite3")))
        return
    with bench_ingest.scratch_pg_database(args.pg_url, f"{args.pg_prefix}_a") as a, \
            bench_ingest.scratch_pg_database(args.pg_url, f"{args.pg_prefix}_b") as b:
        yield "PostgreSQL", make_url(a), make_url(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=2_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="Keep the workdir (databases and card files).")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL (two scratch databases) instead of SQLite.")
    parser.add_argument("--pg-url", default=os.environ.get("KB_TEST_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="An administrative URL of the PostgreSQL server (default: %(default)s).")
    parser.add_argument("--pg-prefix", default="kb_bench_curate", help="Names of the scratch databases start so.")
    args = parser.parse_args()
    if not bench_ingest.CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {bench_ingest.CORPUS} (../shared beside the checkout)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kb-bench-curate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    exported, again = workdir / "export", workdir / "again"
    for folder in (exported, again):
        shutil.rmtree(folder, ignore_errors=True)
    recs = bench_search.templates()
    with databases(args, workdir) as (label, drafts, imports):
        print(f"{label}: corpus {len(recs)} records; {args.studies} studies in each of two databases; "
              f"workdir {workdir}", flush=True)
        for url in (drafts, imports):
            if url.database and not args.pg:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{url.database}{suffix}").unlink(missing_ok=True)
            bench_search.load(url, recs, args.studies, label)
        draft = child(drafts, "draft", workdir)
        render = child(drafts, "render", workdir)
        export = child(drafts, "export", exported)
        imported = child(imports, "import", exported)
        child(imports, "export", again)
    assert draft["count"] == render["count"] == export["count"] == imported["count"] == args.studies, \
        (draft, render, export, imported)
    differ = [p.name for p in sorted(exported.iterdir()) if (again / p.name).read_bytes() != p.read_bytes()]

    def rate(r: dict) -> float:
        return r["count"] / r["seconds"]

    print()
    for name, r in (("(a) draft (draft_cards, one transaction):      ", draft),
                    ("(b) reference: load_card + render, per card:   ", render),
                    ("(c) export (export_cards, files written):      ", export),
                    ("(d) import (import_card, a transaction a file):", imported)):
        print(f"{name} {rate(r):>6.0f} cards/s  {r['seconds']:5.1f} s wall, {r['cpu_s']:5.1f} s CPU "
              f"({1000 * r['cpu_s'] / r['count']:.2f} ms CPU a card)")
    print(f"ratio draft / reference: {draft['seconds'] / render['seconds']:.2f}  "
          f"import / reference: {imported['seconds'] / render['seconds']:.2f}  "
          f"(a saved card costs so many renderings of it)")
    print(f"(e) round trip: {len(differ)} of {len(list(exported.iterdir()))} re-exported cards differ"
          + (f" (first: {differ[0]})" if differ else ""))
    if args.keep:
        print(f"kept {workdir}")
    elif not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    if differ:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
