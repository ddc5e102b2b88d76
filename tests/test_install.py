"""`pip install .` (not editable) into a fresh virtual environment, then `kb db upgrade` in an
empty directory: the migrations must come from the installed package, not from a checkout."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from sqlalchemy.engine import URL

from .conftest import REPO, url_text

pytestmark = pytest.mark.slow


def _runtime_distributions() -> list[importlib.metadata.Distribution]:
    """The distributions kb needs at run time (its dependencies, theirs, and so on; no extras of
    kb's own, so no llm), as installed in this environment."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo: list[tuple[str, frozenset[str]]] = [("kb", frozenset())]
    while todo:
        name, extras = todo.pop()
        dist = importlib.metadata.distribution(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                if req.name.lower() not in found:
                    todo.append((req.name, frozenset(req.extras)))
        found[dist.metadata["Name"].lower()] = dist
    found.pop("kb")
    return list(found.values())


def _link_dependencies(target: Path) -> None:
    """Links to the runtime distributions' files (packages and metadata) in ``target``."""
    target.mkdir()
    for dist in _runtime_distributions():
        for top in {f.parts[0] for f in dist.files or () if f.parts[0] != ".."}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (target / top).exists() and not top.endswith(".pth"):
                (target / top).symlink_to(source)


@pytest.fixture(scope="module")
def installed_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with kb installed from a wheel built from this checkout; returns its bin/.

    The wheel is installed as pip installs it (``--no-deps``); kb's run-time dependencies are
    this environment's, linked into the venv (a .pth file) rather than downloaded and installed
    again, and ``pip check`` proves the wheel's declared requirements are met by exactly them.
    """
    root = tmp_path_factory.mktemp("install")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bindir = env_dir / "bin"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(bindir / "python")]
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                            "--no-build-isolation", "--wheel-dir", str(root / "wheel"), str(REPO)],
                           capture_output=True, text=True, cwd=root)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next((root / "wheel").glob("kb-*.whl"))
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    _link_dependencies(root / "deps")
    (site / "kb-test-deps.pth").write_text(f"{root / 'deps'}\n")
    install = subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, cwd=root)
    assert install.returncode == 0, install.stdout + install.stderr
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, cwd=root)
    assert check.returncode == 0, check.stdout + check.stderr
    return bindir


def _run_kb(bindir: Path, cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bindir / "kb"), *args], cwd=cwd, env=env, capture_output=True, text=True)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "PYTHON"))}
    env.update(extra)
    return env


def test_install_is_not_the_checkout(installed_kb: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(installed_kb / "python"), "-c", "import kb.db; print(kb.db.migrations_dir())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert "site-packages" in proc.stdout and str(REPO) not in proc.stdout


def test_db_upgrade_from_wheel_on_sqlite(installed_kb: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    env = _clean_env(KB_HOME=str(tmp_path / "home"))
    up = _run_kb(installed_kb, work, "db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert (tmp_path / "home" / "kb.sqlite3").is_file()
    current = _run_kb(installed_kb, work, "db", "current", env=env)
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip().endswith("(head)")
    assert list(work.iterdir()) == []  # nothing written to the working directory


def test_cards_work_from_the_wheel(installed_kb: Path, tmp_path: Path) -> None:
    """The card queries and templates are package data: a card imports and renders in every format."""
    env = _clean_env(KB_HOME=str(tmp_path / "home"))
    card = Path(__file__).parent / "data" / "card-31902683-kb.txt"
    imported = _run_kb(installed_kb, tmp_path, "curate", "import", str(card), env=env)
    assert imported.returncode == 0, imported.stderr
    for fmt in ("text", "md", "html", "json"):
        shown = _run_kb(installed_kb, tmp_path, "card", "31902683", "--format", fmt, env=env)
        assert shown.returncode == 0 and "31902683" in shown.stdout, shown.stderr
    assert _run_kb(installed_kb, tmp_path, "card", "31902683", env=env).stdout == card.read_text(encoding="utf-8")
    # The shipped queries and docs, and kb serve's template, are package data too (issue 15).
    study = _run_kb(installed_kb, tmp_path, "query", "--name", "card_study", "-p", "pmid=31902683", "--format",
                    "csv", env=env)
    assert study.returncode == 0 and "31902683" in study.stdout, study.stderr
    assert "study_types_per_year" in _run_kb(installed_kb, tmp_path, "query", "--list", env=env).stdout
    schema = _run_kb(installed_kb, tmp_path, "docs", "schema", env=env)
    assert schema.stdout == (Path(__file__).parents[1] / "docs" / "schema.md").read_text()
    template = subprocess.run([str(installed_kb / "python"), "-c",
                               "import kb.serve; print((kb.serve.TEMPLATES / 'database.html').is_file())"],
                              cwd=tmp_path, capture_output=True, text=True)
    assert template.stdout.strip() == "True", template.stderr


@pytest.mark.postgres
def test_db_upgrade_from_wheel_on_postgresql(installed_kb: Path, tmp_path: Path, empty_pg_url: URL) -> None:
    env = _clean_env(KB_DATABASE_URL=url_text(empty_pg_url))
    up = _run_kb(installed_kb, tmp_path, "db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    current = _run_kb(installed_kb, tmp_path, "db", "current", env=env)
    assert current.stdout.strip().endswith("(head)"), current.stdout + current.stderr


def test_generate_from_the_wheel_without_llm(installed_kb: Path, tmp_path: Path) -> None:
    """The prompt is package data; without the llm extra, kb curate generate says how to install it."""
    env = _clean_env(KB_HOME=str(tmp_path / "home"))
    prompt = subprocess.run([str(installed_kb / "python"), "-c",
                             "from kb.cards.generate import prompt_text; print(prompt_text()[:18])"],
                            cwd=tmp_path, capture_output=True, text=True, env=env)
    assert prompt.stdout == "You write lay summ\n", prompt.stderr
    generated = _run_kb(installed_kb, tmp_path, "curate", "generate", "--missing", "--model", "gpt-4o-mini", env=env)
    assert generated.returncode == 2
    assert generated.stderr == "Error: kb curate generate needs the llm library: pip install 'kb[llm]'\n"
