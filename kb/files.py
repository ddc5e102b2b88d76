"""Writing the files kb is asked for: exports, the card site, ``kb curate export``, ``kb card -o``.

Every file is written to a temporary file beside it (``.NAME.kbtmpPID``) and renamed over the
name only when it is complete: a reader, or a run killed half-way, sees the old file or the new
one, never a part. Anything the operating system refuses (no such directory, no permission, a
full disk, a file where a directory should be) is one :class:`~kb.errors.OutputError` naming the
path; no temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from kb.errors import OutputError

TEMP_NAME = re.compile(r"^\..+\.kbtmp[0-9]+$")
"""The name of a temporary file (one a killed run may have left: safe to delete)."""

_WRITE_SIZE = 1 << 16


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.kbtmp{os.getpid()}")


def _refused(path: Path, exc: OSError, what: str = "write") -> OutputError:
    return OutputError(f"cannot {what} {path}: {exc.strerror or exc}")


def write_atomic(path: Path, chunks: Iterable[str]) -> None:
    """Write ``chunks`` (UTF-8) to ``path`` atomically (see the module's docstring)."""
    with atomic_file(path) as out:
        for chunk in chunks:
            out.write(chunk)


def write_text(path: Path, text: str) -> None:
    """``text`` to ``path``, atomically."""
    write_atomic(path, [text])


def write_if_changed(path: Path, content: str) -> bool:
    """``write_atomic`` unless ``path`` already holds exactly ``content`` (a rebuild then leaves
    the file, its mtime and what caches or rsync know of it alone). True if written."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as fh:
            if fh.read(len(data) + 1) == data:
                return False
    except OSError:
        pass
    write_atomic(path, [content])
    return True


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """A text file to write to (UTF-8, newlines as written) that becomes ``path`` only when the
    block ends without an error; after an error ``path`` is as it was."""
    temp = _temp_path(path)
    try:
        temp.unlink(missing_ok=True)
        out = open(temp, "x", encoding="utf-8", newline="", buffering=_WRITE_SIZE)
    except OSError as exc:
        raise _refused(path, exc) from None
    try:
        with out:
            yield out
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _refused(path, exc) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def make_dir(path: Path) -> None:
    """``path`` and its parents as directories (an :class:`OutputError` when that cannot be)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"{path} exists and is not a directory: give another directory") from exc
    except OSError as exc:
        raise _refused(path, exc, "create the directory") from exc


def remove(path: Path) -> bool:
    """Delete a file kb wrote earlier; False when it was gone already."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _refused(path, exc, "remove") from exc
    return True
