"""The NCBI API key never leaks (issue 7, scenario 4), on SQLite and PostgreSQL.

With ``NCBI_API_KEY`` set to a distinctive value, every kind of kb run -- ingest, load, topic
add, refresh (one topic, and the full run with its tracked-study pass and retries), refresh
--status, report changes, query, export to files in every format, status, the db commands, the
card commands (``kb card`` in every format, to stdout and to files; ``kb curate draft``, ``export``
in both formats, ``import``, ``edit`` with a scripted ``$EDITOR``, ``status``, ``history``,
``lint``; ``kb cards build``) -- and failing runs (429s whose body echoes the key, the stand-in's HTTP 400 for an invalid key,
an unreachable E-utilities, bad database URLs), all with ``--debug -v``; then everything is
searched for the key: stdout and stderr of every run, every log record (kb's stderr handler and
the root logger), the traceback a ``--debug`` run prints, every row of every table of the
database, and every file under the test's directory (exports, rendered cards, exported card files,
the static site, the SQLite files with their WAL, lock files, the rate-schedule files of
``KB_RATE_DIR`` and ``KB_HOME`` with its card recovery files), names and bytes.

Searched forms: the key itself, upper- and lower-cased, URL-encoded (``quote``/``quote_plus``),
JSON-escaped, and 12-character pieces of it (start, middle, end). Two keys are used: a realistic
hex one and one with URL-special characters (``+/=&%``), so the encoded forms differ from the key.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import URL

from kb.cli import cli
from kb.testing.eutils import EutilsServer

from ..conftest import url_text
from .support import database_text

KEYS = {
    "hex": "5e1f0a2b3c4d9e8f7a6b5c4d3e2f1a0b9c8d",
    "special": "kbKey+Secret/Zq8=Vw&x%41~Leak",
}
EXPORT_FORMATS = ("csv", "jsonl", "ris", "bibtex", "csl-json")
CARD_FORMATS = ("text", "md", "html", "json")
KB_CARD = Path(__file__).parents[1] / "data" / "card-31902683-kb.txt"
# $EDITOR for kb curate edit: the first run writes an invalid card (kb keeps it in a recovery file
# and opens the editor again), the second a valid one.
_EDITOR = """
import pathlib, sys
card = pathlib.Path(sys.argv[2])
runs = pathlib.Path(sys.argv[1])
n = len(runs.read_text()) if runs.exists() else 0
runs.write_text("x" * (n + 1))
text = card.read_text(encoding="utf-8")
lines = text.split("\\n")
first = next(i for i, line in enumerate(lines) if not line.startswith("#"))  # the headline
lines[first] = "Edited by the secrets scenario"
text = "\\n".join(lines)
# the first save is invalid (kb reopens the editor with the errors), the second fixes it
card.write_text(text.replace("Quick Summary:", "Quick summary:") if n == 0 else
                text.replace("Quick summary:", "Quick Summary:"), encoding="utf-8")
