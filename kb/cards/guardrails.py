"""Deterministic checks of the text a language model wrote on a card (``kb curate generate``).

They read the text still marked generated (``CardDoc.generated_fields`` and bullets with
``source = 'generated'``): what a curator has rewritten is the curator's. Each check gives
``{"ok": bool, "message": str}``; ``kb curate lint`` lists the failed ones, the draft mark of
every format shows them all, and ``kb curate status PMID published`` refuses a card with a failed
check unless a curator overrides it by name (``--override CHECK``).

- ``numbers``: every number on the card appears in the source (title, abstract, publication
  types, MeSH terms, year, journal). Both sides are normalised first: thousands separators
  (``2,443``, ``2 443`` with a thin or no-break space), the Unicode minus and signs, percentages
  (``45%``, ``45 %``, ``45 percent``), trailing zeros (``1.50``) and number words (``fifteen``,
  ``twenty-eight``, ``one hundred and forty``; "one" is left out, it is mostly a pronoun).
  Numbers that are part of a name are not numbers: ``B12``, ``D3``, ``COVID-19``, ``IL-6``.
- ``type``: the study type agrees with the publication types. A trial, randomised trial,
  systematic review or meta-analysis must be what PubMed says; among the other designs
  (observational, review, case report, other) PubMed's types are too coarse to contradict.
- ``advice``: none of a list of advice phrases ("stop taking", "cure", "guaranteed", "proven
  to", …) in the lay sections; in the technical sections only where the abstract does not use
  the phrase itself ("cure rates").
- ``safety``: no URLs, no template syntax (``{{ }}``, ``{% %}``, ``${ }``), no markup and no
  instructions ("ignore previous instructions", "as an AI", "system prompt", …).
- ``length``: the headline, Quick Summary, paragraphs and bullets stay within limits.
- ``readability``: the Flesch-Kincaid grade of the lay sections, shown on every draft and by
  ``kb curate lint`` when above the target of 9. It does not block publication (the example card
  itself reads at grade 10): it is the one check that is not in ``BLOCKING``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from kb.cards.model import ITEM_LISTS, PARAGRAPH_FIELDS, CardDoc

CHECKS = ("numbers", "type", "advice", "safety", "length", "readability")
BLOCKING = ("numbers", "type", "advice", "safety", "length")
READABILITY_TARGET = 9.0
LAY_FIELDS = ("quick_summary", "what_research_found", "who_was_studied", "how_long", "what_they_took")
LAY_LISTS = ("findings", "notes", "limitations")
# Longest text allowed, in characters: per paragraph field, else per lay / technical paragraph.
LIMITS = {"headline": 120, "quick_summary": 450, "who_was_studied": 400, "how_long": 300, "what_they_took": 400}
LAY_PARAGRAPH_LIMIT = 1200
TECHNICAL_PARAGRAPH_LIMIT = 2500
BULLET_LIMIT = 350
BULLETS_PER_LIST = 8

# Numbers ------------------------------------------------------------------------------------------

_UNITS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "one"], key=len, reverse=True))
# The lookahead on the first letter lets the regex engine skip quickly to where a number word can start.
_WORDS = re.compile(rf"\b(?=[efhmnostzEFHMNOSTZ])(?:{_NUMBER_WORD})(?:(?:[-\s]+|\s+and\s+)(?:{_NUMBER_WORD}))*\b",
                    re.IGNORECASE)
# A number in digits: thousands groups with a comma, thin or no-break space; decimals; not glued
# to a letter before it (B12, COVID-19, IL-6) nor part of a longer token of digits and dots.
_DIGITS = re.compile(  # (the lookahead first: the regex engine skips quickly to where a number can start)
    r"(?=[-−–\d])(?<![\w.])(?<![A-Za-z]-)(?<![A-Za-z]‐)[-−–]?(?P<n>\d{1,3}(?:[,\u2009\u202f\u00a0]\d{3})+(?!\d)|\d+(?:\.\d+)?)"
    r"(?:\s?%|\s(?:percent|per cent)\b)?"
)


@lru_cache(maxsize=65536)
def _words_value(phrase: str) -> int | None:
    total, current = 0, 0
    words = re.split(r"[-\s]+|\s+and\s+", phrase.lower())
    if words == ["one"]:
        return None  # "one of the …": a pronoun more often than a number
    for word in words:
        if word in ("and", ""):
            continue
        if word == "one":
            current += 1
        elif word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        else:
            total += (current or 1) * _SCALES[word]
            current = 0
    return total + current


@lru_cache(maxsize=65536)
def _canonical(number: str) -> str:
    try:
        value = Decimal(re.sub(r"[,\u2009\u202f\u00a0]", "", number))
    except InvalidOperation:
        return number
    text = format(value.normalize(), "f")
    return text


def numbers(text: str) -> dict[str, str]:
    """The numbers in ``text``, normalised (see the module docstring) -> as written."""
    found: dict[str, str] = {}
    for match in _DIGITS.finditer(text):
        found.setdefault(_canonical(match["n"]), match[0])
    for match in _WORDS.finditer(text):
        value = _words_value(match[0])
        if value is not None:
            found.setdefault(str(value), match[0])
    return found


# Study type ------------------------------------------------------------------------------------

_STRONG_DESIGNS = ("meta-analysis", "systematic review", "randomized controlled trial", "clinical trial")


def _type_check(study_type: str, record_design: str, publication_types: Iterable[str]) -> dict[str, Any]:
    from kb.curate import design_of_curated_type  # the words curators use for study types

    if not study_type.strip():
        return {"ok": True, "message": "no study type stated"}
    listed = {t.casefold() for t in publication_types}
    claimed = design_of_curated_type(study_type)
    record = record_design.casefold()
    agrees = (
        study_type.casefold() in listed
        or claimed == record
        or (claimed == "clinical trial" and record == "randomized controlled trial")
        or (claimed not in _STRONG_DESIGNS and record not in _STRONG_DESIGNS)
    )
    message = f"{study_type!r} agrees with PubMed ({record_design})" if agrees else (
        f"the card calls it {study_type!r}, PubMed lists {'; '.join(publication_types) or 'no type'} "
        f"({record_design})")
    return {"ok": agrees, "message": message}


# Advice and safety -----------------------------------------------------------------------------

ADVICE_PHRASES = (
    r"stop taking", r"stop using", r"start taking", r"cures?(?!-)", r"cured", r"guarantee[ds]?", r"proven to",
    r"miracle", r"you should (?:take|stop|avoid|use)", r"you must", r"no need to see (?:a|your) doctor",
    r"instead of (?:your )?(?:medication|medicine|treatment)", r"100 ?% (?:safe|effective)", r"risk[- ]free",
    r"completely safe", r"detox(?:ify)?", r"boosts? your immune",
)
# (the lookahead names the first characters of the phrases, so that the regex engine skips quickly)
_ADVICE = re.compile(rf"\b(?=[{''.join(sorted({p[0] for p in ADVICE_PHRASES}))}])(?:{'|'.join(ADVICE_PHRASES)})\b",
                     re.IGNORECASE)
_UNSAFE = (
    ("a URL", re.compile(r"\b(?:https?|ftp)://|\bwww\.|\b[\w-]+\.(?:com|org|net|io|ly|gov|info|biz)\b", re.I)),
    ("template syntax", re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|\$\{|<%|%>")),
    ("markup", re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")),
    ("an instruction", re.compile(  # (the lookahead names the first letters of the phrases, as for _ADVICE)
        r"\b(?=[adfhilnsy])(?:(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+)?"
        r"(?:previous|prior|above|earlier|preceding)\s+(?:instructions|prompts?|rules)|as an ai\b"
        r"|(?:large )?language model\b|system prompt\b|you are (?:now )?(?:a|an|chatgpt)\b"
        r"|i (?:cannot|can't|am unable)\b|here is the (?:json|card)\b|new instructions\b)"
        r"|^\s*(?:assistant|system|user)\s*:", re.IGNORECASE | re.MULTILINE)),
)


# Readability -------------------------------------------------------------------------------------

_VOWEL_GROUPS = re.compile(r"[aeiouy]+")
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
_SENTENCE = re.compile(r"[.!?]+(?:\s|$)|\n+")


def syllables(word: str) -> int:
    """Syllables of an English word, by vowel groups (a silent final 'e' not counted)."""
    word = word.lower()
    count = len(_VOWEL_GROUPS.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    return max(count, 1)


_syllables = lru_cache(maxsize=65536)(syllables)  # the same words come back on every card


def flesch_kincaid_grade(text: str) -> float | None:
    """0.39 × words per sentence + 11.8 × syllables per word − 15.59 (None for no words)."""
    words = _WORD.findall(text)
    if not words:
        return None
    sentences = max(len([s for s in _SENTENCE.split(text) if _WORD.search(s)]), 1)
    total = sum(map(_syllables, words))
    return round(0.39 * len(words) / sentences + 11.8 * total / len(words) - 15.59, 1)


# The checks -------------------------------------------------------------------------------------


def generated_text(doc: CardDoc) -> dict[str, list[str]]:
    """Where each piece of generated text is: field or list name -> texts."""
    out: dict[str, list[str]] = {}
    for name in PARAGRAPH_FIELDS:
        if name in doc.generated_fields and getattr(doc, name):
            out[name] = [getattr(doc, name)]
    for name in ITEM_LISTS:
        texts = [" ".join(filter(None, (i.label, i.text))) for i in getattr(doc, name) if i.source == "generated"]
        if texts:
            out[name] = texts
    if "study_type" in doc.generated_fields and doc.study_type:
        out["study_type"] = [doc.study_type]
    return out


def has_generated_text(doc: CardDoc) -> bool:
    return bool(generated_text(doc))


def check_card(doc: CardDoc, *, source: str, publication_types: Iterable[str], design: str) -> dict[str, Any]:
    """The checks of ``doc``'s generated text against ``source`` (the text the model was given)."""
    pieces = generated_text(doc)
    lay = [t for name in (*LAY_FIELDS, *LAY_LISTS) for t in pieces.get(name, [])]
    technical = [t for name, texts in pieces.items() if name not in (*LAY_FIELDS, *LAY_LISTS) for t in texts]
    everything = [t for texts in pieces.values() for t in texts]
    results: dict[str, Any] = {}

    source_numbers = numbers(source)
    unsupported = {value: written for value, written in numbers("\n".join(everything)).items()
                   if value not in source_numbers}
    results["numbers"] = {
        "ok": not unsupported,
        "message": "every number appears in the source" if not unsupported
        else "not in the source: " + ", ".join(sorted(unsupported.values())),
    }

    results["type"] = _type_check(doc.study_type if "study_type" in pieces else "", design, list(publication_types))

    source_lower = source.lower()
    advice = sorted({m[0] for m in _ADVICE.finditer("\n".join(lay))}
                    | {m[0] for m in _ADVICE.finditer("\n".join(technical)) if m[0].lower() not in source_lower})
    results["advice"] = {"ok": not advice,
                         "message": "no advice phrases" if not advice else "advice phrases: " + ", ".join(advice)}

    joined = "\n\n".join(everything)
    unsafe = sorted({what for what, rx in _UNSAFE if rx.search(joined)})
    results["safety"] = {"ok": not unsafe, "message": "no URLs, template syntax, markup or instructions"
                         if not unsafe else "contains " + ", ".join(unsafe)}

    too_long = []
    for name, texts in pieces.items():
        is_list = name in ITEM_LISTS
        limit = BULLET_LIMIT if is_list else LIMITS.get(
            name, LAY_PARAGRAPH_LIMIT if name in LAY_FIELDS else TECHNICAL_PARAGRAPH_LIMIT)
        if any(len(t) > limit for t in texts):
            too_long.append(f"{name.replace('_', ' ')} over {limit} characters")
        if is_list and len(texts) > BULLETS_PER_LIST:
            too_long.append(f"{name.replace('_', ' ')} has {len(texts)} bullets (at most {BULLETS_PER_LIST})")
    results["length"] = {"ok": not too_long, "message": "within the length limits" if not too_long
                         else "; ".join(too_long)}

    grade = flesch_kincaid_grade("\n".join(t if t.rstrip().endswith((".", "!", "?")) else t + "." for t in lay))
    results["readability"] = {
        "ok": grade is None or grade <= READABILITY_TARGET,
        "grade": grade,
        "message": "no lay text" if grade is None
        else f"Flesch-Kincaid grade {grade} (target {READABILITY_TARGET:g} or below)",
    }
    return results


def failed(checks: dict[str, Any] | None, *, blocking_only: bool = False) -> list[str]:
    """Names of the failed checks, in CHECKS order (only those that block publication)."""
    names = BLOCKING if blocking_only else CHECKS
    return [name for name in names if checks and not checks.get(name, {}).get("ok", True)]


def summary(checks: dict[str, Any]) -> str:
    """One line for the draft mark: 'checks: numbers ✗ (not in the source: 45%), type ✓, …'."""
    parts = []
    for name in CHECKS:
        result = checks.get(name)
        if result is None:
            continue
        if name == "readability" and result.get("grade") is not None:
            parts.append(f"readability grade {result['grade']} {'✓' if result['ok'] else '✗'} (target ≤ "
                         f"{READABILITY_TARGET:g})")
        elif result["ok"]:
            parts.append(f"{name} ✓")
        else:
            parts.append(f"{name} ✗ ({result['message']})")
    return "checks: " + ", ".join(parts)
