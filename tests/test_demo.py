"""`kb demo`, the README's first command: the main job end to end with no network (issue 15)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import html

from kb.demo import SAMPLE_PMID, sample_card_file, sample_record_files

from .conftest import REPO, SHARED, skip_or_fail

EXAMPLE = SHARED / "examples" / f"card-{SAMPLE_PMID}.txt"
KB = Path(sys.executable).with_name("kb")


def readme_first_command() -> str:
    """The first ```sh block of the README's "Two commands to start"."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Two commands to start"):]
    match = re.search(r"```sh\n(.+?)\n```", section, re.S)
    assert match is not None
    return match.group(1).strip()


def offline(argv: list[str]) -> list[str]:
    """``argv`` in a network namespace of its own: no interface but loopback, which is down."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        skip_or_fail("cannot make a network namespace here (unshare -n needs root or user namespaces)")
    return ["unshare", "-n", *argv]


def test_the_sample_is_the_shared_corpus_byte_for_byte() -> None:
    """The shipped copies are the corpus files and the example card, unedited."""
    if not SHARED.is_dir():
        skip_or_fail(f"../shared is not at {SHARED}")
    assert sample_card_file().read_bytes() == EXAMPLE.read_bytes()
    corpus = SHARED / "corpus" / "pubmed" / "metapub"
    files = sample_record_files()
    assert len(files) == 6
    for path in files:
        original = corpus / path.name
        if not original.exists():
            original = corpus / f"tests_data_pmid_{path.name}"
        assert path.read_bytes() == original.read_bytes(), path.name
    provenance = (sample_card_file().parent / "PROVENANCE.md").read_text(encoding="utf-8")
    assert all(f"pubmed/{path.name}" in provenance for path in files)


def test_readme_first_command_shows_the_main_job_offline(tmp_path: Path) -> None:
    """The kb part of the README's first command, run with the installed kb in a network namespace
    and a fresh KB_HOME, prints the example card byte for byte and says where the site is."""
    if not EXAMPLE.exists():
        skip_or_fail(f"the example card is not at {EXAMPLE}")
    steps = [step.strip() for step in readme_first_command().split("&&")]
    assert steps[0] == "python3 -m venv .venv" and steps[1].startswith(".venv/bin/pip install")
    kb_steps = steps[2:]
    assert kb_steps == [".venv/bin/kb demo"]
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KB_", "NCBI_"))}
    env["KB_HOME"] = str(home)
    argv = [str(KB), *shlex.split(kb_steps[0])[1:]]
    first = subprocess.run(offline(argv), env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip("\n") == EXAMPLE.read_text(encoding="utf-8").rstrip("\n")
    assert "Traceback" not in first.stderr
    site = re.search(r"card site: (\d+) cards, open file://(\S+)", first.stderr)
    assert site is not None, first.stderr
    assert int(site.group(1)) == 7  # the six records and the card's placeholder study
    index = Path(site.group(2))
    assert index == home / "site" / "index.html"
    links = html.parse(str(index)).getroot().xpath("//a/@href")
    assert any(f"{SAMPLE_PMID}" in link for link in links)
    assert "loaded 6 sample PubMed files" in first.stderr and "new 6," in first.stderr
    assert (home / "kb.sqlite3").exists()

    again = subprocess.run(offline(argv), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "unchanged 6" in again.stderr and f"kept the stored card of PMID {SAMPLE_PMID}" in again.stderr


def test_demo_keeps_a_card_the_curator_changed(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kb.cli import cli

    db = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", db, "demo", "--quiet", "--site", str(tmp_path / "site")]).exit_code == 0
    edited = tmp_path / "edited.txt"
    edited.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        "Vitamin B12 Deficiency & Blood Clots: What You Need to Know", "A curator's own headline", 1), encoding="utf-8")
    result = runner.invoke(cli, ["--db", db, "curate", "import", "--replace", str(edited)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["--db", db, "demo", "--site", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("A curator's own headline\n")
    assert f"kept the stored card of PMID {SAMPLE_PMID}" in result.stderr
