"""Progress bars for long work (``kb load``, ``kb ingest``, ``kb cards build``, …).

One small helper over :func:`click.progressbar`: Click is already kb's command-line library, so a
bar costs no new dependency, and its bar draws the percentage and the time left (ETA) itself;
this helper adds the current item, the count done of the total, bytes when the work is measured
in bytes, and the rate. The bar goes to stderr, only when stderr is a terminal, and never under
``--quiet``: in a pipe or under cron nothing is drawn, and data on stdout is never mixed with it.

Use::

    with Progress("loading", total_bytes, unit="records", in_bytes=True, quiet=quiet) as bar:
        bar.advance(steps=bytes_read, count=records, item=path.name)
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

import click


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop returns


class Progress:
    """A progress bar on stderr; silent when stderr is not a terminal or ``quiet`` is set.

    ``total`` is in bar steps: items, or bytes when ``in_bytes``. ``advance(steps, count, item)``
    moves the bar by ``steps``, adds ``count`` items (records, cards) to the count shown with its
    rate, and names the ``item`` in hand (a file). When steps are items, ``count`` defaults to
    ``steps``.
    """

    def __init__(self, label: str, total: int | None, *, unit: str = "items", in_bytes: bool = False,
                 quiet: bool = False, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and _isatty(self.stream)
        self.label, self.total, self.unit, self.in_bytes = label, total, unit, in_bytes
        self.count = 0
        self.steps = 0
        self.item: str | None = None
        self._started = time.monotonic()
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.total is not None:
            self.set_total(self.total)
        return self

    def set_total(self, total: int) -> None:
        """The total, when it is known only once the work has started (the bar starts then)."""
        self.total = total
        if self.enabled and self._bar is None:
            self._bar = click.progressbar(
                length=total, label=self.label, file=self.stream, show_eta=True, show_percent=True,
                item_show_func=lambda _item: self.describe(), width=24,
            )
            self._bar.__enter__()

    def advance(self, steps: int = 1, *, count: int | None = None, item: str | None = None) -> None:
        self.steps += steps
        self.count += steps if count is None and not self.in_bytes else (count or 0)
        if item is not None:
            self.item = item
        if self._bar is not None:
            self._bar.update(steps, self.item)

    def describe(self) -> str:
        """The text after the bar: item, counts, bytes, rate."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        parts = [self.item] if self.item else []
        if self.in_bytes:
            parts.append(f"{self.count:,} {self.unit}")
            total = f"/{human_bytes(self.total)}" if self.total else ""
            parts.append(f"{human_bytes(self.steps)}{total}")
        else:
            parts.append(f"{self.count:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}")
        parts.append(f"{self.count / elapsed:,.0f} {self.unit}/s")
        return "  ".join(parts)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
