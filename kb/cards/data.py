"""The data behind a card, read with the named SQL queries in ``kb/cards/queries``.

The queries are plain files so that an analyst can run the same ones by hand
(``kb query -f kb/cards/queries/card_study.sql -p pmid=31902683``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from kb.cards.draft import make_draft
from kb.cards.guardrails import summary
from kb.cards.model import ITEM_LISTS, PARAGRAPH_FIELDS, CardDoc, Item
from kb.cards.textformat import notice_line
from kb.errors import NotFound

PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
# study_overview.study_type -> the study type a card shows
DESIGN_LABELS = {
    "meta-analysis": "Meta-Analysis",
    "systematic review": "Systematic Review",
    "randomized controlled trial": "Randomized Controlled Trial",
    "clinical trial": "Clinical Trial",
    "observational study": "Observational Study",
    "case report": "Case Report",
    "review": "Review",
    "commentary": "Commentary",
    "other": "Other",
}


def design_label(study_type: str | None) -> str:
    """The study type a card shows for a study_overview.study_type (None: 'Other')."""
    return DESIGN_LABELS.get(study_type or "other", "Other")


@cache
def query_text(name: str) -> str:
    """The SQL of the named card query (a file in kb/cards/queries)."""
    resource = resources.files("kb.cards") / "queries" / f"{name}.sql"
    if not resource.is_file():
        raise KeyError(f"no card query named {name!r}")
    return resource.read_text(encoding="utf-8")


def run_query(session: Session, name: str, **params: Any) -> list[Any]:
    return list(session.execute(text(query_text(name)), params).mappings())


@dataclass(frozen=True)
class Notice:
    """A line at the top of a card that warns the reader; written by kb, never stored."""

    kind: str   # retracted, expression_of_concern, deleted, changed, draft
    icon: str
    title: str
    text: str

    @property
    def line(self) -> str:
        """The notice as the text format writes it: its own line above the headline."""
        return notice_line(self.icon, self.title, self.text)


@dataclass
class CardView:
    """A card ready to render: the curated (or drafted) content and the study it is about."""

    doc: CardDoc
    study: dict[str, Any]
    status: str | None                    # the card's status; None when there is no card row
    generated: bool                        # no curated card: drafted now from the record
    notices: list[Notice] = field(default_factory=list)
    card_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_draft(self) -> bool:
        return self.generated or self.status == "draft"


def load_card(session: Session, pmid: int) -> CardView:
    rows = run_query(session, "card_study", pmid=pmid)
    if not rows:
        raise NotFound(f"PMID {pmid} is not in the knowledge base: ingest it first (kb ingest {pmid})")
    row = rows[0]
    if row["card_pmid"] is None:
        return view_from_rows(row, [], run_query(session, "card_abstract", pmid=pmid))
    return view_from_rows(row, run_query(session, "card_items", pmid=pmid), [])


def view_from_rows(row: Any, items: list[Any], abstract: list[Any]) -> CardView:
    """A card from its ``card_study`` row and its ``card_items`` rows (a curated card) or its
    ``card_abstract`` rows (a study without a card: the draft is made from them). Shared by
    :func:`load_card` and the batched reader of ``kb cards build`` (kb.cards.site)."""
    design = design_label(row["study_type"])
    if row["card_pmid"] is None:
        doc = make_draft(row["pmid"], row["title"] or "", design, abstract)
        view = CardView(doc=doc, study=study_info(row, doc, design), status=None, generated=True)
    else:
        doc = doc_from_rows(row, items)
        view = CardView(doc=doc, study=study_info(row, doc, design), status=row["status"], generated=False)
        view.card_meta = {
            "status": row["status"], "curator": row["curator"], "revision": row["revision"],
            "needs_review": bool(row["needs_review"]), "review_reason": row["review_reason"],
            "reviewed_by": row["reviewed_by"], "reviewed_at": _iso(row["reviewed_at"]),
            "updated_at": _iso(row["updated_at"]),
            "checks": json_value(row["checks"]),
        }
    view.notices = notices_for(row, view)
    return view


def json_value(value: Any) -> Any:
    """A JSON column from a raw query: text on SQLite, parsed on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def _iso(value: Any) -> str | None:
    """A timestamp from a raw query: a datetime on PostgreSQL, text on SQLite."""
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def doc_from_rows(row: Any, items: list[Any]) -> CardDoc:
    doc = CardDoc(pmid=row["pmid"])
    for name in PARAGRAPH_FIELDS:
        column = "card_study_design" if name == "study_design" else name
        setattr(doc, name, row[column] or "")
    doc.study_type = row["curated_study_type"] or ""
    doc.reference_title = row["reference_title"] or ""
    doc.reference_source = row["reference_source"] or ""
    doc.reference_year = row["reference_year"]
    extracted = row["extracted_fields"]
    doc.extracted_fields = list(json.loads(extracted) if isinstance(extracted, str) else extracted or [])
    doc.generated_fields = list(json_value(row["generated_fields"]) or [])
    where = {key: name for name, key in ITEM_LISTS.items()}
    for item in items:
        getattr(doc, where[(item["kind"], item["audience"])]).append(
            Item(text=item["text"], label=item["label"], source=item["source"])
        )
    return doc


