"""`kb cards build`: the static site of summary cards (kb.cards.site), built from the whole corpus.

Checks, on SQLite (and PostgreSQL in one test): every link and script/stylesheet reference of
every page resolves to a file of the site; the index lists exactly the studies of the database
(or of --status / --topic); a rebuild removes stale pages (only kb's) and rewrites only changed
ones; a failed build leaves whole files; curated text cannot inject markup; the batched reader
renders what `kb card` renders. Then a real headless Chromium opens the site from file:// and from
a local web server (DevTools protocol over --remote-debugging-pipe, stdlib only): no console
errors, exceptions or dialogs, and the index's search, filters, sort and reset work.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import lxml.html
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from kb import db as kbdb
from kb import models as m
from kb.cards import site
from kb.cards.data import load_card
from kb.cards.render import render
from kb.errors import InputError

from .browser import Chromium, Tab, browser  # noqa: F401 - the browser fixture
from .conftest import kb

RETRACTED = 1752960  # ncbiutils/multiple.xml: Retracted Publication
TOPIC = 'Vitamin D & "bones" <b>'  # a topic name with characters HTML must escape
XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')



def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.name.endswith((".xml", ".xml.gz")))


def load_corpus(url: URL, corpus: Path) -> None:
    """Load every corpus file; if the load of all at once stops at a broken file, load the files
    one by one and keep what loads."""
    files = corpus_files(corpus)
    if kb(url, "load", "--quiet", *map(str, files)).exit_code != 0:
        for path in files:
            kb(url, "load", "--quiet", str(path))


def sql(url: URL, query: str, **params: Any) -> list[Any]:
    engine = kbdb.create_kb_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params).scalars())
    finally:
        engine.dispose()


def card_text(pmid: int, headline: str, summary: str, bullet: str) -> str:
    """A card in kb's text format (kb/cards/textformat.py)."""
    return f"""{headline}

Quick Summary: {summary}

What The Research Found
People who took it did better {XSS[1]} than the others.
- Bone Health: {bullet}

Study Details
- Who Was Studied: 100 adults {XSS[1]}
- How Long: 1 year

What This Means For You
- Talk To Your Doctor: Ask before you take it {XSS[0]}

Study Limitations
- Small Study: Only 100 people

Source: PubMed | Type: Randomized Controlled Trial | Year: 2019

Original Study Reference
Title: A title
Source: A journal
Year: 2019

📄 Read Full Study (PMID: {pmid})
"""


def import_card(url: URL, tmp: Path, pmid: int, status: str, **parts: str) -> None:
    path = tmp / f"card-{pmid}.txt"
    path.write_text(card_text(pmid, **parts), encoding="utf-8")
    result = kb(url, "curate", "import", "--status", status, "--author", "tests", str(path))
    assert result.exit_code == 0, result.output


def prepare(url: URL, corpus: Path, tmp: Path) -> dict[str, Any]:
    """The corpus, curated cards (one full of markup, one on a retracted study, a reviewed one)
    and a topic with five studies and one exclusion."""
    load_corpus(url, corpus)
    pmids = sql(url, "SELECT pmid FROM studies WHERE NOT is_deleted AND pmid <> :r ORDER BY pmid", r=RETRACTED)
    assert len(pmids) > 250
    xss, reviewed = pmids[0], pmids[1]
    import_card(url, tmp, xss, "published", headline=f"Vitamin D {XSS[0]} and bones {XSS[1]}",
                summary=f"It helped {XSS[0]} a little {XSS[1]}.", bullet=f"Stronger bones {XSS[0]}")
    import_card(url, tmp, RETRACTED, "published", headline="A retracted study, still published",
                summary="Do not rely on it.", bullet="Nothing holds")
    import_card(url, tmp, reviewed, "reviewed", headline="A reviewed card", summary="Reviewed.",
                bullet="Reviewed finding")
    assert kb(url, "topic", "add", TOPIC, "vitamin d[tiab]").exit_code == 0
    members, excluded = pmids[10:15], pmids[15]
    engine = kbdb.create_kb_engine(url)
    with Session(engine) as session, session.begin():
        topic_id = session.scalar(select(m.Topic.id).where(m.Topic.name == TOPIC))
        session.add_all(m.TopicStudy(topic_id=topic_id, pmid=p) for p in members)
        session.add(m.TopicStudy(topic_id=topic_id, pmid=excluded, is_excluded=True))
    engine.dispose()
    return {"xss": xss, "reviewed": reviewed, "topic_members": set(members), "excluded": excluded}


