"""Curation: cards saved as revisions, legacy card import and export, status, history and lint.

Every save writes the whole card (paragraph fields in ``cards``, one row per bullet in
``findings``/``limitations``/``notes``) and a ``card_revisions`` row holding the card's text and
its JSON, in the caller's transaction: a failed save leaves nothing behind. Curated text is only
ever written here; ingest and refresh never touch it.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, inspect, select
from sqlalchemy.orm import Session

from kb import models as m
from kb import search, store
from kb.batches import chunked
from kb.cards import guardrails
from kb.cards.data import DESIGN_LABELS, CardView, design_label, load_card, run_query, study_info, view_from_rows
from kb.cards.model import ITEM_LISTS, PARAGRAPH_FIELDS, CardDoc, Item
from kb.cards.render import render
from kb.cards.site import batched_rows, study_rows
from kb.cards.source import load_source
from kb.cards.textformat import NOTICE_MARKERS, CardFormatError, ReadCard, label_problem, read_card
from kb.errors import InputError, NotFound
from kb.files import make_dir, write_text
from kb.wording import counted

@dataclass
class SaveResult:
    pmid: int
    revision: int
    changed: bool
    created_placeholder: bool = False


def export_text(view: CardView) -> str:
    """The card in kb's text format as a curator writes it: without kb's notices, and like the
    example card, without a newline after its last line."""
    view.notices = []
    return render(view, "text").removesuffix("\n")


def card_text(session: Session, pmid: int) -> str:
    """What ``kb curate edit`` and ``kb curate export`` start from: the card (or its draft)."""
    return export_text(load_card(session, pmid))


@dataclass
class _Stored:
    """What is stored about one study, read in the saving transaction once and handed on rather
    than read again: its ``card_study`` row (None: the PMID is not stored) and, when it has a
    card, the card's ``card_items`` rows. Valid until the transaction writes that study's rows."""

    row: Any | None
    items: list[Any] | None = None
    last_revision: int | None = None  # the highest revision of the study's card_revisions (None: not read)

    @property
    def has_card(self) -> bool:
        return self.row is not None and self.row["card_pmid"] is not None

    def view(self, session: Session) -> CardView:
        """What :func:`load_card` gives for the study (the card, or the draft made now)."""
        assert self.row is not None
        if self.has_card:
            return view_from_rows(self.row, self.items or [], [])
        return view_from_rows(self.row, [], run_query(session, "card_abstract", pmid=self.row["pmid"]))


def _read_stored(session: Session, pmid: int) -> _Stored:
    session.flush()  # (the card queries are plain SQL: they do not flush the session themselves)
    rows = run_query(session, "card_study", pmid=pmid)
    if not rows:
        return _Stored(None)
    row = rows[0]
    return _Stored(row, run_query(session, "card_items", pmid=pmid) if row["card_pmid"] is not None else None)


def save_card(session: Session, doc: CardDoc, *, action: str, author: str | None,
              status: str | None = None) -> SaveResult:
    """Store ``doc`` as the card of ``doc.pmid``: a new revision, unless nothing changed."""
    return _save(session, doc, action=action, author=author, status=status)


def _save(session: Session, doc: CardDoc, *, action: str, author: str | None, status: str | None,
          stored: _Stored | None = None, reindex: bool = True) -> SaveResult:
    """:func:`save_card`; ``stored``: what the caller read about the study in this transaction,
    after :func:`kb.store.serialise_writers` (read here when None); ``reindex=False``: the caller
    rebuilds the study's index row itself, in the same transaction."""
    if doc.pmid is None:
        raise InputError("the card does not say which study it is about (its '📄 Read Full Study (PMID: …)' line)")
    if status is not None and status not in m.CARD_STATUSES:
        raise InputError(f"unknown card status {status!r}: use one of {', '.join(m.CARD_STATUSES)}")
    pmid = doc.pmid
    if stored is None:
        store.serialise_writers(session)  # PostgreSQL: one save at a time (SQLite: BEGIN IMMEDIATE)
        stored = _read_stored(session, pmid)
    card = session.get(m.Card, pmid, populate_existing=True) if stored.has_card else None
    problems = validate(doc, status or (card.status if card is not None else "draft"))
    if problems:
        raise CardFormatError(problems, f"the card for PMID {doc.pmid}")
    created = False
    if stored.row is None:
        created = store.ensure_placeholder(session, pmid, title=doc.reference_title, pub_year=doc.reference_year)
        stored = _read_stored(session, pmid)
    study = stored.row
    assert study is not None
    # Without a card, the view is a draft made now from the record: only an edit starts from it.
    before = None if created or (card is None and action != "edit") else stored.view(session)
    # An edit of a generated draft keeps the draft's marks on what the curator left as it was;
    # an imported card is all the curator's.
    previous = before.doc if before is not None and (not before.generated or action == "edit") else None
    carry_marks(doc, previous)
    if previous is not None and not before.generated and not doc.reference_source:
        doc.reference_source = previous.reference_source  # the current layout has no place for it
    if card is not None and previous is not None and previous.same_content(doc) and status in (None, card.status):
        return SaveResult(pmid, card.revision, changed=False)
    status_from = card.status if card is not None else None
    new = card is None
    if new:  # numbering goes on after a deleted card's revisions
        last = stored.last_revision
        if last is None:
            last = session.execute(_LAST_REVISION, {"b_pmid": pmid}).scalar()
        card = m.Card(pmid=pmid, revision=last or 0, status=status or "draft")  # (added when it is written)
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
    card.record_content_hash = None if study["is_placeholder"] else study["content_hash"]
    card.needs_review = False   # a curator saved it against the record as it is now
    card.review_reason = None
    card.revision = (card.revision or 0) + 1
    text = _saved_text(study, card, doc)
    revision = None if text is None else _revision(card, action=action, author=author, status_from=status_from,
                                                   doc=doc, text=text)
    if new and revision is not None:  # both inserted without the ORM's unit of work
        for row in (card, revision):
            session.execute(insert(inspect(row).mapper.local_table), _insert_values(row))
    else:
        session.add_all([row for row in (card, revision) if row is not None])
        session.flush()  # the revision goes in with the card
    _replace_items(session, pmid, doc, author)
    if reindex:
        search.reindex_studies(session, [pmid])
    if revision is None:  # its text read back from the rows just written
        _add_revision(session, card, action=action, author=author, status_from=status_from, doc=doc)
    return SaveResult(pmid, card.revision, changed=True, created_placeholder=created)


