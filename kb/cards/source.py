"""What a language model is given to draft a card, and what the guardrails check the card against.

Only the record's title, abstract sections with their labels, publication types, MeSH terms,
year and journal: never curated text, never anything else from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from kb import models as m
from kb.cards.data import DESIGN_LABELS, run_query
from kb.errors import InputError, NotFound


@dataclass
class StudySource:
    pmid: int
    title: str
    year: int | None
    journal: str
    publication_types: list[str]
    mesh_terms: list[str]
    sections: list[tuple[str, str]]   # (label, text); label "" for an unlabelled abstract
    content_hash: str | None
    design: str                        # the study type kb reads from the publication types

    def data(self) -> dict:
        """The study as the model gets it (JSON between delimiters, see kb.cards.generate)."""
        return {
            "title": self.title,
            "year": self.year,
            "journal": self.journal,
            "publication_types": self.publication_types,
            "mesh_terms": self.mesh_terms,
            "abstract": [{"label": label, "text": text} for label, text in self.sections],
        }

    def text(self) -> str:
        """Everything the model was given, as plain text: what the guardrails check numbers against."""
        parts = [self.title, str(self.year or ""), self.journal, *self.publication_types, *self.mesh_terms]
        for label, text in self.sections:
            parts += [label, text]
        return "\n".join(p for p in parts if p)


def load_source(session: Session, pmid: int) -> StudySource:
    """The study as the model sees it (kept for the session: a card saved after its generation
    is checked against the same source without reading it again)."""
    cache: dict[int, StudySource] = session.info.setdefault("kb.sources", {})
    study = session.get(m.Study, pmid)
    if pmid in cache and study is not None and cache[pmid].content_hash == study.content_hash:
        return cache[pmid]
    cache[pmid] = _read_source(session, pmid, study)
    return cache[pmid]


def remember_source(session: Session, source: StudySource) -> None:
    """Use ``source`` (read in another session) for its study in ``session``."""
    session.info.setdefault("kb.sources", {})[source.pmid] = source


def _read_source(session: Session, pmid: int, study: m.Study | None) -> StudySource:
    if study is None:
        raise NotFound(f"PMID {pmid} is not in the knowledge base: ingest it first (kb ingest {pmid})")
    if study.is_placeholder:
        raise InputError(f"PMID {pmid} is known only from its card: ingest it (kb ingest {pmid}) to generate a draft")
    types = session.scalars(select(m.PublicationType.name).where(m.PublicationType.pmid == pmid)
                            .order_by(m.PublicationType.position)).all()
    mesh = session.scalars(select(m.MeshHeading.descriptor_name).where(m.MeshHeading.pmid == pmid)
                           .order_by(m.MeshHeading.position)).all()
    sections = [((row["label"] or ""), row["text"] or "") for row in run_query(session, "card_abstract", pmid=pmid)]
    design = session.execute(text("SELECT study_type FROM study_overview WHERE pmid = :pmid"), {"pmid": pmid}).scalar()
    return StudySource(
        pmid=pmid, title=study.title or "", year=study.pub_year,
        journal=study.journal_title or study.journal_iso_abbrev or "",
        publication_types=list(types), mesh_terms=list(mesh),
        sections=[(label, text) for label, text in sections if text.strip()],
        content_hash=study.content_hash,
        design=DESIGN_LABELS.get(design or "other", "Other"),
    )
