"""The E-utilities client: Biopython's Bio.Entrez, with what it lacks for unattended work.

Requests are built by Bio.Entrez (``Bio.Entrez._build_request``: its parameter encoding, ``tool``
/ ``email`` / ``api_key`` handling and GET-or-POST rule) against the base URL in the settings
(NCBI, or ``KB_EUTILS_URL``); esearch/epost answers are read with ``Bio.Entrez.read``. The
transport is ours, because Bio.Entrez's own ``_open`` has no timeout, retries 429/5xx at once
with no pause, ignores ``Retry-After``, does not retry truncated bodies, and throttles only
within one process (see ../shared/reference/eutils-facts.md §7). Here:

* every request has a timeout;
* NCBI's rate (3 requests/s, 10 with a key) holds across every kb process on the machine: a
  lock file in the temp directory schedules each request's start;
* 429 and 5xx answers, timeouts, dropped connections, truncated bodies and ``<ERROR>`` bodies are
  retried with exponential backoff that honours ``Retry-After``;
* the API key never appears in a log line, an error message or an exception.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import io
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lxml import etree

from kb.config import NCBI_EUTILS_URL, EntrezSettings, mask_url_text
from kb.errors import ConfigError, KbError, NetworkError, ParseError
from kb.pubmed.parse import iter_pubmed_xml
from kb.pubmed.records import DeleteCitation, PubmedRecord
from kb.wording import counted

log = logging.getLogger(__name__)
T = TypeVar("T")

KEYLESS_RATE = 3.0
KEYED_RATE = 10.0
RATE_MARGIN = 1.1  # space requests 10% wider than the limit: network jitter compresses gaps


class TransientError(KbError):
    """A failed request that is worth trying again (429, 5xx, timeout, truncation, <ERROR>)."""


class PermanentError(KbError):
    """A request that will fail the same way if repeated (400, a bad parameter)."""


class WrongEutilsUrl(ConfigError):
    """E-utilities' address answered HTTP 404: no E-utility lives there, for any PMID, now or on
    the next run (NCBI answers 200 for a PMID it does not have, 400 for a malformed one). A
    configuration error: nothing is worth queueing for a retry."""


@dataclass
class RequestStats:
    """What a client did, for run logs (``refresh_runs``) and benchmarks."""

    requests: int = 0
    rate_limited: int = 0  # 429 answers received
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def build_request(settings: EntrezSettings, utility: str, params: dict[str, Any], *,
                  post: bool | None) -> urllib.request.Request:
    """The request for ``utility`` as Bio.Entrez builds it: its parameter encoding, ``tool`` /
    ``email`` / ``api_key`` handling and GET-or-POST rule (None: POST for long parameter lists).

    The one place kb uses Biopython's private ``Entrez._build_request``; should Biopython change
    it, only this function changes.
    """
    from Bio import Entrez

    params = dict(params)
    params["tool"] = settings.tool
    params["email"] = settings.email
    params["api_key"] = settings.api_key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Email address is not specified": the client logs it
        return Entrez._build_request(settings.base_url + utility, params, post=post)


class RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart across processes.

    The small file holds two times: the next free start (a process reserves its turn there, then
    sleeps until it) and the last start that actually happened. After its sleep a process checks
    the second under the lock too, so a process that woke late (a loaded machine) does not end
    up right behind the next one: actual starts stay ``1/rate`` apart. Both live under an
    exclusive ``flock``; a process that dies while holding it releases it with its file
    descriptor. Callers for the same E-utilities host and key share one file (the key itself is
    never written anywhere: only a hash of it names the file).
    """

    def __init__(self, rate: float, *, key: str, directory: Path | None = None) -> None:
        self.interval = RATE_MARGIN / rate
        base = directory or Path(tempfile.gettempdir())
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = base / f"kb-eutils-{digest}.rate"

    def wait(self) -> float:
        """Block until this process may start a request; return the seconds waited."""
        began = time.time()
        with self._locked() as (next_free, last_start, write):
            now = time.time()
            start = max(now, next_free)
            write(start + self.interval, last_start)
        if start > now:
            time.sleep(start - now)
        while True:  # our turn: start now unless another process's late start was too recent
            with self._locked() as (next_free, last_start, write):
                now = time.time()
                if now >= last_start + self.interval:
                    write(max(next_free, now + self.interval), now)
                    return now - began
                pause = last_start + self.interval - now
            time.sleep(pause)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[tuple[float, float, Callable[[float, float], None]]]:
        """(next free start, last actual start, write(next_free, last_start)) under the lock."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            times = [0.0, 0.0]
            for i, raw in enumerate(os.pread(fd, 64, 0).decode("ascii", "replace").split()[:2]):
                try:
                    times[i] = float(raw)
                except ValueError:
                    pass
            if max(times) > time.time() + 3600:  # a clock jump or a corrupt file: start afresh
                times = [0.0, 0.0]

            def write(next_free: float, last_start: float) -> None:
                os.pwrite(fd, f"{next_free:.6f} {last_start:.6f}".encode("ascii").ljust(48), 0)

            yield times[0], times[1], write
        finally:
            os.close(fd)  # releases the lock


class EutilsClient:
    """Talks to E-utilities for one kb process. Not thread-safe; make one per thread."""

    def __init__(
        self,
        settings: EntrezSettings,
        *,
        timeout: float | None = None,
        max_tries: int | None = None,
        backoff: float | None = None,
        max_backoff: float = 60.0,
        rate: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.timeout = timeout if timeout is not None else settings.timeout
        self.max_tries = max_tries if max_tries is not None else settings.tries
        self.backoff = backoff if backoff is not None else settings.backoff
        self.max_backoff = max_backoff
        self.rate = rate or settings.rate or (KEYED_RATE if settings.api_key else KEYLESS_RATE)
        host = urllib.parse.urlsplit(settings.base_url).netloc
        key_id = hashlib.sha256((settings.api_key or "").encode()).hexdigest()
        self.limiter = RateLimiter(self.rate, key=f"{host}|{key_id}", directory=settings.rate_dir)
        self.stats = RequestStats()
        self._sleep = sleep

    # ---------------------------------------------------------------------------------------
    # Requests

    def _build(self, utility: str, params: dict[str, Any], *, post: bool | None) -> urllib.request.Request:
        return build_request(self.settings, utility, params, post=post)

    def call(
        self,
        utility: str,
        params: dict[str, Any],
        read: Callable[[bytes], T],
        *,
        post: bool | None = None,
    ) -> T:
        """Request ``utility`` (e.g. ``"efetch.fcgi"``) and return ``read(body)``.

        ``read`` validates and parses the body; it raises :class:`TransientError` (or
        :class:`~kb.errors.ParseError`) for an answer worth retrying. After ``max_tries`` the last
        error is raised as :class:`~kb.errors.NetworkError`.
        """
        if not self.settings.email and not getattr(self, "_warned_email", False):
            log.warning("NCBI_EMAIL is not set: NCBI asks every E-utilities user for a contact address: set "
                        "NCBI_EMAIL=you@example.org in the environment (kb ingest also takes --email)")
            self._warned_email = True
        last: Exception | None = None
        for attempt in range(self.max_tries):
            if attempt:
                self.stats.retries += 1
            retry_after = 0.0
            try:
                body = self._send(self._build(utility, params, post=post), utility)
                return read(body)
            except PermanentError:
                raise
            except _RateLimited as exc:
                last, retry_after = exc, exc.retry_after
            except (TransientError, ParseError) as exc:
                last = exc
            except _TRANSPORT_ERRORS as exc:
                if _is_name_failure(exc):  # no network or no DNS: retrying will not help
                    host = urllib.parse.urlsplit(self.settings.base_url).hostname
                    raise HostUnreachable(
                        f"cannot resolve {host} ({exc.reason.strerror}): kb is offline or has no DNS. "  # type: ignore[union-attr]
                        f"{OFFLINE_ROUTES}"
                    ) from None
                connection = isinstance(exc, urllib.error.URLError)  # refused, reset, no route
                last = (_NoConnection if connection else TransientError)(_describe(exc))
            if attempt + 1 < self.max_tries:
                delay = min(self.max_backoff, max(self.backoff * 2**attempt, retry_after))
                log.info(
                    "%s failed (%s); try %d of %d in %.1f s",
                    utility, self._redact(str(last)), attempt + 2, self.max_tries, delay,
                )
                self._sleep(delay)
        message = f"{utility} failed after {counted(self.max_tries, 'try', 'tries')}: {last}"
        self.stats.errors.append(message)
        raise (ServerUnreachable if isinstance(last, _NoConnection) else NetworkError)(self._redact(message))

    def _send(self, request: urllib.request.Request, utility: str) -> bytes:
        self.limiter.wait()
        self.stats.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc)
            exc.close()
            if exc.code == 429:
                self.stats.rate_limited += 1
                raise _RateLimited(_retry_after(exc.headers.get("Retry-After")), detail) from None
            if exc.code == 404:
                raise WrongEutilsUrl(self._wrong_url(utility)) from None
            status = f"HTTP {exc.code} ({_reason(exc)}) from E-utilities" + (f": {detail}" if detail else "")
            if exc.code >= 500:
                raise TransientError(status) from None
            raise PermanentError(self._redact(status)) from None
        return body

    def _wrong_url(self, utility: str) -> str:
        """The one line for an address that answers 404: which setting to fix, and its value
        (the URL's password masked, an API key never shown)."""
        if not self.settings.uses_stand_in:
            return self._redact(
                f"E-utilities answered HTTP 404 (Not Found) for {utility} at {NCBI_EUTILS_URL}, kb's default "
                "(KB_EUTILS_URL is not set): NCBI has moved E-utilities; set KB_EUTILS_URL to their current address")
        return self._redact(
            f"E-utilities answered HTTP 404 (Not Found) for {utility}: KB_EUTILS_URL={mask_url_text(self.settings.base_url)} "
            f"is not an E-utilities address: set KB_EUTILS_URL to NCBI's {NCBI_EUTILS_URL} (or unset it), or to "
            "the address the stand-in prints (http://HOST:PORT/entrez/eutils/)")

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        return text.replace(key, "***") if key else text

    # ---------------------------------------------------------------------------------------
    # Utilities

    def efetch_pubmed(self, pmids: Sequence[int]) -> list[PubmedRecord]:
        """Fetch PubMed records by PMID in one POSTed request (callers page the list)."""
        ids = ",".join(str(p) for p in pmids)
        return self.call(
            "efetch.fcgi",
            {"db": "pubmed", "id": ids, "retmode": "xml", "rettype": "abstract"},
            _read_pubmed_set,
            post=True,
        )

    def esearch(self, term: str, **params: Any) -> dict[str, Any]:
        """Run an esearch on PubMed; returns Bio.Entrez's parsed answer."""
        return self.call("esearch.fcgi", {"db": "pubmed", "term": term, **params}, _read_entrez)

    def epost(self, pmids: Sequence[int], webenv: str | None = None) -> tuple[str, int]:
        """Store PMIDs on the history server; returns (WebEnv, query_key)."""
        params: dict[str, Any] = {"db": "pubmed", "id": ",".join(map(str, pmids))}
        if webenv:
            params["WebEnv"] = webenv
        answer = self.call("epost.fcgi", params, _read_entrez, post=True)
        return str(answer["WebEnv"]), int(answer["QueryKey"])


OFFLINE_ROUTES = (
    "Without network access, load PubMed XML files with `kb load FILE` (or a folder of them), or point "
    "KB_EUTILS_URL at an E-utilities stand-in (python -m kb.testing.eutils)."
)


class HostUnreachable(NetworkError):
    """E-utilities' host name does not resolve (offline, no DNS): not worth a retry."""


class ServerUnreachable(NetworkError):
    """E-utilities could not be connected to on any try (refused, reset, no route): unlike an
    answer that was an error, this says nothing about the PMIDs asked for."""


class _NoConnection(TransientError):
    """One try that could not connect (retried; the last one becomes :class:`ServerUnreachable`)."""


def _is_name_failure(exc: BaseException) -> bool:
    return isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, socket.gaierror)


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return http.HTTPStatus(exc.code).phrase
    except ValueError:
        return str(exc.reason or "error")