def _insert_values(row: m.Base) -> dict[str, Any]:
    """The values the ORM would insert for the new object ``row``: the attributes set, except
    None where the column's type does not store None as a value (JSON stores 'null'): such
    columns, and those not set, get their defaults."""
    state = inspect(row)
    columns = {attr.key: attr.columns[0] for attr in state.mapper.column_attrs}
    return {key: value for key, value in state.dict.items()
            if key in columns and (value is not None or columns[key].type.should_evaluate_none)}


def _saved_text(study: Any, card: m.Card, doc: CardDoc) -> str | None:
    """:func:`card_text` of the card about to be saved from ``doc`` against the ``card_study`` row
    ``study``, made without reading the card back: the doc as the card's rows give it back (what
    :func:`kb.cards.data.doc_from_rows` makes of them), rendered as :func:`load_card`'s view is.
    None when the doc holds a value the database might not give back as written (not text, or a
    year that is not an int: only a card's JSON can hold one): the caller reads the card back."""
    texts = (*(getattr(doc, n) for n in (*PARAGRAPH_FIELDS, "study_type", "reference_title", "reference_source")),
             *(v for name in ITEM_LISTS for i in getattr(doc, name) for v in (i.text, i.label)))
    year = doc.reference_year
    if not (all(v is None or isinstance(v, str) for v in texts)
            and (year is None or (isinstance(year, int) and not isinstance(year, bool)))):
        return None
    saved = CardDoc(pmid=card.pmid, reference_year=year, extracted_fields=list(doc.extracted_fields),
                    generated_fields=list(doc.generated_fields))
    for name in (*PARAGRAPH_FIELDS, "study_type", "reference_title", "reference_source"):
        setattr(saved, name, getattr(doc, name) or "")  # stored as NULL when empty, read back as ""
    for name in ITEM_LISTS:
        setattr(saved, name, [Item(text=i.text, label=i.label, source=i.source) for i in getattr(doc, name)])
    design = design_label(study["study_type"])
    return export_text(CardView(doc=saved, study=study_info(study, saved, design), status=card.status,
                                generated=False))


