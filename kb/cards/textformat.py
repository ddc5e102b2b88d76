"""kb's card text format: rendering is the Jinja2 template ``card.txt.j2``; this module holds the
layout's names and reads the format back (``kb curate import`` and ``kb curate edit``).

The layout is the example card's, ``../shared/examples/card-31902683.txt`` (issue 12), line for
line. There are no blank lines; one line is one paragraph or one bullet; a section with nothing
in it is left out:

    <notice lines: each starts with ⚠️ or 📝 — written by kb above the headline, skipped on reading>
    <headline>
    Quick Summary: <text>
    What The Research Found
    <paragraph>                      (then kb's lay finding bullets, '- Label: text' or '- text')
    Study Details
    - Who was studied: <text>
    - How long: <text>
    - What they took: <text>
    What This Means For You
    - <Label>: <text>                (a label is required)
    Study Limitations
    - <Label>: <text>                (a label is required)
    Technical Analysis Details
    Key Findings                     (paragraphs; then technical finding bullets)
    Study Design / Dosage & Administration / Results & Efficacy
    Limitations                      (paragraphs; then technical limitation bullets)
    Clinical Relevance               (paragraphs; then technical note bullets)
    Source: PubMed | Type: <study type> | Year: <year>
    Original Study Reference
    <title>
    Source: PubMed
    Published: <year>
    📄 Read Full Study (PMID: <pmid>)

Reading never guesses. A line it cannot place (an unknown or misspelt heading, a stray line in
Study Details, a bullet without the label its section requires, a line that continues the one
above) fails the whole card, every problem with its line number and a suggestion. Tolerated:
CRLF, trailing spaces, blank lines, a BOM, and kb's Markdown form (``# heading``, ``**Label:**``,
backslash escapes). kb's previous layout (blank lines between sections, ``Title:``/``Source:``/
``Year:`` reference lines, ``Technical Limitations``, title-case Study Details labels) still
reads, with a deprecation warning; a card that mixes the two layouts is refused.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from kb.cards.model import SECTIONS, STUDY_DETAILS, STUDY_DETAILS_LABELS, TECHNICAL_SECTIONS, CardDoc, Item, Section
from kb.errors import InputError

QUICK_SUMMARY = "Quick Summary:"
TECHNICAL = "Technical Analysis Details"
REFERENCE = "Original Study Reference"
REFERENCE_SOURCE = "Source: PubMed"
PUBLISHED = "Published:"
# Marks of the lines kb writes above the headline (draft mark, retraction and other notices).
NOTICE_MARKERS = ("⚠️", "⚠", "📝")
READ_FULL_STUDY = re.compile(r"^📄 Read Full Study \(PMID: (\d{1,8})\)$")
READ_FULL_STUDY_ANY = re.compile(r"^📄 Read Full Study \(PMID: ?(.*)\)$")  # the line, whatever it holds
# (kb writes "| Year: " when the year is unknown; the reader has stripped the trailing space)
SOURCE_LINE = re.compile(r"^Source: PubMed \| Type: (?P<type>.*?) \| Year:(?: (?P<year>.*))?$")
LABEL_LIMIT = 60  # a label is at most this long: '- <Label>: <text>'


LEGACY_TECHNICAL_LIMITATIONS = "Technical Limitations"  # kb's previous layout: bullets only
_MAIN = {s.heading: s for s in SECTIONS}
_SUB = {s.heading: s for s in TECHNICAL_SECTIONS}
HEADINGS = (*_MAIN, TECHNICAL, *_SUB, REFERENCE)


class CardFormatError(InputError):
    """A card text that does not follow the format: every problem with its line number."""

    def __init__(self, problems: list[str], source: str = "the card") -> None:
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source} is not a valid card:\n{listed}")


def bullet_text(item: Item) -> str:
    return f"{item.label}: {item.text}" if item.label else item.text


def split_label(text: str) -> Item:
    """``Label: text`` -> Item(label, text): the label is what comes before the first ': ', when
    that is at most LABEL_LIMIT characters. Otherwise the bullet has no label."""
    label, sep, rest = text.partition(": ")
    if sep and label.strip() == label and 0 < len(label) <= LABEL_LIMIT and rest[:1].strip():
        return Item(text=rest, label=label)
    return Item(text=text)


def label_problem(label: str | None) -> str | None:
    """Why a bullet label cannot be written in the layout (None when it can)."""
    if label is None:
        return None
    if not label.strip() or label != label.strip():
        return "a label may not be empty or start or end with a space"
    if ": " in label or "\n" in label or len(label) > LABEL_LIMIT:
        return f"a label has at most {LABEL_LIMIT} characters and no ': '"
    return None


def notice_line(icon: str, title: str, text: str) -> str:
    """One line above the headline: the draft mark or a notice (retracted, changed record …)."""
    return f"{icon} {title}: {text}"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class ReadCard:
    """A card read from text, with what the reader has to say about it (e.g. a deprecated layout)."""

    doc: CardDoc
    warnings: list[str] = field(default_factory=list)


def parse_card(text: str, *, source: str = "the card", markdown: bool | None = None) -> CardDoc:
    """Read a card in kb's text format (or its Markdown form). Raises CardFormatError."""
    return read_card(text, source=source, markdown=markdown).doc


