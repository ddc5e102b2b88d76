"""Curation: cards saved as revisions, legacy card import and export, status, history and lint.

Every save writes the whole card (paragraph fields in ``cards``, one row per bullet in
``findings``/``limitations``/``notes``) and a ``card_revisions`` row holding the card's text and
its JSON, in the caller's transaction: a failed save leaves nothing behind. Curated text is only
ever written here; ingest and refresh never touch it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from kb import models as m
from kb import search, store
from kb.cards import guardrails
from kb.cards.data import DESIGN_LABELS, CardView, load_card
from kb.cards.model import ITEM_LISTS, PARAGRAPH_FIELDS, CardDoc, Item
from kb.cards.render import render
from kb.cards.source import load_source
from kb.cards.textformat import CardFormatError, parse_card
from kb.errors import InputError, NotFound

_TABLES = {"finding": m.Finding, "limitation": m.Limitation, "note": m.Note}


@dataclass
class SaveResult:
    pmid: int
    revision: int
    changed: bool
    created_placeholder: bool = False


def export_text(view: CardView) -> str:
    """The card in kb's text format as a curator writes it: without kb's notices."""
    view.notices = []
    return render(view, "text")


def card_text(session: Session, pmid: int) -> str:
    """What ``kb curate edit`` and ``kb curate export`` start from: the card (or its draft)."""
    return export_text(load_card(session, pmid))


def save_card(session: Session, doc: CardDoc, *, action: str, author: str | None,
              status: str | None = None) -> SaveResult:
    """Store ``doc`` as the card of ``doc.pmid``: a new revision, unless nothing changed."""
    if doc.pmid is None:
        raise InputError("the card does not say which study it is about (its '📄 Read Full Study (PMID: …)' line)")
    if status is not None and status not in m.CARD_STATUSES:
        raise InputError(f"unknown card status {status!r}: use one of {', '.join(m.CARD_STATUSES)}")
    pmid = doc.pmid
    store.serialise_writers(session)  # PostgreSQL: one save at a time (SQLite: BEGIN IMMEDIATE)
    card = session.get(m.Card, pmid, populate_existing=True)
    problems = validate(doc, status or (card.status if card is not None else "draft"))
    if problems:
        raise CardFormatError(problems, f"the card for PMID {doc.pmid}")
    created = store.ensure_placeholder(session, pmid, title=doc.reference_title, pub_year=doc.reference_year)
    study = session.get(m.Study, pmid)
    assert study is not None
    # Without a card, the view is a draft made now from the record: only an edit starts from it.
    before = None if created or (card is None and action != "edit") else load_card(session, pmid)
    # An edit of a generated draft keeps the draft's marks on what the curator left as it was;
    # an imported card is all the curator's.
    previous = before.doc if before is not None and (not before.generated or action == "edit") else None
    _keep_extraction_marks(doc, previous)
    if card is not None and previous is not None and previous.same_content(doc) and status in (None, card.status):
        return SaveResult(pmid, card.revision, changed=False)
    if card is None:
        card = m.Card(pmid=pmid, revision=0, status=status or "draft")
        session.add(card)
    for name in PARAGRAPH_FIELDS:
        setattr(card, name, getattr(doc, name) or None)
    card.curated_study_type = doc.study_type or None
    card.reference_title = doc.reference_title or None
    card.reference_source = doc.reference_source or None
    card.reference_year = doc.reference_year
    card.extracted_fields = list(doc.extracted_fields)
    _store_checks(session, card, doc, content_changed=previous is None or not previous.same_content(doc))
    if status is not None:
        card.status = status
    card.curator = author
    card.record_content_hash = None if study.is_placeholder else study.content_hash
    card.needs_review = False   # a curator saved it against the record as it is now
    card.review_reason = None
    card.revision = (card.revision or 0) + 1
    session.flush()
    _replace_items(session, pmid, doc, author)
    search.reindex_studies(session, [pmid])
    session.add(m.CardRevision(
        pmid=pmid, revision=card.revision, author=author, action=action,
        card_text=card_text(session, pmid), content=doc.to_json(),
    ))
    session.flush()
    return SaveResult(pmid, card.revision, changed=True, created_placeholder=created)


def validate(doc: CardDoc, status: str) -> list[str]:
    """What must hold before a card is stored (the format's reader checks the layout). A draft
    may still lack its Quick Summary; a reviewed or published card may not."""
    problems = []
    if not doc.headline.strip():
        problems.append("the headline is empty")
    if not doc.quick_summary.strip() and status != "draft":
        problems.append(f"the Quick Summary is empty (a {status} card needs one)")
    for name in ITEM_LISTS:
        for item in getattr(doc, name):
            if "\n" in item.text or not item.text.strip():
                problems.append(f"a bullet in {name.replace('_', ' ')} is empty or spans lines")
    return problems


def _keep_extraction_marks(doc: CardDoc, previous: CardDoc | None) -> None:
    """Text a curator saved unchanged from a draft stays marked as extracted; rewritten text is
    the curator's."""
    if previous is None:
        doc.extracted_fields = [f for f in doc.extracted_fields if f in PARAGRAPH_FIELDS and getattr(doc, f)]
        return
    marks = set(doc.extracted_fields) | set(previous.extracted_fields)
    doc.extracted_fields = [f for f in PARAGRAPH_FIELDS
                            if f in marks and getattr(doc, f) and getattr(doc, f) == getattr(previous, f)]
    for name in ITEM_LISTS:
        extracted = [i for i in getattr(previous, name) if i.source == "extracted"]
        for item in getattr(doc, name):
            if item.source != "extracted" and any(item.same_words(e) for e in extracted):
                item.source = "extracted"
    _keep_generation_marks(doc, previous)


def _keep_generation_marks(doc: CardDoc, previous: CardDoc | None) -> None:
    """As for extraction marks: text a language model wrote stays marked generated until a curator
    rewrites it (the study type too)."""
    fields = (*PARAGRAPH_FIELDS, "study_type")
    if previous is None:
        doc.generated_fields = [f for f in doc.generated_fields if f in fields and getattr(doc, f)]
        return
    marks = set(doc.generated_fields) | set(previous.generated_fields)
    doc.generated_fields = [f for f in fields if f in marks and getattr(doc, f) and getattr(doc, f) == getattr(previous, f)]
    for name in ITEM_LISTS:
        generated = [i for i in getattr(previous, name) if i.source == "generated"]
        for item in getattr(doc, name):
            if item.source == "curator" and any(item.same_words(g) for g in generated):
                item.source = "generated"


def _store_checks(session: Session, card: m.Card, doc: CardDoc, *, content_changed: bool) -> None:
    """The guardrail results of the card's generated text (none when nothing is generated). A
    change of content clears the overrides a curator gave for the text before."""
    card.generated_fields = list(doc.generated_fields)
    if content_changed:
        card.check_overrides = []
    if not guardrails.has_generated_text(doc):
        card.checks = None
        return
    source = load_source(session, doc.pmid)
    card.checks = guardrails.check_card(doc, source=source.text(), publication_types=source.publication_types,
                                        design=source.design)


def _replace_items(session: Session, pmid: int, doc: CardDoc, author: str | None) -> None:
    for table in _TABLES.values():
        session.execute(delete(table).where(table.pmid == pmid))
    rows: dict[str, list[dict]] = {kind: [] for kind in _TABLES}
    for name, (kind, audience) in ITEM_LISTS.items():
        for position, item in enumerate(getattr(doc, name)):
            rows[kind].append({"pmid": pmid, "position": position, "audience": audience, "label": item.label,
                               "text": item.text, "source": item.source, "author": author})
    for kind, values in rows.items():
        if values:
            session.execute(insert(_TABLES[kind]), values)


def draft_card(session: Session, pmid: int, *, author: str | None) -> SaveResult | None:
    """Store the generated draft of a study that has no card (None when it has one)."""
    if session.get(m.Card, pmid) is not None:
        return None
    view = load_card(session, pmid)
    doc = view.doc
    for name in ITEM_LISTS:
        for item in getattr(doc, name):
            item.source = "extracted"
    return save_card(session, doc, action="draft", author=author, status="draft")


# --------------------------------------------------------------------------------------------
# Import and export
# --------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    saved: list[SaveResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # file -> why

    def summary(self) -> str:
        new = sum(1 for r in self.saved if r.changed)
        placeholders = sum(1 for r in self.saved if r.created_placeholder)
        return (f"imported {new} cards ({len(self.saved) - new} unchanged, {placeholders} placeholder studies "
                f"created), failed {len(self.failed)}")


def read_card_file(path: Path) -> CardDoc:
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_card(raw, source=str(path), markdown=True if path.suffix.lower() in (".md", ".markdown") else None)


def export_cards(session: Session, pmids: Iterable[int] | None, outdir: Path, *, fmt: str = "text") -> list[Path]:
    """Write curated cards (all when ``pmids`` is None) as ``card-PMID.txt`` (or ``.md``)."""
    if pmids is None:
        pmids = session.scalars(select(m.Card.pmid).order_by(m.Card.pmid)).all()
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for pmid in pmids:
        if session.get(m.Card, pmid) is None:
            raise NotFound(f"PMID {pmid} has no curated card to export")
        view = load_card(session, pmid)
        view.notices = []
        path = outdir / f"card-{pmid}.{'md' if fmt == 'md' else 'txt'}"
        path.write_text(render(view, fmt), encoding="utf-8")
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# Status and history
# --------------------------------------------------------------------------------------------


def set_status(session: Session, pmid: int, status: str, *, author: str | None,
               overrides: Iterable[str] = ()) -> SaveResult:
    """Set a card's status. Publishing a card whose generated text fails a guardrail check is
    refused unless each failed check is named in ``overrides`` (recorded with ``author``)."""
    card = session.get(m.Card, pmid)
    if card is None:
        raise NotFound(f"PMID {pmid} has no card: write one first (kb curate edit {pmid} or kb curate draft {pmid})")
    overrides = list(dict.fromkeys(overrides))
    unknown = [c for c in overrides if c not in guardrails.CHECKS]
    if unknown:
        raise InputError(f"unknown check {unknown[0]!r} for --override: use one of {', '.join(guardrails.CHECKS)}")
    failed = guardrails.failed(card.checks, blocking_only=True) if status == "published" else []
    refused = [c for c in failed if c not in overrides]
    if refused:
        reasons = "; ".join(f"{c}: {card.checks[c]['message']}" for c in refused)
        raise InputError(f"PMID {pmid} is not published: its generated text fails {', '.join(refused)} ({reasons}); "
                         f"fix it (kb curate edit {pmid}) or publish anyway with "
                         + " ".join(f"--override {c}" for c in refused))
    used = [c for c in overrides if c in failed]
    doc = load_card(session, pmid).doc
    result = save_card(session, doc, action="status+override" if used else "status", author=author, status=status)
    if used:
        card.check_overrides = [*card.check_overrides, *({"check": c, "author": author, "revision": result.revision,
                                                          "at": m.utcnow().isoformat(timespec="seconds")}
                                                         for c in used)]
        session.flush()
    return result


@dataclass
class HistoryEntry:
    revision: int
    author: str | None
    at: str
    action: str
    diff: str


def history(session: Session, pmid: int) -> list[HistoryEntry]:
    rows = session.execute(
        select(m.CardRevision).where(m.CardRevision.pmid == pmid).order_by(m.CardRevision.revision)
    ).scalars().all()
    if not rows and session.get(m.Study, pmid) is None:
        raise NotFound(f"PMID {pmid} is not in the knowledge base")
    entries, before = [], ""
    for row in rows:
        diff = "".join(difflib.unified_diff(
            before.splitlines(keepends=True), row.card_text.splitlines(keepends=True),
            fromfile=f"revision {row.revision - 1}" if before else "(no card)", tofile=f"revision {row.revision}",
        ))
        entries.append(HistoryEntry(row.revision, row.author, row.created_at.isoformat(timespec="seconds"),
                                    row.action, diff))
        before = row.card_text
    return entries


# --------------------------------------------------------------------------------------------
# Lint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LintFinding:
    pmid: int
    check: str
    message: str

    def line(self) -> str:
        return f"{self.pmid}\t{self.check}\t{self.message}"


# Words a curator uses for a study type -> study_overview.study_type
_TYPE_WORDS = (
    ("meta-analysis", ("meta-analysis", "meta analysis", "metaanalysis")),
    ("systematic review", ("systematic review",)),
    ("randomized controlled trial", ("randomized controlled", "randomised controlled", "rct", "randomized trial",
                                     "randomised trial")),
    ("clinical trial", ("clinical trial", "trial")),
    ("observational study", ("observational", "cohort", "case-control", "case control", "cross-sectional",
                             "cross sectional", "registry")),
    ("case report", ("case report", "case series")),
    ("commentary", ("comment", "editorial", "letter")),
    ("review", ("review",)),
)


def design_of_curated_type(value: str) -> str | None:
    text = value.casefold()
    for design, words in _TYPE_WORDS:
        if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words):
            return design
    return None


