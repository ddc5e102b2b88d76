"""Topics: saved PubMed searches that ``kb refresh`` re-runs, and the studies linked to them.

Every command that names a topic finds it through :func:`get_topic` (or :func:`topic_id`), so an
unknown name gives one message and one exit code everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.orm import Session

from kb import models as m
from kb.errors import EXIT_USAGE, InputError, NotFound


def add_topic(session: Session, name: str, query: str, since: dt.date | None = None) -> m.Topic:
    name, query = name.strip(), query.strip()
    if not name or not query:
        raise InputError("a topic needs a name and a PubMed query, e.g. kb topic add b12 'vitamin b12[tiab]'")
    limit = m.Topic.__table__.c.name.type.length  # PostgreSQL enforces it, SQLite does not: check here
    if len(name) > limit:
        raise InputError(f"a topic name is at most {limit} characters (this one has {len(name)}): use a short one")
    if session.scalar(select(m.Topic).where(m.Topic.name == name)) is not None:
        raise InputError(f"there is already a topic named {name!r} (kb topic show {name})")
    topic = m.Topic(name=name, query=query, since=since)
    session.add(topic)
    session.flush()
    return topic


class UnknownTopic(NotFound, InputError):
    """A topic name that no saved topic has: the same message and exit code (2, as for a bad
    option: the command names something that is not there) for every command that takes one.
    Not found, and bad input: callers that refuse bad input (``except InputError``) refuse it too."""

    exit_code = EXIT_USAGE

    def __init__(self, name: str) -> None:
        super().__init__(f"no topic named {name!r}: `kb topic list` shows the topics")
        self.name = name


def get_topic(session: Session, name: str) -> m.Topic:
    """The topic called ``name``, or :class:`UnknownTopic`."""
    topic = session.scalar(select(m.Topic).where(m.Topic.name == name))
    if topic is None:
        raise UnknownTopic(name)
    return topic


def topic_id(conn: Session | Connection, name: str) -> int:
    """The id of the topic called ``name`` (in a session or on a bare connection), or :class:`UnknownTopic`."""
    found = conn.execute(select(m.Topic.id).where(m.Topic.name == name)).scalar()
    if found is None:
        raise UnknownTopic(name)
    return int(found)


def list_topics(session: Session) -> list[tuple[m.Topic, int, int]]:
    """(topic, studies linked, studies excluded) for every topic, by name."""
    ts = m.TopicStudy
    linked = func.count(ts.pmid).filter(ts.is_excluded.is_(False))
    excluded = func.count(ts.pmid).filter(ts.is_excluded.is_(True))
    rows = session.execute(
        select(m.Topic, linked, excluded).outerjoin(ts, ts.topic_id == m.Topic.id).group_by(m.Topic.id).order_by(m.Topic.name)
    ).all()
    return [(t, n, x) for t, n, x in rows]


def remove_topic(session: Session, name: str) -> int:
    """Remove a topic and its links; the studies stay, but for placeholders nothing else needs (a
    PMID kb knew only because it was excluded from this topic: no record, no card, no other topic).
    Returns the number of links removed."""
    from kb import search  # search -> topics: imported here, when a topic is removed

    topic = get_topic(session, name)
    ts = m.TopicStudy
    links = session.scalar(select(func.count()).select_from(ts).where(ts.topic_id == topic.id))
    # (subqueries, not the topic's PMIDs as parameters: a topic can link more studies than SQLite binds)
    orphans = session.scalars(
        select(m.Study.pmid).where(
            m.Study.is_placeholder,
            m.Study.pmid.in_(select(ts.pmid).where(ts.topic_id == topic.id)),
            ~select(m.Card.pmid).where(m.Card.pmid == m.Study.pmid).exists(),
            ~select(ts.pmid).where(ts.pmid == m.Study.pmid, ts.topic_id != topic.id).exists(),
        )
    ).all()
    session.delete(topic)
    session.flush()
    if orphans:
        search.unindex_studies(session, orphans)  # before the rows go: SQLite's index reads them
        session.execute(delete(m.Study).where(m.Study.pmid.in_(orphans)))
        search.reindex_studies(session, orphans)
    return int(links or 0)


def exclude(session: Session, name: str, pmids: Iterable[int]) -> int:
    """Mark PMIDs as a curator's false positives for a topic: never (re-)added to it."""
    from kb import store  # store -> search -> topics: imported here, when a curator excludes

    topic = get_topic(session, name)
    count = 0
    for pmid in pmids:
        link = session.get(m.TopicStudy, (topic.id, pmid))
        if link is None:
            if session.get(m.Study, pmid) is None:
                store.ensure_placeholder(session, pmid)
            session.add(m.TopicStudy(topic_id=topic.id, pmid=pmid, is_excluded=True))
        else:
            link.is_excluded = True
        count += 1
    return count


def topic_history(session: Session, topic: m.Topic, limit: int = 10) -> list[tuple[dt.datetime, int | None]]:
    """(run start, hits) of the topic in recent refresh runs."""
    out = []
    runs = session.scalars(select(m.RefreshRun).order_by(m.RefreshRun.id.desc()).limit(200))
    for run in runs:
        entry = (run.counts or {}).get("topics", {}).get(topic.name)
        if entry:
            out.append((run.started_at, entry.get("hits")))
        if len(out) >= limit:
            break
    return out
