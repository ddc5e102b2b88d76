"""Saving many generated cards in one transaction (``kb curate generate``).

:func:`store_batch` stores the results of a batch of model calls as :func:`kb.cards.generate.store_result`
does one at a time through :func:`kb.curate.save_card`, with the same rows (cards, their bullets,
a ``card_revisions`` row with the card's text, the search index, one ``card_generations`` row per
call) and the same rules (a curator's card is never overwritten, ``force`` adds a revision, an
unchanged card adds none), but set-based: the batch's cards, bullets, revisions and existing
cards are read with a few queries, every row is written with one Core ``INSERT`` per table for
the whole batch, and the index is rebuilt once for the batch. All of it is in the caller's
transaction: a batch is stored whole or not at all (an interrupted run leaves no half card).

A study whose record changed since its call, or that is not stored as a PubMed record any more,
takes the one-card path (:func:`~kb.cards.generate.store_result`), which reads it again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from kb import models as m
from kb import search, store
from kb.cards import guardrails
from kb.cards.data import CardView, design_label, doc_from_rows, json_value, study_info
from kb.cards.generate import (PROMPT_VERSION, CallResult, InvalidReply, Settings, curated_among, parse_reply,
                               prompt_sha256, store_result)
from kb.cards.model import ITEM_LISTS, PARAGRAPH_FIELDS
from kb.cards.site import batched_query
from kb.cards.source import StudySource
from kb.cards.textformat import CardFormatError

_CARD_COLUMNS = (*PARAGRAPH_FIELDS, "curated_study_type", "reference_title", "reference_source", "reference_year",
                 "extracted_fields", "generated_fields", "checks", "check_overrides", "status", "curator",
                 "record_content_hash", "needs_review", "review_reason", "revision")


@dataclass
class Outcome:
    """What became of one call: ``stored``, ``failed`` or ``invalid`` (as its card_generations row)."""

    pmid: int
    status: str
    error: str | None
    checks: dict[str, Any] | None


def store_batch(session: Session, batch: list[tuple[StudySource, CallResult]], settings: Settings) -> list[Outcome]:
    """Store ``batch`` (distinct studies) in the caller's transaction; one outcome per result, in order."""
    from kb.curate import carry_marks, export_text, validate

    if len({source.pmid for source, _ in batch}) != len(batch):
        raise ValueError("a batch holds each study once")
    store.serialise_writers(session)
    pmids = [source.pmid for source, _ in batch]
    studies = {row["batch_pmid"]: row for row in session.execute(batched_query("card_study"), {"pmids": pmids})
               .mappings()}
    with_card = [p for p in pmids if p in studies and studies[p]["card_pmid"] is not None]
    items: dict[int, list[Any]] = defaultdict(list)
    overrides: dict[int, list[Any]] = {}
    if with_card:
        for row in session.execute(batched_query("card_items"), {"pmids": with_card}).mappings():
            items[row["batch_pmid"]].append(row)
        overrides = dict(session.execute(select(m.Card.pmid, m.Card.check_overrides)
                                         .where(m.Card.pmid.in_(with_card))).all())
    curated = curated_among(session, with_card)
    last_revision = dict(session.execute(
        select(m.CardRevision.pmid, func.max(m.CardRevision.revision))
        .where(m.CardRevision.pmid.in_([p for p in pmids if p not in with_card])).group_by(m.CardRevision.pmid)).all())

    generations: list[dict[str, Any]] = []
    new_cards: list[dict[str, Any]] = []
    changed_cards: list[dict[str, Any]] = []
    bullets: dict[str, list[dict[str, Any]]] = {kind: [] for kind in m.BULLET_TABLES}
    revisions: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    for source, result in batch:
        pmid = source.pmid
        study = studies.get(pmid)
        if study is None or study["is_placeholder"] or study["content_hash"] != source.content_hash:
            row = store_result(session, source, result, settings)  # changed meanwhile: read it again
            outcomes.append(Outcome(pmid, row.status, row.error, row.checks))
            continue
        generation = {
            "pmid": pmid, "model_requested": settings.model_name, "model_answered": result.model_answered,
            "prompt_version": PROMPT_VERSION, "prompt_sha256": prompt_sha256(),
            "record_content_hash": source.content_hash,
            "options": {**settings.options(), "attempts": result.attempts, "retries": result.retries},
            "input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
            "duration_ms": result.duration_ms, "raw_reply": result.text, "card": None, "checks": None,
            "status": "failed", "error": result.error, "card_revision": None,
        }
        generations.append(generation)
        if result.error is None:
            try:
                doc = parse_reply(result.text or "", source)
                generation["card"] = doc.to_json()
                if pmid in curated and not settings.force:
                    generation["checks"] = guardrails.check_card(doc, source=source.text(), design=source.design,
                                                                 publication_types=source.publication_types)
                    raise InvalidReply("a curator saved a card meanwhile; it was kept (--force adds a revision)")
                problems = validate(doc, "draft")
                if problems:
                    raise CardFormatError(problems, f"the card for PMID {pmid}")
            except (InvalidReply, CardFormatError) as exc:
                generation["status"], generation["error"] = "invalid", str(exc)
                outcomes.append(Outcome(pmid, "invalid", str(exc), generation["checks"]))
                continue
            # As kb.curate.save_card for a generated draft: the marks of the card it replaces
            # carried over, no new revision when nothing changed.
            has_card = pmid in with_card
            previous = doc_from_rows(study, items[pmid]) if has_card else None
            carry_marks(doc, previous)
            if previous is not None and not doc.reference_source:
                doc.reference_source = previous.reference_source
            if previous is not None and previous.same_content(doc) and study["status"] == "draft":
                checks = json_value(study["checks"])
                generation.update(status="stored", error=None, card_revision=study["revision"], checks=checks)
                outcomes.append(Outcome(pmid, "stored", None, checks))
                continue
            checks = guardrails.check_card(doc, source=source.text(), publication_types=source.publication_types,
                                           design=source.design) if guardrails.has_generated_text(doc) else None
            content_changed = previous is None or not previous.same_content(doc)
            revision = (study["revision"] or 0) + 1 if has_card else (last_revision.get(pmid) or 0) + 1
            card = {name: getattr(doc, name) or None for name in PARAGRAPH_FIELDS}
            card.update(
                curated_study_type=doc.study_type or None, reference_title=doc.reference_title or None,
                reference_source=doc.reference_source or None, reference_year=doc.reference_year,
                extracted_fields=list(doc.extracted_fields), generated_fields=list(doc.generated_fields),
                checks=checks, check_overrides=[] if content_changed else overrides.get(pmid) or [],
                status="draft", curator=settings.author, record_content_hash=study["content_hash"],
                needs_review=False, review_reason=None, revision=revision,
            )
            if has_card:
                changed_cards.append({"b_pmid": pmid, **card})
            else:
                new_cards.append({"pmid": pmid, **card})
            for name, (kind, audience) in ITEM_LISTS.items():
                bullets[kind] += [{"pmid": pmid, "position": position, "audience": audience, "label": item.label,
                                   "text": item.text, "source": item.source, "author": settings.author}
                                  for position, item in enumerate(getattr(doc, name))]
            design = design_label(study["study_type"])
            view = CardView(doc=doc, study=study_info(study, doc, design), status="draft", generated=False)
            revisions.append({"pmid": pmid, "revision": revision, "author": settings.author, "action": "generate",
                              "status_from": study["status"] if has_card else None, "status_to": "draft",
                              "card_text": export_text(view), "content": doc.to_json()})
            generation.update(status="stored", error=None, card_revision=revision, checks=checks)
            outcomes.append(Outcome(pmid, "stored", None, checks))
        else:
            outcomes.append(Outcome(pmid, "failed", result.error, None))

    saved = [r["pmid"] for r in revisions]
    replaced = [c["b_pmid"] for c in changed_cards]
    if replaced:
        for table in m.BULLET_TABLES.values():
            session.execute(delete(table).where(table.pmid.in_(replaced)))
        columns = {name: bindparam(name) for name in _CARD_COLUMNS}
        session.execute(update(m.Card.__table__).where(m.Card.__table__.c.pmid == bindparam("b_pmid"))
                        .values(**columns, updated_at=m.utcnow()), changed_cards)
    if new_cards:
        session.execute(insert(m.Card.__table__), new_cards)
    for kind, rows in bullets.items():
        if rows:
            session.execute(insert(m.BULLET_TABLES[kind].__table__), rows)
    search.reindex_studies(session, saved)
    if revisions:
        session.execute(insert(m.CardRevision.__table__), revisions)
    if generations:
        session.execute(insert(m.CardGeneration.__table__), generations)
    return outcomes