def _revision(card: m.Card, *, action: str, author: str | None, status_from: str | None, doc: CardDoc,
              text: str) -> m.CardRevision:
    return m.CardRevision(pmid=card.pmid, revision=card.revision, author=author, action=action,
                          status_from=status_from, status_to=card.status, card_text=text, content=doc.to_json())


def _add_revision(session: Session, card: m.Card, *, action: str, author: str | None, status_from: str | None,
                  doc: CardDoc) -> None:
    session.add(_revision(card, action=action, author=author, status_from=status_from, doc=doc,
                          text=card_text(session, card.pmid)))
    session.flush()


def validate(doc: CardDoc, status: str) -> list[str]:
    """What must hold before a card is stored (the format's reader checks the layout). A draft
    may still lack its Quick Summary; a reviewed or published card may not."""
    problems = []
    if not doc.headline.strip():
        problems.append("the headline is empty")
    if not doc.quick_summary.strip() and status != "draft":
        problems.append(f"the Quick Summary is empty (a {status} card needs one)")
    if doc.headline.startswith(NOTICE_MARKERS):
        problems.append("the headline may not start with ⚠️ or 📝 (they mark kb's notices above the headline)")
    for name in ("headline", "quick_summary", "who_was_studied", "how_long", "what_they_took", "study_type",
                 "reference_title", "reference_source"):
        if "\n" in (getattr(doc, name) or ""):
            problems.append(f"{name.replace('_', ' ')} spans lines: the layout has one line for it")
    for name in PARAGRAPH_FIELDS:
        if any(not p.strip() or "\n" in p for p in (getattr(doc, name) or "").split("\n\n")) and getattr(doc, name):
            problems.append(f"{name.replace('_', ' ')}: a paragraph is empty or spans lines (one line is one paragraph)")
    # (a missing label where the layout requires one is the reader's to refuse: cards stored
    # before issue 12 may have such bullets, and they still render and change status)
    for name in ITEM_LISTS:
        for item in getattr(doc, name):
            if "\n" in item.text or not item.text.strip():
                problems.append(f"a bullet in {name.replace('_', ' ')} is empty or spans lines")
            elif why := label_problem(item.label):
                problems.append(f"the label {item.label!r} in {name.replace('_', ' ')}: {why}")
    return problems


def carry_marks(doc: CardDoc, previous: CardDoc | None) -> None:
    """Carry ``previous``'s marks over to ``doc`` before it is saved: text a curator saved unchanged
    from a draft stays marked as extracted (or generated); rewritten text is the curator's."""
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


# Core statements of every save, made once (parameter b_pmid). On the bullet tables: kb never holds
# bullets as ORM objects (cards are read with the card queries).
_BULLET_TABLES = {kind: table.__table__ for kind, table in m.BULLET_TABLES.items()}
_DELETE_BULLETS = [delete(t).where(t.c.pmid == bindparam("b_pmid")) for t in _BULLET_TABLES.values()]
_REVISIONS = m.CardRevision.__table__
_LAST_REVISION = select(func.max(_REVISIONS.c.revision)).where(_REVISIONS.c.pmid == bindparam("b_pmid"))
_TYPES = m.PublicationType.__table__
_PUBLICATION_TYPES = select(_TYPES.c.name).where(_TYPES.c.pmid == bindparam("b_pmid")).order_by(_TYPES.c.position)


