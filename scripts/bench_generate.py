#!/usr/bin/env python3
"""Generation benchmark: `kb curate generate` for N studies against the OpenAI-compatible stand-in.

Stores N studies (default 1,000, corpus records cloned with fresh PMIDs, as scripts/bench_search.py
does), starts the stand-in (``python -m kb.testing.openai``, in its own process) answering every
request after ``--delay`` seconds (default 0.2: at most 40 answers/s with 8 at a time), names it in
llm's ``extra-openai-models.yaml`` (a temporary LLM_USER_PATH), and measures in the same run:

  (a) the reference: the same N requests (kb's prompt for each study) POSTed by 8 plain threads
      with http.client, no llm and no kb: what the server allows;
  (b) kb: kb.cards.generate.generate for the N studies with ``--jobs`` 8 through llm's Python API,
      each card validated, checked and saved as `kb curate generate` does;
  (c) kb alone: the replies of (b) stored again into a copy of the database without cards, one
      thread, no call in flight: kb's own cost per card without the contention of (b).

Prints cards/s for both (wall clock for the N studies: from choosing them to the last card saved;
and with loading llm and the model too), kb's overhead per card: the CPU time of the whole process
during (b) except the time spent inside llm's calls (measured in the threads that make them), so
that whatever kb does around the calls counts (choosing the studies, prompts, threads, parsing,
validating, checking, saving); of it, the CPU time in kb's own code; the wall time spent there
(which includes waiting for the GIL while 8 calls run); the extra time per call that llm and the
OpenAI client add over the plain request, tokens per card as the stand-in counts them
(characters / 4), and the targets: >= 30 cards/s, <= 5 ms overhead per card.

Usage: scripts/bench_generate.py [--studies 1000] [--jobs 8] [--delay 0.2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

TARGET_CARDS_PER_S = 30.0
TARGET_OVERHEAD_MS = 5.0


def start_stand_in(delay: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "kb.testing.openai", "--port", "0", "--delay", str(delay)],
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    line = process.stderr.readline()
    found = re.search(r"(http://\S+/v1)", line)
    if not found:
        process.kill()
        raise SystemExit(f"the stand-in did not start: {line}")
    return process, found[1]


def reference(base_url: str, bodies: list[bytes], jobs: int) -> float:
    """Seconds for the plain requests, ``jobs`` at a time, one keep-alive connection per thread."""
    parts = urlsplit(base_url)
    todo: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        todo.put(body)

    def work() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        while True:
            try:
                body = todo.get_nowait()
            except queue.Empty:
                break
            conn.request("POST", parts.path + "/chat/completions", body,
                         {"Content-Type": "application/json", "Authorization": "Bearer DUMMY_KEY"})
            response = conn.getresponse()
            json.loads(response.read())
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kb-bench-generate-", dir=args.workdir))
    os.environ["LLM_USER_PATH"] = str(workdir / "llm")
    os.environ["LLM_LOAD_PLUGINS"] = ""  # before llm is imported
    os.environ.pop("OPENAI_API_KEY", None)

    import bench_search  # noqa: E402  (templates, load)
    from sqlalchemy import select
    from sqlalchemy.engine import URL

    from kb import db as kbdb
    from kb import models as m
    from kb.cards import generate as kbgenerate
    from kb.cards.batch_writer import store_batch
    from kb.cards.source import load_source, load_sources

    url = URL.create("sqlite", database=str(workdir / "kb.sqlite3"))
    print(f"storing {args.studies} studies in {url.database} …", flush=True)
    bench_search.load(url, bench_search.templates(), args.studies, "bench")
    server, base_url = start_stand_in(args.delay)
    try:
        (workdir / "llm").mkdir(exist_ok=True)
        (workdir / "llm" / "extra-openai-models.yaml").write_text(
            f"- model_id: standin\n  model_name: standin\n  api_base: {base_url}\n  supports_schema: true\n",
            encoding="utf-8")
        engine = kbdb.create_kb_engine(url)
        factory = kbdb.make_sessionmaker(engine, write=True)
        with factory.begin() as session:
            pmids = session.scalars(select(m.Study.pmid).order_by(m.Study.pmid)).all()
            bodies = [json.dumps({"model": "standin", "messages": [
                {"role": "system", "content": kbgenerate.prompt_text()},
                {"role": "user", "content": kbgenerate.study_message(load_source(session, p))}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "output",
                                                                           "schema": kbgenerate.card_schema()}},
            }).encode() for p in pmids]

        print(f"(a) reference: {len(bodies)} plain requests, {args.jobs} at a time …", flush=True)
        ref_s = reference(base_url, bodies, args.jobs)

        shutil.copyfile(workdir / "kb.sqlite3", workdir / "replay.sqlite3")  # the studies, no card yet
        print(f"(b) kb: {len(pmids)} studies through llm, --jobs {args.jobs} …", flush=True)
        loading = time.perf_counter()
        model = kbgenerate.get_model("standin", timeout=60)  # imports llm and its OpenAI plugin
        settings = kbgenerate.Settings(model_name="standin", timeout=60, jobs=args.jobs, author="bench")
        start, cpu = time.perf_counter(), time.process_time()
        report = kbgenerate.generate(factory.begin, pmids, settings, model)
        kb_s, kb_cpu = time.perf_counter() - start, time.process_time() - cpu
        loading_s = start - loading
        with factory.begin() as session:
            rows = session.scalars(select(m.CardGeneration)).all()
            call_ms = sum(r.duration_ms for r in rows) / len(rows)
            replies = {r.pmid: r.raw_reply for r in rows}
        engine.dispose()

        print("(c) kb alone: the same replies stored again into a copy without cards, no call in flight …",
              flush=True)
        replay_engine = kbdb.create_kb_engine(URL.create("sqlite", database=str(workdir / "replay.sqlite3")))
        replay = kbdb.make_sessionmaker(replay_engine, write=True)
        alone_start, alone_cpu = time.perf_counter(), time.thread_time()
        with replay.begin() as session:
            found = load_sources(session, pmids)
            curated = kbgenerate.curated_among(session, pmids)
            current = kbgenerate.current_among(session, [found[p] for p in pmids if p not in curated], "standin")
            sources = [found[p] for p in pmids if p not in curated | current]
        for i in range(0, len(sources), kbgenerate.SAVE_BATCH):
            with replay.begin() as session:
                store_batch(session, [(source, kbgenerate.CallResult(pmid=source.pmid, text=replies[source.pmid],
                                                                     model_answered="x"))
                                      for source in sources[i:i + kbgenerate.SAVE_BATCH]], settings)
        alone_ms = (time.thread_time() - alone_cpu) / len(sources) * 1000
        alone_wall_ms = (time.perf_counter() - alone_start) / len(sources) * 1000
        replay_engine.dispose()
    finally:
        server.terminate()
        server.wait()

    cards = len(report.stored)
    ref_rate, kb_rate = len(bodies) / ref_s, cards / kb_s
    overhead_ms = (kb_cpu - report.client_cpu) / max(cards, 1) * 1000
    own_ms = report.kb_cpu / max(cards, 1) * 1000
    overhead_wall_ms = report.kb_seconds / max(cards, 1) * 1000
    calls = cards + len(report.failed) + len(report.invalid)
    ref_call_ms = ref_s / len(bodies) * args.jobs * 1000
    print()
    print(f"stand-in: {args.delay * 1000:.0f} ms per answer, at most {args.jobs / args.delay:.0f} answers/s "
          f"with {args.jobs} at a time")
    print(f"(a) reference, plain HTTP:   {len(bodies)} requests in {ref_s:.1f} s = {ref_rate:.1f} requests/s "
          f"({ref_call_ms:.0f} ms per request)")
    print(f"(b) kb curate generate:      {cards} cards in {kb_s:.1f} s = {kb_rate:.1f} cards/s "
          f"({kb_rate / ref_rate:.0%} of the reference); failed {len(report.failed)}, invalid {len(report.invalid)}; "
          f"saved in {report.transactions} transactions")
    print(f"    with loading llm:        {cards / (kb_s + loading_s):.1f} cards/s ({loading_s:.1f} s to import llm "
          f"and its OpenAI plugin and find the model)")
    print(f"    kb's overhead per card:  {overhead_ms:.2f} ms of CPU (the process's {kb_cpu / max(cards, 1) * 1000:.2f} "
          f"ms per card less {report.client_cpu / max(calls, 1) * 1000:.2f} ms inside llm's call); of it "
          f"{own_ms:.2f} ms in kb's own code (choose, prompt, parse, validate, check, save), "
          f"{overhead_wall_ms:.2f} ms of wall time there (GIL waits included)")
    print(f"(c) kb alone, per card:      {alone_ms:.2f} ms of CPU, {alone_wall_ms:.2f} ms of wall time "
          f"(choose, parse, validate, check, save; nothing else running in the process)")
    print(f"    time per call:           {call_ms:.0f} ms (llm and the OpenAI client add "
          f"{call_ms - ref_call_ms:.0f} ms over the plain request)")
    print(f"    tokens per card:         {report.input_tokens / max(cards, 1):.0f} in, "
          f"{report.output_tokens / max(cards, 1):.0f} out (the stand-in's count: characters / 4)")
    print(f"target >= {TARGET_CARDS_PER_S:.0f} cards/s (80 % of the server's {args.jobs / args.delay:.0f}/s): "
          f"{'met' if kb_rate >= TARGET_CARDS_PER_S else 'MISSED'}; against the reference measured in this run "
          f"(80 % of {ref_rate:.1f}/s = {0.8 * ref_rate:.1f}/s): {'met' if kb_rate >= 0.8 * ref_rate else 'MISSED'}")
    print(f"target <= {TARGET_OVERHEAD_MS:.0f} ms overhead per card: "
          f"{'met' if overhead_ms <= TARGET_OVERHEAD_MS else 'MISSED'} during the run ({overhead_ms:.1f} ms), "
          f"{'met' if alone_ms <= TARGET_OVERHEAD_MS else 'MISSED'} alone ({alone_ms:.1f} ms)")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
