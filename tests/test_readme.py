"""Every command of the README's analyst and operator sections runs (issue 15, acceptance 5).

The ```sh blocks of "Schema overview for analysts" (with its "Search" part) and "Keeping it
current" (with "Scheduling") are read from README.md and each line is run as written (the shell
steps, `kb sql` and `kb serve` by /bin/sh; the other `kb …` lines in-process by Click's runner, words
split as sh splits them and `> FILE` honoured, which is much faster) against a knowledge base with the corpus's ncbiutils records, the example card and a stand-in
E-utilities server holding studies of the README's topic. `kb serve` gets a free port added and
is stopped once it answers. The scheduling steps that need a user systemd manager or an editor
(`crontab -e`, `systemctl --user …`, `loginctl …`) cannot run in a test: they are the list
NOT_RUN below, which must match the README exactly, and the files they install are checked by
tests/test_scheduling.py (systemd-analyze verify, the crontab's command run by sh).
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.testing.eutils import EutilsServer

from .conftest import REPO, STAND_IN_RATE, STAND_IN_RETRY_AFTER
from .records import article, write_set

SECTIONS = ("## Schema overview for analysts", "## Keeping it current")
NOT_RUN = {
    "crontab -e",
    "systemctl --user daemon-reload && systemctl --user enable --now kb-refresh.timer",
    'loginctl enable-linger "$USER"',
    "systemctl --user list-timers kb-refresh.timer",
}


def readme_commands() -> list[tuple[str, str]]:
    """(section, command) for every command line of the sections' ```sh blocks, in README order."""
    text = (REPO / "README.md").read_text()
    found = []
    for heading in SECTIONS:
        start = text.index(heading)
        end = text.find("\n## ", start + 1)
        section = text[start : end if end > 0 else None]
        for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
            for line in block.splitlines():
                command = re.split(r"\s{2,}#", line)[0].strip()
                if command and not command.startswith("#"):
                    found.append((heading, command))
    return found


def test_the_sections_show_serve_the_shipped_queries_and_the_scheduling_steps() -> None:
    commands = [c for _, c in readme_commands()]
    assert "kb serve" in commands
    assert "kb query --list" in commands and any(c.startswith("kb query --name card_study") for c in commands)
    assert "kb docs schema" in commands
    assert 'loginctl enable-linger "$USER"' in commands
    assert any("kb-refresh.timer" in c for c in commands) and "crontab -e" in commands
    shell = {c for c in commands if not c.startswith("kb ")}
    assert NOT_RUN <= shell, NOT_RUN - shell
    assert all(c.startswith(("mkdir ", "cp ")) for c in shell - NOT_RUN), shell - NOT_RUN


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(command: str, env: dict[str, str], cwd: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(["/bin/sh", "-c", f"exec {command} --port {port}"], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/card/31902683", timeout=2) as answer:
                    assert answer.status == 200 and "Vitamin B12" in answer.read().decode()
                    return
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        raise AssertionError(f"{command} did not answer")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout:
            proc.stdout.close()


def _in_process(command: str, env: dict[str, str], cwd: Path) -> None:
    """Run a `kb …` line with Click's runner: its words as sh would split them, `> FILE` honoured."""
    words = shlex.split(command)[1:]
    target = None
    if ">" in words:
        words, target = words[: words.index(">")], words[words.index(">") + 1]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        for name, value in env.items():
            patch.setenv(name, value)
        result = CliRunner().invoke(cli, words)
    assert result.exit_code == 0, (command, result.output[-2000:])
    if target:
        (cwd / target).write_text(result.stdout)


def test_every_readme_command_of_the_sections_runs(corpus: Path, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "my-query.sql").write_text("SELECT pmid, title FROM study_overview ORDER BY pmid LIMIT 5\n")
    bindir = str(Path(sys.executable).parent)
    server = EutilsServer(rate=None, api_key_rate=None, retry_after=STAND_IN_RETRY_AFTER).start()
    server.load(write_set(tmp_path / "b12.xml", [
        article(41_000_000 + i, f"Vitamin B12 and anemia in adults, cohort {i}", entrez=dt.date(2021, 3, i))
        for i in range(1, 6)]))
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
        "KB_DATABASE_URL": f"sqlite:///{tmp_path / 'kb.sqlite3'}", "KB_EUTILS_URL": server.base_url,
        "KB_RATE_DIR": str(tmp_path), "KB_EUTILS_RATE": str(STAND_IN_RATE), "NCBI_EMAIL": "kb-tests@example.org",
        "KB_CURATOR": "readme-test",
    }

    def run(command: str, cwd: Path = work) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", command], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)

    try:
        for setup in (f"kb load --quiet {corpus / 'ncbiutils'}",
                      f"kb curate import --quiet {REPO / 'tests' / 'data' / 'card-31902683-kb.txt'}"):
            _in_process(setup, env, work)
        commands = readme_commands()
        ran = []
        # The operators' section first: it creates the topic the analysts' export names.
        for heading, command in sorted(commands, key=lambda hc: hc[0] != "## Keeping it current"):
            if command in NOT_RUN:
                continue
            if command == "kb serve":
                _serve(command, env, work)
            elif command.startswith("kb ") and command != "kb sql":  # in-process: the same CLI, faster
                _in_process(command, env, work)
            else:
                result = run(command, cwd=REPO if command.startswith(("mkdir ", "cp ")) else work)
                assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
            ran.append(command)
    finally:
        server.stop()
    assert len(ran) == len(commands) - len(NOT_RUN)
    assert (work / "b12.ris").read_text().count("TY  - ") == 5  # the topic's five studies
    assert (work / "out.csv").read_text().startswith("pmid,title\n")
    assert (home / ".config" / "kb" / "refresh.env").stat().st_mode & 0o777 == 0o600
    assert (home / ".config" / "systemd" / "user" / "kb-refresh.timer").exists()



def test_the_offline_ingest_of_two_commands_to_start_finds_its_pmids(corpus: Path, eutils: EutilsServer,
                                                                     tmp_path: Path) -> None:
    """The stand-in route of "Two commands to start" ingests PMIDs the stand-in serves (the corpus
    on its command line): it asked for 31902683, which the corpus does not hold, so a new user's
    first ingest through it ended in 'not found (1): 31902683' and exit 1."""
    text = (REPO / "README.md").read_text()
    start = text.index("## Two commands to start")
    lines = text[start : text.index("\n## ", start + 1)].splitlines()
    assert any("-m kb.testing.eutils --port 8080 ../shared/corpus/pubmed" in line for line in lines)
    line = next(line for line in lines if line.startswith("KB_EUTILS_URL="))
    eutils.load(corpus)
    db = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    for part in line.split("&&"):
        words = shlex.split(part)
        args = words[[w.endswith("/kb") for w in words].index(True) + 1 :]
        result = CliRunner().invoke(cli, ["--db", db, *args])
        assert result.exit_code == 0, (args, result.output)
