"""Drafts: a card made from the PubMed record alone, for a study no curator has written up.

Only what the record states goes in, each part marked as extracted (``CardDoc.extracted_fields``
for paragraphs, ``source='extracted'`` for bullets) so that it is never shown as curated:
- the study type from the publication types;
- from a structured abstract, Study Design from its methods, Results & Efficacy from its results
  and Key Findings (and the Quick Summary) from its conclusions. A section's category is NLM's
  (``NlmCategory``), else read from its label (:func:`section_category`): 'PATIENTS AND METHODS',
  'SETTING' and 'DESIGN' are methods, 'FINDINGS' results, 'INTERPRETATION' conclusions, …;
- from an unstructured abstract (or one whose sections name no conclusions), Key Findings and the
  Quick Summary from its concluding sentences (:func:`concluding_sentences`), not its first one,
  which is usually background;
- the sample size with who was studied ("2,443 mother–newborn pairs"), the duration and the dose
  with its unit, where the abstract states them (``kb.cards.extract``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from kb.cards.extract import extract_facts, sample_with_unit
from kb.cards.model import CardDoc

# A sentence ends at . ! or ? followed by a space and a capital or digit, but not after the
# abbreviations abstracts use mid-sentence ("et al.", "e.g.", "vs.", "Fig.", "approx.").
_SENTENCE_END = re.compile(
    r"(?<![Ee]t al\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bvs\.)(?<!\bFig\.)(?<!\bNo\.)(?<!\bapprox\.)(?<!\bca\.)"
    r"(?<=[.!?])\s+(?=[A-Z0-9])"
)
# NLM category -> the card field its text drafts
_BY_CATEGORY = {"METHODS": "study_design", "RESULTS": "results_efficacy", "CONCLUSIONS": "key_findings"}
# Section labels without an NLM category (as publishers write them), by category. A label is
# matched whole after upper-casing and dropping punctuation; then by the words it contains.
_LABELS = {
    "METHODS": (
        "METHOD", "METHODS", "MATERIAL AND METHOD", "MATERIAL AND METHODS", "MATERIALS AND METHODS",
        "METHODS AND MATERIALS", "PATIENTS AND METHODS", "SUBJECTS AND METHODS", "PARTICIPANTS AND METHODS",
        "DESIGN", "STUDY DESIGN", "DESIGN AND METHODS", "DESIGN SETTING AND PARTICIPANTS", "SETTING",
        "SETTINGS", "SETTING AND PARTICIPANTS", "PARTICIPANTS", "PATIENTS", "SUBJECTS", "POPULATION",
        "STUDY POPULATION", "INTERVENTION", "INTERVENTIONS", "MEASUREMENTS", "MAIN OUTCOME MEASURES",
        "MAIN OUTCOMES AND MEASURES", "OUTCOME MEASURES", "METHODOLOGY", "EXPERIMENTAL DESIGN",
        "RESEARCH DESIGN AND METHODS", "DATA SOURCES", "STUDY SELECTION", "DATA EXTRACTION",
        "SEARCH METHODS", "SELECTION CRITERIA", "DATA COLLECTION AND ANALYSIS", "APPROACH",
    ),
    "RESULTS": (
        "RESULT", "RESULTS", "FINDINGS", "MAIN RESULTS", "MAIN FINDINGS", "KEY RESULTS", "KEY FINDINGS",
        "RECENT FINDINGS", "OUTCOMES", "DATA SYNTHESIS", "OBSERVATIONS", "RESULTS AND DISCUSSION",
    ),
    "CONCLUSIONS": (
        "CONCLUSION", "CONCLUSIONS", "INTERPRETATION", "INTERPRETATIONS", "CONCLUSIONS AND RELEVANCE",
        "AUTHORS CONCLUSIONS", "DISCUSSION", "DISCUSSION AND CONCLUSION", "DISCUSSION AND CONCLUSIONS",
        "SUMMARY", "IMPLICATIONS", "CLINICAL IMPLICATIONS", "IMPLICATIONS FOR PRACTICE", "SIGNIFICANCE",
        "CLINICAL RELEVANCE", "CONCLUSION AND RELEVANCE", "CONCLUSIONS AND IMPLICATIONS",
    ),
}
_LABEL_CATEGORY = {label: category for category, labels in _LABELS.items() for label in labels}
_LABEL_WORDS = (("CONCLUSION", "CONCLUSIONS"), ("INTERPRETATION", "CONCLUSIONS"), ("RESULT", "RESULTS"),
                ("FINDING", "RESULTS"), ("METHOD", "METHODS"))
# A sentence that concludes: "In conclusion, …", "These findings suggest …", "This work demonstrates …".
_CONCLUDING = re.compile(
    r"^(?:in\s+(?:conclusion|summary|sum)|to\s+conclude|we\s+conclude|overall|taken\s+together|collectively"
    r"|in\s+short|altogether|thus|therefore|hence"
    r"|(?:these|our|the(?:se)?\s+present|the)\s+(?:\w+\s+){0,2}(?:findings|results|data|observations)\s+"
    r"(?:\w+\s+)?(?:suggest|indicate|show|demonstrate|support|highlight|provide|reveal|imply|confirm|underscore)"
    r"|(?:this|our|the\s+present)\s+(?:\w+\s+)?(?:study|work|trial|review|analysis|research)\s+(?:\w+\s+)?"
    r"(?:demonstrates|shows|suggests|indicates|provides|reveals|highlights|supports|found|showed|demonstrated"
    r"|confirms|establishes|identifies))\b",
    re.IGNORECASE,
)


def first_sentence(text: str) -> str:
    return sentences(text)[0] if text.strip() else ""


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def section_category(label: str | None, nlm_category: str | None) -> str | None:
    """METHODS, RESULTS, CONCLUSIONS (or NLM's other categories) for an abstract section."""
    category = (nlm_category or "").upper()
    if category and category not in ("UNASSIGNED", "UNLABELLED"):
        return category
    name = re.sub(r"[^A-Z ]+", " ", (label or "").upper().replace("&", " AND "))
    name = " ".join(name.split())
    if not name or name in ("UNLABELLED", "UNASSIGNED", "ABSTRACT"):
        return None
    if name in _LABEL_CATEGORY:
        return _LABEL_CATEGORY[name]
    return next((category for word, category in _LABEL_WORDS if word in name), None)


# Text at the end of an abstract that is not the study's: copyright lines, funding and trial
# registration notes, NLM's truncation mark.
_BOILERPLATE = re.compile(
    r"\s*(?:\((?:ABSTRACT TRUNCATED[^)]*|PsycInfo Database Record[^)]*\)[^)]*|Funded by[^)]*)\)\.?"
    r"|(?:©|\(c\)\s|Copyright\b).*)$",
    re.IGNORECASE,
)
# A closing sentence that announces rather than concludes: "Future research needs are also discussed".
_ANNOUNCES = re.compile(
    r"\b(?:(?:are|is)\s+(?:also\s+)?(?:discussed|described|presented|provided|outlined|reviewed)"
    r"|further\s+(?:research|studies|work|investigations?)\s+(?:is|are)\s+(?:needed|required|warranted)"
    r"|in\s+the\s+future|please\s+visit|doi:)",
    re.IGNORECASE,
)
# "Conclusions:" or "Conclusions/Implications:" inside an abstract PubMed did not split into sections.
_INLINE_CONCLUSIONS = re.compile(r"\b(?:CONCLUSIONS?|Conclusions?)(?:\s*/\s*[A-Z][a-z]+)?\s*:\s*")


def concluding_sentences(text: str) -> list[str]:
    """The sentences that conclude an abstract: what follows an inline "Conclusions:" label; else
    from the first sentence in its second half that opens like a conclusion ("In conclusion",
    "These findings suggest", "This study shows") to the end; else its last sentence that states
    something (not "… are discussed", "further research is needed"). Copyright and funding lines
    are left out."""
    inline = list(_INLINE_CONCLUSIONS.finditer(text))
    if inline:
        text = text[inline[-1].end():]
    found = [s for s in (_BOILERPLATE.sub("", s).strip() for s in sentences(text)) if s]
    if not found or inline:
        return found
    for index in range(len(found) // 2, len(found)):
        if _CONCLUDING.match(found[index]):
            return found[index:]
    stating = [s for s in found if not _ANNOUNCES.search(s)]
    return stating[-1:] or found[-1:]


def make_draft(pmid: int, title: str, study_type: str, sections: Iterable[Any]) -> CardDoc:
    """A draft card for ``pmid`` from its title, study type and abstract sections (mappings
    with label, nlm_category and text, in abstract order)."""
    doc = CardDoc(pmid=pmid, headline=title or f"PubMed record {pmid}", study_type=study_type)
    extracted: list[str] = ["headline"] if title else []
    texts: dict[str, list[str]] = {}
    plain: list[str] = []
    for section in sections:
        text = " ".join(filter(None, (_BOILERPLATE.sub("", s).strip() for s in sentences(section["text"] or ""))))
        if not text:
            continue
        plain.append(text)
        category = section_category(section["label"], section["nlm_category"])
        if category in _BY_CATEGORY:
            texts.setdefault(_BY_CATEGORY[category], []).append(text)
    if plain and "key_findings" not in texts:
        # Unstructured (or no conclusions section): the concluding sentences, not the opening ones.
        concluding = concluding_sentences(" ".join(plain))
        if concluding:
            texts["key_findings"] = [" ".join(concluding)]
    for name, parts in texts.items():
        setattr(doc, name, "\n\n".join(parts))
        extracted.append(name)
    if texts.get("key_findings"):
        doc.quick_summary = first_sentence(texts["key_findings"][0])
        extracted.append("quick_summary")
    # Facts: the methods first (where a study says whom it enrolled), then the whole abstract.
    methods_first = " ".join(texts.get("study_design", []) + plain)
    facts = extract_facts(methods_first)
    sample = sample_with_unit(methods_first, facts.sample_size)
    for name, value in (("who_was_studied", sample), ("how_long", facts.duration),
                        ("what_they_took", facts.dose)):
        if value:
            setattr(doc, name, value)
            extracted.append(name)
    doc.extracted_fields = extracted
    return doc
