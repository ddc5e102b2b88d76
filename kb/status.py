"""What is in the knowledge base: counts an operator or a newcomer wants first."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kb import models as m


def summary(session: Session) -> list[tuple[str, int]]:
    """(what, count) pairs: studies by state, cards by status, topics, queued failures, files
    loaded by ``kb load`` and files that stopped before their end."""

    def count(stmt) -> int:  # type: ignore[no-untyped-def]
        return session.execute(stmt).scalar_one()

    studies = select(func.count()).select_from(m.Study)
    rows = [
        ("studies", count(studies)),
        ("studies retracted", count(studies.where(m.Study.is_retracted))),
        ("studies deleted by PubMed", count(studies.where(m.Study.is_deleted))),
        ("placeholder studies (known only from a card or a topic exclusion)", count(studies.where(m.Study.is_placeholder))),
    ]
    for status in m.CARD_STATUSES:
        rows.append((f"cards {status}", count(select(func.count()).select_from(m.Card).where(m.Card.status == status))))
    rows.append(("cards needing review", count(select(func.count()).select_from(m.Card).where(m.Card.needs_review))))
    rows.append(("topics", count(select(func.count()).select_from(m.Topic))))
    rows.append(("fetch failures queued", count(select(func.count()).select_from(m.FetchFailure))))
    files = select(func.count()).select_from(m.SourceFile)
    rows.append(("source files loaded", count(files.where(m.SourceFile.status == "complete"))))
    # failed, interrupted, or 'running' (still loading, or killed): load them again
    rows.append(("source files stopped before the end", count(files.where(m.SourceFile.status != "complete"))))
    return rows
