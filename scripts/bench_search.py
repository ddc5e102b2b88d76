#!/usr/bin/env python3
"""Search benchmark: `kb search` latency on SQLite (FTS5) and PostgreSQL (tsvector + GIN).

Builds N studies (default 100,000) from the corpus records in ../shared, cloned with fresh PMIDs
as scripts/bench_ingest.py does, and stores them through kb's ingest path (kb.store.store_prepared
in batches of 1,000, the search index written in the same transactions) into a fresh SQLite
database and a fresh PostgreSQL database (created and dropped here: kb_bench_search_<pid>). Then
times 50 searches (common words, rare words, phrases, OR, exclusion, filters) through
kb.search.search on a read-only engine, as `kb search` runs them: one warm-up pass, then
--rounds timed passes. Prints median and p95 per database, the slowest searches, a same-run
reference (a `SELECT 1` round trip and a primary-key lookup of a study), and whether the target
p95 <= 50 ms on SQLite is met.

The clones repeat ~300 distinct records, so every word is as frequent as in the corpus times
N/300: a common word matches a large share of all studies (the hard case for ranking: both
bm25 and ts_rank_cd score every match). A breakdown by the number of matches (searches matching
more or less than 10% of the studies, and each search) follows the summary.
raw_xml keeps each record's original XML (its PMID is not rewritten): it is not searched.

With --kb-load, the SQLite database is filled by `kb load` of a baseline-like file of N cloned
records instead (as a user would load it), and a 30,000-record file is loaded first into another
database in the same run: the load rates are compared (target: the rate at N within 20 % of the
rate at 30,000). Targets printed: PostgreSQL p95 <= 50 ms (at 100,000 studies), SQLite p95 <= 50 ms
at 100,000 and <= 100 ms at 1,000,000.

With --refresh, after the searches: `kb refresh` of the SQLite database (N tracked studies) and of a
fresh 10,000-study one, each against the E-utilities stand-in (kb.testing.eutils, which counts
requests) serving every tracked PMID, of which 50 were modified today with a changed title. Target:
the run at N makes at most 5 requests more than the run at 10,000.

With --clone-fill (and --kb-load), the SQLite database is not filled by one `kb load` of N records:
the 30,000-record reference database is copied and its rows cloned in SQL (fresh PMIDs: studies and
their child tables, then the search index rebuilt as `kb search --reindex` does) up to N - 30,000
studies, and a last `kb load` of 30,000 fresh records brings it to N. Its rate is the load rate at N
(compared with the reference's into an empty database). For a machine where a full load of N takes
too long; the searches and the refresh then run on N studies all the same.

The 1,000,000 run of issue 16 (acceptance 2; 20-60 minutes on a shared 2-core machine):
  scripts/bench_search.py --studies 1000000 --kb-load --refresh --no-pg --rounds 3

With --pg-keep NAME, the PostgreSQL database NAME is kept after the run and reused by the next run
with the same --studies (upgraded to the head revision, not loaded again): quick iterations on
PostgreSQL search. Drop it yourself when done (DROP DATABASE NAME).

Usage: scripts/bench_search.py [--studies 100000] [--rounds 3] [--workdir DIR] [--pg-url URL] [--no-pg]
                               [--no-sqlite] [--pg-keep NAME] [--kb-load] [--refresh]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import bench_ingest  # noqa: E402  (scripts/bench_ingest.py: corpus_records, FIRST_PMID)

from kb import db as kbdb  # noqa: E402
from kb import search as kbsearch  # noqa: E402
from kb import store  # noqa: E402
from kb.handle import guard_readonly  # noqa: E402
from kb.pubmed.parse import iter_pubmed_xml  # noqa: E402
from kb.pubmed.records import PubmedRecord  # noqa: E402

BATCH = 1_000
TARGET_P95_MS = 50.0  # at 100,000 studies (SQLite and PostgreSQL)
TARGET_P95_1M_MS = 100.0  # SQLite at 1,000,000 studies
REFERENCE_LOAD = int(os.environ.get("KB_BENCH_REFERENCE_LOAD", "30000"))

# 50 searches: (query, filters). Common and rare words, phrases, OR, exclusion, filters.
SEARCHES: list[tuple[str, dict]] = [
    ("patients", {}),
    ("cells", {}),
    ("study", {}),
    ("risk", {}),
    ("treatment", {}),
    ("protein expression", {}),
    ("cancer", {}),
    ("infection", {}),
    ("children", {}),
    ("mice", {}),
    ("methylcobalamin", {}),
    ("ergothioneine", {}),
    ("osteocalcin", {}),
    ("heparin", {}),
    ("minocycline", {}),
    ("frailty depression", {}),
    ("platelet snord55", {}),
    ("manaus seroprevalence", {}),
    ("radiobiology", {}),
    ("sclerosis", {}),
    ('"vitamin d"', {}),
    ('"lung cancer"', {}),
    ('"multiple sclerosis"', {}),
    ('"randomized controlled trial"', {}),
    ('"public health"', {}),
    ('"blood transfusion"', {}),
    ('"mendelian randomization"', {}),
    ('"proton pump inhibitors"', {}),
    ("cancer OR tumor", {}),
    ("depression OR anxiety", {}),
    ("vitamin OR mineral", {}),
    ("covid OR sars", {}),
    ("cancer -breast", {}),
    ("vitamin -sclerosis", {}),
    ("infection -covid", {}),
    ('"lung cancer" -smoking', {}),
    ("vitamin b12", {}),
    ("gene expression regulation", {}),
    ("patients", {"years": (2015, 2024)}),
    ("cancer", {"years": (2020, None)}),
    ("risk", {"types": ["meta-analysis"]}),
    ("trial", {"types": ["rct"]}),
    ("treatment", {"types": ["review"], "years": (2010, None)}),
    ("cells", {"mesh": "Humans"}),
    ("vitamin", {"mesh": "Cholecalciferol"}),
    ("covid", {"mesh": "COVID-19", "years": (2020, 2022)}),
    ("infection", {"years": (None, 2000)}),
    ('"vitamin d" OR calcium', {"years": (2015, None)}),
    ("sclerosis", {"types": ["rct", "trial"]}),
    ("children -covid", {"mesh": "Humans", "years": (2000, None)}),
]
assert len(SEARCHES) == 50


def templates() -> list[store.Prepared]:
    """Every corpus PubmedArticle parsed once and prepared as kb.store would store it."""
    out = []
    for raw in bench_ingest.corpus_records():
        data = b"<PubmedArticleSet>" + raw + b"</PubmedArticleSet>"
        for item in iter_pubmed_xml(io.BytesIO(data), name="corpus record"):
            if isinstance(item, PubmedRecord):
                out.append(store.prepare(item, "file"))
    return out


def clone(rec: store.Prepared, pmid: int) -> store.Prepared:
    children = {name: [(pmid, *row[1:]) for row in rows] for name, rows in rec.children.items()}
    return rec._replace(pmid=pmid, study={**rec.study, "pmid": pmid}, children=children)


def batches(recs: list[store.Prepared], count: int) -> Iterator[list[store.Prepared]]:
    for start in range(0, count, BATCH):
        yield [clone(recs[i % len(recs)], bench_ingest.FIRST_PMID + i) for i in range(start, min(count, start + BATCH))]


def load(url: URL, recs: list[store.Prepared], count: int, label: str) -> float:
    kbdb.upgrade(url, "head")
    engine = kbdb.create_kb_engine(url)
    factory = kbdb.make_sessionmaker(engine, write=True)
    start = time.perf_counter()
    done = 0
    rates = []
    segment = start
    for batch in batches(recs, count):
        with factory.begin() as session:
            store.store_prepared(session, batch)
        done += len(batch)
        if done % 20_000 == 0 or done == count:
            now = time.perf_counter()
            rates.append((20_000 if done % 20_000 == 0 else done % 20_000) / (now - segment))
            segment = now
            print(f"  {label}: {done} studies stored ({now - start:.0f} s; {rates[-1]:.0f} studies/s over the "
                  "last 20,000)", flush=True)
    elapsed = time.perf_counter() - start
    if len(rates) > 2:
        first, last = rates[0], rates[-1] if done % 20_000 == 0 else rates[-2]
        print(f"  {label}: store rate {first:.0f} studies/s over the first 20,000, {last:.0f} over the last: "
              f"{'within' if last >= 0.8 * first else 'NOT within'} 20 %", flush=True)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("PRAGMA optimize")
    engine.dispose()
    return elapsed


def kb_load_file(workdir: Path, count: int, label: str) -> tuple[URL, float]:
    """`kb load` of a baseline-like file of ``count`` cloned records into a fresh SQLite database
    (a separate process, as a user runs it); returns the database and the load's seconds."""
    records = bench_ingest.corpus_records(bench_ingest.MAX_RECORD_BYTES)
    path = workdir / f"baseline-{count}.xml"
    if not path.exists():
        build_start = time.perf_counter()
        bench_ingest.build_file(path, records, count)
        print(f"  {label}: built {path.name} ({path.stat().st_size / 2**30:.1f} GiB) from {len(records)} distinct "
              f"records in {time.perf_counter() - build_start:.0f} s", flush=True)
    db = workdir / f"load-{count}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = URL.create("sqlite", database=str(db))
    kbdb.upgrade(url, "head")
    elapsed, rss, _ = bench_ingest.kb_load(path, db)
    print(f"  {label}: kb load of {count} records: {elapsed:.0f} s ({count / elapsed:.0f} records/s), "
          f"peak RSS {rss:.0f} MB", flush=True)
    return url, elapsed


