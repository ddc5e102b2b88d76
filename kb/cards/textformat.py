"""kb's card text format: rendering is the Jinja2 template ``card.txt.j2``; this module holds the
layout's names and reads the format back (``kb curate import`` and ``kb curate edit``).

The layout, top to bottom (empty sections are left out):

    <notices: lines starting with ⚠️ or 📝, each followed by a blank line>
    <headline>

    Quick Summary: <text>

    What The Research Found
    <paragraph, one line>
    - <Label>: <text>

    Study Details
    - Who Was Studied: <text>
    - How Long: <text>
    - What They Took: <text>

    What This Means For You
    - <Label>: <text>

    Study Limitations
    - <Label>: <text>

    Technical Analysis Details

    Key Findings            (sub-headings: paragraphs, then bullets where the section has them)
    ...
    Study Design / Dosage & Administration / Results & Efficacy / Clinical Relevance /
    Technical Limitations

    Source: PubMed | Type: <study type> | Year: <year>

    Original Study Reference
    Title: <title>
    Source: <journal>
    Year: <year>

    📄 Read Full Study (PMID: <pmid>)

Reading is forgiving where a curator's editor might be: CRLF, trailing spaces, wrapped lines
(a line that continues a paragraph or bullet is joined with one space), extra blank lines,
Markdown (``# heading``, ``**Label:**``, links, backslash escapes). Every problem is reported
with its line number, all at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.cards.model import CardDoc, Item
from kb.errors import InputError

QUICK_SUMMARY = "Quick Summary:"
TECHNICAL = "Technical Analysis Details"
REFERENCE = "Original Study Reference"
STUDY_DETAILS_LABELS = {"Who Was Studied": "who_was_studied", "How Long": "how_long", "What They Took": "what_they_took"}
NOTICE_MARKERS = ("⚠️", "⚠", "📝")
READ_FULL_STUDY = re.compile(r"^📄 Read Full Study \(PMID: (\d{1,8})\)$")
# (kb writes "| Year: " when the year is unknown; the reader has stripped the trailing space)
SOURCE_LINE = re.compile(r"^Source: PubMed \| Type: (?P<type>.*?) \| Year:(?: (?P<year>.*))?$")
_LABEL = re.compile(r"^(?P<label>[A-Z0-9][^:.?!;]{0,59}?): (?P<text>\S.*)$")


@dataclass(frozen=True)
class Section:
    heading: str
    paragraph: str | None  # the CardDoc field its paragraphs go to
    items: str | None      # the CardDoc item list its bullets go to
    technical: bool = False

    def has_content(self, doc: CardDoc) -> bool:
        if self.heading == "Study Details":
            return any(getattr(doc, f) for f in STUDY_DETAILS_LABELS.values())
        return bool((self.paragraph and getattr(doc, self.paragraph)) or (self.items and getattr(doc, self.items)))


SECTIONS = (
    Section("What The Research Found", "what_research_found", "findings"),
    Section("Study Details", None, None),
    Section("What This Means For You", None, "notes"),
    Section("Study Limitations", None, "limitations"),
)
TECHNICAL_SECTIONS = (
    Section("Key Findings", "key_findings", "technical_findings", technical=True),
    Section("Study Design", "study_design", None, technical=True),
    Section("Dosage & Administration", "dosage_administration", None, technical=True),
    Section("Results & Efficacy", "results_efficacy", None, technical=True),
    Section("Clinical Relevance", "clinical_relevance", "technical_notes", technical=True),
    Section("Technical Limitations", None, "technical_limitations", technical=True),
)
_MAIN = {s.heading: s for s in SECTIONS}
_SUB = {s.heading: s for s in TECHNICAL_SECTIONS}
HEADINGS = frozenset({*_MAIN, *_SUB, TECHNICAL, REFERENCE})


class CardFormatError(InputError):
    """A card text that does not follow the format: every problem with its line number."""

    def __init__(self, problems: list[str], source: str = "the card") -> None:
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source} is not a valid card:\n{listed}")


def bullet_text(item: Item) -> str:
    return f"{item.label}: {item.text}" if item.label else item.text


def split_label(text: str) -> Item:
    """``Label: text`` -> Item(label, text); a bullet without such a label keeps its whole text."""
    m = _LABEL.match(text)
    return Item(text=m["text"], label=m["label"]) if m else Item(text=text)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def parse_card(text: str, *, source: str = "the card", markdown: bool | None = None) -> CardDoc:
    """Read a card in kb's text format (or its Markdown form). Raises CardFormatError."""
    lines = _normalise(text)
    controls = [f"line {number}: a control character (U+{ord(m[0]):04X}) is not allowed in a card"
                for number, line in enumerate(lines, 1) if (m := _CONTROL.search(line))]
    if controls:  # a NUL byte cannot be stored on PostgreSQL; an escape sequence would reach a terminal
        raise CardFormatError(controls, source)
    if markdown is None:  # kb's Markdown form: the headline, after any notices, is a '# ' heading
        first = next((line for line in lines if line and not line.startswith(("> ", *NOTICE_MARKERS))), "")
        markdown = first.startswith("# ")
    if markdown:
        lines = [from_markdown(line) for line in lines]
    return _Reader(lines).read(source)


