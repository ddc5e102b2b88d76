"""``kb topic …`` (saved searches), ``kb refresh`` (the scheduled job), ``kb report changes``."""

from __future__ import annotations

import datetime as dt
import shlex

import click

from kb import locks
from kb import refresh as kbrefresh
from kb import report as kbreport
from kb import topics as kbtopics
from kb.cli.options import author_option, author_or_login, pass_kb, quiet_option
from kb.cli.output import emit_rows, format_option, stderr, text_or_rows_option
from kb.config import EntrezSettings
from kb.errors import InputError, PartialFailure
from kb.handle import KnowledgeBase
from kb.pubmed.eutils import EutilsClient
from kb.pubmed.pmids import require_pmids
from kb.wording import counted


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not a date: use YYYY-MM-DD") from None


@click.group("topic")
def topic() -> None:
    """Saved PubMed searches that `kb refresh` re-runs."""


@topic.command("add")
@click.argument("name")
@click.argument("query")
@click.option("--since", metavar="YYYY-MM-DD", help="Only studies that entered PubMed on or after this date.")
@pass_kb
def topic_add(app: KnowledgeBase, name: str, query: str, since: str | None) -> None:
    """Save QUERY (PubMed syntax) as topic NAME. The next refresh fetches its studies."""
    with app.session() as session:
        kbtopics.add_topic(session, name, query, _date(since))
    start = f"since {since}" if since else "from the beginning"
    stderr(f"Topic {name!r} saved ({start}); `kb refresh --topic {shlex.quote(name)}` fetches its studies.")


@topic.command("list")
@format_option
@pass_kb
def topic_list(app: KnowledgeBase, fmt: str | None) -> None:
    """List topics with their query, last hit count and studies."""
    with app.session(write=False) as session:
        rows = [(t.name, t.query, t.last_count, n, x, t.watermark) for t, n, x in kbtopics.list_topics(session)]
    emit_rows(["name", "query", "hits", "studies", "excluded", "complete_until"], rows, fmt)


@topic.command("show")
@click.argument("name")
@text_or_rows_option
@pass_kb
def topic_show(app: KnowledgeBase, name: str, fmt: str) -> None:
    """Show a topic: query, NCBI's translation, watermark and hit counts of recent runs."""
    with app.session(write=False) as session:
        t = kbtopics.get_topic(session, name)
        (_, n, x), = [row for row in kbtopics.list_topics(session) if row[0].id == t.id]
        history = kbtopics.topic_history(session, t)
        if fmt != "text":
            runs = [{"at": at.isoformat(timespec="seconds"), "hits": hits} for at, hits in history]
            emit_rows(["name", "query", "translation", "since", "complete_until", "hits", "studies", "excluded",
                       "recent_runs"],
                      [(t.name, t.query, t.query_translation, t.since, t.watermark, t.last_count, n, x, runs)], fmt)
            return
        lines = [
            f"name:            {t.name}",
            f"query:           {t.query}",
            f"translation:     {t.query_translation or '(not searched yet)'}",
            f"since:           {t.since or '-'}",
            f"complete until:  {t.watermark or '(never completed)'}",
            f"hits:            {t.last_count if t.last_count is not None else '-'}",
            f"studies:         {n} linked, {x} excluded",
        ]
        lines += [f"run {at:%Y-%m-%d %H:%M}: {counted(hits, 'hit')}" for at, hits in history]
    click.echo("\n".join(lines))


@topic.command("remove")
@click.argument("name")
@pass_kb
def topic_remove(app: KnowledgeBase, name: str) -> None:
    """Remove topic NAME. Its studies stay in the knowledge base."""
    with app.session() as session:
        links = kbtopics.remove_topic(session, name)
    stderr(f"Topic {name!r} removed ({counted(links, 'link')}); the studies stay.")


@topic.command("exclude")
@click.argument("name")
@click.argument("pmids", nargs=-1, required=True)
@pass_kb
def topic_exclude(app: KnowledgeBase, name: str, pmids: tuple[str, ...]) -> None:
    """Mark PMIDS as false positives of topic NAME: refresh never adds them again."""
    wanted = require_pmids(pmids)
    with app.session() as session:
        count = kbtopics.exclude(session, name, wanted)
    stderr(f"{counted(count, 'PMID')} excluded from {name!r}.")


@click.command("refresh")
@click.option("--topic", "topic_name", metavar="NAME", help="Refresh one topic only (no tracked-study pass).")
@click.option("--since", metavar="YYYY-MM-DD", help="Search from this Entrez date instead of each topic's watermark.")
@click.option("--dry-run", is_flag=True,
              help="Search and print what would be fetched (on stdout, --quiet or not); write nothing.")
