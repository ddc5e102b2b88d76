#!/usr/bin/env python3
"""Train the preset dictionary kb compresses stored PubMed XML with (kb/pubmed/xml-v1.zdict).

Not needed to run kb: the dictionary is checked in, and a stored record names the dictionary it
was compressed with (its first byte), so a dictionary once shipped must never change. A better one
would be shipped as a new version beside it (xml-v2.zdict, first byte 2).

Method: zstandard's dictionary trainer (COVER) picks the byte strings that recur most across the
records; deflate can only reach back 32 KiB, so the last 32 KiB of the trained content is kept.
Needs ``pip install zstandard`` (a tool of this script only, not a dependency of kb).

Usage: scripts/train_xml_dict.py [OUT]   (trains on the PubmedArticle records of ../shared/corpus)
"""

from __future__ import annotations

import sys
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import MAX_RECORD_BYTES, corpus_records  # noqa: E402

ZDICT_BYTES = 32 * 1024


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "kb/pubmed/xml-v1.zdict"
    records = corpus_records(MAX_RECORD_BYTES)
    trained = zstandard.train_dictionary(ZDICT_BYTES * 2, records, level=19, k=256, d=8, threads=1)
    out.write_bytes(trained.as_bytes()[-ZDICT_BYTES:])
    print(f"{out}: {out.stat().st_size} bytes from {len(records)} records")


if __name__ == "__main__":
    main()
