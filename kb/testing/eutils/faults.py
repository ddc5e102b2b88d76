"""Faults that can be queued (server errors, 429s, slow, truncated or reset answers) and rate limiting."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from kb.testing.eutils.answers import _HTML_TYPE, _Answer, _json

FAULT_KINDS = frozenset({"500", "502", "503", "429", "slow", "truncate", "reset", "error", "omit"})
_FAULT_PARAMS = {"slow": {"seconds"}, "omit": {"n"}, "error": {"message"}}

RETRY_AFTER_SECONDS = 2  # what NCBI sends with its 429s
NCBI_KEYLESS_RATE = 3  # shown in X-RateLimit-Limit when limiting is disabled
NCBI_API_KEY_RATE = 10

_HTML_ERRORS = {
    500: (
        "NCBI/eutils202 - WWW Error 500 Diagnostic",
        "Internal Server Error",
        "The server encountered an internal error or misconfiguration and was unable to complete "
        "your request.",
    ),
    502: (
        "502 Bad Gateway",
        "Bad Gateway",
        "The proxy server received an invalid response from an upstream server.",
    ),
    503: (
        "503 Service Unavailable",
        "Service Unavailable",
        "Unable to route request! service name: /http/service/ratecontrol",
    ),
}


def _html_error(status: int) -> _Answer:
    title, heading, message = _HTML_ERRORS[status]
    body = (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
        f"<title>{title}</title>\n</head><body>\n<h1>{heading}</h1>\n<p>{message}</p>\n</body></html>\n"
    )
    return _Answer(status, _HTML_TYPE, [body.encode("utf-8")])


@dataclass(slots=True)
class _Fault:
    kind: str
    remaining: int
    endpoint: str | None
    params: dict[str, Any]

    def matches(self, endpoint: str) -> bool:
        if self.kind == "omit" and endpoint != "efetch":
            return False
        return self.endpoint is None or self.endpoint == endpoint


class _RateLimiter:
    """NCBI-style sliding one-second windows, one per caller (an IP, or an API key)."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, caller: str, limit: float | None) -> tuple[bool, int]:
        """Count a request; returns (allowed, requests in the window including this one).

        Refused requests do not enter the window, as a caller that backs off gets through again.
        """
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(caller, deque())
            while hits and now - hits[0] >= 1.0:
                hits.popleft()
            count = len(hits) + 1
            if limit is not None and count > limit:
                return False, count
            hits.append(now)
            return True, count


def _too_many(caller: str, count: int, limit: float, retry_after: float = RETRY_AFTER_SECONDS) -> _Answer:
    """NCBI's 429: JSON naming the caller (IP or key), the requests in the window and the limit."""
    body = {"error": "API rate limit exceeded", "api-key": caller, "count": str(count)}
    answer = _json({**body, "limit": f"{limit:g}"}, 429)
    answer.headers.update({"Retry-After": f"{retry_after:g}", "X-RateLimit-Remaining": "0"})
    return answer
