"""Stored PubMed XML, compressed one record at a time (``studies.raw_xml``,
``study_revisions.previous_xml``; on SQLite since migration 0011, on PostgreSQL, as ``bytea``,
since 0012).

A record is about 10 KB of XML; most of it is markup and phrases every record shares. Each one is
stored as one format byte and a zstd frame compressed with a dictionary of such strings
(``xml-v1.zstd-dict``, trained on PubMed records by ``scripts/train_xml_dict.py``): about 1.9 KB
a record, where zlib makes about 2.8 KB. Decompressing gives back exactly the UTF-8 bytes of the
record as parsed.

Format byte 1 means "zstd with xml-v1.zstd-dict". A shipped dictionary never changes: a better one
would come as version 2 beside it, and every blob keeps naming its own.

To read the XML from SQL on SQLite, select ``xml`` from the view ``study_xml``: it calls
``kb_xml(blob)``, a function kb registers on its own connections (:func:`register_sqlite_functions`
does it for any ``sqlite3`` connection). PostgreSQL cannot decompress zstd in SQL, so it has no
such view: read the column through kb (:class:`kb.models.StoredXML`) or :func:`unpack` its bytes.
"""

from __future__ import annotations

import functools
import sqlite3
from importlib import resources

import zstandard

FORMAT_V1 = 1
# Level 3: 1.95 KB a record at about 0.04 ms of CPU; level 6 makes 1.75 KB at 0.11 ms, level 9 1.64 KB
# at 0.17 ms (the corpus's records, dictionary digested once; issue 16). A pipelined `kb load`
# compresses in its parser process, the slower of its two: each 0.01 ms there is about 2 % of the load.
_LEVEL = 3


@functools.cache
def _dictionary_bytes(version: int) -> bytes:
    return resources.files("kb.pubmed").joinpath(f"xml-v{version}.zstd-dict").read_bytes()


@functools.cache
def _compressor() -> zstandard.ZstdCompressor:
    # The dictionary digested once for this level: the same bytes out, a fifth less CPU a record
    # than a compressor that loads the raw dictionary at every call.
    digested = zstandard.ZstdCompressionDict(_dictionary_bytes(FORMAT_V1))
    digested.precompute_compress(level=_LEVEL)
    return zstandard.ZstdCompressor(level=_LEVEL, dict_data=digested, write_checksum=False,
                                    write_dict_id=False, write_content_size=True)


@functools.cache
def _decompressor() -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(_dictionary_bytes(FORMAT_V1)))


def pack(xml: str) -> bytes:
    """The stored form of a record's XML."""
    return bytes((FORMAT_V1,)) + _compressor().compress(xml.encode("utf-8"))


def unpack(blob: bytes | str) -> str:
    """The record's XML from its stored form (text stored before compression is returned as is)."""
    if isinstance(blob, str):
        return blob
    view = memoryview(blob)
    if not view or view[0] != FORMAT_V1:
        raise ValueError(f"not a stored PubMed record (format byte {bytes(view[:1])!r})")
    return _decompressor().decompress(view[1:]).decode("utf-8")


def _sql_unpack(blob: bytes | str | None) -> str | None:
    return None if blob is None else unpack(blob)


def register_sqlite_functions(con: sqlite3.Connection) -> None:
    """Make ``kb_xml(blob)`` (stored record → XML text) available on a sqlite3 connection:
    ``import sqlite3, kb.pubmed.xmlzip as x; con = sqlite3.connect(path);
    x.register_sqlite_functions(con)``."""
    con.create_function("kb_xml", 1, _sql_unpack, deterministic=True)
