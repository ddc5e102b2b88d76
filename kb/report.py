"""What changed, for curators: retractions first, then other notices, deletions, content changes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
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


def found_changes(counts: dict | None) -> bool:
    """Whether a refresh run's counts show anything a curator would want to see."""
    counts = counts or {}
    topics = counts.get("topics", {}).values()
    tracked = counts.get("tracked", {})
    return bool(
        sum(t.get("new", 0) + t.get("linked", 0) + t.get("changed", 0) + t.get("retracted", 0) for t in topics)
        + sum(tracked.get(k, 0) for k in ("changed", "retracted", "status_changes", "missing", "found_again"))
    )


def default_since(session: Session) -> tuple[dt.datetime, str]:
    """Where ``kb report changes`` starts by default, and why (said on stderr):

    1. when a person last marked the changes read (``--mark-read``), if anyone ever did;
    2. else the start of the latest successful (or partial) refresh run that found changes, so a
       later run that found nothing does not hide the night's retraction;
    3. else seven days ago.
    """
    read = session.scalar(select(func.max(m.RefreshRun.read_at)))
    if read is not None:
        return read, "since the changes were last marked read (kb report changes --mark-read)"
    runs = session.execute(
        select(m.RefreshRun.started_at, m.RefreshRun.counts)
        .where(m.RefreshRun.status.in_(("success", "partial")))
        .order_by(m.RefreshRun.id.desc())
    )
    for started, counts in runs:
        if found_changes(counts):
            return started, "since the start of the latest refresh run that found changes"
    return m.utcnow() - dt.timedelta(days=7), "for the last seven days (no refresh run found changes)"


def mark_read(session: Session, who: str, *, now: dt.datetime | None = None) -> int | None:
    """Record that ``who`` read the changes up to now, on the latest refresh run; its id, or None
    when there is no run yet (then the next report starts from the same place as this one)."""
    run = session.scalar(select(m.RefreshRun).order_by(m.RefreshRun.id.desc()).limit(1))
    if run is None:
        return None
    run.read_at, run.read_by = now or m.utcnow(), who
    return run.id


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