@pytest.fixture(scope="module")
def corpus_site(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The corpus on SQLite, prepared once for the module, and its site built with the CLI."""
    tmp = tmp_path_factory.mktemp("site")
    url = URL.create("sqlite", database=str(tmp / "corpus.sqlite3"))
    info = prepare(url, corpus, tmp)
    out = tmp / "site"
    result = kb(url, "cards", "build", str(out))
    assert result.exit_code == 0, result.output
    return {**info, "url": url, "out": out}


# --------------------------------------------------------------------------------------------
# Checks on the written files
# --------------------------------------------------------------------------------------------


def pages(out: Path) -> list[Path]:
    return [out / "index.html", *sorted((out / "cards").glob("*.html"))]


def check_links(out: Path) -> int:
    """Every href/src of every page is relative and names a file of the site (absolute http(s)
    links and #anchors aside); no page names an absolute file path. Returns the links checked."""
    checked = 0
    for page in pages(out):
        raw = page.read_text(encoding="utf-8")
        assert str(out) not in raw, f"{page} names the absolute path of the site"
        doc = lxml.html.fromstring(raw)
        for elem in doc.iter():
            for attr in ("href", "src"):
                link = elem.get(attr)
                if link is None or link.startswith(("http://", "https://", "#")):
                    continue
                parts = urlsplit(link)
                assert not parts.scheme and not parts.netloc, f"{page}: {attr}={link!r} is not relative"
                assert not parts.path.startswith("/"), f"{page}: {attr}={link!r} is an absolute path"
                target = (page.parent / unquote(parts.path)).resolve()
                assert target.is_file(), f"{page}: {attr}={link!r} names no file"
                assert target.is_relative_to(out.resolve()), f"{page}: {attr}={link!r} leaves the site"
                checked += 1
    return checked


def by_class(elem: Any, *classes: str) -> list[Any]:
    """Descendants of ``elem`` with every one of ``classes`` (XPath: lxml's CSS selectors need a package)."""
    tests = " and ".join(f'contains(concat(" ", normalize-space(@class), " "), " {c} ")' for c in classes)
    return elem.xpath(f".//*[{tests}]")


def index_rows(doc: Any) -> list[Any]:
    return doc.xpath('//ol[@id="cards"]/li')


def index_pmids(out: Path) -> list[int]:
    return [int(li.get("data-pmid")) for li in index_rows(lxml.html.parse(str(out / "index.html")).getroot())]


def page_pmids(out: Path) -> set[int]:
    return {int(p.stem) for p in (out / "cards").glob("*.html") if p.stem.isdigit()}


def site_scripts_only(path: Path) -> None:
    """No <script> but the site's own (external, assets/site.js) and no on* attribute: parsed."""
    doc = lxml.html.parse(str(path)).getroot()
    for script in doc.iter("script"):
        assert script.get("src") == "assets/site.js" and not (script.text or "").strip(), \
            f"{path}: a script that is not the site's: {lxml.html.tostring(script)[:200]!r}"
    for elem in doc.iter():
        if isinstance(elem.tag, str):
            handlers = [name for name in elem.attrib if name.lower().startswith("on")]
            assert not handlers, f"{path}: <{elem.tag}> has event handler attributes {handlers}"


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_every_link_resolves_and_index_lists_every_study(corpus_site: dict[str, Any]) -> None:
    out, url = corpus_site["out"], corpus_site["url"]
    studies = sql(url, "SELECT pmid FROM studies ORDER BY pmid")
    assert sql(url, "SELECT count(*) FROM studies") == [len(studies)]
    listed = index_pmids(out)
    assert len(listed) == len(set(listed)) == len(studies)
    assert set(listed) == set(studies) == page_pmids(out)
    assert sorted(os.listdir(out / "assets")) == ["site.css", "site.js"]
    assert check_links(out) > 2 * len(studies)  # the index's links, and each page's link back


def test_index_rows_show_the_cards(corpus_site: dict[str, Any]) -> None:
    out = corpus_site["out"]
    doc = lxml.html.parse(str(out / "index.html")).getroot()
    rows = {int(li.get("data-pmid")): li for li in index_rows(doc)}
    retracted = rows[RETRACTED]
    assert by_class(retracted, "headline")[0].text_content() == "A retracted study, still published"
    assert [f.text_content() for f in by_class(retracted, "flag", "retracted")] == ["RETRACTED"]
    assert by_class(retracted, "status")[0].text_content() == "published"
    assert by_class(rows[corpus_site["reviewed"]], "status")[0].text_content() == "reviewed"
    draft = next(li for p, li in rows.items() if p not in (RETRACTED, corpus_site["xss"], corpus_site["reviewed"]))
    assert by_class(draft, "status")[0].text_content() == "draft from the record"
    member = rows[min(corpus_site["topic_members"])]
    assert [li.text_content() for li in by_class(member, "topics")[0].iter("li")] == [TOPIC]
    assert not list(by_class(rows[corpus_site["excluded"]], "topics")[0].iter("li"))
    assert TOPIC in [o.text_content() for o in doc.xpath('//select[@id="filter-topic"]/option')]
    types = {by_class(li, "type")[0].text_content() for li in rows.values()}
    assert types == {o.text_content() for o in doc.xpath('//select[@id="filter-type"]/option')[1:]}
    # A draft's page says it is a draft.
    page = lxml.html.parse(str(out / "cards" / f"{int(draft.get('data-pmid'))}.html")).getroot()
    assert by_class(page, "notice", "draft") and page.xpath("//nav//a")[0].get("href") == "../index.html"


def test_curated_text_cannot_inject_markup(corpus_site: dict[str, Any]) -> None:
    out, pmid = corpus_site["out"], corpus_site["xss"]
    page = out / "cards" / f"{pmid}.html"
    doc = lxml.html.parse(str(page)).getroot()
    assert not list(doc.iter("script")), "a card page has no script at all"
    assert not list(doc.iter("img"))
    site_scripts_only(page)
    site_scripts_only(out / "index.html")
    # The curated text is there, as text.
    assert doc.xpath("//h1")[0].text_content() == f"Vitamin D {XSS[0]} and bones {XSS[1]}"
    assert XSS[1] in doc.text_content() and XSS[0] in doc.text_content()
    index = lxml.html.parse(str(out / "index.html")).getroot()
    row, = [li for li in index_rows(index) if li.get("data-pmid") == str(pmid)]
    assert by_class(row, "headline")[0].text_content() == f"Vitamin D {XSS[0]} and bones {XSS[1]}"
    assert len(list(index.iter("script"))) == 1 and not list(index.iter("img"))


def test_status_and_topic_select_cards_and_stale_pages_go(corpus_site: dict[str, Any], tmp_path: Path) -> None:
    url = corpus_site["url"]
    out = tmp_path / "site"
    shutil.copytree(corpus_site["out"], out)
    (out / "cards" / "notes.txt").write_text("mine", encoding="utf-8")   # not kb's: kept
    (out / "cards" / "about.html").write_text("mine", encoding="utf-8")
    (out / "cards" / f".{corpus_site['xss']}.html.kbtmp1").write_text("half a page", encoding="utf-8")  # killed
    (out / ".index.html.kbtmp1").write_text("half an index", encoding="utf-8")
    (out / "1234.html").write_text("mine", encoding="utf-8")   # not in cards/: kept
    result = kb(url, "cards", "build", "--status", "published", str(out))
    assert result.exit_code == 0, result.output
    published = set(sql(url, "SELECT pmid FROM cards WHERE status = 'published'"))
    assert published == {corpus_site["xss"], RETRACTED}
    assert set(index_pmids(out)) == published == page_pmids(out)
    assert sorted(p.name for p in (out / "cards").iterdir()) == sorted(
        [*(f"{p}.html" for p in published), "about.html", "notes.txt"])
    assert sorted(p.name for p in out.iterdir()) == ["1234.html", "assets", "cards", "index.html"]
    check_links(out)

    result = kb(url, "cards", "build", "--topic", TOPIC, str(out))
    assert result.exit_code == 0, result.output
    assert set(index_pmids(out)) == corpus_site["topic_members"] == page_pmids(out)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert TOPIC not in index and "Vitamin D &amp; &#34;bones&#34; &lt;b&gt;" in index
    check_links(out)

    result = kb(url, "cards", "build", "--topic", "no such topic", str(out))
    assert result.exit_code == 2 and "no topic named 'no such topic'" in result.output
    assert set(index_pmids(out)) == corpus_site["topic_members"]  # the site was not touched


def test_a_failed_build_leaves_whole_files(corpus_site: dict[str, Any], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    shutil.copytree(corpus_site["out"], out)
    before = (out / "index.html").read_bytes()
    calls = 0

    render_page = site.render_page

    def failing(template, view):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 20:
            raise InputError("the template card.html.j2 failed")
        return render_page(template, view)

    monkeypatch.setattr(site, "render_page", failing)
    engine = kbdb.create_kb_engine(corpus_site["url"], readonly=True)
    with Session(engine) as session, pytest.raises(InputError, match="card.html.j2 failed"):
        site.build_site(session, out)
    engine.dispose()
    assert (out / "index.html").read_bytes() == before
    leftovers = [p for p in out.rglob("*") if ".kbtmp" in p.name]
    assert not leftovers
    assert page_pmids(out) == set(index_pmids(out))


def test_batched_cards_are_the_cards_kb_card_renders(corpus_site: dict[str, Any]) -> None:
    engine = kbdb.create_kb_engine(corpus_site["url"], readonly=True)
    with Session(engine) as session:
        pmids = session.scalars(select(m.Study.pmid).order_by(m.Study.pmid.desc())).all()
        views = list(site.load_cards(session, pmids, batch_size=37))
        assert [v.study["pmid"] for v in views] == list(pmids)
        for view in views:
            one = load_card(session, view.study["pmid"])
            assert (view.doc, view.study, view.status, view.generated, view.notices, view.card_meta) == \
                (one.doc, one.study, one.status, one.generated, one.notices, one.card_meta)
            page = corpus_site["out"] / "cards" / f"{view.study['pmid']}.html"
            assert page.read_text(encoding="utf-8") == render(one, "html", relative_root="../")
    engine.dispose()


def test_a_rebuild_rewrites_only_changed_pages(corpus_site: dict[str, Any], tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "copy.sqlite3"))
    shutil.copyfile(corpus_site["url"].database, url.database)
    out = tmp_path / "site"
    shutil.copytree(corpus_site["out"], out)
    pages = {p.name: p.stat().st_ino for p in (out / "cards").iterdir()}
    result = kb(url, "curate", "status", str(corpus_site["reviewed"]), "draft", "--author", "tests")
    assert result.exit_code == 0, result.output
    engine = kbdb.create_kb_engine(url, readonly=True)
    with Session(engine) as session:
        report = site.build_site(session, out)
    engine.dispose()
    assert report.cards == len(report.pages) == len(pages) and report.removed == 0
    assert report.unchanged == report.cards - 1   # the card now a draft (its page says so)
    changed = {p.name for p in (out / "cards").iterdir() if p.stat().st_ino != pages[p.name]}
    assert changed == {f"{corpus_site['reviewed']}.html"}


@pytest.mark.postgres
def test_site_on_postgresql(corpus: Path, pg_url: URL, tmp_path: Path) -> None:
    info = prepare(pg_url, corpus, tmp_path)
    out = tmp_path / "site"
    result = kb(pg_url, "cards", "build", str(out))
    assert result.exit_code == 0, result.output
    studies = set(sql(pg_url, "SELECT pmid FROM studies"))
    assert set(index_pmids(out)) == studies == page_pmids(out)
    assert len(index_pmids(out)) == sql(pg_url, "SELECT count(*) FROM studies")[0]
    check_links(out)
    site_scripts_only(out / "cards" / f"{info['xss']}.html")
    result = kb(pg_url, "cards", "build", "--status", "published", "--topic", TOPIC, str(out))
    assert result.exit_code == 0, result.output
    assert index_pmids(out) == [] and page_pmids(out) == set()
    result = kb(pg_url, "cards", "build", "--topic", TOPIC, str(out))
    assert set(index_pmids(out)) == info["topic_members"] == page_pmids(out)


# --------------------------------------------------------------------------------------------
# A real browser: Chromium headless, driven over the DevTools protocol on a pipe
# --------------------------------------------------------------------------------------------


VISIBLE = "Array.from(document.getElementById('cards').children).filter(li => !li.hidden)"


def test_site_in_a_real_browser(corpus_site: dict[str, Any], browser: Chromium) -> None:
    out = corpus_site["out"]
    index = lxml.html.parse(str(out / "index.html")).getroot()
    rows = index_rows(index)
    word = "vitamin"
    expected = sorted(int(li.get("data-pmid")) for li in rows if word in li.text_content().lower())
    assert 0 < len(expected) < len(rows)

    tab = Tab(browser)
    tab.open((out / "index.html").as_uri())
    assert tab.js("document.getElementById('controls').hidden") is False, "site.js did not run"
    assert tab.js(f"{VISIBLE}.length") == len(rows)

    tab.type_text("#filter-text", word.upper())
    shown = tab.js(f"{VISIBLE}.map(li => Number(li.dataset.pmid))")
    assert sorted(shown) == expected
    assert tab.js("document.getElementById('shown').textContent") == f"Showing {len(expected)} of {len(rows)} cards"
    tab.type_text("#filter-text", " zzzz-no-such-word")
    assert tab.js(f"{VISIBLE}.length") == 0 and tab.js("document.getElementById('none').hidden") is False

    tab.js("document.querySelector('#controls button[type=reset]').click()")
    tab.js("new Promise(done => setTimeout(done, 100))")
    assert tab.js(f"{VISIBLE}.length") == len(rows)

    # Study type, year range and topic filters; the sort.
    study_type = "Randomized Controlled Trial"
    tab.js(f"""(() => {{ const s = document.getElementById('filter-type'); s.value = {json.dumps(study_type)};
               s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()""")
    tab.js("new Promise(done => setTimeout(done, 100))")
    types = tab.js(f"{VISIBLE}.map(li => li.querySelector('.type').textContent)")
    assert types and set(types) == {study_type}
    assert len(types) == sum(by_class(li, "type")[0].text_content() == study_type for li in rows)
    tab.js("document.querySelector('#controls button[type=reset]').click()")
    tab.type_text("#filter-year-from", "2015")
    tab.type_text("#filter-year-to", "2019")
    years = tab.js(f"{VISIBLE}.map(li => Number(li.dataset.year))")
    assert years and all(2015 <= y <= 2019 for y in years)
    assert len(years) == sum(2015 <= int(li.get("data-year") or 0) <= 2019 for li in rows)
    tab.js("document.querySelector('#controls button[type=reset]').click()")
    tab.js(f"""(() => {{ const s = document.getElementById('filter-topic'); s.value = {json.dumps(TOPIC)};
               s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()""")
    tab.js("new Promise(done => setTimeout(done, 100))")
    assert set(tab.js(f"{VISIBLE}.map(li => Number(li.dataset.pmid))")) == corpus_site["topic_members"]
    tab.js("""(() => { const s = document.getElementById('sort'); s.value = 'year-asc';
              s.dispatchEvent(new Event('change', {bubbles: true})); })()""")
    years = tab.js("Array.from(document.getElementById('cards').children)"
                   ".map(li => li.dataset.year ? Number(li.dataset.year) : null)")
    known = [y for y in years if y is not None]
    assert known == sorted(known) and years[:len(known)] == known  # oldest first, no year last

    # Card pages: the one full of markup, the retracted one, a generated draft.
    for pmid in (corpus_site["xss"], RETRACTED, int(rows[-1].get("data-pmid"))):
        tab.open((out / "cards" / f"{pmid}.html").as_uri())
        assert tab.js("document.querySelectorAll('script, img').length") == 0
        assert tab.js("document.querySelector('nav a').href") == (out / "index.html").as_uri()
    assert tab.js("document.querySelector('h1').textContent")

    # The same site from a web server, under a path of its own.
    with serve(out.parent) as base:
        root = f"{base}/{out.name}/"
        tab.open(root)
        assert tab.js(f"{VISIBLE}.length") == len(rows)
        since = len(browser.events)
        tab.js("document.querySelector('#cards a.headline').click()")
        browser.wait_for("Page.loadEventFired", tab.session, since)
        assert tab.js("location.href").startswith(f"{root}cards/")
        assert tab.js("document.querySelector('nav a').href") == f"{root}index.html"
    assert tab.problems() == []


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A local web server for ``directory``; yields its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