@click.option("--status", "show_status", is_flag=True, help="Show recent refresh runs and exit.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="PMIDs per efetch request.")
@quiet_option
@format_option
@pass_kb
def refresh(app: KnowledgeBase, topic_name: str | None, since: str | None, dry_run: bool, show_status: bool,
            batch_size: int, quiet: bool, fmt: str | None) -> None:
    """Re-run saved searches, fetch new and changed records, flag retractions and errata.

    \b
    Exit codes for cron: 0 success; 1 partial (some batches failed: the rest is stored and the
    failures are queued for the next run); 2 usage or configuration error; 3 no database or its
    schema out of date; 69 E-utilities or the database unreachable; 75 another refresh holds
    the lock, or this one lost it and stopped; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM): the run is recorded as failed
    ("interrupted") and the next run picks up; 141 the reader of its output went away.
    """
    if show_status:
        with app.session(write=False) as session:
            runs = kbrefresh.recent_runs(session)
            rows = [_run_row(r) for r in runs]
        emit_rows(["id", "started", "finished", "status", "found", "new", "linked", "changed", "retracted",
                   "missing", "failed", "requests", "429s", "topics", "read", "error"], rows, fmt)
        return
    start_date = _date(since)
    client = EutilsClient(EntrezSettings.from_env())
    sessions = app.sessions()
    echo: kbrefresh.Echo
    if dry_run:  # the plan is the command's data: stdout, whatever --quiet says
        echo = click.echo
    else:  # progress
        echo = (lambda _m: None) if quiet else (lambda msg: click.echo(msg, err=True))
    with locks.refresh_lock(app.ready_engine()) as lock:
        report = kbrefresh.refresh(sessions, client, topic=topic_name, since=start_date, dry_run=dry_run,
                                   batch_size=batch_size, echo=echo, lock_check=lock.check)
    for t in report.topics:
        for warning in t.warnings:
            click.echo(f"Warning: topic {t.name}: {warning}", err=True)
    summary = (
        f"{'dry run: ' if dry_run else ''}topics {len(report.topics)}, "
        f"new {sum(t.new for t in report.topics)}, linked {sum(t.linked for t in report.topics)}, "
        f"changed {len(report.changed)}, retracted {len(report.retracted)}, missing {len(report.missing)}, "
        f"failed {len(report.failed)}; {counted(report.requests, 'request')}, {report.rate_limited} x 429"
    )
    if dry_run:
        click.echo(summary)
    else:
        stderr(summary, quiet=quiet)
    if report.failed:
        failed = len(report.failed)
        click.echo(f"{counted(failed, 'PMID')} failed and {'is' if failed == 1 else 'are'} queued for the next run "
                   f"({next(iter(report.failed.values()))})", err=True)
    not_found = sum(t.not_found for t in report.topics) + len(report.not_found)
    if not_found:
        click.echo(f"{counted(not_found, 'PMID')} {'was' if not_found == 1 else 'were'} not returned by efetch "
                   "(not found); a topic with such PMIDs stays "
                   "incomplete and the next run searches it again", err=True)
    if not report.complete:
        raise PartialFailure("the refresh is incomplete (see above): what was fetched is stored, and the next run "
                             "tries the rest again")


def _run_row(run) -> tuple:  # type: ignore[no-untyped-def]
    """A refresh_runs row for --status: totals, then each topic's own counts, and the error."""
    counts = run.counts or {}
    by_topic = counts.get("topics", {})
    topics = by_topic.values()
    tracked = counts.get("tracked", {})
    per_topic = "; ".join(
        f"{name}: found {t.get('found', 0)}, new {t.get('new', 0)}, linked {t.get('linked', 0)}"
        + (f", failed {t['failed']}" if t.get("failed") else "") + ("" if t.get("completed") else ", incomplete")
        for name, t in by_topic.items()
    )
    return (
        run.id, run.started_at, run.finished_at, run.status,
        sum(t.get("found", 0) for t in topics), sum(t.get("new", 0) for t in topics),
        sum(t.get("linked", 0) for t in topics),
        tracked.get("changed", 0), tracked.get("retracted", 0), tracked.get("missing", 0),
        sum(t.get("failed", 0) for t in topics) + tracked.get("failed", 0), run.requests_made, run.rate_limited,
        per_topic, f"{run.read_at:%Y-%m-%d %H:%M} by {run.read_by}" if run.read_at else "", run.error or "",
    )


@click.group("report")
def report() -> None:
    """Reports for curators."""


@report.command("changes")
@click.option("--since", metavar="YYYY-MM-DD",
              help="Changes on or after this date (default: since the changes were last marked read, else since "
                   "the latest refresh run that found changes).")
@click.option("--no-new", is_flag=True, help="Leave out studies that are merely new.")
@click.option("--mark-read", is_flag=True,
              help="After printing, record that you read the changes: the next report starts from here.")
@author_option
@format_option
@pass_kb
def report_changes(app: KnowledgeBase, since: str | None, no_new: bool, mark_read: bool, author: str | None,
                   fmt: str | None) -> None:
    """List what changed: retractions first, then other notices, deletions, content changes, new studies.

    By default the report starts when a person last ran it with --mark-read; if nobody ever did,
    at the start of the latest refresh run that found changes (a later run that found nothing
    does not hide them); else seven days ago. stderr says which.
    """
    day = _date(since)
    with app.session(write=False) as session:
        if day:
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
            why = f"since {day}"
        else:
            start, why = kbreport.default_since(session)
        rows = kbreport.changes(session, start, include_new=not no_new)
    stderr(f"{counted(len(rows), 'change')} {why} ({start:%Y-%m-%d %H:%M} UTC)")
    emit_rows(list(kbreport.COLUMNS), rows, fmt)
    if mark_read:
        with app.session() as session:
            run_id = kbreport.mark_read(session, author_or_login(author))
        stderr(f"marked read up to refresh run {run_id}" if run_id else "no refresh run yet: nothing to mark read")

