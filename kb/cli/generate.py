"""``kb curate generate``: draft cards written by a language model (kb.cards.generate)."""

from __future__ import annotations

import sys

import click

from kb.cards import generate as kbgenerate
from kb.cli.options import author_option, author_or_login, pass_kb, quiet_option
from kb.cli.output import is_terminal, stderr
from kb.errors import PartialFailure
from kb.handle import KnowledgeBase
from kb.pubmed.pmids import require_pmid
from kb.wording import counted


@click.command("generate")
@click.argument("pmids", nargs=-1)
@click.option("--missing", is_flag=True, help="Every study without a card a curator wrote or reviewed.")
@click.option("--topic", metavar="NAME", help="The studies of one topic that have no curated card.")
@click.option("--model", "model_name", metavar="MODEL", envvar="KB_LLM_MODEL", show_envvar=True,
              help="Any model llm knows (`llm models`): e.g. gpt-4o-mini, or one from extra-openai-models.yaml.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=4, show_default=True, help="Calls at a time.")
@click.option("--force", is_flag=True,
              help="Call the model even for a curated card (adds a generated revision, back to draft) or an "
                   "unchanged record.")
@click.option("--timeout", type=click.FloatRange(0.1), default=kbgenerate.DEFAULT_TIMEOUT, show_default=True,
              envvar="KB_LLM_TIMEOUT", help="Seconds to wait for one answer.")
@click.option("--tries", type=click.IntRange(1, 20), default=kbgenerate.DEFAULT_TRIES, show_default=True,
              envvar="KB_LLM_TRIES", help="Attempts per study (429, 5xx, timeouts and dropped connections retried).")
@click.option("--backoff", type=click.FloatRange(0), default=kbgenerate.DEFAULT_BACKOFF, envvar="KB_LLM_BACKOFF",
              hidden=True, help="First wait before a retry, in seconds (doubles each time).")
@click.option("--no-retry-failed", is_flag=True, help="With --missing/--topic: skip studies whose last call failed.")
@author_option
@quiet_option
@pass_kb
def generate(app: KnowledgeBase, pmids: tuple[str, ...], missing: bool, topic: str | None, model_name: str | None, jobs: int,
             force: bool, timeout: float, tries: int, backoff: float, no_retry_failed: bool, author: str | None, quiet: bool) -> None:
    """Store draft cards written by a language model through the llm library (pip install 'kb[llm]').

    kb curate generate (PMID... | --missing | --topic NAME) --model MODEL [--jobs N]

    The model gets the study's title, abstract, publication types, MeSH terms, year and journal
    only; its JSON reply is validated and checked (kb curate lint shows the checks). A card a
    curator wrote or reviewed is never overwritten. Exit code 1 if any call failed or any reply
    was not a card; they are tried again by the next run.
    """
    if sum((bool(pmids), missing, topic is not None)) != 1:
        raise click.UsageError("give PMIDs, --missing or --topic NAME (one of them)")
    wanted = [require_pmid(p) for p in pmids]
    model = kbgenerate.get_model(model_name, timeout=timeout)
    settings = kbgenerate.Settings(model_name=model_name or model.model_id, timeout=timeout, tries=tries,
                                   backoff=backoff, jobs=jobs, force=force, author=author_or_login(author))
    with app.session(write=False) as session:
        chosen = kbgenerate.select_studies(session, pmids=wanted, missing=missing, topic=topic,
                                           retry_failed=not no_retry_failed)
    show_bar = not quiet and is_terminal() and len(chosen) > 1
    with click.progressbar(length=len(chosen), label="generating", file=sys.stderr) if show_bar else _NoBar() as bar:
        def done(pmid: int, outcome: str) -> None:
            bar.update(1)

        report = kbgenerate.generate(app.session, chosen, settings, model, on_done=done)
    for pmid, why in report.problems.items():
        stderr(f"PMID {pmid}: {why}")
    stderr(report.summary(), quiet=quiet)
    if report.problems:
        problems = len(report.problems)
        raise PartialFailure(f"{counted(problems, 'study', 'studies')} got no card (listed above); the next run "
                             f"tries {'it' if problems == 1 else 'them'} again")


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None