COMMENT = re.compile(r"^#(?: |$)")  # kb curate edit's comment lines ('# ...'), dropped on reading


def read_card(text: str, *, source: str = "the card", markdown: bool | None = None,
              comments: bool = False, keep: frozenset[str] = frozenset()) -> ReadCard:
    """:func:`parse_card`, with the reader's warnings. With ``comments``, lines starting with
    '# ' (and lines that are only '#') are dropped: kb curate edit's template (text format only);
    lines in ``keep`` stay (the card's own paragraphs that start with '# ')."""
    lines = _normalise(text)
    skip = {n for n, line in enumerate(lines, 1) if COMMENT.match(line) and line not in keep} if comments else set()
    controls = [f"line {number}: a control character (U+{ord(m[0]):04X}) is not allowed in a card"
                for number, line in enumerate(lines, 1) if (m := _CONTROL.search(line))]
    if controls:  # a NUL byte cannot be stored on PostgreSQL; an escape sequence would reach a terminal
        raise CardFormatError(controls, source)
    if comments:
        markdown = False
    if markdown is None:  # kb's Markdown form: the headline, after any notices, is a '# ' heading
        first = next((line for line in lines if line and not line.startswith(("> ", *NOTICE_MARKERS))), "")
        markdown = first.startswith("# ")
    if markdown:
        lines = [from_markdown(line) for line in lines]
    return _Reader(lines, markdown=markdown, skip=skip).read(source)


# Control characters (Unicode category Cc) other than tab; CR and LF are line ends.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _normalise(text: str) -> list[str]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [line.rstrip() for line in text.split("\n")]


_MD_HEADING = re.compile(r"^#{1,6} +")
_MD_BOLD_LABEL = re.compile(r"\*\*((?:[^*\\\n]|\\.)+?):\*\*")  # a label's own '*' is escaped: '\*'
_MD_LINK = re.compile(r"^\[(📄 Read Full Study \(PMID: \d+\))\]\([^)]*\)$")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~:])")


def from_markdown(line: str) -> str:
    """One line of kb's Markdown card as the text format's line."""
    if line.strip() in ("---", "***"):
        return ""
    line = line.removeprefix("> ")
    line = _MD_HEADING.sub("", line)
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_BOLD_LABEL.sub(r"\1:", line)
    if line.startswith(("* ", "+ ")):
        line = "- " + line[2:]
    line = line.removesuffix("  ")  # Markdown line break
    return _MD_ESCAPE.sub(r"\1", line)


def to_markdown_text(value: str) -> str:
    """Escape a value for kb's Markdown card so that Markdown shows it as written (and kb's reader
    reads it back: a line starting '+' or '-' would be a list item or a rule to both)."""
    escaped = re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", value)
    return re.sub(r"(?m)^([+-])", r"\\\1", escaped)


# Words that may start lower-case in a heading ("Supplementation is Key", "Results & Efficacy")
_SMALL_WORDS = frozenset("a an and & as at by for in is of on or the to vs with".split())


def looks_like_heading(text: str) -> bool:
    """A short capitalised phrase with no full stop: a heading to a reader, not a paragraph."""
    words = text.split()
    if not 1 <= len(words) <= 6 or len(text) > 40 or text[-1] in ".!?:;,)\"'”’":
        return False
    if not words[0][0].isupper():
        return False
    return all(w[0].isupper() or w[0].isdigit() or w.casefold() in _SMALL_WORDS for w in words)