"""


def forms(key: str) -> dict[str, str]:
    """The key's forms that must appear nowhere."""
    out = {
        "key": key, "upper": key.upper(), "lower": key.lower(),
        "url-encoded": urllib.parse.quote(key, safe=""), "url-encoded+": urllib.parse.quote_plus(key),
        "json": json.dumps(key)[1:-1],
        "first 12": key[:12], "middle 12": key[len(key) // 2 - 6: len(key) // 2 + 6], "last 12": key[-12:],
    }
    return {name: value for name, value in out.items() if len(value) >= 12}


def find_leaks(key: str, sources: dict[str, bytes | str]) -> list[str]:
    found = []
    for source, content in sources.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogateescape")
        for name, form in forms(key).items():
            if form.encode() in data:
                found.append(f"{source}: the key ({name}) appears")
    return found



class Runs:
    """Runs kb commands in-process with --debug -v and keeps everything they printed."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.captured: dict[str, str] = {}
        self.results: list[tuple[list[str], Result]] = []

    def __call__(self, *args: str, db: str | None = None, input: str | None = None) -> Result:
        argv = ["--debug", "-v", "--db", db or url_text(self.url), *args]
        result = CliRunner().invoke(cli, argv, input=input)
        label = f"kb {' '.join(a[:40] for a in args)} #{len(self.results)}"
        self.captured[f"{label} stdout"] = result.stdout
        self.captured[f"{label} stderr"] = result.stderr
        if result.exc_info is not None and not isinstance(result.exception, SystemExit):
            # what --debug prints: the traceback, chained exceptions and all
            self.captured[f"{label} traceback"] = "".join(traceback.format_exception(*result.exc_info))
        self.results.append((list(args), result))
        return result


@pytest.fixture
def stand_in(eutils: EutilsServer, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> EutilsServer:
    """The shared stand-in (no rate limit, short Retry-After: the 429s below still echo the key)."""
    eutils.load(corpus / "ncbiutils" / "pubmed.xml", corpus / "ncbiutils" / "multiple.xml")
    monkeypatch.setenv("KB_EUTILS_TRIES", "2")
    return eutils


@pytest.mark.parametrize("key_kind", sorted(KEYS))
def test_api_key_never_leaks(db_url: URL, key_kind: str, stand_in: EutilsServer, tmp_path: Path, corpus: Path,  # type: ignore[no-untyped-def]
                             monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, scenario) -> None:
    key = KEYS[key_kind]
    monkeypatch.setenv("NCBI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    kb = Runs(db_url)
    pmids = [str(p) for p in stand_in.pmids]
    exports = tmp_path / "exports"
    exports.mkdir()
    unexpected: list[str] = []

    def expect(result: Result, codes: tuple[int, ...], what: str) -> None:
        if result.exit_code not in codes and not (result.exception and not isinstance(result.exception, SystemExit)):
            unexpected.append(f"{what}: exit {result.exit_code}: {result.stderr[-300:]!r}")

    # Runs that work. (The key with URL-special characters goes through the runs that talk to
    # E-utilities, where an encoded form could surface; the hex key through all of them.)
    full = key_kind == "hex"
    expect(kb("db", "upgrade"), (0,), "db upgrade")
    for args in (["db", "current"], ["db", "url"], ["db", "path"]):
        kb(*args)
    expect(kb("ingest", *pmids[:30]), (0,), "ingest")
    expect(kb("load", str(corpus / "ncbiutils" / "pubmed.xml")), (0,), "load")
    expect(kb("topic", "add", "heparin", "heparin"), (0,), "topic add")
    expect(kb("refresh", "--topic", "heparin"), (0,), "refresh --topic")
    expect(kb("refresh"), (0, 1), "refresh")
    for args in [] if not full else (["refresh", "--status", "--format", "json"], ["report", "changes", "--format", "csv"],
                 ["status", "--format", "csv"], ["topic", "list", "--format", "json"], ["topic", "show", "heparin"],
                 ["query", "SELECT pmid, title FROM study_overview ORDER BY pmid", "--format", "jsonl"],
                 ["query", "SELECT * FROM fetch_failures", "--format", "csv"],
                 ["query", "SELECT * FROM refresh_runs", "--format", "json"]):
        expect(kb(*args), (0,), " ".join(args))
    for fmt in EXPORT_FORMATS if full else ("csv",):
        expect(kb("export", "studies", "--format", fmt, "-o", str(exports / f"studies.{fmt}")), (0,), f"export {fmt}")
    expect(kb("export", "studies", "--topic", "heparin", "--format", "ris"), (0,), "export --topic")
    if full:
        card_commands(kb, expect, pmids, tmp_path, monkeypatch)

    # Runs that fail: 429s that echo the key (the first retried after NCBI's Retry-After, the
    # second failing the batch, which is queued), E-utilities that says the key is invalid,
    # E-utilities unreachable, databases that cannot be opened.
    stand_in.inject("429", count=2, path="efetch")
    expect(kb("ingest", *pmids[30:60]), (1,), "ingest with 429s")
    with EutilsServer([corpus / "ncbiutils" / "pubmed.xml"], rate=None, valid_api_keys={"another-key"}) as strict:
        monkeypatch.setenv("KB_EUTILS_URL", strict.base_url)
        expect(kb("ingest", *map(str, strict.pmids)), (1, 69), "ingest with an invalid key")
        expect(kb("refresh"), (1, 69), "refresh with an invalid key")
        expect(kb("refresh", "--topic", "heparin"), (1, 69), "refresh --topic with an invalid key")
        # A real process too: --debug prints its traceback on stderr.
        if full:
            proc = subprocess.run([sys.executable, "-m", "kb", "--debug", "-v", "--db", url_text(db_url), "ingest",
                                   "--no-retry-failed", *map(str, strict.pmids)],
                                  env={**os.environ}, capture_output=True, text=True, timeout=120)
            kb.captured["subprocess ingest (invalid key) stdout"] = proc.stdout
            kb.captured["subprocess ingest (invalid key) stderr"] = proc.stderr
            if proc.returncode not in (1, 69) or "HTTP 400" not in proc.stderr:
                unexpected.append(f"subprocess ingest with an invalid key: exit {proc.returncode}: {proc.stderr[-300:]!r}")
    monkeypatch.setenv("KB_EUTILS_URL", "http://127.0.0.1:9/entrez/eutils/")  # refused
    expect(kb("ingest", "31902683"), (69,), "ingest, E-utilities unreachable")
    expect(kb("refresh", "--topic", "heparin"), (69,), "refresh, E-utilities unreachable")
    monkeypatch.setenv("KB_EUTILS_URL", stand_in.base_url)
    for bad in ("postgresql://kb@127.0.0.1:1/kb", "sqlite:////nonexistent-dir/x/y.sqlite3", "nonsense://x",
                "sqlite://"):
        for args in (["status"], ["ingest", "31902683"], ["refresh"], ["db", "upgrade"])[: 4 if full else 2]:
            kb(*args, db=bad)
    kb("query", "SELECT * FROM no_such_table")
    kb("load", str(tmp_path / "missing.xml"))

    # Everything that was written or printed.
    sources: dict[str, bytes | str] = dict(kb.captured)
    sources["log records (root logger)"] = caplog.text
    sources["database rows"] = database_text(db_url)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    home = Path(os.environ["KB_HOME"])
    if home.exists():
        files += [p for p in home.rglob("*") if p.is_file() and p not in files]
    for path in files:
        sources[f"file {path.relative_to(tmp_path) if path.is_relative_to(tmp_path) else path}"] = path.read_bytes()
        sources[f"file name {path.name}"] = str(path)
    written = {p.name for p in files}
    missing = {f"studies.{fmt}" for fmt in (EXPORT_FORMATS if full else ("csv",))} - written
    if full:
        missing |= ({f"card.{fmt}" for fmt in CARD_FORMATS} | {"index.html", "card-31902683.txt", "card-31902683.md",
                                                                f"card-{pmids[0]}.txt", f"{pmids[0]}.html"}) - written
    if missing:
        unexpected.append(f"exports not written: {sorted(missing)}")
    if not any(p.name.endswith(".rate") for p in files):
        unexpected.append("no rate-schedule file was written (the search covered none)")
    log_lines = sum(text_.count("\n") for name, text_ in kb.captured.items() if "stderr" in name)
    if not any('"api-key":"***"' in value for value in kb.captured.values()):
        unexpected.append("no 429 body echoing the key reached kb's output masked: the echo path was not exercised")
    if "api_key" not in "".join(json.dumps(e["params"]) for e in stand_in.stats()["log"]):
        unexpected.append("the key was not sent to E-utilities (nothing to leak: the test proves nothing)")

    leaks = find_leaks(key, sources)
    scenario.runs += len(kb.results) + 1
    scenario.failures += len(leaks) + len(unexpected)
    scenario.notes.append(f"{key_kind} key: {len(kb.results) + 1} runs, {len(sources)} sources searched "
                          f"({len(files)} files, {log_lines} stderr lines)")
    assert not leaks, "\n".join(leaks)
    assert not unexpected, "\n".join(unexpected)


def card_commands(kb: Runs, expect, pmids: list[str], tmp_path: Path,  # type: ignore[no-untyped-def]
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every card command, with files written under tmp_path (searched for the key with the rest)."""
    cards = tmp_path / "cards"
    cards.mkdir()
    first = pmids[0]
    for fmt in CARD_FORMATS:
        expect(kb("card", first, "--format", fmt), (0,), f"card --format {fmt}")
        expect(kb("card", first, "--format", fmt, "-o", str(cards / f"card.{fmt}")), (0,), f"card -o card.{fmt}")
    expect(kb("curate", "draft", *pmids[:5]), (0,), "curate draft")
    expect(kb("curate", "import", str(KB_CARD)), (0,), "curate import")
    for fmt in ("text", "md"):
        expect(kb("curate", "export", "--all", "--format", fmt, str(cards / f"export-{fmt}")), (0,), f"curate export {fmt}")
    exported = sorted((cards / "export-text").iterdir())
    expect(kb("curate", "import", "--status", "draft", *map(str, exported)), (0,), "curate import (exported)")
    expect(kb("curate", "import", *map(str, sorted((cards / "export-md").iterdir())[:3])), (0, 1), "curate import md")
    script = tmp_path / "editor.py"
    script.write_text(_EDITOR, encoding="utf-8")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script} {tmp_path / 'editor-runs'}")
    monkeypatch.delenv("VISUAL", raising=False)
    expect(kb("curate", "edit", first), (0,), "curate edit")
    expect(kb("curate", "status", first, "reviewed"), (0,), "curate status")
    expect(kb("curate", "history", first), (0,), "curate history")
    expect(kb("curate", "lint"), (0, 1), "curate lint")
    expect(kb("cards", "build", str(cards / "site")), (0,), "cards build")
    # ... and card runs that fail
    (cards / "bad.txt").write_bytes(KB_CARD.read_bytes().replace(b"Vitamin", b"Vit\x00amin", 1))
    expect(kb("curate", "import", str(cards / "bad.txt"), str(tmp_path / "no-such-card.txt")), (1,), "curate import (bad)")
    expect(kb("card", "99999999"), (1, 2), "card of a PMID not stored")
    expect(kb("card", first, "--template", str(tmp_path / "no-such-template.j2")), (2,), "card --template missing")