# Control characters (Unicode category Cc) other than tab; CR and LF are line ends.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _normalise(text: str) -> list[str]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [line.rstrip() for line in text.split("\n")]


_MD_HEADING = re.compile(r"^#{1,6} +")
_MD_BOLD_LABEL = re.compile(r"\*\*((?:[^*\\\n]|\\.)+?):\*\*")  # a label's own '*' is escaped: '\*'
_MD_LINK = re.compile(r"^\[(📄 Read Full Study \(PMID: \d+\))\]\([^)]*\)$")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")


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


class _Reader:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.doc = CardDoc()
        self.problems: list[str] = []
        self.section: Section | None = None
        self.in_technical = False
        self.in_reference = False
        self.pending: list[str] = []          # lines of the paragraph being read
        self.pending_line = 0
        self.last_item: Item | None = None    # the bullet a wrapped line continues
        self.after_blank = True
        self.detail_field: str | None = None  # the Study Details field the last bullet set

    def problem(self, number: int, message: str) -> None:
        self.problems.append(f"line {number}: {message}")

    def read(self, source: str) -> CardDoc:
        numbered = list(enumerate(self.lines, 1))
        i = 0
        while i < len(numbered) and (not numbered[i][1] or numbered[i][1].startswith(NOTICE_MARKERS)):
            i += 1
        if i == len(numbered):
            raise CardFormatError(["the card is empty: it needs at least a headline"], source)
        number, headline = numbered[i]
        if headline in HEADINGS or headline.startswith(QUICK_SUMMARY):
            self.problem(number, "the first line must be the card's headline")
        else:
            self.doc.headline = headline.removeprefix("# ").strip()
        seen_quick = False
        for number, line in numbered[i + 1:]:
            if not line:
                self.flush()
                self.last_item = None
                self.after_blank = True
                continue
            handled = self.special(number, line)
            if handled == "quick":
                seen_quick = True
            if not handled:
                self.content(number, line)
            self.after_blank = False
        self.flush()
        if not self.doc.headline and not self.problems:
            self.problems.append("the card has no headline")
        if not seen_quick:
            self.problems.append(f"the card has no '{QUICK_SUMMARY} ...' line (it goes after the headline)")
        if self.doc.pmid is None:
            self.problems.append("the card has no '📄 Read Full Study (PMID: ...)' line: kb needs it to know the study")
        if self.problems:
            raise CardFormatError(self.problems, source)
        return self.doc

    def special(self, number: int, line: str) -> str | None:
        """Headings, the Quick Summary, source and reference lines. None for section content."""
        stripped = line.strip()
        if stripped.startswith(QUICK_SUMMARY) and self.section is None and not self.in_reference:
            self.flush()
            self.pending = [stripped[len(QUICK_SUMMARY):].strip()]
            self.pending_line = number
            self.section = Section(QUICK_SUMMARY, "quick_summary", None)
            return "quick"
        if stripped in _MAIN:
            self.enter(_MAIN[stripped], technical=False)
            return "heading"
        if stripped == TECHNICAL:
            self.enter(None, technical=True)
            return "heading"
        if stripped in _SUB:
            if not self.in_technical:
                self.problem(number, f"'{stripped}' belongs under '{TECHNICAL}'")
            self.enter(_SUB[stripped], technical=True)
            return "heading"
        if stripped == REFERENCE:
            self.enter(None, technical=False)
            self.in_reference = True
            return "heading"
        m = READ_FULL_STUDY.match(stripped)
        if m:
            self.enter(None, technical=False)
            self.doc.pmid = int(m[1])
            return "pmid"
        m = SOURCE_LINE.match(stripped)
        if m and not self.in_reference:
            self.enter(None, technical=False)
            self.doc.study_type = m["type"].strip()
            return "source"
        if self.in_reference:
            self.reference(number, stripped)
            return "reference"
        if stripped.startswith(NOTICE_MARKERS):
            return "notice"  # notices are written by kb, never stored
        return None

    def enter(self, section: Section | None, *, technical: bool) -> None:
        self.flush()
        self.section = section
        self.in_technical = technical
        self.in_reference = False
        self.last_item = None

    def reference(self, number: int, line: str) -> None:
        key, _, value = line.partition(":")  # 'Year:' alone: kb wrote 'Year: ' for no year
        value = value.strip()
        if key == "Title":
            self.doc.reference_title = value
        elif key == "Source":
            self.doc.reference_source = value
        elif key == "Year":
            if value and not re.fullmatch(r"\d{4}", value):
                self.problem(number, f"the reference year must be four digits, not {value!r}")
            else:
                self.doc.reference_year = int(value) if value else None
        else:
            self.problem(number, f"'{REFERENCE}' takes 'Title: ...', 'Source: ...' and 'Year: ...' lines, not {line!r}")

    def content(self, number: int, line: str) -> None:
        section = self.section
        bullet = line.lstrip()
        if bullet.startswith("- ") or bullet == "-":
            self.flush()
            text = bullet[2:].strip()
            if section is None or (section.items is None and section.heading != "Study Details"):
                where = f"'{section.heading}'" if section else "this part of the card"
                self.problem(number, f"{where} takes no bullets; write a paragraph, or move the bullet under a heading")
                return
            if not text:
                self.problem(number, "an empty bullet")
                return
            item = split_label(text)
            if section.heading == "Study Details":
                self.study_detail(number, item)
                return
            getattr(self.doc, section.items).append(item)
            self.last_item = item
            return
        text = line.strip()
        close = _close_heading(text) if len(text) <= 40 and not text.endswith(".") else None
        if close:  # a mistyped heading would otherwise become text of the section above
            self.problem(number, f"{_short(text)} looks like a heading: did you mean '{close}'?")
            return
        if self.last_item is not None and not self.after_blank:
            self.last_item.text = f"{self.last_item.text} {text}"
            return
        if section is None or section.paragraph is None:
            where = f"under '{section.heading}'" if section else "here"
            hint = "write each point as a bullet '- Label: text'" if section and section.items else "is it a heading with a typo?"
            if text.casefold().startswith(QUICK_SUMMARY.casefold()):
                hint = f"did you mean '{QUICK_SUMMARY}'?"
            self.problem(number, f"unexpected text {where}: {_short(text)} ({hint})")
            return
        if not self.pending:
            self.pending_line = number
        self.pending.append(text)

    def study_detail(self, number: int, item: Item) -> None:
        name = STUDY_DETAILS_LABELS.get(item.label or "")
        if name is None:
            labels = ", ".join(f"'- {label}: ...'" for label in STUDY_DETAILS_LABELS)
            self.problem(number, f"'Study Details' takes {labels}; not {_short(bullet_text(item))}")
            return
        setattr(self.doc, name, item.text)
        self.last_item = item
        self.detail_field = name

    def flush(self) -> None:
        if self.last_item is not None and self.detail_field:
            setattr(self.doc, self.detail_field, self.last_item.text)  # with its wrapped lines
            self.detail_field = None
        if not self.pending:
            return
        paragraph = " ".join(p for p in self.pending if p)
        self.pending = []
        section = self.section
        if section is None or section.paragraph is None:
            return
        current = getattr(self.doc, section.paragraph)
        setattr(self.doc, section.paragraph, f"{current}\n\n{paragraph}" if current else paragraph)


def _close_heading(text: str) -> str | None:
    """The heading (or 'Quick Summary:') a mistyped line most likely meant."""
    import difflib

    folded = text.casefold()
    candidates = {h.casefold(): h for h in HEADINGS}
    match = difflib.get_close_matches(folded, list(candidates), n=1, cutoff=0.85)
    return candidates[match[0]] if match else None


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")

