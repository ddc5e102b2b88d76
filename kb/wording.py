"""How kb's messages count things: '1 PMID', '2 PMIDs', '0 studies'."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, the noun in the plural unless ``n`` is 1: ``counted(1, "PMID")`` is
    '1 PMID', ``counted(2, "study", "studies")`` is '2 studies' (the plural is ``noun + "s"`` unless given)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
