"""What a language model is given to draft a card, and what the guardrails check the card against.

Only the record's title, abstract sections with their labels, publication types, MeSH terms,
year and journal: never curated text, never anything else from the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from kb import models as m
from kb.cards.data import design_label, run_query
from kb.cards.site import batched_query
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


def load_sources(session: Session, pmids: Iterable[int], *, chunk: int = 500) -> dict[int, StudySource]:
    """:func:`load_source` for many studies: a few set-based queries per ``chunk`` studies, the
    same sources (kept for the session as well). PMIDs not stored or known only from a card are
    left out (:func:`load_source` says why)."""
    cache: dict[int, StudySource] = session.info.setdefault("kb.sources", {})
    wanted = list(dict.fromkeys(int(p) for p in pmids))
    out: dict[int, StudySource] = {}
    for start in range(0, len(wanted), chunk):
        ids = wanted[start:start + chunk]
        studies = session.execute(select(m.Study.pmid, m.Study.title, m.Study.pub_year, m.Study.journal_title,
                                         m.Study.journal_iso_abbrev, m.Study.content_hash, m.Study.is_placeholder)
                                  .where(m.Study.pmid.in_(ids))).all()
        types, mesh, sections = defaultdict(list), defaultdict(list), defaultdict(list)
        for pmid, name in session.execute(select(m.PublicationType.pmid, m.PublicationType.name).where(
                m.PublicationType.pmid.in_(ids)).order_by(m.PublicationType.pmid, m.PublicationType.position)):
            types[pmid].append(name)
        for pmid, name in session.execute(select(m.MeshHeading.pmid, m.MeshHeading.descriptor_name).where(
                m.MeshHeading.pmid.in_(ids)).order_by(m.MeshHeading.pmid, m.MeshHeading.position)):
            mesh[pmid].append(name)
        for row in session.execute(batched_query("card_abstract"), {"pmids": ids}).mappings():
            sections[row["batch_pmid"]].append(((row["label"] or ""), row["text"] or ""))
        designs = dict(session.execute(text("SELECT pmid, study_type FROM study_overview WHERE pmid IN :pmids")
                                       .bindparams(bindparam("pmids", expanding=True)), {"pmids": ids}).all())
        for pmid, title, year, journal, abbrev, content_hash, placeholder in studies:
            if placeholder:
                continue
            out[pmid] = cache[pmid] = StudySource(
                pmid=pmid, title=title or "", year=year, journal=journal or abbrev or "",
                publication_types=types[pmid], mesh_terms=mesh[pmid],
                sections=[(label, text_) for label, text_ in sections[pmid] if text_.strip()],
                content_hash=content_hash, design=design_label(designs.get(pmid)))
    return {pmid: out[pmid] for pmid in wanted if pmid in out}


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
        design=design_label(design),
    )
