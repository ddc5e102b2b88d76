"""Drafts: a card made from the PubMed record alone, for a study no curator has written up.

Only what the record states goes in, each part marked as extracted (``CardDoc.extracted_fields``
for paragraphs, ``source='extracted'`` for bullets) so that it is never shown as curated:
- the study type from the publication types;
- from a structured abstract, Study Design from METHODS, Results & Efficacy from RESULTS and
  Key Findings from CONCLUSIONS (NLM categories, so 'PATIENTS AND METHODS' counts as METHODS);
- the sample size, duration and dose where the abstract states them (``kb.cards.extract``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from kb.cards.extract import extract_facts
from kb.cards.model import CardDoc

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
# NLM category -> the card field its text drafts
_BY_CATEGORY = {"METHODS": "study_design", "RESULTS": "results_efficacy", "CONCLUSIONS": "key_findings"}


def first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def make_draft(pmid: int, title: str, study_type: str, sections: Iterable[Any]) -> CardDoc:
    """A draft card for ``pmid`` from its title, study type and abstract sections (mappings
    with label, nlm_category and text, in abstract order)."""
    doc = CardDoc(pmid=pmid, headline=title or f"PubMed record {pmid}", study_type=study_type)
    extracted: list[str] = ["headline"] if title else []
    texts: dict[str, list[str]] = {}
    plain: list[str] = []
    for section in sections:
        text = (section["text"] or "").strip()
        if not text:
            continue
        plain.append(text)
        category = (section["nlm_category"] or "").upper()
        if category in _BY_CATEGORY:
            texts.setdefault(_BY_CATEGORY[category], []).append(text)
    for name, parts in texts.items():
        setattr(doc, name, "\n\n".join(parts))
        extracted.append(name)
    summary_from = texts.get("key_findings") or plain[-1:]
    if summary_from:
        doc.quick_summary = first_sentence(summary_from[0])
        extracted.append("quick_summary")
    # Facts: the methods first (where a study says whom it enrolled), then the whole abstract.
    facts = extract_facts(" ".join(texts.get("study_design", []) + plain))
    for name, value in (("who_was_studied", facts.sample_size), ("how_long", facts.duration),
                        ("what_they_took", facts.dose)):
        if value:
            setattr(doc, name, value)
            extracted.append(name)
    doc.extracted_fields = extracted
    return doc
