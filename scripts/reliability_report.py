#!/usr/bin/env python3
"""Run the reliability suite and print one table of what it found.

Columns: scenario, database, runs, failures, records lost or half-written, curated texts changed.
Every row should read 0 in the last four columns.

Usage: scripts/reliability_report.py [--full] [pytest args...]
  --full   the counts the issue asks for (>= 200 fault runs, >= 50 kills, minutes of concurrency);
           without it, the shorter CI counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    args = sys.argv[1:]
    full = "--full" in args
    args = [a for a in args if a != "--full"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.jsonl"
        env = {**os.environ, "KB_RELIABILITY_OUT": str(out), "KB_RELIABILITY_SCALE": "full" if full else "ci"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "reliability", "-q", "-p", "no:cacheprovider",
                               str(REPO / "tests" / "reliability"), *args], cwd=REPO, env=env)
        rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    merged: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        key = (row["name"], row["database"])
        for col in ("runs", "failures", "records_lost", "half_written", "curated_changed"):
            merged[key][col] += row[col]
    header = ("scenario", "database", "runs", "failures", "lost", "half-written", "curated changed")
    table = [header] + [
        (name, db, str(v["runs"]), str(v["failures"]), str(v["records_lost"]), str(v["half_written"]),
         str(v["curated_changed"]))
        for (name, db), v in sorted(merged.items())
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    print(f"reliability suite ({'full' if full else 'ci'} counts), pytest exit code {proc.returncode}")
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    # A row with no runs means the test stopped before recording anything: not clean.
    clean = all(int(r[2]) > 0 and int(r[3]) == int(r[4]) == int(r[5]) == int(r[6]) == 0 for r in table[1:])
    print(f"\nall rows clean: {'yes' if clean and table[1:] else 'NO'}")
    return 0 if proc.returncode == 0 and clean else 1


if __name__ == "__main__":
    sys.exit(main())