def _normal_title(value: str) -> str:
    value = unicodedata.normalize("NFKC", value).casefold()
    return re.sub(r"[\W_]+", " ", value).strip()


def lint(session: Session, pmids: Iterable[int] | None = None) -> list[LintFinding]:
    """Where cards disagree with their PubMed records (all cards when ``pmids`` is None)."""
    query = select(m.Card.pmid).order_by(m.Card.pmid)
    if pmids is not None:
        wanted = sorted(set(pmids))
        missing = [p for p in wanted if session.get(m.Card, p) is None]
        if missing:
            raise NotFound(f"no card for PMID {', '.join(map(str, missing))}")
        query = query.where(m.Card.pmid.in_(wanted))
    findings: list[LintFinding] = []
    for pmid in session.scalars(query).all():
        findings += _lint_one(session, pmid)
    return findings


def _lint_one(session: Session, pmid: int) -> list[LintFinding]:
    card = session.get(m.Card, pmid)
    study = session.get(m.Study, pmid)
    assert card is not None and study is not None
    view = load_card(session, pmid)
    out: list[LintFinding] = []

    def flag(check: str, message: str) -> None:
        out.append(LintFinding(pmid, check, message))

    if study.is_placeholder:
        flag("placeholder", f"the study is known only from its card: ingest it (kb ingest {pmid}) to check the card")
    else:
        pub_types = session.scalars(
            select(m.PublicationType.name).where(m.PublicationType.pmid == pmid).order_by(m.PublicationType.position)
        ).all()
        design = view.study["design"]
        if card.curated_study_type:
            curated = design_of_curated_type(card.curated_study_type)
            listed = {t.casefold() for t in pub_types}
            if (card.curated_study_type.casefold() not in listed | {design.casefold()}
                    and curated != _design_key(design)):
                flag("type", f"the card calls it {card.curated_study_type!r}, but PubMed lists it as "
                             f"{'; '.join(pub_types) or 'no publication type'} ({design})")
        if card.reference_year and study.pub_year and card.reference_year != study.pub_year:
            flag("year", f"the card says {card.reference_year}, PubMed says {study.pub_year}")
        if card.reference_title and study.title and _normal_title(card.reference_title) != _normal_title(study.title):
            flag("title", f"the card's title {card.reference_title!r} differs from PubMed's {study.title!r}")
        if card.record_content_hash and card.record_content_hash != study.content_hash:
            flag("outdated", "the card was written against an older version of the PubMed record: review it")
    if card.status == "published" and (study.is_retracted or study.evidence_status == "retracted"):
        flag("retracted", "the card is published, but PubMed lists the study as retracted")
    if card.status == "published" and study.is_deleted:
        flag("deleted", "the card is published, but PubMed deleted the citation")
    for heading in view.doc.empty_sections():
        flag("empty", f"the section '{heading}' is empty")
    overridden = {o["check"] for o in card.check_overrides or []}
    for name in guardrails.failed(card.checks):
        if name not in overridden:
            flag(name, f"generated text: {card.checks[name]['message']}")
    return out



def _design_key(label: str) -> str:
    return next((k for k, v in DESIGN_LABELS.items() if v == label), label.casefold())


def count_cards(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(m.Card)) or 0


__all__ = ["Item", "SaveResult", "save_card", "export_cards", "lint", "history", "set_status", "draft_card",
           "read_card_file", "ImportReport", "card_text", "export_text"]