def _delete_bullets(session: Session, pmid: int) -> None:
    for statement in _DELETE_BULLETS:
        session.execute(statement, {"b_pmid": pmid})


def _replace_items(session: Session, pmid: int, doc: CardDoc, author: str | None) -> None:
    _delete_bullets(session, pmid)
    rows: dict[str, list[dict]] = {kind: [] for kind in m.BULLET_TABLES}
    for name, (kind, audience) in ITEM_LISTS.items():
        for position, item in enumerate(getattr(doc, name)):
            rows[kind].append({"pmid": pmid, "position": position, "audience": audience, "label": item.label,
                               "text": item.text, "source": item.source, "author": author})
    for kind, values in rows.items():
        if values:
            session.execute(insert(_BULLET_TABLES[kind]), values)


def draft_card(session: Session, pmid: int, *, author: str | None) -> SaveResult | None:
    """Store the generated draft of a study that has no card (None when it has one)."""
    made, _asked = draft_cards(session, [pmid], author=author)
    return made[0] if made else None


def studies_without_card(session: Session) -> list[int]:
    """The PMIDs of stored studies (not placeholders) that have no card, in order."""
    return list(session.scalars(
        select(m.Study.pmid).where(~m.Study.pmid.in_(select(m.Card.pmid)), ~m.Study.is_placeholder)
        .order_by(m.Study.pmid)))


def draft_cards(session: Session, pmids: Iterable[int] | None, *, author: str | None) -> tuple[list[SaveResult], int]:
    """Store drafts for ``pmids`` (None: every study without a card); (drafts stored, studies asked for).

    In order, one card at a time as :func:`save_card` stores it, but each batch of studies is read
    with the batched card queries (kb.cards.site) and their index rows are rebuilt once per batch.
    A PMID that is not stored fails with NotFound when its turn comes."""
    store.serialise_writers(session)  # before reading which studies have a card
    session.flush()  # (the card queries are plain SQL: they do not flush the session themselves)
    wanted = studies_without_card(session) if pmids is None else list(pmids)
    made: list[SaveResult] = []
    drafted: set[int] = set()
    for chunk in chunked(wanted):
        rows = study_rows(session, chunk)
        new = [p for p in dict.fromkeys(chunk) if p in rows and rows[p]["card_pmid"] is None]
        abstracts = batched_rows(session, "card_abstract", new)
        revisions = dict(session.execute(
            select(m.CardRevision.pmid, func.max(m.CardRevision.revision))
            .where(m.CardRevision.pmid.in_(new)).group_by(m.CardRevision.pmid)).all()) if new else {}
        saved: list[int] = []  # drafted in this batch, not indexed yet
        try:
            for pmid in chunk:
                row = rows.get(pmid)
                if row is None:
                    raise NotFound(f"PMID {pmid} is not in the knowledge base: ingest it first (kb ingest {pmid})")
                if row["card_pmid"] is not None or pmid in drafted:
                    continue
                doc = view_from_rows(row, [], abstracts[pmid]).doc
                for name in ITEM_LISTS:
                    for item in getattr(doc, name):
                        item.source = "extracted"
                made.append(_save(session, doc, action="draft", author=author, status="draft",
                                  stored=_Stored(row, last_revision=revisions.get(pmid, 0)), reindex=False))
                drafted.add(pmid)
                saved.append(pmid)
        except BaseException:
            # A stored card never goes without its index row, also when a later one failed (the
            # transaction may be unusable by then: the first error is the one to report).
            with contextlib.suppress(Exception):
                search.reindex_studies(session, saved)
            raise
        search.reindex_studies(session, saved)
    return made, len(wanted)


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
        return (f"imported {counted(new, 'card')} ({len(self.saved) - new} unchanged, "
                f"{counted(placeholders, 'placeholder study', 'placeholder studies')} created), "
                f"failed {len(self.failed)}")