def study_info(row: Any, doc: CardDoc, design: str) -> dict[str, Any]:
    """What the card says about the study: PubMed's record, or the card's own statements for a
    placeholder (a study known only from an imported card)."""
    placeholder = bool(row["is_placeholder"])
    year = (doc.reference_year if placeholder else row["pub_year"]) or doc.reference_year
    title = (doc.reference_title if placeholder else row["title"]) or doc.reference_title
    journal = row["journal_iso_abbrev"] or row["journal_title"]
    if placeholder or not journal:
        stated = doc.reference_source
        if stated and stated.strip().lower() == "pubmed":  # the database, not a journal (legacy cards)
            stated = None
        journal = stated or journal
    return {
        "pmid": row["pmid"],
        "title": title or "",
        "title_markup": row["title_markup"] if not placeholder else None,
        "journal": journal or "",
        "year": year,
        "type": doc.study_type or design,
        "design": design,
        # both types side by side: the curator's (None when the card states none) and PubMed's
        "curated_type": doc.study_type or None,
        "pubmed_type": None if placeholder else design,
        "doi": row["doi"],
        "pmcid": row["pmcid"],
        "url": PUBMED_URL.format(pmid=row["pmid"]),
        "evidence_status": row["evidence_status"],
        "is_retracted": bool(row["is_retracted"]),
        "is_deleted": bool(row["is_deleted"]),
        "is_placeholder": placeholder,
        "content_hash": row["content_hash"],
    }


def notices_for(row: Any, view: CardView) -> list[Notice]:
    """The lines above a card's headline, most serious first; the draft mark comes last."""
    found: list[Notice] = []
    status = row["evidence_status"]
    if row["is_retracted"] or status == "retracted":
        found.append(Notice("retracted", "⚠️", "RETRACTED",
                            "PubMed lists this study as retracted. Do not rely on its findings."))
    elif status == "expression_of_concern":
        found.append(Notice("expression_of_concern", "⚠️", "EXPRESSION OF CONCERN",
                            "The journal has published an expression of concern about this study."))
    elif status == "erratum":  # the site index shows it as a badge: the card says it too
        found.append(Notice("erratum", "⚠️", "ERRATUM",
                            "The journal has published a correction (erratum) to this study; check it before "
                            "relying on the details."))
    elif status == "updated":
        found.append(Notice("updated", "⚠️", "UPDATED", "An updated version of this study has been published."))
    if row["is_deleted"]:
        found.append(Notice("deleted", "⚠️", "DELETED", "PubMed has deleted this citation."))
    if (not view.generated and not row["is_placeholder"] and row["record_content_hash"]
            and row["record_content_hash"] != row["content_hash"]):
        found.append(Notice("changed", "⚠️", "RECORD CHANGED",
                            "The PubMed record changed after this card was written; the card awaits review."))
    # A draft of a record without an abstract has nothing to summarise: the mark says what is missing.
    missing = "" if view.doc.quick_summary else " The Quick Summary is not written yet."
    if view.generated:
        found.append(Notice("draft", "📝", "DRAFT",
                            "Generated from the PubMed record by kb; no curator has written or reviewed it." + missing))
    elif view.status == "draft" and view.card_meta.get("checks"):
        # The draft mark of a card a language model wrote (kb curate generate), with its checks.
        found.append(Notice("draft", "📝", "DRAFT", "Written by a language model from the PubMed record; no "
                            f"curator has reviewed it yet. {summary(view.card_meta['checks'])}.{missing}"))
    elif view.status == "draft":
        found.append(Notice("draft", "📝", "DRAFT", "This card has not been reviewed yet." + missing))
    return found
