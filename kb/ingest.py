"""The two ways a study enters the knowledge base: by PMID through E-utilities (:func:`ingest_pmids`)
and from PubMed XML files (:func:`load_files`).

Both work in batches; each batch is stored in one transaction, so a failure never leaves half a
record. A batch whose fetch keeps failing is queued in ``fetch_failures`` and the run goes on.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from queue import Empty, Full
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session, sessionmaker

from kb import db
from kb import models as m
from kb import store
from kb.batches import chunked
from kb.config import mask_url_text
from kb.errors import InputError, KbError, NetworkError, ParseError
from kb.pubmed.eutils import OFFLINE_ROUTES, EutilsClient, HostUnreachable, PermanentError, ServerUnreachable
from kb.pubmed.parse import iter_pubmed_xml, open_pubmed_file
from kb.pubmed.records import DeleteCitation
from kb.wording import counted

log = logging.getLogger(__name__)

DEFAULT_FETCH_BATCH = 500
# kb load: records per transaction, and records the parser hands over at a time. A transaction
# spans several chunks, so the writer's memory is that of one chunk whatever the batch size. In a
# big database each commit writes every index page its records touched (spread over the whole
# file): 3,000 records a commit loaded 30,000 records into 970,000 studies in 17.2 s against 21.3 s
# with 1,000, and into a 30,000-study database in the same time (16.0 against 15.8 s).
DEFAULT_LOAD_BATCH = 3000
LOAD_CHUNK = 1000

Progress = Callable[[int], None]


def _no_progress(_n: object) -> None:
    return None


@dataclass(frozen=True)
class LoadStep:
    """What a load reports after each stored batch: the file, records stored, bytes read since."""

    path: Path
    records: int
    bytes: int


LoadProgress = Callable[[LoadStep], None]


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


@dataclass
class IngestReport:
    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    not_found: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    status_changes: dict[int, str] = field(default_factory=dict)
    requests: int = 0
    rate_limited: int = 0
    retried: list[int] = field(default_factory=list)  # queued by earlier runs, fetched again
    records: int = 0  # records read from files (kb load)
    superseded: int = 0  # of those, replaced by a later version of the same PMID in the same batch

    def add(self, result: store.StoreResult) -> None:
        self.new += result.new
        self.updated += result.updated
        self.unchanged += result.unchanged
        self.status_changes.update(result.status_changes)

    @property
    def ok(self) -> bool:
        return not self.not_found and not self.failed

    def summary(self) -> str:
        parts = [f"new {len(self.new)}", f"updated {len(self.updated)}", f"unchanged {len(self.unchanged)}"]
        if self.superseded:
            parts.append(f"superseded in the same batch {self.superseded}")
        if self.deleted:
            parts.append(f"deleted {len(self.deleted)}")
        parts.append(f"not found {len(self.not_found)}")
        parts.append(f"failed {len(self.failed)}")
        text = ", ".join(parts)
        if self.files:
            text = f"{counted(self.records, 'record')} in {counted(len(self.files), 'file')}: {text}"
        return text


# --------------------------------------------------------------------------------------------
# By PMID, through E-utilities
# --------------------------------------------------------------------------------------------


def ingest_pmids(
    sessions: sessionmaker[Session],
    client: EutilsClient,
    pmids: Sequence[int],
    *,
    retry_queued: bool = False,
    skip_queued: Collection[int] = (),
    batch_size: int = DEFAULT_FETCH_BATCH,
    progress: Progress = _no_progress,
    on_total: Progress = _no_progress,
    refresh_run_id: int | None = None,
) -> IngestReport:
    """Fetch ``pmids`` in POSTed pages of ``batch_size`` and store each page in one transaction.

    PMIDs E-utilities leaves out are reported as not found; a page whose fetch keeps failing is
    queued in ``fetch_failures`` (the next run retries it) and the run goes on. With
    ``retry_queued`` the PMIDs queued by earlier runs are fetched too (but not those in
    ``skip_queued``: a refresh does not retry what failed minutes ago); ``report.retried`` lists
    them. ``on_total`` gets the number of PMIDs to fetch once it is known. A run that added or
    changed :data:`kb.store.ANALYZE_AFTER` studies or more ends with PostgreSQL's ANALYZE.
    """
    if batch_size < 1:
        raise InputError("the batch size must be at least 1")
    report = IngestReport()
    everything = list(pmids)
    if retry_queued:
        with sessions() as session:
            known = set(everything) | set(skip_queued)
            report.retried = [p for p in store.queued_failures(session) if p not in known]
        everything += report.retried
    on_total(len(everything))
    unreachable = 0
    for number, page in enumerate(chunked(everything, batch_size)):
        wanted = set(page)
        try:
            records = client.efetch_pubmed(page)
        except HostUnreachable as exc:  # offline: no page can be fetched, and no retry helps
            rest = everything[number * batch_size :]
            with sessions.begin() as session:
                store.record_fetch_failures(session, rest, str(exc))
            raise NetworkError(f"{exc} The {counted(len(rest), 'PMID')} not fetched "
                               f"{'is' if len(rest) == 1 else 'are'} queued in fetch_failures for the next run.") from None
        except (NetworkError, PermanentError) as exc:
            message = str(exc)
            unreachable += isinstance(exc, ServerUnreachable)
            with sessions.begin() as session:
                store.record_fetch_failures(session, page, message)
            report.failed.update(dict.fromkeys(page, message))
            log.info("%d PMIDs queued for retry: %s", len(page), message)  # the caller reports failures
            progress(len(page))
            continue
        mine = [r for r in records if r.pmid in wanted]
        returned = {r.pmid for r in mine}
        missing = [p for p in page if p not in returned]
        with sessions.begin() as session:
            report.add(store.store_records(session, mine, source="eutils", refresh_run_id=refresh_run_id))
            # E-utilities answered: a PMID it left out is reported not found, no longer a failed fetch
            # (queued forever otherwise, and every later run would retry it and exit 1).
            for chunk in chunked(missing):
                session.execute(delete(m.FetchFailure).where(m.FetchFailure.pmid.in_(chunk)))
        report.not_found += missing
        progress(len(page))
    _gather_statistics(sessions, report)
    report.requests = client.stats.requests
    report.rate_limited = client.stats.rate_limited
    if unreachable and not report.new and not report.updated and not report.unchanged:
        raise NetworkError(
            f"cannot reach E-utilities at {mask_url_text(client.settings.base_url)}: {next(iter(report.failed.values()))}. "
            f"{OFFLINE_ROUTES} The PMIDs are queued in fetch_failures and retried by the next run."
        )
    return report


# --------------------------------------------------------------------------------------------
# From files
# --------------------------------------------------------------------------------------------


class LoadError(KbError):
    """A file that could not be loaded: its earlier batches are kept, later files not applied."""


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def load_files(
    sessions: sessionmaker[Session],
    paths: Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = DEFAULT_LOAD_BATCH,
    progress: LoadProgress = _no_progress,
    pipeline: bool = True,
    chunk_size: int = LOAD_CHUNK,
) -> IngestReport:
    """Apply PubMed XML files (efetch answers, baseline and update files) in the order given.

    A later version of a PMID supersedes an earlier one; ``DeleteCitation`` flags studies as
    deleted (rows and curated content stay). Each batch of ``batch_size`` records is one
    transaction (parsed and stored in chunks of at most ``chunk_size`` records, so memory does not
    grow with the batch size). A malformed file stops the load: its stored batches are kept, the failed batch
    and the files after it are not applied (a later update file must not overtake an earlier one).
    ``pipeline``: parse files of :data:`PIPELINE_MIN_BYTES` or more in a second process.
    A load that added or changed :data:`kb.store.ANALYZE_AFTER` studies or more ends with
    PostgreSQL's ANALYZE (:func:`kb.store.update_statistics`).
    """
    if batch_size < 1 or chunk_size < 1:
        raise InputError("the batch size must be at least 1")
    files = pubmed_files(paths)
    report = IngestReport()
    with _fewer_gc_pauses():
        _load_all(sessions, files, batch_size, min(batch_size, chunk_size), report, progress, pipeline)
    _gather_statistics(sessions, report)
    return report


def _gather_statistics(sessions: sessionmaker[Session], report: IngestReport) -> None:
    """After :data:`kb.store.ANALYZE_AFTER` new or changed studies or more: PostgreSQL's ANALYZE."""
    if len(report.new) + len(report.updated) >= store.ANALYZE_AFTER:
        with sessions.begin() as session:
            store.update_statistics(session)


