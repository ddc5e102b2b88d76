#!/usr/bin/env bash
# Set up a virtual environment in .venv (if needed) and run the test suite.
# Usage: scripts/test.sh [pytest args...]
# Needs Python >= 3.11. PostgreSQL tests use postgresql://postgres@127.0.0.1:5432 (override with
# KB_TEST_PG_URL); they skip when it is unreachable, except under CI=true where they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# The browser test (tests/test_site.py) drives Debian's Chromium; install it when it is missing.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  as_root=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; fi
  apt_get() { $as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o=Dpkg::Use-Pty=0 "$@" >/dev/null; }
  echo "installing chromium with apt-get (for the browser test) ..." >&2
  if ! apt_get install chromium && ! { apt_get update && apt_get install chromium; }; then
    echo "warning: could not install chromium; the browser test skips (and fails under CI=true)" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
