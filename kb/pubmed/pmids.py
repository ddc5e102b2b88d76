"""The one reader of PubMed IDs typed or pasted by a person, used by every command that takes them.

It accepts what people copy: ``31902683``, several in one argument separated by commas, spaces or
newlines (``"1, 2"``), ``PMID:31902683`` or ``PMID: 31902683``, PubMed URLs
(``https://pubmed.ncbi.nlm.nih.gov/31902683/``, ``…/pubmed/31902683``), ``#`` comments in files,
and ``-`` for standard input. A PMID is ASCII digits, from 1 to :data:`MAX_PMID`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import IO

from kb.errors import InputError
from kb.wording import counted

MAX_PMID = 99_999_999  # PubMed's IDs have at most 8 digits

_PREFIX = re.compile(r"^pmid\s*:?\s*", re.IGNORECASE)
_URL = re.compile(
    r"^(?:https?://)?(?:www\.)?(?:pubmed\.ncbi\.nlm\.nih\.gov|ncbi\.nlm\.nih\.gov/pubmed)/(?:pubmed/)?"
    r"([^/?#\s]+)/?(?:[?#].*)?$",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"[\s,;]+")


def split_pmid_text(text: str) -> list[str]:
    """The tokens of one argument or line: commas, semicolons and whitespace separate; ``#`` starts
    a comment; ``PMID: 123`` (prefix and number apart) is one token."""
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    text = re.sub(r"(?i)\bpmid\s*:?\s*(?=\d)", "PMID:", text)
    return [t for t in _SEPARATORS.split(text) if t]


def normalise_token(token: str) -> str:
    """``PMID:123`` and PubMed URLs to ``123``; anything else unchanged (and judged by the caller)."""
    token = token.strip()
    url = _URL.match(token)
    if url:
        return url.group(1)
    return _PREFIX.sub("", token) if _PREFIX.match(token) and token[4:].lstrip(" :").isdigit() else token


def is_pmid(token: str) -> bool:
    return token.isascii() and token.isdigit() and 1 <= int(token) <= MAX_PMID


def gather_tokens(args: Iterable[str], stdin: IO[str] | None = None, files: Iterable[IO[str]] = ()) -> list[str]:
    """The PMID tokens of command-line arguments (``-`` reads ``stdin``) and of open files."""
    tokens: list[str] = []
    for arg in args:
        if arg == "-":
            if stdin is not None:
                tokens += split_pmid_text(stdin.read())
            continue
        tokens += split_pmid_text(arg)
    for fh in files:
        tokens += split_pmid_text(fh.read())
    return tokens


def parse_pmids(tokens: Iterable[str]) -> tuple[list[int], list[str]]:
    """Valid PMIDs (deduplicated, in order) and the malformed tokens, as typed."""
    valid: dict[int, None] = {}
    malformed: list[str] = []
    for raw in tokens:
        for piece in split_pmid_text(raw):
            token = normalise_token(piece)
            if is_pmid(token):
                valid[int(token)] = None
            else:
                malformed.append(piece)
    return list(valid), malformed


PMID_RULE = f"a PMID is digits only, from 1 to {MAX_PMID:,} (PMID:123 and PubMed URLs are read too)"
ARGUMENTS = "pass PMIDs as arguments"
"""Where a command reads its PMIDs from, for the message when none are given (``kb ingest``
passes its own: arguments, ``-`` for stdin, or ``--from FILE``)."""


def require_pmids(tokens: Iterable[str], *, source: str = ARGUMENTS) -> list[int]:
    """Valid PMIDs, or an :class:`InputError` listing every malformed one (nothing is done).
    ``source`` says where PMIDs go when none were given."""
    valid, malformed = parse_pmids(tokens)
    if malformed:
        shown = ", ".join(repr(t) for t in malformed[:20]) + (" …" if len(malformed) > 20 else "")
        raise InputError(
            f"{counted(len(malformed), 'malformed PMID')}: {shown}. {PMID_RULE[0].upper()}{PMID_RULE[1:]}. Nothing was "
            "done: fix or remove them and run again."
        )
    if not valid:
        raise InputError(f"no PMIDs given: {source}")
    return valid


def require_pmid(value: str) -> int:
    """Exactly one PMID (``kb card PMID``, ``kb curate status PMID …``)."""
    valid, malformed = parse_pmids([value])
    if malformed:
        raise InputError(f"{value!r} is not a PMID: {PMID_RULE}")
    if not valid:
        raise InputError("no PMID given: give one, e.g. 31902683")
    if len(valid) != 1:
        raise InputError(f"give one PMID here, not {len(valid)} ({value!r})")
    return valid[0]