def clone_fill(seed: Path, db: Path, seed_count: int, target: int) -> None:
    """Copy the kb-loaded database ``seed`` (studies FIRST_PMID .. + seed_count - 1) to ``db`` and
    clone its PubMed rows in SQL, PMIDs shifted by seed_count each time, until it holds ``target``
    studies; then rebuild the search index (kb.search.reindex_all, as `kb search --reindex`)."""
    import shutil
    import sqlite3

    from kb import models as m

    con = sqlite3.connect(seed)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(seed, db)
    first = bench_ingest.FIRST_PMID
    start = time.perf_counter()
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = OFF")
    tables = [m.Study.__tablename__] + [t.__tablename__ for t in m.CHILD_TABLES]
    columns = {t: [row[1] for row in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    done = seed_count
    while done < target:
        take = min(seed_count, target - done)
        con.execute("BEGIN")
        for table in tables:
            cols = ", ".join(columns[table])
            picked = ", ".join(f"pmid + {done}" if c == "pmid" else c for c in columns[table])
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {picked} FROM {table} WHERE pmid < ?",
                        (first + take,))
        con.execute("COMMIT")
        done += take
        print(f"  clone fill: {done} studies ({time.perf_counter() - start:.0f} s)", flush=True)
    con.close()
    url = URL.create("sqlite", database=str(db))
    engine = kbdb.create_kb_engine(url)
    with engine.begin() as conn:
        kbsearch.reindex_all(conn)
    engine.dispose()
    print(f"  clone fill: search index rebuilt over {done} studies ({time.perf_counter() - start:.0f} s)", flush=True)


def kb_load_more(db: Path, count: int, first: int, workdir: Path) -> float:
    """`kb load` of ``count`` fresh records (PMIDs from ``first``) into the existing ``db``; its seconds."""
    records = bench_ingest.corpus_records(bench_ingest.MAX_RECORD_BYTES)
    path = workdir / f"more-{count}-from-{first}.xml"
    if not path.exists():
        bench_ingest.build_file(path, records, count, first=first)
    elapsed, rss, _ = bench_ingest.kb_load(path, db)
    print(f"  SQLite: kb load of {count} more records into {first - bench_ingest.FIRST_PMID} studies: {elapsed:.0f} s "
          f"({count / elapsed:.0f} records/s), peak RSS {rss:.0f} MB", flush=True)
    return elapsed


REFRESH_CHANGED = 50
REFRESH_REFERENCE = 10_000


def refresh_round(db: Path, tracked: int, workdir: Path) -> dict:
    """`kb refresh` of ``db`` (studies FIRST_PMID .. FIRST_PMID + tracked - 1, as the loads here
    store them) against the stand-in serving all of them: copies of one record last modified in
    2001, except REFRESH_CHANGED spread over the range, served as corpus records whose title changed,
    modified today. Returns the requests the stand-in counted and kb's summary line."""
    import datetime as dt

    from lxml import etree

    from kb.testing.eutils import EutilsServer

    records = bench_ingest.corpus_records(bench_ingest.MAX_RECORD_BYTES)

    def served(i: int, pmid: int, suffix: str) -> bytes:
        elem = etree.fromstring(records[i % len(records)])
        elem.find("MedlineCitation/PMID").text = str(pmid)
        title = elem.find("MedlineCitation/Article/ArticleTitle")
        title.text = (title.text or "") + suffix
        return etree.tostring(elem)

    first = bench_ingest.FIRST_PMID
    changed = sorted({first + i * tracked // REFRESH_CHANGED for i in range(REFRESH_CHANGED)})
    with EutilsServer(rate=None) as server:
        template = server.add_record_xml(served(0, first + tracked, ""), mdat=dt.date(2001, 1, 1))
        server.add_copies(range(first, first + tracked), like=template)
        for pmid in changed:
            server.add_record_xml(served(pmid - first, pmid, " (revised)"), mdat=dt.date.today())
        server.reset_stats()
        env = {**os.environ, "KB_DATABASE_URL": f"sqlite:///{db}", "KB_EUTILS_URL": server.base_url,
               "KB_RATE_DIR": str(workdir), "NCBI_EMAIL": "bench@example.org"}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "kb", "refresh"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"kb refresh failed:\n{proc.stderr}")
        stats = server.stats()
    counts = {k: stats[k] for k in ("epost", "esearch", "efetch")}
    summary = next((line for line in proc.stderr.splitlines() if "changed" in line), proc.stderr.strip()[-200:])
    print(f"  refresh at {tracked} tracked: {stats['requests']} requests {counts}, {wall:.0f} s; kb: {summary.strip()}",
          flush=True)
    return {"tracked": tracked, "requests": stats["requests"], "counts": counts, "summary": summary}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def backend_cpu(pids: list[int]) -> Callable[[], float]:
    """A clock of the CPU time (ms) spent by the PostgreSQL backends ``pids`` (Linux
    /proc/PID/schedstat, readable when this runs on the database's host as root or its user) and
    by this process: on a shared machine it is closer to the time on an idle core than the wall
    time is, though other jobs still inflate it (caches, sibling hyperthreads)."""
    def clock() -> float:
        total = time.process_time() * 1000
        for pid in pids:
            try:
                total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6
            except (OSError, ValueError, IndexError):
                return float("nan")
        return total
    return clock


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * len(ordered) + 0.5)) - 1)]


