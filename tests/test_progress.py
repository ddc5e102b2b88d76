"""Progress on long work (issue 15): `kb load` under a pseudo-terminal draws a bar with the file,
records and bytes done of the total, and the rate; `--quiet`, or stderr not being a terminal,
draws nothing. `kb load DIR` loads a folder's PubMed files in name order; the summary's counts
add up to the records read."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from kb import db as kbdb
from kb import models as m
from kb.cli import cli

from .records import article, write_set


def _run_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run kb with stderr on a pseudo-terminal; (exit code, what the terminal showed, stdout)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kb", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env={**os.environ, "COLUMNS": "200"})
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(timeout=120)
    os.close(master)
    if proc.stdout:
        proc.stdout.close()
    return code, shown.decode("utf-8", "replace"), out


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "baseline"
    folder.mkdir()
    write_set(folder / "pubmed26n0002.xml", [article(40_000_000 + i, f"Study {i}") for i in range(100, 160)])
    write_set(folder / "pubmed26n0001.xml", [article(40_000_000 + i, f"Study {i}") for i in range(1, 80)]
              + [article(40_000_005, "Study 5, a later version in the same batch")])
    (folder / "README.txt").write_text("not a PubMed file")
    return folder


def test_kb_load_shows_progress_on_a_terminal_and_nothing_under_quiet(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    url = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    total = sum(p.stat().st_size for p in folder.glob("*.xml"))
    code, shown, out = _run_on_a_terminal(["--db", url, "load", "--batch-size", "100", str(folder)])
    assert code == 0, shown
    assert out == ""  # data channel untouched
    lines = [line for line in re.split(r"[\r\n]+", shown) if "loading" in line]
    assert lines, shown
    last = lines[-1]
    # e.g. "loading  [####################]  100%  pubmed26n0002.xml  140 records  30.2 KB/30.2 KB  2,931 records/s"
    assert "100%" in last and "pubmed26n0002.xml" in last, last
    assert "140 records" in last and "records/s" in last, last
    assert re.search(r"\d+\.\d KB/(\d+\.\d) KB", last), last
    assert f"{total / 1024:.1f} KB" in last, (total, last)
    assert any("pubmed26n0001.xml" in line for line in lines), lines  # the first file was named too
    # The summary adds up to the records read: 139 distinct PMIDs and one superseded in its batch.
    assert "140 records in 2 files: new 139, updated 0, unchanged 0, superseded in the same batch 1" in shown

    code, shown, out = _run_on_a_terminal(["--db", url, "load", "--quiet", str(folder)])
    assert (code, shown, out) == (0, "", "")

    # Not a terminal: no bar, only the summary.
    result = CliRunner().invoke(cli, ["--db", url, "load", str(folder)])
    assert result.exit_code == 0 and "records/s" not in result.stderr and "%" not in result.stderr
    assert result.stderr.startswith("140 records in 2 files: new 0, updated 0, unchanged 139")


def test_kb_load_dir_loads_pubmed_files_in_name_order(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    db = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    result = CliRunner().invoke(cli, ["--db", db, "load", "--quiet", str(folder)])
    assert result.exit_code == 0, result.output
    engine = kbdb.create_kb_engine(make_url(db))
    with engine.connect() as conn:
        names = list(conn.execute(select(m.SourceFile.name).order_by(m.SourceFile.id)).scalars())
        title = conn.execute(select(m.Study.title).where(m.Study.pmid == 40_000_005)).scalar()
    engine.dispose()
    assert names == ["pubmed26n0001.xml", "pubmed26n0002.xml"]
    assert title == "Study 5, a later version in the same batch"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["--db", db, "load", str(empty)])
    assert result.exit_code == 2 and "no PubMed XML files" in result.stderr


def test_cards_build_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    url = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    assert CliRunner().invoke(cli, ["--db", url, "load", "--quiet", str(folder)]).exit_code == 0
    code, shown, _ = _run_on_a_terminal(["--db", url, "cards", "build", str(tmp_path / "site")])
    assert code == 0, shown
    lines = [line for line in re.split(r"[\r\n]+", shown) if "building" in line]
    assert lines and "100%" in lines[-1] and "139/139 cards" in lines[-1] and "cards/s" in lines[-1], shown
    code, shown, _ = _run_on_a_terminal(["--db", url, "cards", "build", "--quiet", str(tmp_path / "site")])
    assert (code, shown) == (0, "")


def test_the_load_summary_counts_one_file_as_one_file() -> None:
    from kb.ingest import IngestReport

    report = IngestReport(records=3)
    report.files.append({"file": "a.xml", "records": 3, "deletions": 0})
    assert report.summary().startswith("3 records in 1 file: new 0,")
    report.files.append({"file": "b.xml", "records": 0, "deletions": 0})
    assert report.summary().startswith("3 records in 2 files: ")
