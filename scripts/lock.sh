#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml (run scripts/test.sh --latest first: see README "Dependencies").
#
#   requirements/test.lock    newest versions pyproject.toml allows, with hashes: what CI installs
#   requirements/lowest.lock  the lowest versions pyproject.toml declares for kb's direct dependencies
#
# Needs uv (`pip install uv`). Both files target CPython 3.11 on x86-64 Linux, the project's machines;
# they carry the hashes of every file PyPI has for each pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(pyproject.toml requirements/build.in --all-extras --generate-hashes --python-version 3.11
        --python-platform x86_64-unknown-linux-gnu --quiet)
uv pip compile "${common[@]}" -o requirements/test.lock "$@"
uv pip compile "${common[@]}" --resolution lowest-direct -o requirements/lowest.lock "$@"
echo "wrote requirements/test.lock and requirements/lowest.lock; run scripts/test.sh and scripts/test.sh --lowest" >&2