def run_searches(url: URL, rounds: int) -> dict:
    engine = guard_readonly(kbdb.create_kb_engine(url, readonly=True))
    try:
        hits_per_query = [len(kbsearch.search(engine, q, limit=20, **f)) for q, f in SEARCHES]  # warm-up
        matches = []
        with engine.connect() as conn:
            for q, _ in SEARCHES[:5]:
                parsed = kbsearch.parse_query(q)
                if engine.dialect.name == "postgresql":
                    tsquery, params = parsed.tsquery_sql()
                    sql = f"SELECT count(*) FROM study_search WHERE search_vector @@ ({tsquery})"
                    matches.append(conn.execute(text(sql), params).scalar_one())
                else:
                    sql = "SELECT count(*) FROM study_search WHERE study_search MATCH :q"
                    matches.append(conn.execute(text(sql), {"q": parsed.fts5()}).scalar_one())
        counts = match_counts(engine) if engine.dialect.name == "sqlite" else None
        per_query: dict[int, list[float]] = {i: [] for i in range(len(SEARCHES))}
        cpu: list[float] = []
        clock = None
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND backend_type = 'client backend'")).scalars().all()
            clock = backend_cpu(list(pids))
        for _ in range(rounds):
            for i, (q, f) in enumerate(SEARCHES):
                before = clock() if clock else 0.0
                per_query[i].append(timed(lambda q=q, f=f: kbsearch.search(engine, q, limit=20, **f)))
                if clock:
                    cpu.append(clock() - before)
        with engine.connect() as conn:
            one = [timed(lambda: conn.execute(text("SELECT 1")).scalar_one()) for _ in range(200)]
            pk = [timed(lambda i=i: conn.execute(text("SELECT title FROM studies WHERE pmid = :p"),
                                                 {"p": bench_ingest.FIRST_PMID + i * 7}).scalar_one())
                  for i in range(200)]
    finally:
        engine.dispose()
    all_ms = [ms for values in per_query.values() for ms in values]
    slowest = sorted(((statistics.median(v), SEARCHES[i]) for i, v in per_query.items()), reverse=True)[:5]
    return {"median": statistics.median(all_ms), "p95": p95(all_ms), "max": max(all_ms), "slowest": slowest,
            "select1": statistics.median(one), "pk": statistics.median(pk), "hits": hits_per_query,
            "common_matches": matches, "per_query": per_query, "counts": counts, "cpu": cpu}


