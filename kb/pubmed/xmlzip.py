"""Stored PubMed XML, compressed one record at a time (``studies.raw_xml``,
``study_revisions.previous_xml`` on SQLite).

A record is about 10 KB of XML; most of it is markup and phrases every record shares. Each one is
stored as one format byte and a zlib (deflate) stream made with a preset dictionary of such
strings (``xml-v1.zdict``, trained on PubMed records by ``scripts/train_xml_dict.py``): about
2 KB a record, where zlib alone makes about 2.8 KB. Decompressing gives back exactly the UTF-8
bytes of the record as parsed.

Format byte 1 means "zlib with xml-v1.zdict". A shipped dictionary never changes: a better one
would come as version 2 beside it, and every blob keeps naming its own.

To read the XML from SQL, select ``xml`` from the view ``study_xml``. On SQLite that view calls
``kb_xml(blob)``, a function kb registers on its own connections (:func:`register_sqlite_functions`
does it for any ``sqlite3`` connection); PostgreSQL keeps the text and compresses it itself
(TOAST), so there the column is plain text.
"""

from __future__ import annotations

import functools
import sqlite3
import zlib
from importlib import resources

FORMAT_V1 = 1
_LEVEL = 4  # level 6 saves 6 % more and costs half as much time again (on a load, per record)


@functools.cache
def _zdict(version: int) -> bytes:
    return resources.files("kb.pubmed").joinpath(f"xml-v{version}.zdict").read_bytes()


def pack(xml: str) -> bytes:
    """The stored form of a record's XML."""
    co = zlib.compressobj(_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY, _zdict(FORMAT_V1))
    return bytes((FORMAT_V1,)) + co.compress(xml.encode("utf-8")) + co.flush()


def unpack(blob: bytes | str) -> str:
    """The record's XML from its stored form (text stored before compression is returned as is)."""
    if isinstance(blob, str):
        return blob
    blob = bytes(blob)
    if not blob or blob[0] != FORMAT_V1:
        raise ValueError(f"not a stored PubMed record (format byte {blob[:1]!r})")
    do = zlib.decompressobj(zlib.MAX_WBITS, _zdict(FORMAT_V1))
    data = do.decompress(blob[1:]) + do.flush()
    if not do.eof:
        raise ValueError("a stored PubMed record is truncated")
    return data.decode("utf-8")


def _sql_unpack(blob: bytes | str | None) -> str | None:
    return None if blob is None else unpack(blob)


def register_sqlite_functions(con: sqlite3.Connection) -> None:
    """Make ``kb_xml(blob)`` (stored record → XML text) available on a sqlite3 connection:
    ``import sqlite3, kb.pubmed.xmlzip as x; con = sqlite3.connect(path);
    x.register_sqlite_functions(con)``."""
    con.create_function("kb_xml", 1, _sql_unpack, deterministic=True)
