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
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'  # includes kb[serve]
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
exec .venv/bin/python -m pytest "$@"
