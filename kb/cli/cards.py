"""``kb card`` (render one card), ``kb cards build`` (a static site) and ``kb curate …``."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import click

from kb import curate as kbcurate
from kb.cards.data import load_card
from kb.cards.render import FORMATS, render, render_edit_template
from kb.cards.textformat import COMMENT, CardFormatError, read_card
from kb.cli.generate import generate
from kb.cli.options import author_option, author_or_login, pass_kb, quiet_option
from kb.cli.output import emit_rows, stderr, text_or_rows_option
from kb.config import editor_command, kb_home
from kb.errors import InputError, PartialFailure
from kb.files import make_dir, write_text
from kb.handle import KnowledgeBase
from kb.models import CARD_STATUSES
from kb.pubmed.pmids import require_pmid, require_pmids
from kb.wording import counted


@click.command("card")
@click.argument("pmid")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text (kb's card format), md, html (a standalone page) or json (the card's data).")
@click.option("--template", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Render with your own Jinja2 template (same data as the built-in ones).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
@pass_kb
def card(app: KnowledgeBase, pmid: str, fmt: str, template: Path | None, output: Path | None) -> None:
    """Render the summary card of PMID (a draft from the PubMed record when it has none)."""
    number = require_pmid(pmid)
    with app.session(write=False) as session:
        view = load_card(session, number)
    page = render(view, fmt, template=template)
    if output is not None:
        write_text(output, page)
    else:
        click.echo(page, nl=False)


@click.group("cards")
def cards() -> None:
    """Many cards at once: a static site."""


@cards.command("build")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--status", type=click.Choice(CARD_STATUSES), help="Only cards with this status (default: every study).")
@click.option("--topic", help="Only studies of this topic.")
@quiet_option
@pass_kb
def build(app: KnowledgeBase, outdir: Path, status: str | None, topic: str | None, quiet: bool) -> None:
    """Write a static site to OUTDIR: a page per card and an index to sort and filter them."""
    from kb.cards.site import build_site
    from kb.cli.progress import Progress

    with app.session(write=False) as session, Progress("building", None, unit="cards", quiet=quiet) as bar:
        report = build_site(session, outdir, status=status, topic=topic, progress=bar.advance, on_total=bar.set_total)
    stderr(f"wrote {counted(report.cards, 'card')} and {outdir / 'index.html'}", quiet=quiet)


@click.group("curate")
def curate() -> None:
    """Write and manage curated cards."""


curate.add_command(generate)


@curate.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", type=click.Choice(CARD_STATUSES), default=None,
              help="Status of the imported cards. Default: a new card is published (legacy cards were); a "
                   "stored card keeps its status, so a draft exported and imported back is still a draft.")
@click.option("--replace", is_flag=True,
              help="Replace a stored card whose text differs (the old text stays as a revision).")
@click.option("--dry-run", is_flag=True, help="Show what would change, as a diff against the stored card; store nothing.")
@author_option
@quiet_option
@pass_kb
def import_(app: KnowledgeBase, files: tuple[Path, ...], status: str | None, replace: bool, dry_run: bool, author: str | None,
            quiet: bool) -> None:
    """Import cards in kb's text format (.txt), its Markdown form (.md) or the JSON of
    kb card --format json (.json) into the curated tables.

    Each file is stored whole or not at all: a line the reader cannot place fails the file, with
    its line number. A card for a PMID not yet stored creates a placeholder study that the next
    ingest completes (with a warning naming stored studies of the same title). A card whose type,
    year or title disagrees with the PubMed record is stored, with a warning. Exit code 1 if any
    file failed.
    """
    report = kbcurate.ImportReport()
    who = author_or_login(author)
    would_change = 0
    for path in files:
        try:
            read = kbcurate.read_card_file(path)
            if dry_run:
                with app.session(write=False) as session:
                    plan = kbcurate.plan_import(session, read.doc, warnings=read.warnings)
                _warn(plan.warnings)
                would_change += bool(plan.diff)
                click.echo(plan.diff or f"# {path}: PMID {plan.pmid} unchanged\n", nl=False)
                continue
            with app.session() as session:
                result, plan = kbcurate.import_card(session, read, status=status, author=who, replace=replace)
            report.saved.append(result)
            _warn(plan.warnings)
        except InputError as exc:
            report.failed[str(path)] = str(exc)
            stderr(f"not imported: {path}: {exc}" if str(path) not in str(exc) else f"not imported: {exc}")
    if dry_run:
        stderr(f"dry run: {would_change} of {counted(len(files) - len(report.failed), 'card')} would change; nothing stored"
               + (f"; {len(report.failed)} failed" if report.failed else ""), quiet=quiet)
    else:
        stderr(report.summary(), quiet=quiet)
    if report.failed:
        raise PartialFailure(f"{len(report.failed)} of {counted(len(files), 'card file')} not imported (listed above)")


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        stderr(f"warning: {warning}")


@curate.command("export")
@click.argument("args", nargs=-1, required=True)
@click.option("--all", "all_cards", is_flag=True, help="Every curated card.")
@click.option("--format", "fmt", type=click.Choice(("text", "md")), default="text", show_default=True,
              help="text (card-PMID.txt) or md (card-PMID.md); kb curate import reads both.")
@pass_kb
def export(app: KnowledgeBase, args: tuple[str, ...], all_cards: bool, fmt: str) -> None:
    """Write curated cards to DIR as card-PMID.txt: kb curate export (PMID... | --all) DIR."""
    *pmids, outdir = args
    if all_cards == bool(pmids):
        raise click.UsageError("give PMIDs or --all, and the output directory last")
    wanted = None if all_cards else require_pmids(pmids)
    with app.session(write=False) as session:
        written = kbcurate.export_cards(session, wanted, Path(outdir), fmt=fmt)
    stderr(f"wrote {counted(len(written), 'card')} to {outdir}")


@curate.command("draft")
@click.argument("pmids", nargs=-1)
@click.option("--missing", is_flag=True, help="Every study that has no card yet.")
@author_option
@pass_kb
def draft(app: KnowledgeBase, pmids: tuple[str, ...], missing: bool, author: str | None) -> None:
    """Store drafts made from the PubMed records (status draft, text marked as extracted)."""
    if missing == bool(pmids):
        raise click.UsageError("give PMIDs or --missing")
    wanted = require_pmids(pmids) if pmids else None
    with app.session() as session:
        made, asked = kbcurate.draft_cards(session, wanted, author=author_or_login(author))
    stderr(f"stored {counted(len(made), 'draft')} ({counted(asked - len(made), 'study', 'studies')} already had a card)")


@curate.command("status")
@click.argument("pmid")
@click.argument("status", type=click.Choice(CARD_STATUSES))
@author_option
@click.option("--override", "overrides", multiple=True, metavar="CHECK",
              help="Publish a generated card although this check failed (recorded with the author); repeatable.")
@pass_kb
def status(app: KnowledgeBase, pmid: str, status: str, author: str | None, overrides: tuple[str, ...]) -> None:
    """Set a card's status: draft, reviewed or published.

    A card with generated text whose checks fail (kb curate lint) is published only with
    --override CHECK for each failed check.
    """
    number = require_pmid(pmid)
    with app.session() as session:
        result = kbcurate.set_status(session, number, status, author=author_or_login(author), overrides=overrides)
    stderr(f"PMID {result.pmid}: {status}" + (f" (revision {result.revision})" if result.changed else " (unchanged)"))


@curate.command("history")
@click.argument("pmid")
@click.option("--no-diff", is_flag=True, help="List revisions only.")
@text_or_rows_option
@pass_kb
def history(app: KnowledgeBase, pmid: str, no_diff: bool, fmt: str) -> None:
    """List a card's revisions: number, time, author, action, status from -> to, and a diff
    of the card's text against the revision before."""
    number = require_pmid(pmid)
    with app.session(write=False) as session:
        entries = kbcurate.history(session, number)
    if not entries:
        stderr(f"PMID {pmid} has no card revisions")
    if fmt != "text":
        emit_rows(["revision", "at", "author", "action", "status_from", "status_to", "diff"],
                  [(e.revision, e.at, e.author, e.action, e.status_from, e.status_to, "" if no_diff else e.diff)
                   for e in entries], fmt)
        return
    for e in entries:
        click.echo(f"revision {e.revision}\t{e.at}\t{e.author or ''}\t{e.action}\t{e.statuses()}")
        if not no_diff and e.diff:
            click.echo(e.diff, nl=not e.diff.endswith("\n"))


