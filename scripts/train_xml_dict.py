#!/usr/bin/env python3
"""Train the zstd dictionary kb compresses stored PubMed XML with (kb/pubmed/xml-v1.zstd-dict).

Not needed to run kb: the dictionary is checked in, and every stored record names the dictionary
it was compressed with (its first byte), so a dictionary once shipped never changes. A better one
would be shipped beside it as a new version (xml-v2.zstd-dict, first byte 2).

Trained with zstd's COVER trainer on the PubmedArticle records of ../shared/corpus (the records of
at most 25 KB, as in a baseline file): the byte strings that recur across records (element names,
attribute values, journal and MeSH boilerplate) go into the dictionary.

Usage: scripts/train_xml_dict.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import MAX_RECORD_BYTES, corpus_records  # noqa: E402

DICT_BYTES = 110 * 1024


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "kb/pubmed/xml-v1.zstd-dict"
    records = corpus_records(MAX_RECORD_BYTES)
    trained = zstandard.train_dictionary(DICT_BYTES, records, level=19, k=256, d=8, threads=1)
    out.write_bytes(trained.as_bytes())
    print(f"{out}: {out.stat().st_size} bytes from {len(records)} records")


if __name__ == "__main__":
    main()
