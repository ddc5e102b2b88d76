"""The card as data: what a curator writes, independent of any output format.

A card has fixed sections (the layout of ``../shared/examples/card-31902683.txt``, issue 12).
Free text sits in paragraph fields (columns of ``cards``; several paragraphs are joined by a
blank line); bullets are rows of ``findings``, ``limitations`` and ``notes`` with an audience
(lay / technical) and a label.

Where kb holds more than the example has room for, the extra is shown, never dropped: lay
findings are bullets after the What The Research Found paragraph, technical findings after the
Key Findings paragraph, technical notes after Clinical Relevance and technical limitation
bullets (kb's previous layout) after the Limitations paragraph.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Paragraph fields of the card, in layout order (the columns of ``cards`` of the same name).
PARAGRAPH_FIELDS = (
    "headline", "quick_summary", "what_research_found", "who_was_studied", "how_long", "what_they_took",
    "key_findings", "study_design", "dosage_administration", "results_efficacy", "technical_limitations",
    "clinical_relevance",
)
# Item lists: attribute -> (table kind, audience).
ITEM_LISTS = {
    "findings": ("finding", "lay"),
    "notes": ("note", "lay"),
    "limitations": ("limitation", "lay"),
    "technical_findings": ("finding", "technical"),
    "technical_notes": ("note", "technical"),
    "technical_limitation_items": ("limitation", "technical"),
}
ITEM_SOURCES = ("curator", "extracted", "generated")


@dataclass
class Item:
    """One bullet: ``- Label: text`` (or ``- text``)."""

    text: str
    label: str | None = None
    source: str = "curator"

    def same_words(self, other: Item) -> bool:
        return (self.label, self.text) == (other.label, other.text)


@dataclass
class CardDoc:
    """Everything a curator states on a card. Empty strings mean "not stated"."""

    pmid: int | None = None
    headline: str = ""
    quick_summary: str = ""
    what_research_found: str = ""
    findings: list[Item] = field(default_factory=list)
    who_was_studied: str = ""
    how_long: str = ""
    what_they_took: str = ""
    notes: list[Item] = field(default_factory=list)
    limitations: list[Item] = field(default_factory=list)
    key_findings: str = ""
    technical_findings: list[Item] = field(default_factory=list)
    study_design: str = ""
    dosage_administration: str = ""
    results_efficacy: str = ""
    technical_limitations: str = ""
    technical_limitation_items: list[Item] = field(default_factory=list)
    clinical_relevance: str = ""
    technical_notes: list[Item] = field(default_factory=list)
    study_type: str = ""
    reference_title: str = ""
    reference_source: str = ""
    reference_year: int | None = None
    # Paragraph fields whose text came from the abstract and no curator has rewritten since.
    extracted_fields: list[str] = field(default_factory=list)
    # Fields a language model wrote (kb curate generate) and no curator has rewritten since
    # (paragraph fields, and "study_type").
    generated_fields: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``, written out (it is on the path of every saved card)."""
        data = {name: getattr(self, name) for name in _DOC_FIELDS}
        for name in ITEM_LISTS:
            data[name] = [{"text": i.text, "label": i.label, "source": i.source} for i in data[name]]
        data["extracted_fields"] = list(self.extracted_fields)
        data["generated_fields"] = list(self.generated_fields)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardDoc:
        values = dict(data)
        if isinstance(values.get("technical_limitations"), list):  # saved before issue 12: bullets only
            values["technical_limitation_items"] = values.pop("technical_limitations")
        for name in ITEM_LISTS:
            values[name] = [Item(**item) for item in values.get(name, [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in PARAGRAPH_FIELDS[1:]) and not any(
            getattr(self, name) for name in ITEM_LISTS
        )

    def empty_sections(self) -> list[str]:
        """Main sections with nothing in them (``kb curate lint`` reports these)."""
        return [s.heading for s in SECTIONS if not s.has_content(self)]

    def same_content(self, other: CardDoc) -> bool:
        """Equal in everything a curator wrote (item sources and extraction marks aside)."""
        def words(doc: CardDoc) -> dict[str, Any]:
            data = doc.to_json()
            data.pop("extracted_fields")
            data.pop("generated_fields")
            for name in ITEM_LISTS:
                data[name] = [(i["label"], i["text"]) for i in data[name]]
            return data
        return words(self) == words(other)


_DOC_FIELDS = tuple(f.name for f in dataclasses.fields(CardDoc))


# --------------------------------------------------------------------------------------------
# The layout: the card's sections, which the text format, the renderers and lint share
# --------------------------------------------------------------------------------------------

STUDY_DETAILS = "Study Details"
# Study Details: label as the example writes it -> CardDoc field
STUDY_DETAILS_LABELS = {"Who was studied": "who_was_studied", "How long": "how_long", "What they took": "what_they_took"}


@dataclass(frozen=True)
class Section:
    heading: str
    paragraph: str | None        # the CardDoc field its paragraphs go to
    items: str | None            # the CardDoc item list its bullets go to
    technical: bool = False
    labels_required: bool = False

    def has_content(self, doc: CardDoc) -> bool:
        if self.heading == STUDY_DETAILS:
            return any(getattr(doc, f) for f in STUDY_DETAILS_LABELS.values())
        return bool((self.paragraph and getattr(doc, self.paragraph)) or (self.items and getattr(doc, self.items)))


SECTIONS = (
    Section("What The Research Found", "what_research_found", "findings"),
    Section(STUDY_DETAILS, None, None),
    Section("What This Means For You", None, "notes", labels_required=True),
    Section("Study Limitations", None, "limitations", labels_required=True),
)
TECHNICAL_SECTIONS = (
    Section("Key Findings", "key_findings", "technical_findings", technical=True),
    Section("Study Design", "study_design", None, technical=True),
    Section("Dosage & Administration", "dosage_administration", None, technical=True),
    Section("Results & Efficacy", "results_efficacy", None, technical=True),
    Section("Limitations", "technical_limitations", "technical_limitation_items", technical=True),
    Section("Clinical Relevance", "clinical_relevance", "technical_notes", technical=True),
)