def match_counts(engine) -> list[int]:  # type: ignore[no-untyped-def]
    """How many studies each search matches (SQLite; the same on PostgreSQL), counted outside
    the timed runs with the FTS5 expression kb.search builds (its private helpers)."""
    out = []
    with engine.connect() as conn:
        for q, f in SEARCHES:
            filters = kbsearch._resolve(conn, types=f.get("types", ()), years=f.get("years"), mesh=f.get("mesh"),
                                        topic=None)
            _, params = kbsearch._sqlite_search(kbsearch.parse_query(q), filters)
            out.append(conn.execute(text("SELECT count(*) FROM study_search WHERE study_search MATCH :q"),
                                    {"q": params["q"]}).scalar_one())
    return out


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} ms, p95 {p95(values):.1f} ms" if values else "none"


def breakdown(results: list[tuple[str, dict]], counts: list[int], cut: int) -> None:
    """Latency by how many studies a search matches: bm25 and ts_rank_cd rank every match."""
    print(f"\nby matches (each search's median of its timed runs; {sum(c < cut for c in counts)} searches match "
          f"< {cut:,} studies, {sum(c >= cut for c in counts)} match more):")
    for label, r in results:
        small = [ms for i, v in r["per_query"].items() if counts[i] < cut for ms in v]
        large = [ms for i, v in r["per_query"].items() if counts[i] >= cut for ms in v]
        per_k = [statistics.median(v) / (counts[i] / 1000) for i, v in r["per_query"].items() if counts[i] >= cut]
        rate = f" (about {statistics.median(per_k):.1f} ms per 1,000 matches)" if per_k else ""
        print(f"  {label}: < {cut:,} matches: {_summary(small)}; >= {cut:,}: {_summary(large)}{rate}")
    print(f"  {'matches':>8} {'SQLite ms':>10} {'PG ms':>8}  search")
    for i in sorted(range(len(SEARCHES)), key=lambda i: -counts[i]):
        q, f = SEARCHES[i]
        cells = [f"{statistics.median(r['per_query'][i]):.1f}" for _, r in results]
        cells += [""] * (2 - len(cells))
        print(f"  {counts[i]:>8} {cells[0]:>10} {cells[1]:>8}  {q!r} {f or ''}")


