"""The command line: ``python -m kb.testing.eutils --port 0 [--rate N] ... PATH...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lxml import etree

from kb.testing import serve_until_signalled
from kb.testing.eutils.faults import FAULT_KINDS, RETRY_AFTER_SECONDS
from kb.testing.eutils.server import EutilsServer
from kb.wording import counted


def _fault_spec(text: str) -> tuple[str, int, str | None]:
    """``KIND[:COUNT][@ENDPOINT]``, e.g. ``500:2@efetch``."""
    spec, _, endpoint = text.partition("@")
    kind, _, count = spec.partition(":")
    if kind not in FAULT_KINDS or (count and not count.isdigit()):
        kinds = ", ".join(sorted(FAULT_KINDS))
        raise argparse.ArgumentTypeError(f"expected KIND[:COUNT][@ENDPOINT] with KIND one of {kinds}")
    return kind, int(count or 1), endpoint or None


def _rate(text: str) -> float | None:
    value = float(text)
    return value if value > 0 else None


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kb.testing.eutils",
        description="Serve PubMed XML files as a local stand-in for NCBI E-utilities (KB_EUTILS_URL).",
    )
    add = parser.add_argument
    add("paths", nargs="*", metavar="PATH", help="PubMed XML files or folders (.xml, .xml.gz)")
    add("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8080, help="port; 0 picks a free one (default 8080)")
    add("--rate", type=_rate, default=3.0, help="requests/s per IP without api_key; 0: no limit")
    add("--api-key-rate", type=_rate, default=10.0, help="requests/s per api_key; 0: no limit")
    add("--valid-api-key", action="append", metavar="KEY", help="accept only these keys (repeat)")
    add("--retry-after", type=float, default=RETRY_AFTER_SECONDS, help="seconds a 429 asks to wait (NCBI: 2)")
    add("--max-esearch", type=int, default=9999, help="esearch hits that can be paged (NCBI: 9999)")
    add(
        "--translation-stack",
        action="store_true",
        help="add a TranslationStack to esearch answers (as PMC's esearch; PubMed's has none)",
    )
    add(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="KIND[:COUNT][@ENDPOINT]",
        help=f"queue a fault at start (repeat); KIND: {', '.join(sorted(FAULT_KINDS))}",
    )
    add("--verbose", action="store_true", help="log requests to stderr (api_key masked)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until Ctrl-C or SIGTERM."""
    parser = _argument_parser()
    args = parser.parse_args(argv)
    try:
        server = EutilsServer(
            args.paths,
            rate=args.rate,
            api_key_rate=args.api_key_rate,
            host=args.host,
            port=args.port,
            max_esearch=args.max_esearch,
            translation_stack=args.translation_stack,
            valid_api_keys=args.valid_api_key,
            verbose=args.verbose,
            retry_after=args.retry_after,
        )
    except (ValueError, OSError, etree.XMLSyntaxError) as exc:
        parser.error(str(exc))
    for kind, count, endpoint in args.fault:
        server.inject(kind, count=count, path=endpoint)
    try:
        server.start()
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc}")
    print(
        f"serving {counted(len(server.pmids), 'record')} on {server.base_url} — set KB_EUTILS_URL to this",
        file=sys.stderr,
        flush=True,
    )
    return serve_until_signalled(server.stop)