class _RateLimited(TransientError):
    def __init__(self, retry_after: float, detail: str) -> None:
        super().__init__(f"HTTP 429 (rate limited): {detail}")
        self.retry_after = retry_after


_TRANSPORT_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
    ConnectionError,
    socket.timeout,
    TimeoutError,
    OSError,
)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"truncated answer ({counted(len(exc.partial), 'byte')} received)"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach E-utilities: {exc.reason}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer before the timeout"
    return f"{type(exc).__name__}: {exc}"


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(2000)
    except Exception:  # noqa: BLE001 - the error body is only a detail
        return exc.reason or ""
    found = _error_elements(body)
    if found:
        return "; ".join(found)
    text = body.decode("utf-8", "replace").strip()
    if text[:200].lower().lstrip().startswith(("<!doctype", "<html", "<?xml", "<")):
        return ""  # an HTML (or XML) error page: its status says it all, not its markup
    return " ".join(text.split())[:200]


def _error_elements(body: bytes) -> list[str]:
    """Texts of ``<ERROR>`` elements of an E-utilities answer (an error inside a 200 answer)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return []
    if root is None:
        return []
    return [(e.text or "").strip() for e in root.iter("ERROR")]


def _root_tag(body: bytes) -> str | None:
    with contextlib.suppress(etree.XMLSyntaxError):
        for _event, elem in etree.iterparse(
            io.BytesIO(body), events=("start",), resolve_entities=False, no_network=True, load_dtd=False
        ):
            return elem.tag
    return None


def _read_pubmed_set(body: bytes) -> list[PubmedRecord]:
    root = _root_tag(body)
    if root != "PubmedArticleSet":
        errors = _error_elements(body)
        if errors:
            raise TransientError("E-utilities answered with an error: " + "; ".join(errors))
        raise TransientError(f"unexpected efetch answer (root element {root!r}, {counted(len(body), 'byte')})")
    return [r for r in iter_pubmed_xml(io.BytesIO(body), name="efetch answer") if not isinstance(r, DeleteCitation)]


def _read_entrez(body: bytes) -> dict[str, Any]:
    from Bio import Entrez

    errors = _error_elements(body)
    if errors and b"<IdList>" not in body:
        raise TransientError("E-utilities answered with an error: " + "; ".join(errors))
    return Entrez.read(io.BytesIO(body))

