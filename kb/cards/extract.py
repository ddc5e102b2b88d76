"""Facts a lay summary card states, lifted verbatim from the text of a PubMed abstract.

:func:`extract_facts` finds three facts: how many were studied (sample size), for how long
(duration) and how much of the intervention was given (dose). Each is the phrase the abstract
itself uses, with its original characters (``µ``, thin spaces, thousands commas), never a computed
or normalised value. Precision comes before recall: when a candidate is doubtful the fact is
``None``, because a card must never state a wrong number.

Shared rules:

* The first plausible phrase in text order wins; callers pass the methods section first.
* A number glued to something else is not a candidate on its own: ``COVID-19``, ``B12``, ``2.5``,
  ``6-12``, ``±3``; nor is one right after a comparison sign (``≥ 65``, ``> 300``, ``± 4.5``) or
  another bare number (``2019 120``). Digit groups are read whole: ``1,234``, ``37 857``.

Sample size is ``n = 120`` or a count, at most four modifier words and a noun for who or what was
studied: ``1,234 patients``, ``42 healthy volunteers``, ``Twenty-four infants``, ``12 randomized
controlled trials with 3,456 participants``. Rejected: ``one`` and decimals; labels and rates
(``type 2 diabetes patients``, ``phase 3 trials``, ``per 100,000 persons``, ``one in seven
individuals``, ``10 mice per group``); years (``in 2019 patients``); approximate or threshold
counts (``about 600,000 children``, ``at least 100 patients``); the tail of a list (``… and 15
HFrEF patients``); outcomes (``5 patients (4%)``, ``13 patients were diagnosed with …``); and the
``n =`` of one arm when its sentence gives another (``(n = 30) or placebo (n = 23)``).

Duration is a count of days, weeks, months or years (``12 weeks``, ``6-month``, ``one year``),
keeping a leading ``for``, ``for a median time of`` or ``a median follow-up of``. Rejected: ages
(``aged 65 years``, ``65-year-old``, ``years of age``, ``over 65 years``), ranges, thresholds and
approximations (``6-12 months``, ``to 12 weeks``, ``more than 10 years``, ``25 ± 4.5 years``),
time points and windows (``after 4 months``, ``12 months after surgery``, ``within 30 days``,
``the past 10 years``, ``in 40 years``), bare parenthesised values (``(262 days)``), histories and
gestational ages, measured results (``survival was 14 months``, ``length of stay 5 days``) and
outcome horizons (``5-year survival``, ``10-year cardiovascular risk``).

Dose is an amount in a dose unit (mg, µg/μg/mcg/ug/micrograms, g, IU, U, units, mL), optionally
per kg or m² and per day/week/dose (``0.5 mg/kg``, ``2,000 IU/day``), then optionally ``of`` and a
short substance name and a frequency (``1000 µg of oral cyanocobalamin daily``, ``500 mg twice
daily``). Rejected: concentrations and other lab values (``8 g/dL``, ``1.2 mg per deciliter``,
``1.5 mmol·L-1``, ``60 mL/min``), thresholds (``> 3.5 g/day``), amounts shortly after lab and
intake words (``serum``, ``levels``, ``excretion``, ``secretion``, ``intake``, ``weight`` …),
compared results (``4.7 g/day vs. …``, ``vs. 5.4 g/kg/day``) and a bare volume (``blood loss of
500 mL``).

Speed (it runs on every abstract of a corpus): the text is scanned three times, for numbers in
digits, number words and ``=``, each by a pattern that starts with a character set the regex
engine skips to quickly. What follows a number tells whether it may be a duration, a dose or a
count; the context checks run only on those few candidates.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import NamedTuple


class Facts(NamedTuple):
    """What a summary card states about a study; ``None`` where the text states nothing usable."""

    sample_size: str | None
    duration: str | None
    dose: str | None


class _Candidate(NamedTuple):
    """A number followed by what ``kind`` of fact needs; the bare phrase is ``text[start:end]``."""

    start: int
    end: int
    number: str
    parts: re.Match[str]
    kind: str


def extract_facts(text: str) -> Facts:
    """Sample size, duration and dose as ``text`` states them; ``None`` for each it does not.

    ``text`` is plain text: a whole abstract or one of its sections, methods first when the
    caller has a choice. See the module docstring for what counts and what is rejected.
    """
    found: dict[str, str] = {}
    for candidate in _candidates(text):
        field, check = _CHECKS[candidate.kind]
        if field not in found and (phrase := check(text, candidate)):
            found[field] = phrase
            if len(found) == len(Facts._fields):
                break
    return Facts(**{field: found.get(field) for field in Facts._fields})


def _candidates(text: str) -> Iterator[_Candidate]:
    """Every number in digits or words followed by a unit or a noun, and every ``n =``, in text order."""
    in_digits = (_Candidate(m.start(), m.end(), m["number"], m, _kind(m)) for m in _FACT.finditer(text))
    # The pattern needs a character before the number word: scan " " + text, one off in positions.
    in_words = (
        _Candidate(word.start("word") - 1, after.end(), word["word"], after, _kind(after))
        for word in _SPELLED_NUMBER.finditer(" " + text)
        if (after := _AFTER_NUMBER.match(text, word.end() - 1))
    )
    n_equals = (
        _Candidate(m.start() - (2 if text[m.start() - 1].isspace() else 1), m.end(), m["number"], m, "n_equals")
        for m in _N_EQUALS.finditer(text)
    )
    return heapq.merge(in_digits, in_words, n_equals, key=attrgetter("start"))


def _kind(match: re.Match[str]) -> str:
    return "duration" if match["duration"] is not None else "dose" if match["dose"] is not None else "count"


# Numbers and shared checks -----------------------------------------------------------------------

_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    " seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand"
).split()


def _by_first_letter(words: list[str]) -> str:
    """An alternation of ``words`` grouped by first letter, either case: ``[Ee](?:ighteen|…)|…``.

    The regex engine skips an alternative after one comparison when it starts with a character
    set, but tries every alternative of a case-insensitive group.
    """
    tails: dict[str, list[str]] = {}
    for word in words:
        tails.setdefault(word[0], []).append(word[1:])
    return "|".join(
        f"[{letter}{letter.upper()}](?:{'|'.join(sorted(rest, key=len, reverse=True))})"
        for letter, rest in sorted(tails.items())
    )


_WORD_NUMBER = rf"(?i:{'|'.join(sorted(_NUMBER_WORDS, key=len, reverse=True))})"
# "Twenty-four", "One hundred and forty" after a space or "(": starting with that character set
# lets the engine skip to the few places where a number word can start.
_SPELLED_NUMBER = re.compile(
    rf"[\s(](?P<word>(?:{_by_first_letter(_NUMBER_WORDS)})\b(?:(?:[-‐ ]|\s+and\s+){_WORD_NUMBER}\b)*)"
)
_SPELLED = rf"\b{_WORD_NUMBER}(?:(?:[-‐ ]|\s+and\s+){_WORD_NUMBER})*\b"
# Starts with a single digit so that the engine can skip to digits: "1,234", "37 857", "4.2", "120".
_DIGITS = (
    r"[0-9](?:[0-9]{0,2}(?:,[0-9]{3})+(?![0-9])|[0-9]{0,2}(?:[ \u2009\u202f\u00a0][0-9]{3})+(?![0-9])"
    r"|[0-9]*(?:\.[0-9]+)?)"
)
_GLUE = frozenset(".,/±−–‐‑:^-_")
_THRESHOLD = re.compile(r"[<>≤≥⩽⩾=~±]\s*$")
# A bare number just before: "2019 120 patients", "Table 2 120" (but "vitamin D3 2,000 IU" is fine).
_NUMBER_BEFORE = re.compile(r"(?<![^\s(])[0-9](?:[0-9.,]*[0-9])?\s$")
_PREVIOUS_WORD = re.compile(r"([^\W\d_]+)(?:(?<=vs)\.)?[\s(]*$")
_WORD = r"[^\W\d_][\w'’‐–-]*+"
# Words that end a noun phrase instead of modifying it.
_STOP_WORDS = (
    r"(?:of|the|a|an|and|or|in|on|at|by|for|from|to|with|without|per|vs|versus|than|that|which|who"
    r"|were|was|are|is|be|been|had|have|has|not|no|all|each|these|those|this|its|their|more|less"
    r"|times|fold|old|percent|cent|million|billion|years?|months?|weeks?|days?|hours?|groups?|arms?"
    r"|experiments|occasions|doses|samples|sessions|visits|centres|centers|hospitals|sites|countries)"
)
_MODIFIER = rf"(?!{_STOP_WORDS}\b){_WORD}"


def _free(text: str, start: int) -> bool:
    """Whether the number at ``start`` stands alone: not glued to a word, a number or a sign."""
    if start == 0:
        return True
    before = text[start - 1]
    if before.isalnum() or before in _GLUE:
        return False
    return not (_before(_THRESHOLD, text, start, 3) or _before(_NUMBER_BEFORE, text, start, 16))


def _before(pattern: re.Pattern[str], text: str, start: int, width: int) -> bool:
    """Whether ``pattern`` (anchored with ``$``) matches within the ``width`` characters before ``start``."""
    return pattern.search(text, max(0, start - width), start) is not None


def _previous_word(text: str, start: int) -> str | None:
    """The lower-cased word just before ``start`` (only spaces or ``(`` between, or ``vs.``), if any."""
    found = _PREVIOUS_WORD.search(text, max(0, start - 24), start)
    return found[1].lower() if found else None


# Sample size -------------------------------------------------------------------------------------

_SUBJECTS = (
    r"(?:patients|inpatients|outpatients|participants|subjects|individuals|people|persons|adults"
    r"|adolescents|youths|teenagers|children|infants|neonates|newborns|women|men|females|males|girls"
    r"|boys|mothers|fathers|parents|caregivers|carers|volunteers|cases|controls|students|pupils"
    r"|teachers|residents|respondents|veterans|smokers|athletes|workers|employees|nurses|physicians"
    r"|doctors|survivors|users|donors|recipients|clients|probands|relatives|siblings|pregnancies"
    r"|couples|pairs|households|families|twins|dyads|eyes|mice|rats|pigs|dogs|animals|studies|trials|RCTs)"
)
_GROUP_MODIFIER = rf"(?:(?!{_SUBJECTS}\b){_MODIFIER}|\([^\W\d_][\w-]*\))"
# What follows a count: "healthy volunteers", "cognitively unimpaired (CU) older adults", "men and women".
# Case-sensitive: the engine skips an alternative quickly only when its first letter is exact.
_WHO = rf"(?:\s++{_GROUP_MODIFIER}){{0,4}}?\s++{_SUBJECTS}(?![\w-])(?:\s+(?:and|or)\s+{_SUBJECTS}(?![\w-]))?"
_SAMPLE_AFTER = (
    rf"{_WHO}(?:\s+(?:with|involving|including|enrolling|comprising|of)\s+(?:a\s+total\s+of\s+)?"
    rf"(?:{_DIGITS}|{_SPELLED}){_WHO})?"
)
# Starts at "=": "n = 120", "N=2,545".
_N_EQUALS = re.compile(rf"=(?:(?<=\b[nN]=)|(?<=\b[nN]\s=))\s*(?P<number>{_DIGITS})(?![\w/%])")
_SENTENCE = 400  # characters looked at on each side of an ``n =`` for another one
# The word before a count that makes it a label, a rate, a list's tail or an estimate.
_NOT_BEFORE_COUNT = frozenset(
    "type grade stage phase class step level tier day week month year visit cycle group arm wave"
    " figure fig table version number no covid per every each least than under below fewer up sd"
    " iqr range and or as about approximately nearly almost around roughly some over estimated".split()
)
_TEMPORAL_WORDS = frozenset("in since until during between and to from by before after".split())
_YEAR = re.compile(r"(?:19|20)[0-9]{2}")
_ONE_IN = re.compile(r"\b(?:one|1|a)\s+in\s*$", re.IGNORECASE)
# What follows a count that makes it an outcome or a per-group or per-population figure.
_OUTCOME = re.compile(
    r"\s*\(\s*[0-9]+(?:\.[0-9]+)?\s*%\s*\)|\s+(?:were\s+diagnosed|developed|died|experienced|had|showed"
    r"|achieved|required|relapsed|progressed|recovered|suffered|responded)\b|\s+(?:per|in\s+each|each)\b",
    re.IGNORECASE,
)


def _count(text: str, candidate: _Candidate) -> str | None:
    """A count and who was counted, unless a label, rate, year, estimate, list tail or outcome."""
    start, number = candidate.start, candidate.number
    if not _free(text, start) or "." in number or number.lower() == "one":
        return None
    previous = _previous_word(text, start)
    if previous in _NOT_BEFORE_COUNT or (_YEAR.fullmatch(number) and previous in _TEMPORAL_WORDS):
        return None
    if _before(_ONE_IN, text, start, 12) or _OUTCOME.match(text, candidate.end):
        return None
    return text[start : candidate.end]


def _n_equals(text: str, candidate: _Candidate) -> str | None:
    """``n = N`` unless it is per group or its sentence gives another ``n =`` (then it is an arm)."""
    if _OUTCOME.match(text, candidate.end):
        return None
    start, end = candidate.start, candidate.end
    window = max(0, start - _SENTENCE)
    sentence_start = max(text.rfind(". ", window, start) + 1, window)
    sentence_end = text.find(". ", end, end + _SENTENCE)
    before = _N_EQUALS.search(text, sentence_start, start)
    after = _N_EQUALS.search(text, end, end + _SENTENCE if sentence_end < 0 else sentence_end)
    return None if before or after else text[start:end]


# Duration ----------------------------------------------------------------------------------------

_DURATION_AFTER = r"(?:\s++|[-‐‑])(?P<time_unit>(?i:days?|weeks?|months?|years?|wks?|yrs?))(?![\w-])"
# Kept in the phrase: "for ", "for a median time of ", "a median follow-up of ", "over a period of ".
_LEAD = re.compile(
    r"(?:\b(?:an?\s+)?(?:(?:mean|median|average)\s+)?follow[-‐ ]?up\s+(?:period\s+|time\s+|duration\s+)?of"
    r"|\bfor(?:\s+an?)?(?:\s+(?:mean|median|average))?(?:\s+(?:time|period|duration|total)\s+of)?"
    r"|\b(?:over|during)\s+an?\s+period\s+of)\s+$",
    re.IGNORECASE,
)
_NOT_BEFORE_DURATION = frozenset(
    "to and or than least under above below within past last previous first next every each per"
    " aged age between sd iqr range from in after about approximately nearly almost around roughly"
    " some".split()
)
# What follows a duration that makes it an age, a time point, a history or an outcome horizon.
# "10 years of diabetes" is how long the participants had it, not how long the study ran.
_DURATION_TAIL = re.compile(
    r"['’]?\s*(?:of\s+age|old|(?:or|and)\s+(?:older|over|above|younger|under|below)|of\s+life"
    r"|ago|earlier|later|before|after|(?:immediately\s+)?prior|postpartum|post\w*|of\s+gestation"
    r"|gestation\w*|history|of\s+(?:disease|diabetes|illness|symptoms|smoking|education|schooling"
    r"|experience|practice)"
    r"|(?:[\w-]+\s+)?(?:survival|mortality|risk|incidence|recurrence|readmission|rate))\b",
    re.IGNORECASE,
)
# What comes shortly before a duration that makes it an age or a measured result.
_AGE_OR_RESULT_CONTEXT = re.compile(
    r"\b(?:age[sd]?|aging|older|younger|born|survival|mortality|time\s+to|onset|interval|delay|stay"
    r"|half-life|(?:disease|symptom|symptoms|illness|diabetes|pain)\s+duration"
    r"|duration\s+of\s+(?:disease|symptoms|illness|diabetes|pain|response))\b[^.;]*$",
    re.IGNORECASE,
)


def _duration(text: str, candidate: _Candidate) -> str | None:
    """A count of days/weeks/months/years with its lead, unless an age, time point, window or result."""
    start, end = candidate.start, candidate.end
    if _DURATION_TAIL.match(text, end) or not _free(text, start):
        return None
    lead = _LEAD.search(text, max(0, start - 40), start)
    if lead:
        return text[lead.start() : end]
    previous = _previous_word(text, start)
    over_years = previous == "over" and candidate.parts["time_unit"][0] in "yY"  # "over 65 years": an age
    if previous in _NOT_BEFORE_DURATION or over_years:
        return None
    if text[start - 1 : start] == "(" and text[end : end + 1] == ")":
        return None
    return None if _before(_AGE_OR_RESULT_CONTEXT, text, start, 32) else text[start:end]


# Dose --------------------------------------------------------------------------------------------

_INVERSE = r"(?:-1|−1|⁻¹)"
_PER_BODY = (
    r"\s*/\s*kg(?:\s*/\s*(?:day|d|dose|h|hr|min)(?!\w))?"
    rf"|\s*[·⋅]\s*kg{_INVERSE}(?:\s*[·⋅]\s*(?:day|d|h|min){_INVERSE})?"
    r"|\s*/\s*(?:m2|m²)(?:\s*/\s*(?:day|d|week|wk)(?!\w))?"
)
_PER_TIME = r"\s*/\s*(?:day|d|dose|week|wk)(?!\w)|\s+per\s+(?:kg|kilogram|day|week|dose)\b"
_FREQUENCY = (
    r"(?i:(?:once|twice|thrice|(?:two|three|four|2|3|4)\s+times)\s+(?:daily|a\s+day|per\s+day|weekly"
    r"|a\s+week|per\s+week)|daily|weekly|monthly|per\s+day|a\s+day|per\s+week|a\s+week"
    r"|every\s+(?:other\s+)?day|bid|tid)\b"
)
_DOSE_AFTER = (
    rf"(?:\s*(?:–|-|to)\s*{_DIGITS})?\s?-?"
    r"(?P<unit>mg|mcg|µg|μg|ug|microg(?:rams?)?|milligrams?|grams?|g|IU|U|units?|international\s+units"
    r"|mL|ml)(?!\w|\.\w)"
    rf"(?P<per>{_PER_BODY}|{_PER_TIME})?(?!\s*[/·⋅]|\s+per\b|\s*(?:[dmµμn]?L|l){_INVERSE})"
    rf"(?P<of>\s+of\s++(?!{_STOP_WORDS}\b){_WORD}(?:\s++{_MODIFIER}){{0,2}})?"
    rf"(?P<freq>\s+{_FREQUENCY})?"
)
_VOLUME_UNITS = frozenset({"mL", "ml"})
_LAB_CONTEXT = re.compile(
    r"\b(?:levels?|concentrations?|excretion|clearance|secretion|secreted|production|produced"
    r"|release|released|loss|output|serum|plasma|urinary|urine|content|intakes?|consumption|weight"
    r"|weighing|weighed|gain|proteinuria)\b[^.;,]*$",
    re.IGNORECASE,
)
_DOSE_TAIL = re.compile(r"\s+per\b|\s*(?:vs\.?|versus)\s", re.IGNORECASE)
# The word before an amount that makes it a compared result or the tail of a list.
_NOT_BEFORE_DOSE = frozenset("vs versus than and or to".split())


def _dose(text: str, candidate: _Candidate) -> str | None:
    """An amount in a dose unit, unless in words, a lab value, a threshold or a compared result."""
    start, parts = candidate.start, candidate.parts
    if not candidate.number[0].isdigit() or not _free(text, start):
        return None
    if _previous_word(text, start) in _NOT_BEFORE_DOSE or _before(_LAB_CONTEXT, text, start, 32):
        return None
    if _DOSE_TAIL.match(text, candidate.end):
        return None
    if parts["unit"] in _VOLUME_UNITS and not (parts["per"] or parts["of"] or parts["freq"]):
        return None
    return text[start : candidate.end]


# One scan for all three facts --------------------------------------------------------------------

# What follows a number; a number is a duration, a dose or a count by its unit or noun.
_AFTER_NUMBER = re.compile(
    rf"(?:(?P<duration>{_DURATION_AFTER})|(?P<dose>{_DOSE_AFTER})|(?P<count>{_SAMPLE_AFTER}))"
)
_FACT = re.compile(rf"(?P<number>{_DIGITS}){_AFTER_NUMBER.pattern}")
_CHECKS: dict[str, tuple[str, Callable[[str, _Candidate], str | None]]] = {
    "count": ("sample_size", _count),
    "n_equals": ("sample_size", _n_equals),
    "duration": ("duration", _duration),
    "dose": ("dose", _dose),
}


# The sample with its unit ------------------------------------------------------------------------

# What may sit between who was counted and its "n =": "pairs (n=2443", "adults (aged 20-30; n = 45".
_BEFORE_N = re.compile(r"\s*\(\s*(?:[^()]{0,40}?[,;]\s*)?$")
_SUBJECT_WORD = re.compile(rf"(?i:{_SUBJECTS})")
_WORDS_BEFORE = re.compile(rf"({_WORD})\s*$")
# Words before the noun that are not part of who was counted ("We studied …", "a cohort of …").
_NOT_MODIFIERS = frozenset(
    "we our they their studied included includes enrolled recruited analysed analyzed examined followed"
    " involved comprised evaluated assessed randomized randomised total sample cohort data among"
    " consecutive".split()
)


def sample_with_unit(text: str, sample: str | None) -> str | None:
    """``sample`` as a count with who was counted: ``n = 2443`` after "mother–newborn pairs"
    becomes ``2,443 mother–newborn pairs``. Any other phrase (and an ``n =`` with no noun for who
    was studied just before it) is returned as it is."""
    if not sample or not sample.lower().startswith("n"):
        return sample
    match = _N_EQUALS.search(sample, sample.find("="))
    at = text.find(sample)
    if match is None or at < 0:
        return sample
    gap = _BEFORE_N.search(text, max(0, at - 60), at)
    end = gap.start() if gap else at
    words: list[str] = []
    while len(words) < 3 and (word := _WORDS_BEFORE.search(text, max(0, end - 40), end)):
        lower = word[1].lower()
        if (not words and not _SUBJECT_WORD.fullmatch(word[1])) or (
            words and (lower in _NOT_MODIFIERS or re.fullmatch(_STOP_WORDS, lower))
        ):
            break
        words.insert(0, word[1])
        end = word.start()
    if not words:
        return sample
    digits = match["number"]
    count = f"{int(digits):,}" if digits.isdigit() else digits
    noun = " ".join(words)
    if noun[:1].isupper() and not noun[1:2].isupper():  # "Patients (n = 120)" at a sentence start
        noun = noun[0].lower() + noun[1:]
    return f"{count} {noun}"