PUBMED_FILE_SUFFIXES = (".xml", ".xml.gz")


def pubmed_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files to load: files as given, and for a directory the PubMed XML files in it
    (``*.xml``, ``*.xml.gz``; not its subdirectories) in name order, which is NCBI's order for
    baseline and update files (pubmed25n0001.xml.gz, pubmed25n0002.xml.gz, …)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.name.lower().endswith(PUBMED_FILE_SUFFIXES))
            if not found:
                raise InputError(f"{path}: no PubMed XML files (*.xml, *.xml.gz) in this directory. "
                                 "Nothing was loaded.")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file. Nothing was loaded.")
    return files


@contextlib.contextmanager
def _fewer_gc_pauses() -> Iterator[None]:
    """A bulk load allocates millions of small objects that all die young. Python's default
    collector runs every 700 allocations and now and then walks every object of the process
    (SQLAlchemy's metadata, the batch in hand): objects that exist before the load are frozen
    out of collection and young collections run less often, until the load ends."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], 50_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _load_all(
    sessions: sessionmaker[Session], files: list[Path], batch_size: int, chunk_size: int, report: IngestReport,
    progress: LoadProgress, pipeline: bool,
) -> None:
    for index, path in enumerate(files):
        try:
            _load_one(sessions, path, batch_size, chunk_size, report, progress, pipeline)
        except ParseError as exc:
            rest = [str(p) for p in files[index + 1 :]]
            stored = report.files[-1]["records"] if report.files else 0
            raise LoadError(
                f"{exc}. {counted(stored, 'record')} of {path.name} before the failed batch "
                f"{'is' if stored == 1 else 'are'} stored; "
                "nothing of the failed batch is. "
                + (f"Not applied: {', '.join(rest)}. " if rest else "")
                + "Fix or re-download the file and run kb load again (stored records are re-checked, not duplicated)."
            ) from exc


PIPELINE_MIN_BYTES = 2 * 2**20  # smaller files are parsed in-process: a worker costs more than it saves
_QUEUE_DEPTH = 2  # batches in flight between the parser process and the writer: memory stays flat


def _parse_batches(path: Path, batch_size: int) -> Iterator[tuple[str, object]]:
    """("batch", ([Prepared…], bytes of the file read so far)) per ``batch_size`` records, then
    ("deletions", [pmid…]). Each record's XML comes already compressed as kb stores it
    (:func:`kb.pubmed.xmlzip.pack`; kb.models.StoredXML stores packed bytes as given), so a
    pipelined load compresses in the parser process and sends a fifth of the bytes to the writer."""
    batch: list[store.Prepared] = []
    deletions: list[int] = []
    with open_pubmed_file(path) as (stream, raw):
        for item in iter_pubmed_xml(stream, name=os.fspath(path)):
            if isinstance(item, DeleteCitation):
                deletions.append(item.pmid)
                continue
            batch.append(store.prepare(item, "file", pack_xml=True))
            if len(batch) >= batch_size:
                yield "batch", (batch, raw.tell())
                batch = []
        if batch:
            yield "batch", (batch, raw.tell())
    yield "deletions", deletions


def _exit_with_parent(parent: int) -> None:
    """A thread of the parser process: ends the process when the writer is gone.

    A writer killed outright (SIGKILL, the OOM killer) cannot stop its parser. A parser that has
    sent its last batches is already exiting, waiting for its queue's feeder thread to hand them
    over, and nobody reads them any more: without this it would wait for ever.
    """
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _parser_process(path: str, batch_size: int, queue, parent: int) -> None:  # type: ignore[no-untyped-def]
    """Runs in a child process: parse the file and send prepared batches to the writer.

    The writer decides when to stop: Ctrl-C (sent to the whole process group) is ignored here,
    and SIGTERM (the writer's ``terminate()``) ends this process at once, whatever handler the
    writer had installed before forking.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()

    def send(message: tuple[str, object]) -> None:
        while True:
            try:
                queue.put(message, timeout=1.0)
                return
            except Full:
                if os.getppid() != parent:  # the writer died: stop instead of waiting forever
                    os._exit(1)

    try:
        with _fewer_gc_pauses():  # inherited through fork already; not with spawn
            for message in _parse_batches(Path(path), batch_size):
                send(message)
    except ParseError as exc:
        send(("error", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the writer, which raises it
        send(("crash", f"{type(exc).__name__}: {exc}"))


def _pipelined_batches(path: Path, batch_size: int) -> Iterator[tuple[str, object]]:
    """The same messages as :func:`_parse_batches`, parsed in a second process.

    Parsing and writing then use both cores of the machine. The queue holds at most
    ``_QUEUE_DEPTH`` batches, so memory does not grow with the file.
    """
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    queue = ctx.Queue(maxsize=_QUEUE_DEPTH)
    proc = ctx.Process(target=_parser_process, args=(str(path), batch_size, queue, os.getpid()),
                       daemon=True)
    proc.start()
    try:
        while True:
            try:
                kind, payload = queue.get(timeout=0.5)
            except Empty:
                if not proc.is_alive():
                    raise KbError(
                        f"{path}: the parser process stopped unexpectedly (exit code {proc.exitcode}); "
                        "run kb load --no-pipeline (or set KB_LOAD_PIPELINE=0) to parse in-process and see the error"
                    ) from None
                continue
            if kind == "error":
                raise ParseError(str(payload))
            if kind == "crash":
                raise KbError(f"{path}: the parser failed: {payload}")
            yield kind, payload
            if kind == "deletions":
                return
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=5)
        queue.close()


def _batches(path: Path, batch_size: int, pipeline: bool) -> Iterator[tuple[str, object]]:
    if pipeline and path.stat().st_size >= PIPELINE_MIN_BYTES:
        return _pipelined_batches(path, batch_size)
    return _parse_batches(path, batch_size)


def _load_one(
    sessions: sessionmaker[Session], path: Path, batch_size: int, chunk_size: int, report: IngestReport,
    progress: LoadProgress, pipeline: bool,
) -> None:
    sha, size = _sha256(path)
    with sessions.begin() as session:
        file_id = session.execute(
            insert(m.SourceFile)
            .values(name=path.name, sha256=sha, size_bytes=size, status="running")
            .returning(m.SourceFile.id)
        ).scalar_one()
    entry = {"file": str(path), "records": 0, "deletions": 0}
    report.files.append(entry)
    done = 0  # bytes of the file read
    progress(LoadStep(path, 0, 0))  # name the file before its first batch is stored
    tx = _Transaction(sessions, entry, report)
    try:
        for kind, payload in _batches(path, chunk_size, pipeline):
            if kind == "batch":
                batch: list[store.Prepared]
                batch, position = payload  # type: ignore[misc]
                session = tx.session()
                result = store.store_prepared(session, batch)
                session.execute(
                    update(m.SourceFile)
                    .where(m.SourceFile.id == file_id)
                    .values(records=m.SourceFile.records + len(batch))
                )
                tx.stored(result, batch)
                if tx.records >= batch_size:
                    tx.commit()
                progress(LoadStep(path, len(batch), position - done))
                done = position
            else:
                tx.commit()
                deletions: list[int] = payload  # type: ignore[assignment]
                with sessions.begin() as session:
                    report.deleted += store.mark_deleted(session, deletions)
                    session.execute(
                        update(m.SourceFile)
                        .where(m.SourceFile.id == file_id)
                        .values(status="complete", deletions=len(deletions), finished_at=m.utcnow())
                    )
                entry["deletions"] = len(deletions)
                progress(LoadStep(path, 0, size - done))
    except BaseException as exc:
        tx.roll_back(exc)
        _record_stop(sessions, file_id, exc)
        raise


class _Transaction:
    """The open transaction of a file's load: chunks are stored in it until it holds a batch,
    then it commits; what it stored counts in the report only once committed."""

    def __init__(self, sessions: sessionmaker[Session], entry: dict, report: IngestReport) -> None:
        self._sessions = sessions
        self._entry = entry
        self._report = report
        self._open: contextlib.AbstractContextManager[Session] | None = None
        self._session: Session | None = None
        self._pending: list[tuple[store.StoreResult, int, int]] = []

    @property
    def records(self) -> int:
        """Records stored in the open transaction."""
        return sum(records for _, records, _ in self._pending)

    def session(self) -> Session:
        if self._session is None:
            self._open = self._sessions.begin()
            self._session = self._open.__enter__()
        return self._session

    def stored(self, result: store.StoreResult, batch: list[store.Prepared]) -> None:
        self._pending.append((result, len(batch), len(batch) - len({p.pmid for p in batch})))

    def commit(self) -> None:
        if self._open is None:
            return
        opened, self._open, self._session = self._open, None, None
        opened.__exit__(None, None, None)
        for result, records, superseded in self._pending:
            self._report.add(result)
            self._entry["records"] += records
            self._report.records += records
            self._report.superseded += superseded
        self._pending = []

    def roll_back(self, exc: BaseException) -> None:
        if self._open is None:
            return
        opened, self._open, self._session = self._open, None, None
        self._pending = []
        try:
            opened.__exit__(type(exc), exc, exc.__traceback__)
        except Exception as inner:  # noqa: BLE001 - the original error is what the caller reports
            log.debug("rolling back the load's open transaction failed: %s", inner)


def _record_stop(sessions: sessionmaker[Session], file_id: int, exc: BaseException) -> None:
    """Say in ``source_files`` why a file stopped: 'failed' (bad XML, a parser or database
    error) or 'interrupted' (Ctrl-C, SIGTERM). Best effort: when the database itself is what
    failed, the original error is the one to report. (A SIGKILLed load cannot do this: its row
    stays 'running'; its stored batches are whole and a rerun re-checks them.)"""
    interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
    db.release_abandoned_connections(exc)
    message = str(exc) or type(exc).__name__
    try:
        with sessions.begin() as session:
            db.bounded_lock_wait(session)
            session.execute(
                update(m.SourceFile)
                .where(m.SourceFile.id == file_id)
                .values(status="interrupted" if interrupted else "failed", error=message[:2000],
                        finished_at=m.utcnow())
            )
    except Exception as inner:  # noqa: BLE001 - the original error is re-raised by the caller
        log.debug("could not record the end of source file %s: %s", file_id, inner)