def sqlite_size(path: Path, studies: int) -> str:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        pages = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    except sqlite3.Error:
        return f"{path.stat().st_size / 2**20:.0f} MB"
    finally:
        con.close()
    index = sum(v for k, v in pages.items() if kbsearch.is_index_table(k))
    return (f"{path.stat().st_size / 2**20:.0f} MB ({path.stat().st_size / 1024 / studies:.1f} KB a study), "
            f"of which search index {index / 2**20:.0f} MB")


def report(label: str, r: dict, load_s: float, count: int, size: str, how: str | None = None) -> None:
    if how is None and load_s != load_s:  # NaN: a kept database (--pg-keep), not loaded in this run
        how = "loaded by an earlier run (--pg-keep)"
    how = how or (f"loaded in {load_s:.0f} s ({count / load_s:.0f} studies/s, index written in the same "
                  "transactions)")
    print(f"\n{label}: {count} studies {how}; {size}")
    print(f"  matches of the first searches ({', '.join(q for q, _ in SEARCHES[:5])}): {r['common_matches']}")
    print(f"  searches (50 x {r['rounds']} timed): median {r['median']:.1f} ms, p95 {r['p95']:.1f} ms, "
          f"max {r['max']:.1f} ms")
    print(f"  reference (same run): SELECT 1 round trip {r['select1']:.3f} ms; study by PMID {r['pk']:.3f} ms")
    if r.get("cpu") and all(c == c for c in r["cpu"]):
        print(f"  CPU per search (its PostgreSQL backend and this process; about the time on an idle core): "
              f"median {statistics.median(r['cpu']):.1f} ms, p95 {p95(r['cpu']):.1f} ms")
    print("  slowest (median ms):")
    for ms, (q, f) in r["slowest"]:
        print(f"    {ms:7.1f}  {q!r} {f or ''}")


