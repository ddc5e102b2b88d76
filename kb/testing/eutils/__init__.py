"""A local stand-in for NCBI's E-utilities (esearch, efetch, epost, esummary) over PubMed XML files.

It answers on the paths NCBI uses (``/entrez/eutils/esearch.fcgi`` ...) with NCBI's shapes, error
bodies, caps and rate limits, so that kb (and Bio.Entrez) can be tested offline: point
``KB_EUTILS_URL`` at :attr:`EutilsServer.base_url`. Faults (5xx, 429, slow, truncated or reset
answers, backend errors, silently omitted records) can be queued with :meth:`EutilsServer.inject`
or over HTTP under ``/admin/``.

Library use::

    with EutilsServer([corpus_dir], rate=None) as server:
        os.environ["KB_EUTILS_URL"] = server.base_url
        server.inject("500", count=2, path="efetch")
        ...
        server.stats()["efetch"]

Command line (a developer tool; quiet unless ``--verbose``)::

    python -m kb.testing.eutils --port 0 [--rate N] [--api-key-rate N] [--retry-after S] \
        [--fault KIND[:COUNT][@ENDPOINT]] PATH...

Standard library and lxml only. It binds loopback addresses only.

The modules: :mod:`.records` (PubMed XML read and indexed), :mod:`.query` (PubMed's query syntax),
:mod:`.summaries` (ESummary), :mod:`.answers` (NCBI's bodies and messages), :mod:`.faults` (queued
faults, 429s and rate limiting), :mod:`.server` (:class:`EutilsServer` and its HTTP handler) and
:mod:`.cli` (the command line).
"""

from __future__ import annotations

from kb.testing.eutils.cli import main
from kb.testing.eutils.faults import FAULT_KINDS
from kb.testing.eutils.server import ENDPOINTS, EutilsServer

__all__ = ["ENDPOINTS", "FAULT_KINDS", "EutilsServer", "main"]
