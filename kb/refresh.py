"""Scheduled refresh: saved PubMed searches (topics), new and changed records, retractions.

One refresh, under the database's refresh lock (:mod:`kb.locks`):

1. every topic: esearch by Entrez date from its watermark (less an overlap) to today, split into
   date windows so that no esearch passes NCBI's 9,999 cap; new PMIDs are ingested through the
   ingest path and linked to the topic (a curator's exclusions are never re-added). The topic's
   watermark advances only when the topic completed, in the same transaction as its links;
2. tracked studies: all stored PMIDs are posted to the history server (up to 250,000 a POST), one
   esearch counts how many of them E-utilities still returns, and only when some are missing do
   searches by PMID range narrow down which (they are flagged ``is_missing``, never deleted); an
   mdat search on the same sets tells which were modified since kb last fetched them, and only
   those are re-fetched: the requests grow with the changes, not with the knowledge base (a
   million tracked studies cost three more eposts than ten thousand);
3. PMIDs queued in ``fetch_failures`` by earlier runs are retried.

Retractions, errata and the rest follow from the stored records (:mod:`kb.evidence`); curated
text is never written. Each run leaves one ``refresh_runs`` row; a run killed at any point leaves
the database consistent (every batch is a transaction) and the next run picks up where it stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from kb import db as kbdb
from kb import ingest as kbingest
from kb import models as m
from kb.batches import chunked
from kb.config import mask_url
from kb.errors import KbError
from kb.pubmed.eutils import EutilsClient
from kb.pubmed.pmids import MAX_PMID
from kb.topics import get_topic, list_topics
from kb.wording import counted

log = logging.getLogger(__name__)

MAX_SEARCH = 9_999  # PubMed esearch cannot page past this many hits
# PMIDs per epost, sent as one POST (about 2.3 MB). NCBI sets no maximum ("There is no set maximum
# for the number of UIDs that can be passed to EPost", E-utilities Help, EPost); a bound keeps one
# request's body reasonable.
EPOST_CHUNK = 250_000
OVERLAP = dt.timedelta(days=2)
EARLIEST = dt.date(1781, 1, 1)  # older than any PubMed record


# --------------------------------------------------------------------------------------------
# Searching past the 9,999 cap
# --------------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    pmids: set[int] = field(default_factory=set)
    requests: int = 0
    windows: int = 0


def _ymd(day: dt.date) -> str:
    return day.strftime("%Y/%m/%d")


def search_all(
    client: EutilsClient,
    term: str,
    *,
    datetype: str,
    start: dt.date,
    end: dt.date,
    history: dict[str, str] | None = None,
) -> SearchResult:
    """Every PMID matching ``term`` with ``datetype`` in [start, end], however many.

    A window with more than 9,999 hits is halved by date until each fits; a single day that
    still has more is split by PMID range.
    """
    result = SearchResult()
    _collect(client, term, datetype, start, end, history or {}, result)
    return result


def _esearch(client: EutilsClient, term: str, result: SearchResult, **params: str) -> dict:
    result.requests += 1
    answer = client.esearch(term, retmax=str(MAX_SEARCH), **params)
    return answer


def _collect(client, term, datetype, start, end, history, result) -> None:  # type: ignore[no-untyped-def]
    params = {"datetype": datetype, "mindate": _ymd(start), "maxdate": _ymd(end), **history}
    answer = _esearch(client, term, result, **params)
    count = int(answer["Count"])
    if count <= MAX_SEARCH:
        result.windows += 1
        result.pmids.update(int(p) for p in answer["IdList"])
        return
    if start < end:
        middle = start + (end - start) / 2
        _collect(client, term, datetype, start, middle, history, result)
        _collect(client, term, datetype, middle + dt.timedelta(days=1), end, history, result)
        return
    _collect_by_uid(client, f"({term})", params, 1, MAX_PMID, result)


def _collect_by_uid(client, term, params, low, high, result) -> None:  # type: ignore[no-untyped-def]
    answer = _esearch(client, f"{term} AND {low}:{high}[uid]", result, **params)
    if int(answer["Count"]) <= MAX_SEARCH or low == high:
        result.windows += 1
        result.pmids.update(int(p) for p in answer["IdList"])
        return
    middle = (low + high) // 2
    _collect_by_uid(client, term, params, low, middle, result)
    _collect_by_uid(client, term, params, middle + 1, high, result)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class TopicReport:
    name: str
    hits: int | None = None
    found: int = 0  # PMIDs in this run's window
    new: int = 0  # stored for the first time
    linked: int = 0  # newly linked to the topic (new or already stored)
    failed: int = 0
    not_found: int = 0
    changed: int = 0  # studies of the topic whose record changed in this run
    retracted: int = 0  # studies of the topic that became retracted in this run
    windows: int = 0
    completed: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    run_id: int | None = None
    dry_run: bool = False
    topics: list[TopicReport] = field(default_factory=list)
    tracked: int = 0
    modified: int = 0  # returned by the mdat search
    changed: list[int] = field(default_factory=list)  # content actually changed
    status_changes: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    found_again: list[int] = field(default_factory=list)
    retried: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    not_found: list[int] = field(default_factory=list)  # modified or queued PMIDs efetch left out
    requests: int = 0
    rate_limited: int = 0
    error: str | None = None
    batch_size: int = kbingest.DEFAULT_FETCH_BATCH

    @property
    def complete(self) -> bool:
        return (self.error is None and not self.failed and not self.not_found
                and all(t.completed for t in self.topics))

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "success" if self.complete else "partial"

    @property
    def retracted(self) -> list[int]:
        return [p for p, s in self.status_changes.items() if s == "retracted"]

    def counts(self) -> dict:
        return {
            "topics": {t.name: {k: v for k, v in asdict(t).items() if k != "name"} for t in self.topics},
            "tracked": {
                "studies": self.tracked, "modified": self.modified, "changed": len(self.changed),
                "retracted": len(self.retracted), "status_changes": len(self.status_changes),
                "missing": len(self.missing), "found_again": len(self.found_again), "retried": self.retried,
                "failed": len(self.failed), "not_found": len(self.not_found),
            },
        }


Echo = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


def refresh(
    sessions: sessionmaker[Session],
    client: EutilsClient,
    *,
    topic: str | None = None,
    since: dt.date | None = None,
    dry_run: bool = False,
    today: dt.date | None = None,
    batch_size: int = kbingest.DEFAULT_FETCH_BATCH,
    echo: Echo = _quiet,
    lock_check: Callable[[], None] | None = None,
) -> RunReport:
    """One refresh run. The caller holds the refresh lock; ``lock_check`` (its
    :meth:`kb.locks.RefreshLock.check`) runs before every commit of the run's work, so that a run
    whose lock was lost stops instead of writing beside another refresh."""
    today = today or dt.date.today()
    report = RunReport(dry_run=dry_run, batch_size=batch_size)
    with sessions.begin() as session:
        topics = [get_topic(session, topic)] if topic else [t for t, _, _ in list_topics(session)]
        topic_ids = [(t.id, t.name) for t in topics]
        if not topic_ids and session.scalar(select(m.Study.pmid).limit(1)) is None:
            # a scheduled run on a database it just created (a mistyped KB_DATABASE_URL) would
            # otherwise succeed in silence every night
            log.warning("nothing to refresh: no topics and no studies in %s: add a topic (kb topic add NAME "
                        "QUERY), or check KB_DATABASE_URL / --db", mask_url(session.get_bind().url))
        if not dry_run:
            _close_interrupted_runs(session)
            report.run_id = session.execute(
                insert(m.RefreshRun).values(status="running", counts={}).returning(m.RefreshRun.id)
            ).scalar_one()
    if lock_check is not None:
        guard = lambda _session: lock_check()  # noqa: E731 - the listener, removed in finally
        event.listen(sessions, "before_commit", guard)
    try:
        for topic_id, name in topic_ids:
            report.topics.append(_refresh_topic(sessions, client, topic_id, name, since, today, report, echo))
        if topic is None:
            _refresh_tracked(sessions, client, today, report, echo)
            _retry_failures(sessions, client, report, echo)
        _attribute_to_topics(sessions, report)
    except KbError as exc:  # NetworkError included
        report.error = str(exc)
        raise
    except BaseException as exc:  # Ctrl-C, SIGTERM, an unexpected error: the run did not finish
        kbdb.release_abandoned_connections(exc)
        report.error = (f"interrupted ({str(exc) or 'Ctrl-C'}) before the run finished"
                        if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if lock_check is not None:
            event.remove(sessions, "before_commit", guard)  # the run's own record is written regardless
        report.requests, report.rate_limited = client.stats.requests, client.stats.rate_limited
        if not dry_run:
            with sessions.begin() as session:
                kbdb.bounded_lock_wait(session)
                session.execute(
                    update(m.RefreshRun)
                    .where(m.RefreshRun.id == report.run_id)
                    .values(
                        finished_at=m.utcnow(), status=report.status, counts=report.counts(),
                        requests_made=report.requests, rate_limited=report.rate_limited,
                        is_complete=report.complete, error=report.error,
                    )
                )
    return report


def _attribute_to_topics(sessions: sessionmaker[Session], run: RunReport) -> None:
    """Per-topic counts of the studies that changed or became retracted in this run."""
    changed, retracted = set(run.changed), set(run.retracted)
    if not (changed | retracted) or not run.topics:
        return
    by_name = {t.name: t for t in run.topics}
    with sessions() as session:
        for chunk in chunked(sorted(changed | retracted)):
            rows = session.execute(
                select(m.Topic.name, m.TopicStudy.pmid)
                .join(m.TopicStudy, m.TopicStudy.topic_id == m.Topic.id)
                .where(m.TopicStudy.pmid.in_(chunk), m.TopicStudy.is_excluded.is_(False))
            ).all()
            for name, pmid in rows:
                if name in by_name:
                    by_name[name].changed += pmid in changed
                    by_name[name].retracted += pmid in retracted


def _close_interrupted_runs(session: Session) -> None:
    """Runs left 'running' by a killed process (we hold the lock, so none is really running)."""
    session.execute(
        update(m.RefreshRun)
        .where(m.RefreshRun.status == "running")
        .values(status="failed", error="interrupted: the process stopped before the run finished")
    )


def _refresh_topic(
    sessions: sessionmaker[Session],
    client: EutilsClient,
    topic_id: int,
    name: str,
    since: dt.date | None,
    today: dt.date,
    run: RunReport,
    echo: Echo,
) -> TopicReport:
    report = TopicReport(name)
    started = m.utcnow()
    with sessions() as session:
        topic = session.get(m.Topic, topic_id)
        assert topic is not None
        query, old_translation, old_count = topic.query, topic.query_translation, topic.last_count
        start = since or (
            (topic.watermark.date() - OVERLAP) if topic.watermark else (topic.since or EARLIEST)
        )
        known = set(session.scalars(select(m.TopicStudy.pmid).where(m.TopicStudy.topic_id == topic_id)))

    overall = client.esearch(query, retmax="0")
    report.hits = int(overall["Count"])
    translation = str(overall.get("QueryTranslation") or "") or None
    if old_translation and translation and translation != old_translation:
        report.warnings.append(f"NCBI's translation of the query changed: {old_translation!r} -> {translation!r}")
    if old_count is not None and abs(report.hits - old_count) > max(10, old_count // 2):
        report.warnings.append(
            f"the hit count changed sharply: {old_count} -> {report.hits} (a changed query translation or an "
            "NCBI outage?)"
        )
    for warning in report.warnings:
        log.warning("topic %s: %s", name, warning)

    found = search_all(client, query, datetype="edat", start=start, end=today)
    report.found, report.windows = len(found.pmids), found.windows
    candidates = sorted(found.pmids - known)
    window = "from the beginning" if start == EARLIEST else f"since {start}"
    echo(f"topic {name}: {counted(report.hits, 'hit')}, {len(found.pmids)} {window}, {len(candidates)} new to the topic")
    with sessions() as session:
        stored = set(_existing(session, candidates))
    if run.dry_run:  # what a real run would store (new) and link, as its summary would count them
        report.new = len([p for p in candidates if p not in stored])
        report.linked = len(candidates)
        report.completed = True
        return report

    to_fetch = [p for p in candidates if p not in stored]
    ingested = kbingest.ingest_pmids(
        sessions, client, to_fetch, batch_size=run.batch_size, refresh_run_id=run.run_id
    ) if to_fetch else None
    if ingested is not None:
        report.new = len(ingested.new)
        report.failed = len(ingested.failed)
        report.not_found = len(ingested.not_found)
        run.failed.update(ingested.failed)
        run.status_changes.update(ingested.status_changes)
        linkable = stored | set(ingested.new) | set(ingested.updated) | set(ingested.unchanged)
    else:
        linkable = stored
    with sessions.begin() as session:
        now = m.utcnow()
        rows = [{"topic_id": topic_id, "pmid": p, "added_at": now} for p in candidates if p in linkable]
        if rows:
            session.execute(insert(m.TopicStudy.__table__), rows)
        report.linked = len(rows)
        values: dict = {"query_translation": translation, "last_count": report.hits}
        # The watermark moves only when the topic completed: every PMID found was fetched. One that
        # efetch left out would otherwise never be searched for again (it is older than the overlap).
        if not report.failed and not report.not_found:
            values["watermark"] = started
            report.completed = True
        session.execute(update(m.Topic).where(m.Topic.id == topic_id).values(**values))
    return report


def _existing(session: Session, pmids: Sequence[int]) -> list[int]:
    out: list[int] = []
    for chunk in chunked(pmids):
        out += session.scalars(select(m.Study.pmid).where(m.Study.pmid.in_(chunk)))
    return out


def _refresh_tracked(
    sessions: sessionmaker[Session], client: EutilsClient, today: dt.date, run: RunReport, echo: Echo
) -> None:
    """Re-fetch the stored studies E-utilities modified since kb last fetched them."""
    with sessions() as session:
        tracked = session.execute(
            select(m.Study.pmid, m.Study.last_fetched_at, m.Study.is_missing).where(
                m.Study.is_placeholder.is_(False), m.Study.is_deleted.is_(False)
            ).order_by(m.Study.pmid)
        ).all()
    run.tracked = len(tracked)
    if not tracked:
        return
    oldest = min((t.last_fetched_at for t in tracked if t.last_fetched_at), default=None)
    start = (oldest.date() if oldest else EARLIEST) - OVERLAP
    was_missing = {t.pmid for t in tracked if t.is_missing}
    ids = [t.pmid for t in tracked]

    webenv: str | None = None
    keys: list[tuple[int, Sequence[int]]] = []
    for chunk in chunked(ids, EPOST_CHUNK):
        webenv, key = client.epost(chunk, webenv)
        keys.append((key, chunk))
    assert webenv is not None
    history = {"WebEnv": webenv, "usehistory": "y"}

    term = " OR ".join(f"#{key}" for key, _ in keys)
    missing = _not_returned(client, f"({term})", ids, history)
    back = sorted(was_missing - set(missing))

    modified = search_all(client, f"({term})", datetype="mdat", start=start, end=today, history=history)
    changed_ids = sorted(modified.pmids & set(ids))
    run.modified = len(changed_ids)
    echo(f"tracked: {counted(len(ids), 'study', 'studies')}, {len(changed_ids)} modified since {start}, {len(missing)} not returned")
    if run.dry_run:
        run.missing = sorted(set(missing) - was_missing)
        return

    _flag_missing(sessions, sorted(set(missing) - was_missing), back, run)
    if changed_ids:
        ingested = kbingest.ingest_pmids(
            sessions, client, changed_ids, batch_size=run.batch_size, refresh_run_id=run.run_id
        )
        run.changed = ingested.updated
        run.failed.update(ingested.failed)
        run.not_found += ingested.not_found  # not re-fetched: still "modified" for the next run
        run.status_changes.update(ingested.status_changes)


def _not_returned(client: EutilsClient, term: str, ids: Sequence[int], history: dict[str, str]) -> list[int]:
    """The PMIDs of ``ids`` (ascending; posted as ``term``) that E-utilities no longer returns.

    One esearch counts the posted PMIDs PubMed still has: when none is missing, that is all. Else
    the PMID range is halved (``low:high[uid]``) until a part holds no missing PMID (its count
    equals kb's) or few enough to list (at most 9,999): requests grow with the missing PMIDs,
    not with the number tracked.
    """
    missing: list[int] = []

    def count(low: int, high: int, listing: bool) -> tuple[int, list[int]]:
        answer = client.esearch(f"{term} AND {low}:{high}[uid]", retmax=str(MAX_SEARCH if listing else 0),
                                **history)
        return int(answer["Count"]), [int(p) for p in answer["IdList"]]

    def narrow(lo: int, hi: int) -> None:  # ids[lo:hi], a sorted run of kb's PMIDs
        listing = hi - lo <= MAX_SEARCH
        found, listed = count(ids[lo], ids[hi - 1], listing)
        if found == hi - lo:
            return
        if listing:
            returned = set(listed)
            missing.extend(p for p in ids[lo:hi] if p not in returned)
            return
        middle = (lo + hi) // 2
        narrow(lo, middle)
        narrow(middle, hi)

    answer = client.esearch(term, retmax="0", **history)
    if int(answer["Count"]) != len(ids):
        narrow(0, len(ids))
    return missing


def _flag_missing(sessions: sessionmaker[Session], missing: list[int], back: list[int], run: RunReport) -> None:
    if not missing and not back:
        return
    with sessions.begin() as session:
        now = m.utcnow()
        for pmids, flag, kind in ((missing, True, "missing"), (back, False, "found_again")):
            for chunk in chunked(pmids):
                session.execute(update(m.Study).where(m.Study.pmid.in_(chunk)).values(is_missing=flag))
            if pmids:
                session.execute(
                    insert(m.StudyEvent.__table__),
                    [{"pmid": p, "at": now, "kind": kind, "detail": None, "refresh_run_id": run.run_id} for p in pmids],
                )
    run.missing, run.found_again = missing, back


def _retry_failures(sessions: sessionmaker[Session], client: EutilsClient, run: RunReport, echo: Echo) -> None:
    if run.dry_run:
        return
    ingested = kbingest.ingest_pmids(sessions, client, [], retry_queued=True, skip_queued=run.failed,
                                     batch_size=run.batch_size, refresh_run_id=run.run_id)
    if not ingested.retried:
        return
    echo(f"retried {counted(len(ingested.retried), 'PMID')} queued by earlier failed fetches")
    run.retried = len(ingested.retried)
    run.failed.update(ingested.failed)
    run.not_found += ingested.not_found
    run.status_changes.update(ingested.status_changes)


def recent_runs(session: Session, limit: int = 20) -> list[m.RefreshRun]:
    return list(session.scalars(select(m.RefreshRun).order_by(m.RefreshRun.id.desc()).limit(limit)))