@contextlib.contextmanager
def pg_database(admin_url: str, keep: str | None, studies: int):  # type: ignore[no-untyped-def]
    """(URL, reused): a scratch database dropped afterwards, or with ``keep`` the database of that
    name, reused when it holds ``studies`` studies and created (left in place) otherwise."""
    if keep is None:
        with bench_ingest.scratch_pg_database(admin_url, "kb_bench_search") as url:
            yield url, False
        return
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    url = admin.set(database=keep)
    admin_engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": keep}).first()
    count = None
    if exists:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                count = conn.execute(text("SELECT count(*) FROM studies")).scalar_one()
        except Exception:  # noqa: BLE001 - no kb schema yet: load it again
            count = None
        engine.dispose()
    if count != studies:
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{keep}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{keep}"'))
    admin_engine.dispose()
    yield url, count == studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--pg-url", default=os.environ.get("KB_TEST_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="An admin URL of the PostgreSQL server (the bench database is created beside it).")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only.")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only.")
    parser.add_argument("--pg-keep", metavar="NAME",
                        help="Keep the PostgreSQL database NAME after the run and reuse it when it already holds "
                             "--studies studies (upgraded to the head revision first): no load, searches only.")
    parser.add_argument("--kb-load", action="store_true",
                        help="Fill SQLite with `kb load` of a file (and compare with a 30,000-record load).")
    parser.add_argument("--clone-fill", action="store_true",
                        help="With --kb-load: clone the 30,000-record load in SQL up to N - 30,000 studies, then "
                             "`kb load` the last 30,000 (see above).")
    parser.add_argument("--refresh", action="store_true",
                        help="Also time `kb refresh` with 50 changed studies at N and at 10,000 tracked (SQLite).")
    args = parser.parse_args()
    if not bench_ingest.CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {bench_ingest.CORPUS} (../shared beside the checkout)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kb-bench-search-"))
    workdir.mkdir(parents=True, exist_ok=True)
    recs = templates()
    print(f"corpus: {len(recs)} records; {args.studies} studies; workdir {workdir}", flush=True)

    results = []
    rates = None
    refreshes = None
    how = None
    if not args.no_sqlite:
        db = workdir / "search.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        lite_url = URL.create("sqlite", database=str(db))
        if args.kb_load:
            ref_url, ref_s = kb_load_file(workdir, REFERENCE_LOAD, "reference")
            if args.clone_fill:
                filled = args.studies - REFERENCE_LOAD
                clone_fill(Path(ref_url.database), db, REFERENCE_LOAD, filled)
                more_s = kb_load_more(db, REFERENCE_LOAD, bench_ingest.FIRST_PMID + filled, workdir)
                load_s = more_s
                how = (f"({filled} cloned in SQL from a {REFERENCE_LOAD}-record kb load, then a kb load of "
                       f"{REFERENCE_LOAD} more at {REFERENCE_LOAD / more_s:.0f} records/s)")
                rates = (REFERENCE_LOAD / ref_s, REFERENCE_LOAD / more_s)
            else:
                lite_url, load_s = kb_load_file(workdir, args.studies, "SQLite")
                db = Path(lite_url.database)
                rates = (REFERENCE_LOAD / ref_s, args.studies / load_s)
        else:
            load_s = load(lite_url, recs, args.studies, "SQLite")
        r = run_searches(lite_url, args.rounds)
        r["rounds"] = args.rounds
        results.append(("SQLite (FTS5)", r, load_s, sqlite_size(db, args.studies)))
        if args.refresh:
            small_db = Path(kb_load_file(workdir, REFRESH_REFERENCE, "refresh reference")[0].database)
            refreshes = (refresh_round(small_db, REFRESH_REFERENCE, workdir), refresh_round(db, args.studies, workdir))

    if not args.no_pg:
        with pg_database(args.pg_url, args.pg_keep, args.studies) as (pg_url, kept):
            if kept:
                kbdb.upgrade(pg_url, "head")
                load_s = float("nan")
                print(f"  PostgreSQL: reusing {args.pg_keep} ({args.studies} studies, upgraded to head)", flush=True)
            else:
                load_s = load(pg_url, recs, args.studies, "PostgreSQL")
            r = run_searches(pg_url, args.rounds)
            r["rounds"] = args.rounds
            engine = create_engine(pg_url)
            with engine.connect() as conn:
                size = conn.execute(text(
                    "SELECT pg_size_pretty(pg_database_size(current_database())), "
                    "pg_size_pretty(pg_total_relation_size('study_search'))")).one()
            engine.dispose()
            results.append(("PostgreSQL (tsvector + GIN)", r, load_s, f"{size[0]}, of which search index {size[1]}"))
            pg_p95 = r["p95"]

    for label, r, load_s, size in results:
        report(label, r, load_s, args.studies, size, how if label.startswith("SQLite") else None)
    distinct = len(bench_ingest.corpus_records(bench_ingest.MAX_RECORD_BYTES)) if args.kb_load else len(recs)
    print(f"\n{distinct} distinct records, cloned with fresh PMIDs")
    if not args.no_sqlite:
        lite = results[0][1]
        breakdown([(label, r) for label, r, _, _ in results], lite["counts"], cut=max(1, args.studies // 10))
        target = TARGET_P95_1M_MS if args.studies >= 1_000_000 else TARGET_P95_MS
        print(f"\n{bench_ingest.verdict(f'SQLite p95 <= {target:.0f} ms', lite['p95'], target, 'ms')} at {args.studies} studies")
    if not args.no_pg:
        print(bench_ingest.verdict(f"PostgreSQL p95 <= {TARGET_P95_MS:.0f} ms", pg_p95, TARGET_P95_MS, "ms")
              + f" at {args.studies} studies")
    if refreshes:
        small, big = refreshes
        more = big["requests"] - small["requests"]
        print(f"kb refresh, {REFRESH_CHANGED} changed studies: {small['requests']} requests at {small['tracked']} tracked, "
              f"{big['requests']} at {big['tracked']}; "
              + bench_ingest.verdict(f"at most 5 requests more at {big['tracked']}", more, 5, "requests"))
    if rates:
        ref, big = rates
        print(f"kb load rate: {ref:.0f} records/s at {REFERENCE_LOAD}, {big:.0f} records/s at {args.studies}; "
              + bench_ingest.verdict(f"rate at {args.studies} >= 80 % of the rate at {REFERENCE_LOAD}", big, 0.8 * ref,
                        "records/s", higher_is_better=True))


if __name__ == "__main__":
    main()
