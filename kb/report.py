"""What changed, for curators: retractions first, then other notices, deletions, content changes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kb import models as m

COLUMNS = ("when", "kind", "pmid", "title", "detail", "card_status", "card_needs_review")
# Order of importance for a curator (lower first).
RANK = {
    "retracted": 0,
    "expression_of_concern": 1,
    "deleted": 2,
    "missing": 3,
    "erratum": 4,
    "updated": 5,
    "changed": 6,
    "status_cleared": 7,
    "found_again": 8,
    "new": 9,
}


def default_since(session: Session) -> dt.datetime:
    """The start of the latest refresh run, else seven days ago."""
    last = session.scalar(select(m.RefreshRun.started_at).order_by(m.RefreshRun.id.desc()).limit(1))
    return last or (m.utcnow() - dt.timedelta(days=7))


def changes(session: Session, since: dt.datetime, *, include_new: bool = True) -> list[tuple]:
    """Rows of COLUMNS: study events, content revisions and (optionally) new studies since ``since``."""
    card = select(m.Card.pmid, m.Card.status, m.Card.needs_review).subquery()
    rows: list[tuple] = []
    events = session.execute(
        select(m.StudyEvent.at, m.StudyEvent.kind, m.StudyEvent.pmid, m.Study.title, m.StudyEvent.detail,
               card.c.status, card.c.needs_review)
        .join(m.Study, m.Study.pmid == m.StudyEvent.pmid)
        .outerjoin(card, card.c.pmid == m.StudyEvent.pmid)
        .where(m.StudyEvent.at >= since)
    ).all()
    rows += [tuple(r) for r in events]
    revisions = session.execute(
        select(m.StudyRevision.changed_at, m.StudyRevision.pmid, m.Study.title, m.StudyRevision.changed_fields,
               card.c.status, card.c.needs_review)
        .join(m.Study, m.Study.pmid == m.StudyRevision.pmid)
        .outerjoin(card, card.c.pmid == m.StudyRevision.pmid)
        .where(m.StudyRevision.changed_at >= since)
    ).all()
    rows += [(at, "changed", pmid, title, "fields: " + ", ".join(fields or []), status, review)
             for at, pmid, title, fields, status, review in revisions]
    if include_new:
        new = session.execute(
            select(m.Study.first_fetched_at, m.Study.pmid, m.Study.title, card.c.status, card.c.needs_review)
            .outerjoin(card, card.c.pmid == m.Study.pmid)
            .where(m.Study.first_fetched_at >= since)
        ).all()
        rows += [(at, "new", pmid, title, None, status, review) for at, pmid, title, status, review in new]
    rows.sort(key=lambda r: (RANK.get(r[1], 99), -r[0].timestamp(), r[2]))
    return rows