def read_card_file(path: Path) -> ReadCard:
    """A card file: kb's text format, its Markdown form (.md) or the JSON of ``kb card --format json``."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if path.suffix.lower() == ".json":
        return ReadCard(_card_from_json(raw, path))
    return read_card(raw, source=str(path), markdown=True if path.suffix.lower() in (".md", ".markdown") else None)


def _card_from_json(raw: str, path: Path) -> CardDoc:
    try:
        data = json.loads(raw)
        doc = CardDoc.from_json(data["card"] if "card" in data else data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path} is not the JSON of a card (kb card PMID --format json): {exc}") from exc
    if not isinstance(doc.pmid, int):
        raise InputError(f"{path}: the card's JSON has no PMID")
    return doc


@dataclass
class ImportPlan:
    """What importing one card does: the diff against the stored card and what to warn about."""

    pmid: int
    diff: str                 # unified diff of the stored card's text and the new one ('' = same)
    exists: bool              # the PMID has a card
    warnings: list[str] = field(default_factory=list)


def plan_import(session: Session, doc: CardDoc, *, warnings: Iterable[str] = ()) -> ImportPlan:
    """Compare ``doc`` with what is stored, without storing anything."""
    return _plan_import(session, doc, _read_stored(session, _pmid_of(doc)), warnings=warnings)


def _pmid_of(doc: CardDoc) -> int:
    assert doc.pmid is not None
    return doc.pmid


def _plan_import(session: Session, doc: CardDoc, stored: _Stored, *, warnings: Iterable[str] = ()) -> ImportPlan:
    pmid = _pmid_of(doc)
    has_card = stored.has_card
    # (trailing spaces compared away: the text format cannot carry them, and the reader drops them)
    old = _trimmed(export_text(stored.view(session))) if has_card else ""
    new = _trimmed(_text_of(stored, doc))
    diff = "".join(difflib.unified_diff(
        _lines(old), _lines(new), fromfile=f"stored card {pmid}" if has_card else "(no card)",
        tofile=f"imported card {pmid}"))
    plan = ImportPlan(pmid, diff, has_card, list(warnings))
    study = stored.row
    if study is None:
        plan.warnings.append(_unknown_pmid_warning(session, doc))
    elif not study["is_placeholder"]:
        plan.warnings += [f"PMID {pmid}: {message} (the card is stored as written)"
                          for _check, message in _disagreements(session, pmid, study["pub_year"], study["title"],
                                                                design_label(study["study_type"]), doc)]
    return plan


def _trimmed(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _lines(text: str) -> list[str]:
    return [f"{line}\n" for line in text.split("\n")] if text else []


def _text_of(stored: _Stored, doc: CardDoc) -> str:
    """``doc`` in the text format as it would be stored (against the stored study, if any)."""
    from kb.cards.data import PUBMED_URL

    study = stored.row
    if study is not None:
        # What load_card(...).study gives: the study with the stored card's statements (a study
        # without a card: its draft's, which states no reference and the design as the type).
        design = design_label(study["study_type"])
        shown = (view_from_rows(study, stored.items or [], []).doc if stored.has_card
                 else CardDoc(pmid=study["pmid"], study_type=design))
        info = study_info(study, shown, design)
        if study["is_placeholder"]:
            info.update(title=doc.reference_title or study["title"], year=doc.reference_year or study["pub_year"])
        info["type"] = doc.study_type or info["design"]
    else:
        info = {"pmid": doc.pmid, "title": doc.reference_title, "year": doc.reference_year,
                "type": doc.study_type or "Other", "url": PUBMED_URL.format(pmid=doc.pmid)}
    return export_text(CardView(doc=doc, study=info, status=None, generated=False))


def _unknown_pmid_warning(session: Session, doc: CardDoc) -> str:
    text = f"PMID {doc.pmid} is not in the knowledge base: a placeholder study is made for it"
    similar = similar_titles(session, doc.reference_title) if doc.reference_title else []
    if similar:
        named = "; ".join(f"PMID {p} {t!r}" for p, t in similar)
        text += f". A stored study has the same or nearly the same title ({named}): is the PMID mistyped?"
    return text


def similar_titles(session: Session, title: str, *, limit: int = 5) -> list[tuple[int, str]]:
    """Stored studies whose title is the same as ``title`` or nearly so (ratio >= 0.9)."""
    wanted = _normal_title(title)
    if not wanted:
        return []
    found = []
    rows = session.execute(select(m.Study.pmid, m.Study.title)
                           .where(func.length(m.Study.title).between(len(title) * 0.8, len(title) * 1.25 + 2)))
    for pmid, stored in rows:
        matcher = difflib.SequenceMatcher(None, wanted, _normal_title(stored or ""))
        if matcher.real_quick_ratio() >= 0.9 and matcher.quick_ratio() >= 0.9 and matcher.ratio() >= 0.9:
            found.append((matcher.ratio(), pmid, stored))
    found.sort(key=lambda f: (-f[0], f[1]))
    return [(pmid, stored) for _ratio, pmid, stored in found[:limit]]


class CardDiffers(InputError):
    """A stored card differs from the imported one, and --replace was not given."""


def import_card(session: Session, read: ReadCard, *, status: str | None, author: str | None,
                replace: bool = False) -> tuple[SaveResult, ImportPlan]:
    """Store an imported card. A card that would replace different stored text needs ``replace``
    (the old text stays as a revision). ``status`` None: a new card is published (what legacy
    cards were), a stored card keeps its status (a draft exported, edited and imported back has
    not been reviewed: importing it does not publish it)."""
    doc = read.doc
    if doc.pmid is None:
        raise InputError("the card does not say which study it is about (its '📄 Read Full Study (PMID: …)' line)")
    store.serialise_writers(session)
    stored = _read_stored(session, doc.pmid)
    plan = _plan_import(session, doc, stored, warnings=read.warnings)
    if stored.has_card and plan.diff and not replace:
        revision = stored.row["revision"]
        raise CardDiffers(f"PMID {doc.pmid} already has a card (revision {revision}) with different text: "
                          f"add --replace to replace it (the stored text stays as revision {revision}), "
                          f"or --dry-run to see the difference")
    if status is None and not stored.has_card:
        status = "published"
    return _save(session, doc, action="import", author=author, status=status, stored=stored), plan


def export_cards(session: Session, pmids: Iterable[int] | None, outdir: Path, *, fmt: str = "text") -> list[Path]:
    """Write curated cards (all when ``pmids`` is None) as ``card-PMID.txt`` (or ``.md``), in
    order, reading them in batches with the batched card queries (kb.cards.site)."""
    if pmids is None:
        pmids = session.scalars(select(m.Card.pmid).order_by(m.Card.pmid)).all()
    make_dir(outdir)
    written = []
    for chunk in chunked(pmids):
        rows = study_rows(session, chunk)
        items = batched_rows(session, "card_items", [p for p in dict.fromkeys(chunk)
                                                     if p in rows and rows[p]["card_pmid"] is not None])
        for pmid in chunk:
            row = rows.get(pmid)
            if row is None or row["card_pmid"] is None:
                raise NotFound(f"PMID {pmid} has no curated card to export")
            view = view_from_rows(row, items[pmid], [])  # what load_card gives for a curated card
            path = outdir / f"card-{pmid}.{'md' if fmt == 'md' else 'txt'}"
            if fmt == "md":
                view.notices = []
                page = render(view, "md")
            else:
                page = export_text(view)
            write_text(path, page)
            written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# Status, review, history, revert, delete
# --------------------------------------------------------------------------------------------


def _card_or_fail(session: Session, pmid: int, *, hint: str | None = None) -> m.Card:
    card = session.get(m.Card, pmid, populate_existing=True)
    if card is None:
        hint = hint or f"write one first (kb curate edit {pmid} or kb curate draft {pmid})"
        raise NotFound(f"PMID {pmid} has no card: {hint}")
    return card


def set_status(session: Session, pmid: int, status: str, *, author: str | None,
               overrides: Iterable[str] = ()) -> SaveResult:
    """Set a card's status. Publishing a card whose generated text fails a guardrail check is
    refused unless each failed check is named in ``overrides`` (recorded with ``author``)."""
    card = _card_or_fail(session, pmid)
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


def review(session: Session, pmid: int, *, author: str | None) -> SaveResult:
    """Mark a card reviewed: a draft becomes 'reviewed' (a published card stays published),
    ``needs_review`` is cleared, and who and when are recorded on the card and as a revision."""
    store.serialise_writers(session)
    card = _card_or_fail(session, pmid)
    study = session.get(m.Study, pmid)
    assert study is not None
    status_from = card.status
    if card.status == "draft":
        card.status = "reviewed"
    card.needs_review = False
    card.review_reason = None
    card.reviewed_by = author
    card.reviewed_at = m.utcnow()
    card.record_content_hash = None if study.is_placeholder else study.content_hash
    card.revision += 1
    session.flush()
    _add_revision(session, card, action="review", author=author, status_from=status_from,
                  doc=load_card(session, pmid).doc)
    return SaveResult(pmid, card.revision, changed=True)


def revert(session: Session, pmid: int, revision: int, *, author: str | None) -> SaveResult:
    """Store revision ``revision`` of a card again, as a new revision (the status is kept)."""
    row = session.scalar(select(m.CardRevision).where(m.CardRevision.pmid == pmid, m.CardRevision.revision == revision))
    if row is None:
        raise NotFound(f"PMID {pmid} has no revision {revision}: see kb curate history {pmid}")
    if not row.content:
        raise InputError(f"revision {revision} of PMID {pmid} is the card's deletion: revert to one before it")
    doc = CardDoc.from_json(row.content)
    deleted = session.get(m.Card, pmid) is None  # a deleted card comes back with the status it had
    return save_card(session, doc, action="revert", author=author, status=row.status_to if deleted else None)


@dataclass
class DeleteResult:
    pmid: int
    revision: int
    removed_placeholder: bool


def delete_card(session: Session, pmid: int, *, author: str | None) -> DeleteResult:
    """Remove a card and its bullets. Its revisions stay in ``card_revisions``, with one more for
    the deletion; a placeholder study with nothing else on it goes too."""
    store.serialise_writers(session)
    card = _card_or_fail(session, pmid, hint="there is nothing to delete")
    revision = card.revision + 1
    session.add(m.CardRevision(pmid=pmid, revision=revision, author=author, action="delete",
                               status_from=card.status, status_to=None, card_text="", content={}))
    _delete_bullets(session, pmid)
    session.delete(card)
    session.flush()
    study = session.get(m.Study, pmid)
    removed = False
    if study is not None and study.is_placeholder:
        in_topic = session.scalar(select(func.count()).select_from(m.TopicStudy).where(m.TopicStudy.pmid == pmid))
        if not in_topic:
            # Out of the index first: on SQLite it is told the text it indexed, read from the study's row
            search.unindex_studies(session, [pmid])
            session.delete(study)
            session.flush()
            removed = True
    search.reindex_studies(session, [pmid])
    return DeleteResult(pmid, revision, removed)


@dataclass
class HistoryEntry:
    revision: int
    author: str | None
    at: str
    action: str
    status_from: str | None   # None: no card before (or a revision saved before kb recorded statuses)
    status_to: str | None     # None: the card was deleted (or, again, an older revision)
    diff: str

    def statuses(self) -> str:
        if self.status_to is None and self.action != "delete":
            return "status not recorded"  # saved before issue 12
        return f"{self.status_from or '(none)'} -> {self.status_to or '(deleted)'}"


def history(session: Session, pmid: int) -> list[HistoryEntry]:
    rows = session.execute(
        select(m.CardRevision).where(m.CardRevision.pmid == pmid).order_by(m.CardRevision.revision)
    ).scalars().all()
    if not rows and session.get(m.Study, pmid) is None:
        raise NotFound(f"PMID {pmid} is not in the knowledge base: ingest it first (kb ingest {pmid})")
    entries, before = [], ""
    for row in rows:
        diff = "".join(difflib.unified_diff(
            _lines(before), _lines(row.card_text),
            fromfile=f"revision {row.revision - 1}" if before else "(no card)",
            tofile=f"revision {row.revision}" if row.card_text else "(deleted)",
        ))
        entries.append(HistoryEntry(row.revision, row.author, row.created_at.isoformat(timespec="seconds"),
                                    row.action, row.status_from, row.status_to, diff))
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
            if len(missing) == 1:
                _card_or_fail(session, missing[0])  # its message
            raise NotFound(f"PMIDs {', '.join(map(str, missing))} have no card: write them first (kb curate edit "
                           "PMID or kb curate draft PMID...)")
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
        for check, message in record_disagreements(session, study, view.doc):
            flag(check, message)
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


def record_disagreements(session: Session, study: m.Study, doc: CardDoc) -> list[tuple[str, str]]:
    """Where a card's type, year and title disagree with the stored PubMed record (check, message).
    ``kb curate lint`` reports them, and so does ``kb curate import`` as warnings."""
    return _disagreements(session, study.pmid, study.pub_year, study.title, _design_label(session, study.pmid), doc)


def _disagreements(session: Session, pmid: int, pub_year: int | None, title: str | None, design: str,
                   doc: CardDoc) -> list[tuple[str, str]]:
    """:func:`record_disagreements` for the study ``pmid`` of that year, title and design label."""
    out = []
    pub_types = session.execute(_PUBLICATION_TYPES, {"b_pmid": pmid}).scalars().all()
    if doc.study_type:
        curated = design_of_curated_type(doc.study_type)
        listed = {t.casefold() for t in pub_types}
        if doc.study_type.casefold() not in listed | {design.casefold()} and curated != _design_key(design):
            out.append(("type", f"the card calls it {doc.study_type!r}, but PubMed lists it as "
                                f"{'; '.join(pub_types) or 'no publication type'} ({design})"))
    if doc.reference_year and pub_year and doc.reference_year != pub_year:
        out.append(("year", f"the card says {doc.reference_year}, PubMed says {pub_year}"))
    if doc.reference_title and title and _normal_title(doc.reference_title) != _normal_title(title):
        out.append(("title", f"the card's title {doc.reference_title!r} differs from PubMed's {title!r}"))
    return out


def _design_label(session: Session, pmid: int) -> str:
    from sqlalchemy import text

    return design_label(session.execute(text("SELECT study_type FROM study_overview WHERE pmid = :pmid"),
                                        {"pmid": pmid}).scalar())


def _design_key(label: str) -> str:
    return next((k for k, v in DESIGN_LABELS.items() if v == label), label.casefold())


def count_cards(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(m.Card)) or 0


__all__ = ["Item", "SaveResult", "save_card", "export_cards", "lint", "history", "set_status", "draft_card",
           "read_card_file", "ImportReport", "card_text", "export_text", "import_card", "plan_import", "review",
           "revert", "delete_card", "record_disagreements", "similar_titles", "carry_marks"]