def close_heading(text: str) -> str | None:
    """The heading (or 'Quick Summary:') a mistyped line most likely meant."""
    folded = text.casefold().strip()
    candidates = {h.casefold(): h for h in (*HEADINGS, QUICK_SUMMARY, LEGACY_TECHNICAL_LIMITATIONS)}
    match = difflib.get_close_matches(folded, list(candidates), n=1, cutoff=0.8)
    return candidates[match[0]] if match else None


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


_DETAILS_HINT = ", ".join(f"'- {label}: …'" for label in STUDY_DETAILS_LABELS)
_LEGACY_DETAIL_LABELS = {label.title(): name for label, name in STUDY_DETAILS_LABELS.items()}


class _Reader:
    """One pass over the lines; every line is placed exactly or reported."""

    def __init__(self, lines: list[str], *, markdown: bool, skip: set[int]) -> None:
        self.lines = lines
        self.skip = skip
        self.markdown = markdown
        self.doc = CardDoc()
        self.problems: list[str] = []
        self.section: Section | None = None
        self.in_technical = False
        self.in_reference = False
        self.after_pmid = False
        self.pmid_line = False  # a '📄 Read Full Study' line without a PMID (a problem of its own)
        self.seen: dict[str, int] = {}     # heading -> the line it was on
        self.legacy: list[tuple[int, str]] = []   # kb's previous layout: (line, what)
        self.current: list[tuple[int, str]] = []  # only in the current layout: (line, what)
        self.source_year: tuple[int, str] | None = None

    def problem(self, number: int, message: str) -> None:
        self.problems.append(f"line {number}: {message}")

    def read(self, source: str) -> ReadCard:
        numbered = [(n, line) for n, line in enumerate(self.lines, 1) if n not in self.skip]
        i = 0
        while i < len(numbered) and (not numbered[i][1] or numbered[i][1].startswith(NOTICE_MARKERS)):
            i += 1
        if i == len(numbered):
            raise CardFormatError(["the card is empty: it needs at least a headline"], source)
        number, headline = numbered[i]
        if headline in HEADINGS or headline.startswith(QUICK_SUMMARY):
            self.problem(number, "the first line must be the card's headline")
        else:
            self.doc.headline = headline.strip()
        blank_line = None
        for number, line in numbered[i + 1:]:
            if not line.strip():
                blank_line = blank_line or number
                continue
            if self.after_pmid:
                self.problem(number, f"nothing goes after the '📄 Read Full Study' line: {_short(line.strip())}")
                continue
            self.line(number, line)
        if blank_line and not self.markdown and blank_line < max(n for n, line in numbered if line.strip()):
            self.legacy.append((blank_line, "blank lines between sections"))
        self.check_layouts()
        if "quick" not in self.seen:
            self.problems.append(f"the card has no '{QUICK_SUMMARY} ...' line (it goes after the headline)")
        if self.doc.pmid is None and not self.pmid_line:
            self.problems.append("the card has no '📄 Read Full Study (PMID: ...)' line: kb needs it to know the study")
        if self.source_year and self.doc.reference_year and self.source_year[1] != str(self.doc.reference_year):
            self.problem(self.source_year[0], f"the year {self.source_year[1]!r} differs from the reference's "
                                              f"'{PUBLISHED} {self.doc.reference_year}': make them agree")
        if self.problems:
            raise CardFormatError(self.problems, source)
        warnings = []
        if self.legacy:
            what = "; ".join(dict.fromkeys(w.split(" (")[0] for _, w in self.legacy))
            warnings.append(f"{source} is in kb's previous card layout ({what}), which is deprecated: it was read, "
                            f"and kb writes it in the current layout (kb curate export)")
        return ReadCard(self.doc, warnings)

    def check_layouts(self) -> None:
        """kb's previous layout and the current one are each read; a card mixing them is refused
        (in the previous layout a 'Limitations' line was silently merged into the paragraph above)."""
        strong = [(n, w) for n, w in self.legacy if not w.startswith("blank")]
        if strong and self.current:
            n_old, old = strong[0]
            for number, what in self.current:
                self.problem(number, f"{what} belongs to the current card layout, but line {n_old} has {old}, "
                                     f"from kb's previous layout: write the whole card in one layout "
                                     f"(the current one: see kb curate edit's template)")

    def enter(self, number: int, key: str, section: Section | None, *, technical: bool, reference: bool = False) -> None:
        if key in self.seen:
            self.problem(number, f"{_short(key)} appears twice (first on line {self.seen[key]}): "
                                 f"write the section once")
        self.seen[key] = number
        self.section = section
        self.in_technical = technical
        self.in_reference = reference

    def line(self, number: int, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith(QUICK_SUMMARY):
            if self.section is not None or self.in_reference or self.in_technical or len(self.seen) > 0:
                self.problem(number, f"'{QUICK_SUMMARY}' goes right after the headline")
            self.enter(number, "quick", None, technical=False)
            self.doc.quick_summary = stripped[len(QUICK_SUMMARY):].strip()  # a draft may leave it empty
            return
        if stripped in _MAIN:
            self.enter(number, stripped, _MAIN[stripped], technical=False)
            return
        if stripped == TECHNICAL:
            self.enter(number, stripped, None, technical=True)
            return
        if stripped in _SUB or stripped == LEGACY_TECHNICAL_LIMITATIONS:
            section = _SUB.get(stripped) or _SUB["Limitations"]
            if stripped == LEGACY_TECHNICAL_LIMITATIONS:
                self.legacy.append((number, f"'{stripped}'"))
            elif stripped == "Limitations":
                self.current.append((number, "'Limitations'"))
            if not self.in_technical:
                self.problem(number, f"'{stripped}' belongs under '{TECHNICAL}': move it there")
            self.enter(number, section.heading, section, technical=True)
            return
        if stripped == REFERENCE:
            self.enter(number, stripped, None, technical=False, reference=True)
            return
        m = READ_FULL_STUDY.match(stripped)
        if m and int(m[1]) > 0:
            self.enter(number, "pmid", None, technical=False)
            self.doc.pmid = int(m[1])
            self.after_pmid = True
            return
        m = READ_FULL_STUDY_ANY.match(stripped)
        if m:
            self.problem(number, f"{m[1]!r} is not a PMID: a PMID is digits only, from 1 to 99,999,999, "
                                 "e.g. '📄 Read Full Study (PMID: 31902683)'")
            self.pmid_line = True
            self.after_pmid = True
            return
        m = SOURCE_LINE.match(stripped)
        if m and not self.in_reference:
            self.enter(number, "source", None, technical=False)
            self.doc.study_type = m["type"].strip()
            if m["year"]:
                self.source_year = (number, m["year"].strip())
            return
        if self.in_reference:
            self.reference(number, stripped)
            return
        if stripped.startswith(NOTICE_MARKERS):
            self.problem(number, "a notice line (⚠️ or 📝) goes above the headline, and kb writes it: delete it")
            return
        bullet = line.lstrip()
        if bullet.startswith("- ") or bullet == "-":
            self.bullet(number, bullet[2:].strip())
        else:
            self.text(number, stripped)

    def reference(self, number: int, line: str) -> None:
        key, sep, value = line.partition(":")
        value = value.strip()
        if sep and key in ("Title", "Year"):  # kb's previous layout
            self.legacy.append((number, "'Title:'/'Year:' lines in the reference"))
            if key == "Title":
                self.set_title(number, value)
            else:
                self.set_year(number, value)
            return
        if sep and key == "Source":
            if value == "PubMed":
                return
            if value.casefold() == "pubmed":
                self.problem(number, f"did you mean '{REFERENCE_SOURCE}'?")
                return
            self.legacy.append((number, "a journal on the reference's 'Source:' line"))  # (kept in reference_source)
            self.doc.reference_source = value
            return
        if line.startswith(PUBLISHED) or (line.partition(" ")[0].casefold() == PUBLISHED.casefold()):
            if not line.startswith(PUBLISHED):
                self.problem(number, f"did you mean '{PUBLISHED} …'?")
                return
            self.current.append((number, f"'{PUBLISHED}'"))
            self.set_year(number, line[len(PUBLISHED):].strip())
            return
        self.current.append((number, "a bare title line in the reference"))
        self.set_title(number, line)

    def set_title(self, number: int, value: str) -> None:
        if "title" in self.seen:
            self.problem(number, f"'{REFERENCE}' has one title line (line {self.seen['title']}); "
                                 f"{_short(value)} is another: join them into one line")
            return
        self.seen["title"] = number
        self.doc.reference_title = value

    def set_year(self, number: int, value: str) -> None:
        if value and not re.fullmatch(r"\d{4}", value):
            self.problem(number, f"the reference year must be four digits, not {value!r}")
            return
        self.doc.reference_year = int(value) if value else None

    def bullet(self, number: int, text: str) -> None:
        section = self.section
        if not text:
            self.problem(number, "an empty bullet: write '- Label: text', or delete the line")
            return
        if section is None or (section.items is None and section.heading != STUDY_DETAILS):
            where = f"'{section.heading}'" if section else "this part of the card"
            self.problem(number, f"{where} takes no bullets: write a paragraph (a line without '- '), "
                                 f"or move the bullet under a heading that takes bullets")
            return
        item = split_label(text)
        if section.heading == STUDY_DETAILS:
            if text.endswith(":") and text[:-1] in STUDY_DETAILS_LABELS:
                return  # an empty detail, as kb curate edit's template writes it
            self.study_detail(number, item)
            return
        if section.labels_required and item.label is None:
            self.problem(number, f"a bullet under '{section.heading}' needs a label: "
                                 f"write '- <Label>: {text[:30]}…' (a label of at most {LABEL_LIMIT} characters)")
            return
        getattr(self.doc, section.items).append(item)

    def study_detail(self, number: int, item: Item) -> None:
        label = item.label or ""
        name = STUDY_DETAILS_LABELS.get(label)
        if name is None and label in _LEGACY_DETAIL_LABELS:
            name = _LEGACY_DETAIL_LABELS[label]
            self.legacy.append((number, f"title-case Study Details labels ('{label}')"))
        if name is None:
            close = difflib.get_close_matches(label.casefold(), [k.casefold() for k in STUDY_DETAILS_LABELS], n=1,
                                              cutoff=0.6) if label else []
            hint = f"did you mean '- {next(k for k in STUDY_DETAILS_LABELS if k.casefold() == close[0])}: …'?" \
                if close else f"it takes only {_DETAILS_HINT}"
            self.problem(number, f"'{STUDY_DETAILS}' does not take {_short('- ' + bullet_text(item))}: {hint}")
            return
        if getattr(self.doc, name):
            self.problem(number, f"'- {label}: …' is given twice under '{STUDY_DETAILS}': keep one")
            return
        if label in STUDY_DETAILS_LABELS:
            self.current.append((number, f"the Study Details label '{label}'"))
        setattr(self.doc, name, item.text)

    def text(self, number: int, text: str) -> None:
        section = self.section
        if text.casefold().startswith(QUICK_SUMMARY.casefold()):
            self.problem(number, f"did you mean '{QUICK_SUMMARY}'? ({_short(text)})")
            return
        close = close_heading(text) if len(text) <= 60 else None
        if close and close != text:
            self.problem(number, f"{_short(text)} looks like a mistyped heading: did you mean '{close}'?")
            return
        if looks_like_heading(text):
            self.problem(number, f"{_short(text)} looks like a heading, and the card has no such heading "
                                 f"(its headings: {', '.join(HEADINGS)}); if it is a paragraph, end it with a full stop")
            return
        if section is not None and section.heading == STUDY_DETAILS:
            self.problem(number, f"a stray line in '{STUDY_DETAILS}': {_short(text)}; it takes only {_DETAILS_HINT} "
                                 f"(join a wrapped line to the bullet above)")
            return
        if section is None or section.paragraph is None:
            if section is not None:
                hint = (f"'{section.heading}' takes only bullets: write '- <Label>: <text>', "
                        f"or join a wrapped line to the bullet above")
            elif self.in_technical:
                hint = f"put it under one of {', '.join(_SUB)}"
            else:
                hint = "put it under a heading, or delete it"
            self.problem(number, f"unexpected text {_short(text)}: {hint}")
            return
        if getattr(self.doc, section.items or "", None):
            self.problem(number, f"a paragraph after the bullets of '{section.heading}': {_short(text)}; "
                                 f"paragraphs come first, or join a wrapped line to the bullet above")
            return
        current = getattr(self.doc, section.paragraph)
        setattr(self.doc, section.paragraph, f"{current}\n\n{text}" if current else text)
