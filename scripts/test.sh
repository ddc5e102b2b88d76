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
exec .venv/bin/python -m pytest "$@"
