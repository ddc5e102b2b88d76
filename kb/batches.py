"""Work in pages: PMIDs for a SQL ``IN (…)`` list, an efetch request, a transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")

IN_LIST_SIZE = 500
"""PMIDs per ``IN (…)`` list: far below SQLite's bound-variable limit, and plans stay small."""


def chunked(items: Iterable[T], size: int = IN_LIST_SIZE) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), in order."""
    if size < 1:
        raise ValueError(f"a page holds at least one item, not {size}")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
