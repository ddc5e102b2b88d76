"""kb: a literature-tracking knowledge base for evidence about health interventions.

``kb.open(url)`` gives the library handle (:class:`kb.handle.KnowledgeBase`) that the command
line uses. Importing kb imports nothing else: the handle's module is loaded on the first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from kb.handle import KnowledgeBase

__version__ = "0.1.0"


def open(url: str | URL | None = None) -> KnowledgeBase:  # noqa: A001 - kb.open, as a notebook calls it
    """The knowledge base at ``url`` (None: ``KB_DATABASE_URL``, else kb.sqlite3 in ``KB_HOME``)."""
    from kb.handle import KnowledgeBase

    return KnowledgeBase(url)