@curate.command("review")
@click.argument("pmid")
@author_option
@pass_kb
def review(app: KnowledgeBase, pmid: str, author: str | None) -> None:
    """Mark a card reviewed: a draft becomes 'reviewed' (a published card stays published),
    needs_review is cleared, and who did it and when are recorded."""
    number = require_pmid(pmid)
    with app.session() as session:
        result = kbcurate.review(session, number, author=author_or_login(author))
    stderr(f"PMID {result.pmid}: reviewed (revision {result.revision})")


@curate.command("revert")
@click.argument("pmid")
@click.argument("revision", type=click.IntRange(min=1))
@author_option
@pass_kb
def revert(app: KnowledgeBase, pmid: str, revision: int, author: str | None) -> None:
    """Restore revision REVISION of a card (kb curate history lists them) as a new revision."""
    number = require_pmid(pmid)
    with app.session() as session:
        result = kbcurate.revert(session, number, revision, author=author_or_login(author))
    stderr(f"PMID {result.pmid}: revision {revision} restored as revision {result.revision}" if result.changed
           else f"PMID {result.pmid}: the card already reads as revision {revision} (unchanged)")


@curate.command("delete")
@click.argument("pmid")
@author_option
@pass_kb
def delete(app: KnowledgeBase, pmid: str, author: str | None) -> None:
    """Remove a card. Its revisions stay (kb curate history, kb curate revert); a placeholder
    study with nothing else on it is removed too."""
    number = require_pmid(pmid)
    with app.session() as session:
        result = kbcurate.delete_card(session, number, author=author_or_login(author))
    stderr(f"PMID {result.pmid}: card deleted (revision {result.revision} records it)"
           + ("; the placeholder study was removed" if result.removed_placeholder else ""))


