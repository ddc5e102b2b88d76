"""Evidence status of a study: retracted, expression of concern, erratum, updated, or ok.

Decided from PubMed's own data, never from curated text: the study's publication types
(Retracted Publication, D016441) and comments/corrections links — its own (``RetractionIn``,
``ErratumIn`` …) and those of notice records that point at it (``RetractionOf``,
``ErratumFor`` …), so a retraction notice that arrives as a new record flags the study it retracts.
An erratum is not a retraction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from kb import models as m
from kb.batches import chunked

RETRACTED_PUBLICATION_UI = "D016441"

# A study's own link types, and what they say about it.
OWN_LINKS = {
    "RetractionIn": "retracted",
    "RetractedandRepublishedIn": "retracted",
    "ExpressionOfConcernIn": "expression_of_concern",
    "ErratumIn": "erratum",
    "CorrectedandRepublishedIn": "updated",
    "UpdateIn": "updated",
}
# Link types of a notice record, and what they say about the record they point at.
INCOMING_LINKS = {
    "RetractionOf": "retracted",
    "RetractedandRepublishedFrom": "retracted",
    "ExpressionOfConcernFor": "expression_of_concern",
    "ErratumFor": "erratum",
    "CorrectedandRepublishedFrom": "updated",
    "UpdateOf": "updated",
}
SEVERITY = ("ok", "updated", "erratum", "expression_of_concern", "retracted")
NEEDS_REVIEW_STATUSES = frozenset({"retracted", "expression_of_concern"})


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=SEVERITY.index, default="ok")


def targets_of_notices(links: Iterable[tuple[str, int | None]]) -> set[int]:
    """PMIDs that notice links (``RetractionOf`` …) point at."""
    return {pmid for ref_type, pmid in links if pmid is not None and ref_type in INCOMING_LINKS}


def recompute(
    session: Session, pmids: Collection[int], *, refresh_run_id: int | None = None
) -> dict[int, str]:
    """Recompute ``evidence_status``/``is_retracted`` of the given stored studies.

    Each change is logged in ``study_events``. The card of a study that became retracted or got
    an expression of concern is flagged for re-review (curated text is left as it is). Returns
    {pmid: new status} for studies whose status changed.
    """
    changed: dict[int, str] = {}
    for chunk in chunked(sorted(set(pmids))):
        changed.update(_recompute_chunk(session, chunk, refresh_run_id))
    return changed


def _recompute_chunk(session: Session, ids: list[int], refresh_run_id: int | None) -> dict[int, str]:
    found: dict[int, set[str]] = {pmid: set() for pmid in ids}
    cc = m.CommentCorrection
    # Each query is bounded by the PMIDs only, and the link types and the publication type are
    # picked here: with "AND ref_type IN (...)" (or "ui = ...") in the SQL, SQLite, which has no
    # statistics, walked the low-cardinality ref_type (ui) index instead: every erratum, update and
    # retraction link in the database for every chunk, so that kb load slowed as the database grew
    # (2,228 -> 1,183 records/s from 30,000 to 1,000,000 studies; scripts/bench_search.py).
    for pmid, ref_type in session.execute(select(cc.pmid, cc.ref_type).where(cc.pmid.in_(ids))):
        if ref_type in OWN_LINKS:
            found[pmid].add(OWN_LINKS[ref_type])
    # (a much-cited study has many incoming "Cites" links: those are left out in the SQL, which an
    # index cannot serve, so the ref_pmid index stays the way in)
    incoming = select(cc.ref_pmid, cc.ref_type).where(cc.ref_pmid.in_(ids), cc.ref_type != "Cites")
    for target, ref_type in session.execute(incoming):
        if ref_type in INCOMING_LINKS:
            found[target].add(INCOMING_LINKS[ref_type])
    pt = m.PublicationType
    for pmid, ui in session.execute(select(pt.pmid, pt.ui).where(pt.pmid.in_(ids))):
        if ui == RETRACTED_PUBLICATION_UI:
            found[pmid].add("retracted")

    current = dict(
        session.execute(select(m.Study.pmid, m.Study.evidence_status).where(m.Study.pmid.in_(ids))).all()
    )
    changed = {}
    for pmid, old in current.items():
        new = worst(found[pmid])
        if new != old:
            changed[pmid] = new
    now = m.utcnow()
    for pmid, status in changed.items():
        session.execute(
            update(m.Study)
            .where(m.Study.pmid == pmid)
            .values(evidence_status=status, is_retracted=status == "retracted")
        )
        session.execute(
            insert(m.StudyEvent).values(
                pmid=pmid, at=now, kind="status_cleared" if status == "ok" else status,
                detail=f"evidence status {current[pmid]} -> {status}", refresh_run_id=refresh_run_id,
            )
        )
        if status in NEEDS_REVIEW_STATUSES:
            flag_cards(session, [pmid], f"PubMed now lists this study as {status.replace('_', ' ')}")
    return changed


def flag_cards(session: Session, pmids: Collection[int], reason: str) -> int:
    """Mark the cards of these studies for re-review. Curated text is not touched."""
    if not pmids:
        return 0
    result = session.execute(
        update(m.Card)
        .where(m.Card.pmid.in_(list(pmids)))
        .values(needs_review=True, review_reason=reason)
    )
    return result.rowcount or 0
