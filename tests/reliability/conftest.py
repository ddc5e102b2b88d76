"""The reliability suite (issue 7): faults, crashes, concurrency, hostile input.

Every scenario records its figures with the ``scenario`` fixture; ``scripts/reliability_report.py``
runs the suite with ``KB_RELIABILITY_OUT`` set and prints one table from them. The suite is marked
``reliability`` so it can run alone (``pytest -m reliability``). ``KB_RELIABILITY_SCALE`` sets how
many seeds/kills/minutes each scenario uses: ``ci`` (default, short) or ``full`` (the counts the
issue asks for, run by hand).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

SCALE = os.environ.get("KB_RELIABILITY_SCALE", "ci")


def scaled(ci: int, full: int) -> int:
    """A count for the current scale."""
    return full if SCALE == "full" else ci


@dataclass
class Scenario:
    """Figures of one scenario, on one database."""

    name: str
    database: str = "-"
    runs: int = 0
    failures: int = 0  # runs whose outcome was wrong (not: runs that met an injected fault)
    records_lost: int = 0
    half_written: int = 0
    curated_changed: int = 0
    notes: list[str] = field(default_factory=list)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """Record figures for the report; the test fills them in and asserts on them itself."""
    name = request.node.originalname or request.node.name
    record = Scenario(name=name)
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "db_url" in callspec.params:
        record.database = str(callspec.params["db_url"])
    yield record
    out = os.environ.get("KB_RELIABILITY_OUT")
    if out:
        with Path(out).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(record)) + "\n")