@curate.command("lint")
@click.argument("pmids", nargs=-1)
@text_or_rows_option
@pass_kb
def lint(app: KnowledgeBase, pmids: tuple[str, ...], fmt: str) -> None:
    """Report cards that disagree with their PubMed records (one line each: PMID, check, message).

    Exit code 1 when anything is found.
    """
    wanted = require_pmids(pmids) if pmids else None
    with app.session(write=False) as session:
        findings = kbcurate.lint(session, wanted)
    if fmt != "text":
        emit_rows(["pmid", "check", "message"], [(f.pmid, f.check, f.message) for f in findings], fmt)
    for f in findings if fmt == "text" else ():
        click.echo(f.line())
    if findings:
        raise PartialFailure(f"{counted(len(findings), 'problem')} in {counted(len({f.pmid for f in findings}), 'card')}")


@curate.command("edit")
@click.argument("pmid")
@author_option
@pass_kb
def edit(app: KnowledgeBase, pmid: str, author: str | None) -> None:
    """Edit a card in $VISUAL / $EDITOR (its draft when it has none) and save a new revision.

    The editor shows every heading, with '# ' comment lines that explain the layout (they are
    dropped on save). A card that is not valid opens again with the errors as '# ' lines at the
    top; save it unchanged to give up: your text stays in a recovery file, named on stderr.
    """
    number = require_pmid(pmid)
    with app.session(write=False) as session:
        view = load_card(session, number)
        text = render_edit_template(view)
    # the card's own lines that look like comments ('# of patients: 12') are not dropped on save
    own = frozenset(line for line in kbcurate.export_text(view).split("\n") if COMMENT.match(line))
    editor = editor_command()
    recovery = _recovery_path(number)
    failed: list[str] = []  # the curator's texts that were refused
    while True:
        edited = _run_editor(editor, text, number)
        if edited == text and not failed:
            stderr(f"PMID {number}: no changes (does your editor need --wait?)")
            return
        body = _drop_error_block(edited)
        if edited == text or body in failed or len(failed) >= MAX_REOPENS:  # given up (or an editor in a loop)
            _keep(recovery, body)
            raise InputError(f"the card was not saved; your text is in {recovery}")
        try:
            read = read_card(body, source=f"the card for PMID {number}", comments=True, keep=own)
            if read.doc.pmid != number:
                raise CardFormatError([f"the card names PMID {read.doc.pmid}, but you are editing PMID {number}"],
                                      f"the card for PMID {number}")
            with app.session() as session:
                result = kbcurate.save_card(session, read.doc, action="edit", author=author_or_login(author))
        except InputError as exc:
            _keep(recovery, body)
            problems = exc.problems if isinstance(exc, CardFormatError) else [str(exc)]
            stderr(f"{exc}\nyour text is kept in {recovery}; the editor opens again (save it unchanged to give up)")
            text = _error_block(problems) + body
            failed.append(body)
            continue
        recovery.unlink(missing_ok=True)
        stderr(f"PMID {number}: saved revision {result.revision}" if result.changed else f"PMID {number}: no changes")
        return


