"""One output helper for every command that prints rows: a table on a terminal, else the
``--format`` asked for (csv, json, jsonl). Data goes to stdout only."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import functools
import json
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import click

FORMATS = ("table", "csv", "json", "jsonl")


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--format`` with the default 'table' on a terminal and 'csv' in a pipe."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format (default: table on a terminal, csv otherwise).",
    )(func)


def text_or_rows_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--format`` for a command with its own text layout (the default) that can also print its
    rows as a table, csv, json or jsonl (see :func:`emit_rows`)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(("text", *FORMATS)),
        default="text",
        show_default=True,
        help="text (kb's layout), or rows: table, csv, json, jsonl.",
    )(func)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _blob_text(value: bytes | bytearray | memoryview) -> str:
    """A BLOB or bytea (studies.raw_xml) as base64 text, in every format."""
    return base64.b64encode(bytes(value)).decode("ascii")


def _json_default(value: Any) -> Any:
    """What json cannot write by itself: PostgreSQL's numeric (avg(), sums) as a number, a BLOB or
    bytea (studies.raw_xml) as base64 text, anything else (an interval, a UUID) as its text."""
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _blob_text(value)
    return str(value)


def _cell(value: Any) -> str:
    """A value as the text of a csv or table cell."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _blob_text(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return str(_jsonable(value))


def emit_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str | None) -> None:
    """Write rows to stdout in ``fmt`` (None: table on a terminal, csv otherwise)."""
    out = sys.stdout
    fmt = fmt or ("table" if out.isatty() else "csv")
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(dict(zip(columns, map(_jsonable, row))), ensure_ascii=False,
                                 default=_json_default) + "\n")
    elif fmt == "json":
        data = [dict(zip(columns, map(_jsonable, row))) for row in rows]
        out.write(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default) + "\n")
    else:  # on a terminal, as wide as the terminal; written to a file or a pipe, whole
        limit = shutil.get_terminal_size().columns if out.isatty() else None
        _table(out, columns, [[_cell(v) for v in row] for row in rows], limit)


def _fit(widths: list[int], columns: Sequence[str], limit: int) -> list[int]:
    """Column widths whose line fits ``limit`` characters: the widest column gives way first,
    none below its header's width (or 6)."""
    widths = list(widths)
    floors = [min(w, max(len(c), 6)) for w, c in zip(widths, columns)]
    excess = sum(widths) + 2 * (len(widths) - 1) - limit
    while excess > 0:
        i = max(range(len(widths)), key=lambda k: widths[k] - floors[k])
        room = widths[i] - floors[i]
        if room <= 0:
            break  # even at their floors the columns do not fit: let the terminal wrap
        next_widest = max((w for k, w in enumerate(widths) if k != i), default=0)
        cut = min(excess, room, max(widths[i] - next_widest, 1))
        widths[i] -= cut
        excess -= cut
    return widths


def _table(out: Any, columns: Sequence[str], rows: list[list[str]], limit: int | None = None) -> None:
    """An aligned table; with ``limit`` (a terminal's width) long cells are cut to fit, ending in '…'."""
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row)]
    if limit is not None:
        fitted = _fit(widths, columns, limit)
        if fitted != widths:
            widths = fitted
            rows = [[v if len(v) <= w else v[:w - 1] + "…" for v, w in zip(row, widths)] for row in rows]
    line = functools.partial("  ".join)
    out.write(line(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write(line("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(line(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


def stderr(message: str, *, quiet: bool = False) -> None:
    """A progress or summary line on stderr (silent under --quiet)."""
    if not quiet:
        click.echo(message, err=True)


def is_terminal() -> bool:
    return sys.stderr.isatty()
