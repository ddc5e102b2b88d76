"""The scheduling files (issue 15): the crontab line creates its log directory and says when kb did
not run at all; the systemd user units pass `systemd-analyze verify` and document lingering."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, skip_or_fail

CRONTAB = REPO / "scripts" / "cron" / "kb-refresh.crontab"
SYSTEMD = REPO / "scripts" / "systemd"
KB = Path(sys.executable).parent / "kb"  # the kb of this virtual environment


def _cron_command() -> str:
    (line,) = [ln for ln in CRONTAB.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    fields = line.split(None, 5)
    assert fields[:5] == ["17", "2", "*", "*", "*"]
    return fields[5]


def _cron(home: Path) -> subprocess.CompletedProcess[str]:
    """Run the crontab's command as cron does: /bin/sh, a bare environment, HOME set."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(["/bin/sh", "-c", _cron_command()], env=env, capture_output=True, text=True, timeout=120)


def _install_kb(home: Path) -> None:
    if not KB.exists():
        skip_or_fail(f"no kb executable beside {sys.executable}")
    (home / "kb" / ".venv" / "bin").mkdir(parents=True)
    (home / "kb" / ".venv" / "bin" / "kb").symlink_to(KB)


def test_crontab_line_says_when_kb_did_not_run_and_creates_its_log_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = _cron(home)
    assert result.stdout.strip() == f"kb refresh did not run: {home}/.config/kb/refresh.env is missing or unreadable"
    assert (home / ".local" / "state").is_dir()

    env_file = home / ".config" / "kb" / "refresh.env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("KB_DATABASE_URL=sqlite://typo/kb.sqlite3\nNCBI_EMAIL=kb-tests@example.org\n")
    result = _cron(home)
    assert result.stdout.strip() == f"kb refresh did not run: {home}/kb/.venv/bin/kb is not installed"

    _install_kb(home)
    result = _cron(home)  # kb runs, and stops at the bad URL (exit 2): the mail points at the log
    log = home / ".local" / "state" / "kb-refresh.log"
    assert result.stdout.strip() == f"kb refresh exited 2 (see {log})"
    header, error = log.read_text().splitlines()[:2]  # each run's part of the log starts with its time
    assert re.fullmatch(r"--- \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 kb refresh", header), header
    assert error.startswith("Error: 'sqlite://typo/kb.sqlite3' is not a SQLite URL")

    # A good configuration (no topics or studies yet: nothing to fetch): a silent success.
    env_file.write_text(f"KB_DATABASE_URL=sqlite:///{tmp_path}/kb.sqlite3\nKB_EUTILS_URL=http://127.0.0.1:9/\n"
                        f"KB_RATE_DIR={tmp_path}\nNCBI_EMAIL=kb-tests@example.org\n")
    result = _cron(home)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    # ... which the log says: nothing to refresh in that database (a wrong KB_DATABASE_URL looks the same)
    last_run = log.read_text().split("\n--- ")[-1]
    assert "nothing to refresh: no topics and no studies in sqlite:///" in last_run, last_run


def test_systemd_user_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        skip_or_fail("systemd-analyze is not installed (apt-get install systemd; scripts/test.sh does)")
    service = (SYSTEMD / "kb-refresh.service").read_text()
    assert "network-online.target" not in service.split("[Unit]", 1)[1]  # does nothing in a user unit
    assert 'loginctl enable-linger "$USER"' in service
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    _install_kb(home)  # verify checks that ExecStart= (%h/kb/.venv/bin/kb) is executable
    units = tmp_path / "units"
    shutil.copytree(SYSTEMD, units)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_LEVEL": "notice"}
    result = subprocess.run([analyze, "--user", "verify", str(units / "kb-refresh.service"),
                             str(units / "kb-refresh.timer")], env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), result.stderr
    # The check can fail: an unknown key is reported.
    (units / "kb-refresh.service").write_text(service.replace("Nice=10", "Nice=10\nNicety=11"))
    result = subprocess.run([analyze, "--user", "verify", str(units / "kb-refresh.service")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert "Unknown key 'Nicety'" in result.stderr


@pytest.mark.parametrize("path", [CRONTAB, SYSTEMD / "kb-refresh.service"])
def test_scheduling_files_run_kb_refresh_quietly(path: Path) -> None:
    assert "kb refresh --quiet" in path.read_text() or '/kb" refresh --quiet' in path.read_text()