MAX_REOPENS = 20  # an editor that keeps saving other invalid text (a script) is stopped
_ERROR_HEAD = "# kb did not save the card:"
_ERROR_TAIL = "# Fix the card below and save; save it unchanged to give up. (These lines are dropped.)"


def _error_block(problems: list[str]) -> str:
    """The errors as '# ' lines above the curator's text; line numbers count the file as reopened."""
    lines = [line for p in problems for line in p.splitlines()]
    shift = len(lines) + 2
    lines = [re.sub(r"^line (\d+)", lambda m: f"line {int(m[1]) + shift}", line) for line in lines]
    return "\n".join([_ERROR_HEAD, *(f"#   {line}" for line in lines), _ERROR_TAIL]) + "\n"


def _drop_error_block(text: str) -> str:
    if not text.startswith(_ERROR_HEAD):
        return text
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines) if line == _ERROR_TAIL), None)
    return text if end is None else "\n".join(lines[end + 1:])


def _recovery_path(pmid: int) -> Path:
    return kb_home() / "recovery" / f"card-{pmid}.txt"


def _keep(path: Path, text: str) -> None:
    make_dir(path.parent)
    write_text(path, text)


def _run_editor(editor: str, text: str, pmid: int) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    with tempfile.TemporaryDirectory(prefix="kb-card-") as tmp:
        path = Path(tmp) / f"card-{pmid}-{stamp}.txt"
        path.write_text(text, encoding="utf-8")
        try:
            done = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except OSError as exc:
            raise InputError(f"cannot start the editor {editor!r} ({exc.strerror}): set $EDITOR") from exc
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) while editing: keep what was saved so far
            _keep(_recovery_path(pmid), path.read_text(encoding="utf-8"))
            stderr(f"the card was not saved; your text is in {_recovery_path(pmid)}")
            raise
        edited = path.read_text(encoding="utf-8")
        if done.returncode != 0:
            _keep(_recovery_path(pmid), edited)
            raise InputError(f"the editor exited with code {done.returncode}; the card was not saved; "
                             f"your text is in {_recovery_path(pmid)}")
        return edited
