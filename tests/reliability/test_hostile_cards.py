"""Hostile cards (issue 7, scenario 2, for the cards of issue 4; in issue 12's layout), on SQLite and PostgreSQL.

* HTML and JavaScript (``<script>``, ``"><img onerror=…>``, ``javascript:`` links, ``<svg onload>``)
  and Jinja2 template syntax (``{{ 7*7 }}``, ``{% for %}``, ``{#``, ``{% raw %}``, sandbox escapes)
  in every field of a card -- headline, Quick Summary, every paragraph, bullet and label, study
  details, study type, reference title and journal -- imported with ``kb curate import``: every
  value comes out as literal text in ``kb card`` text (byte for byte the imported file), Markdown
  (backslash-escaped; it reads back to the same card), HTML (parsed with ``lxml.html``: no element
  or attribute the payload wrote, no ``on*`` attribute, no ``javascript:`` URL; the text shows the
  payload as written) and JSON (the same strings); ``{{ 7*7 }}`` is there and ``49`` is not (nor
  ``7777777``). The same through a curator's own ``--template`` and the pages of ``kb cards build``.
* Enormous fields: a 5 MB bullet (distinct words) and a 1 MB word: imported whole within bounded
  time and memory (a process of its own, its peak RSS measured), rendered in every format, the
  study still found by ``kb search`` (on PostgreSQL its index row holds the first 40,000 characters
  of each text column: a tsvector holds at most 1 MB).
* Wrong encodings (Latin-1 bytes, UTF-16 with a BOM, invalid UTF-8), NUL bytes and other control
  characters: one ``not imported:`` line naming the file, exit code 1, nothing of that file stored,
  the other files of the same command imported. CRLF, lone CR, a UTF-8 BOM, trailing spaces: the
  same card as the plain file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import pytest
from click.testing import Result
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb.cards.model import CardDoc
from kb.cards.textformat import parse_card, to_markdown_text

from .conftest import Scenario
from .support import bad_output, card_problems, database_text, db_url, kb, kb_argv, subprocess_env  # noqa: F401

DATA = Path(__file__).parents[1] / "data"
KB_CARD = DATA / "card-31902683-kb.txt"
STORED = 30158200  # ncbiutils/markup.xml: a stored study, its reference from PubMed's record
SEVEN = "{{ 7*7 }}"
EVALUATED = ("49", "7777777")  # what {{ 7*7 }}, {{ 7*'7' }} or a {% for %} of sevens would give
HTML = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<a href=\"javascript:alert(1)\">click</a>",
    "javascript:alert(document.cookie)",
    "<svg onload=alert(1)>",
    "</title></textarea><script>alert(2)</script>",
    "<iframe src=//evil.example>",
    "&lt;script&gt; &amp; &#x3C;b&#x3E;",
    "[link](javascript:alert(1)) **bold** `code` <b onmouseover=alert(1)>b</b>",
]
JINJA = [
    SEVEN,
    "{% for x in range(7) %}7{% endfor %}",
    "{# a comment #}",
    "{{ config.items() }}",
    "{% raw %}",
    "{% endraw %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{%- if true -%}yes{%- endif -%}",
    "{{7*'7'}}",
    "${7*7} #{7*7} <%= 7*7 %>",
    "{{",
    "{%",
]
DANGEROUS = {"script", "iframe", "object", "embed", "img", "svg", "math", "frame", "frameset", "base", "textarea",
             "video", "audio", "source", "style", "link", "meta", "template"}


def payload(i: int) -> str:
    return f"{JINJA[i % len(JINJA)]} {HTML[i % len(HTML)]} {SEVEN}"


def hostile_card(pmid: int, shift: int, reference: str | None = None) -> str:
    """A card with a payload in every field (``reference``: the card's last lines as kb shows them
    for a stored study, whose reference comes from PubMed's record)."""
    p = [payload(i + shift) for i in range(30)]
    body = f"""{p[0]} headline
Quick Summary: {p[1]}
What The Research Found
{p[2]}
{p[3]}
- Label {SEVEN}: {p[4]}
- {p[5]}
Study Details
- Who was studied: {p[6]}
- How long: {p[7]}
- What they took: {p[8]}
What This Means For You
- Tag <b onmouseover=alert(1)>: {p[9]}
- Note {SEVEN}: {p[10]}
Study Limitations
- Limit <i>x</i>: {p[11]}
Technical Analysis Details
Key Findings
{p[12]}
- {p[13]}
Study Design
{p[14]}
Dosage & Administration
{p[15]}
Results & Efficacy
{p[16]}
Limitations
{p[23]}
- {p[19]}
Clinical Relevance
{p[17]}
- {p[18]}
"""
    if reference is not None:
        return body + reference.replace("Type: ", f"Type: {p[20]} ", 1)
    return body + f"""Source: PubMed | Type: {p[20]} | Year: 2021
Original Study Reference
{p[21]}
Source: PubMed
Published: 2021
📄 Read Full Study (PMID: {pmid})
"""


@pytest.fixture(scope="module")
def loaded(db_url: URL, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[URL]:  # noqa: F811
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KB_HOME", str(tmp_path_factory.mktemp("kb-home")))
        result = kb(db_url, "load", "--quiet", str(corpus / "ncbiutils" / "markup.xml"))
        assert result.exit_code == 0, result.output
        assert kb(db_url, "curate", "import", str(KB_CARD)).exit_code == 0
    yield db_url


def active_content(page: lxml.html.HtmlElement) -> list[str]:
    """Elements and attributes that would run or load something: none but the site's own
    stylesheet and script."""
    found = []
    for el in page.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        own = ((tag == "script" and el.get("src") == "assets/site.js" and not (el.text or "").strip())
               or (tag == "link" and el.get("href") == "assets/site.css")
               or (tag == "style" and el.getparent().tag == "head")
               or (tag == "meta" and el.get("http-equiv") is None))
        if tag in DANGEROUS and not own:
            found.append(f"a <{tag}> element")
        for name, value in el.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"<{tag} {name}=…>")
            if name.lower() in ("href", "src", "action", "formaction", "xlink:href") and re.sub(
                    r"[\s\x00-\x1f]", "", value).lower().startswith(("javascript:", "data:", "vbscript:")):
                found.append(f"<{tag} {name}={value[:40]!r}>")
    return found


def check_html(html: str, expected_text: list[str], label: str) -> list[str]:
    page = lxml.html.fromstring(html)
    wrong = [f"{label}: {a}" for a in active_content(page)]
    body = page.find("body")
    shown = (body if body is not None else page).text_content()
    wrong += [f"{label}: {value[:40]!r} is not shown as written" for value in expected_text if value not in shown]
    wrong += [f"{label}: shows {e!r}" for e in EVALUATED if e in shown]
    return wrong


def values(doc: CardDoc) -> list[str]:
    """Every curated string of a card."""
    out = [doc.headline, doc.quick_summary, doc.who_was_studied, doc.how_long, doc.what_they_took, doc.study_type]
    out += [p for f in ("what_research_found", "key_findings", "study_design", "dosage_administration",
                        "results_efficacy", "technical_limitations", "clinical_relevance")
            for p in getattr(doc, f).split("\n\n") if p]
    out += [v for name in ("findings", "notes", "limitations", "technical_findings", "technical_notes",
                           "technical_limitation_items") for i in getattr(doc, name) for v in (i.label, i.text) if v]
    return [v for v in out if v]


def test_markup_and_template_syntax_in_every_field(loaded: URL, scenario: Scenario, tmp_path: Path) -> None:
    problems: list[str] = []
    draft = kb(loaded, "card", str(STORED)).stdout
    reference = draft[draft.index("Source: PubMed | "):]
    cards = {31111111: hostile_card(31111111, 0), 31111112: hostile_card(31111112, 7),
             STORED: hostile_card(STORED, 13, reference)}
    files = []
    for pmid, text in cards.items():
        assert not any(e in text for e in EVALUATED) and SEVEN in text
        path = tmp_path / f"hostile-{pmid}.txt"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    result = kb(loaded, "curate", "import", *map(str, files))
    assert result.exit_code == 0, result.output
    scenario.runs += 1

    for pmid, text in cards.items():
        doc = parse_card(text)
        expected = values(doc)
        assert len(expected) >= 22
        rendered = {fmt: kb(loaded, "card", str(pmid), "--format", fmt) for fmt in ("text", "md", "html", "json")}
        scenario.runs += len(rendered)
        wrong = [f"--format {fmt}: exit {r.exit_code} {r.output[-300:]!r}" for fmt, r in rendered.items() if r.exit_code]
        if not wrong:
            out = {fmt: r.stdout for fmt, r in rendered.items()}
            if out["text"] != text:
                wrong.append("text: not the imported card, byte for byte")
            # (the JSON's curation block holds the save time, which may well contain a 49)
            data = json.loads(out["json"])
            data.pop("curation", None)
            curated = {"text": out["text"], "md": out["md"], "json": json.dumps(data, ensure_ascii=False)}
            for fmt in ("text", "md", "json"):
                wrong += [f"{fmt}: shows {e!r}" for e in EVALUATED if e in curated[fmt]]
            if to_markdown_text(SEVEN) not in out["md"]:
                wrong.append(f"md: {SEVEN} is not there (escaped)")
            if not parse_card(out["md"]).same_content(doc):
                wrong.append("md: does not read back to the same card")
            data = json.loads(out["json"])
            if not CardDoc.from_json(data["card"]).same_content(doc) or data["card"]["headline"] != doc.headline:
                wrong.append("json: the card's strings differ from the imported ones")
            wrong += check_html(out["html"], expected, "html")
            title = lxml.html.fromstring(out["html"]).findtext(".//title") or ""
            if doc.headline not in title:
                wrong.append(f"html: the <title> is {title[:80]!r}")
        if wrong:
            scenario.failures += 1
            problems += [f"PMID {pmid}: {w}" for w in wrong]

    # A curator's own templates: the values are data, never template source.
    own_html, own_text = tmp_path / "mine.html", tmp_path / "mine.txt"
    own_html.write_text("<h1>{{ card.headline }}</h1>{% for i in card.findings %}<p title=\"{{ i.label }}\">"
                        "{{ i.text }}</p>{% endfor %}<p>{{ study.type }}</p>", encoding="utf-8")
    own_text.write_text("{{ card.headline }}\n{{ card.quick_summary }}\n{{ study.title }}\n", encoding="utf-8")
    for pmid, text in cards.items():
        doc = parse_card(text)
        scenario.runs += 2
        html = kb(loaded, "card", str(pmid), "--template", str(own_html))
        plain = kb(loaded, "card", str(pmid), "--template", str(own_text))
        wrong = check_html(html.stdout, [doc.headline, *(i.text for i in doc.findings)], "--template mine.html")
        if not plain.stdout.startswith(f"{doc.headline}\n{doc.quick_summary}\n"):
            wrong.append(f"--template mine.txt: {plain.stdout[:120]!r}")
        wrong += [f"--template mine.txt: shows {e!r}" for e in EVALUATED if e in plain.stdout]
        if wrong:
            scenario.failures += 1
            problems += [f"PMID {pmid}: {w}" for w in wrong]

    # The static site: every page and the index.
    site = tmp_path / "site"
    built = kb(loaded, "cards", "build", str(site))
    scenario.runs += 1
    if built.exit_code != 0:
        problems.append(f"kb cards build: exit {built.exit_code}: {built.output[-300:]!r}")
    else:
        index = (site / "index.html").read_text(encoding="utf-8")
        wrong = check_html(index, [parse_card(t).headline for t in cards.values()], "index.html")
        for pmid, text in cards.items():
            page = site / "cards" / f"{pmid}.html"
            wrong += check_html(page.read_text(encoding="utf-8"), values(parse_card(text)), page.name)
        if wrong:
            scenario.failures += 1
            problems += wrong

    engine = kbdb.create_kb_engine(loaded)
    with engine.connect() as conn:
        half = card_problems(conn, cards)
    engine.dispose()
    scenario.half_written += len(half)
    problems += half
    assert not problems, "\n".join(problems)
    assert scenario.failures == 0


_MEASURED = """
import resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
MAX_SECONDS = 90
MAX_RSS_KB = 1_500_000


def test_enormous_fields(loaded: URL, scenario: Scenario, tmp_path: Path) -> None:
    pmid = 31111121
    bullet = " ".join(f"w{i}x" for i in range(720_000))  # 5 MB of distinct words
    word = "y" * 1_000_000
    assert len(bullet) > 5_000_000
    text = (KB_CARD.read_text(encoding="utf-8").replace("(PMID: 31902683)", f"(PMID: {pmid})")
            .replace("- Small Numbers: The", f"- Small Numbers: {bullet} The")
            .replace("\nObservational analysis of", f"\n{word}\nObservational analysis of"))
    path = tmp_path / "enormous.txt"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *kb_argv("curate", "import", str(path))],
                          env=subprocess_env(loaded, {}), capture_output=True, text=True, timeout=600)
    code, seconds, rss = proc.stdout.split()
    scenario.runs += 1
    problems = []
    if int(code) != 0 or bad_output(proc.stderr):
        problems.append(f"kb curate import: exit {code}: {proc.stderr[-500:]!r}")
    if float(seconds) > MAX_SECONDS or int(rss) > MAX_RSS_KB:
        problems.append(f"kb curate import of a 6 MB card took {float(seconds):.1f} s and {int(rss) // 1024} MB")
    scenario.notes.append(f"a 6 MB card: kb curate import {float(seconds):.1f} s, peak RSS {int(rss) // 1024} MB")
    if not problems:
        doc = parse_card(text)
        for fmt in ("text", "md", "html", "json"):
            scenario.runs += 1
            shown: Result = kb(loaded, "card", str(pmid), "--format", fmt)
            out = shown.stdout
            ok = shown.exit_code == 0 and {
                "text": lambda: out == text,
                "md": lambda: parse_card(out).same_content(doc),
                "html": lambda: bullet in lxml.html.fromstring(out).text_content() and word in out,
                "json": lambda: json.loads(out)["card"]["limitations"][0]["text"].startswith(bullet),
            }[fmt]()
            if not ok:
                problems.append(f"kb card --format {fmt}: exit {shown.exit_code}, {shown.output[-300:]!r}")
        scenario.runs += 1
        # (on PostgreSQL the index holds the first 40,000 characters of each column: the headline's
        # words, not the bullet's, which come after the 1 MB word)
        found = kb(loaded, "search", "dangerous blood disorder", "--format", "csv", "--limit", "50")
        if found.exit_code != 0 or str(pmid) not in found.stdout:
            problems.append(f"kb search does not find the card: {found.output[-300:]!r}")
    engine = kbdb.create_kb_engine(loaded)
    with engine.connect() as conn:
        half = card_problems(conn, [pmid])
    engine.dispose()
    scenario.half_written += len(half)
    scenario.failures += bool(problems or half)
    assert not problems + half, "\n".join(problems + half)


def test_encodings_control_characters_and_line_ends(loaded: URL, scenario: Scenario, tmp_path: Path) -> None:
    pmid = 31111131
    plain = KB_CARD.read_text(encoding="utf-8").replace("(PMID: 31902683)", f"(PMID: {pmid})")
    accented = plain.replace("Vitamin B12 Deficiency", "Vitamin B12 Déficiency")
    raw = accented.encode("utf-8")
    bad = {
        "latin-1.txt": (accented.encode("latin-1", "replace"), "is not UTF-8 text"),
        "utf-16-le-bom.txt": (accented.encode("utf-16"), "is not UTF-8 text"),
        "utf-16-be-bom.txt": (("\ufeff" + accented).encode("utf-16-be"), "is not UTF-8 text"),
        "continuation-byte.txt": (raw.replace("é".encode(), b"\x80"), "is not UTF-8 text"),
        "overlong.txt": (raw.replace("é".encode(), b"\xc0\xaf"), "is not UTF-8 text"),
        "surrogate.txt": (raw.replace("é".encode(), b"\xed\xa0\x80"), "is not UTF-8 text"),
        "truncated.txt": (raw + b"\xe2\x82", "is not UTF-8 text"),
        "nul.txt": (accented.replace("Small Numbers:", "Small\x00Numbers:").encode(), "control character (U+0000)"),
        "nul-only.txt": (b"\x00" * 64, "control character (U+0000)"),
        "escape.txt": (accented.replace("Vitamin", "\x1b[31mVitamin", 1).encode(), "control character (U+001B)"),
        "empty.txt": (b"", "the card is empty"),
    }
    good = {
        "lf.txt": plain.encode(),
        "crlf.txt": plain.replace("\n", "\r\n").encode(),
        "cr.txt": plain.replace("\n", "\r").encode(),
        "utf-8-bom.txt": b"\xef\xbb\xbf" + plain.encode(),
        "trailing-spaces.txt": plain.replace("\n", "  \t\n").encode(),
        "no-final-newline.txt": plain.rstrip("\n").encode(),
    }
    problems: list[str] = []
    for name, content in {**bad, **good}.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content[0])

    before = database_text(loaded)
    for name, (_, phrase) in bad.items():
        scenario.runs += 1
        result = kb(loaded, "curate", "import", str(tmp_path / name))
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("not imported:")]
        if (result.exit_code != 1 or len(lines) != 1 or name not in lines[0] or phrase not in result.stderr
                or bad_output(result.output) or "imported 0 cards (0 unchanged, 0 placeholder studies created), "
                "failed 1" not in result.stderr):
            scenario.failures += 1
            problems.append(f"{name}: exit {result.exit_code}, {result.stderr[-400:]!r}")
    if database_text(loaded) != before:
        scenario.curated_changed += 1
        problems.append("files that were not imported changed the database")

    for i, name in enumerate(good):
        scenario.runs += 1
        result = kb(loaded, "curate", "import", str(tmp_path / name))
        summary = "imported 1 card (0 unchanged, 1 placeholder study" if i == 0 else "imported 0 cards (1 unchanged"
        shown = kb(loaded, "card", str(pmid)).stdout
        if result.exit_code != 0 or summary not in result.stderr or shown != plain:
            scenario.failures += 1
            problems.append(f"{name}: exit {result.exit_code}, {result.stderr[-300:]!r}, shown as the card: "
                            f"{shown == plain}")

    # Bad and good files in one command: the good ones are imported, exit code 1.
    scenario.runs += 1
    mixed = plain.replace(f"(PMID: {pmid})", f"(PMID: {pmid + 1})")
    (tmp_path / "other.txt").write_text(mixed, encoding="utf-8")
    result = kb(loaded, "curate", "import", *(str(tmp_path / n) for n in ("nul.txt", "other.txt", "latin-1.txt")))
    if (result.exit_code != 1 or "imported 1 card (0 unchanged, 1 placeholder study created), failed 2"
            not in result.stderr or kb(loaded, "card", str(pmid + 1)).stdout != mixed):
        scenario.failures += 1
        problems.append(f"bad and good files together: exit {result.exit_code}, {result.stderr[-400:]!r}")

    engine = kbdb.create_kb_engine(loaded)
    with engine.connect() as conn:
        half = card_problems(conn)
    engine.dispose()
    scenario.half_written += len(half)
    assert not problems + half, "\n".join(problems + half)
    assert scenario.failures == scenario.curated_changed == 0
