#!/usr/bin/env bash
# Set up a virtual environment and run the test suite.
#
#   scripts/test.sh [pytest args...]            the locked versions (requirements/test.lock), in .venv
#   scripts/test.sh --latest [pytest args...]   the newest versions pyproject.toml allows, in .venv-latest
#   scripts/test.sh --lowest [pytest args...]   the lowest declared versions (requirements/lowest.lock),
#                                               in .venv-lowest
#
# CI runs the first form: exactly the versions that were tested, installed with pip's hash checking.
# Run --latest before refreshing the lock (scripts/lock.sh); see README "Dependencies".
# Tests run in parallel, one worker per core (KB_TEST_WORKERS=N to choose, 0 for one process).
# Needs Python >= 3.11. PostgreSQL tests use postgresql://postgres@127.0.0.1:5432 (override with
# KB_TEST_PG_URL); they skip when it is unreachable, except under CI=true where they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIP_FLAGS=(--quiet --disable-pip-version-check --no-input)

mode=locked
case "${1:-}" in
  --latest) mode=latest; shift ;;
  --lowest) mode=lowest; shift ;;
esac

case "$mode" in
  locked) venv=.venv; lock=requirements/test.lock ;;
  lowest) venv=.venv-lowest; lock=requirements/lowest.lock ;;
  latest) venv=.venv-latest; lock="" ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
if [ -n "$lock" ]; then
  # Every package pinned with its hashes; nothing else is resolved. kb itself is installed without
  # build isolation, from the setuptools the lock installed.
  "$venv/bin/python" -m pip install "${PIP_FLAGS[@]}" --require-hashes --no-deps -r "$lock"
  "$venv/bin/python" -m pip install "${PIP_FLAGS[@]}" --no-deps --no-build-isolation -e .
else
  "$venv/bin/python" -m pip install "${PIP_FLAGS[@]}" --upgrade pip
  "$venv/bin/python" -m pip install "${PIP_FLAGS[@]}" --upgrade --upgrade-strategy eager -e '.[test]'
fi
echo "testing with $mode versions ($venv):" \
  "$("$venv/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{n} {m.version(n)}" for n in ("lxml", "SQLAlchemy", "alembic", "click", "biopython", "psycopg", "Jinja2")))')" >&2

# The browser tests (tests/test_site.py, tests/test_serve.py) drive Debian's Chromium, and the
# scheduling test checks the systemd units with systemd-analyze: install them when missing.
as_root=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; fi
apt_get() { $as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o=Dpkg::Use-Pty=0 "$@" >/dev/null; }
install_missing() {  # install_missing PACKAGE PATH WHAT
  if [ ! -x "$2" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $1 with apt-get (for $3) ..." >&2
    if ! apt_get install "$1" && ! { apt_get update && apt_get install "$1"; }; then
      echo "warning: could not install $1; $3 skips (and fails under CI=true)" >&2
    fi
  fi
}
install_missing chromium /usr/bin/chromium "the browser tests"
install_missing systemd /usr/bin/systemd-analyze "the systemd unit test"
# Two workers on two cores (pytest-xdist): every test makes its own databases, folders and servers.
# KB_TEST_WORKERS=0 runs the suite in one process. --dist loadgroup keeps each module of
# tests/conftest.py's SHARED_FIXTURE_MODULES on one worker; --no-loadscope-reorder keeps the
# order of LONG_MODULES (the longest first).
exec "$venv/bin/python" -m pytest -n "${KB_TEST_WORKERS:-auto}" --dist loadgroup --no-loadscope-reorder "$@"
