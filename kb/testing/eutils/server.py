"""The server: :class:`EutilsServer` (records, faults, stats, the four E-utilities) and its HTTP handler."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import re
import secrets
import socket
import struct
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from kb.testing.eutils.answers import (
    _EPOST_HEAD,
    _ESEARCH_HEAD,
    _ESUMMARY_V1_HEAD,
    _ESUMMARY_V2_HEAD,
    _EsearchPage,
    _JSON_HEADER,
    _MISSING_SUMMARY_V1,
    _MISSING_SUMMARY_V2,
    _MSG_BACKEND,
    _MSG_EMPTY_TERM,
    _MSG_EPOST_EMPTY,
    _MSG_EPOST_INVALID,
    _MSG_ID_EMPTY,
    _MSG_NO_CORRECT_IDS,
    _MSG_NO_ID_NOR_KEY,
    _PUBMED_FOOT,
    _PUBMED_HEAD,
    _XML_TYPE,
    _Answer,
    _error_xml,
    _esc,
    _esearch_error,
    _esearch_json,
    _esearch_xml,
    _json,
    _retstart_message,
    _xml,
)
from kb.testing.eutils.faults import (
    _FAULT_PARAMS,
    FAULT_KINDS,
    NCBI_API_KEY_RATE,
    NCBI_KEYLESS_RATE,
    RETRY_AFTER_SECONDS,
    _Fault,
    _html_error,
    _RateLimiter,
    _too_many,
)
from kb.testing.eutils.query import _DATE_TYPES, _FIELD_NAMES, _parse_date, _Search, _TermParser, _translate
from kb.testing.eutils.records import (
    _ARTICLE_TAGS,
    _XML_PARSER_OPTIONS,
    _expand_paths,
    _index_record,
    _read_file,
    _Record,
    _well_formed,
)
from kb.testing.eutils.summaries import _docsum_v1, _docsum_v2, _summarize

EUTILS_PREFIX = "/entrez/eutils/"
ADMIN_PREFIX = "/admin/"
ENDPOINTS = ("esearch", "efetch", "epost", "esummary")
EFETCH_MAX_RETMAX = 10_000
ESEARCH_DEFAULT_RETMAX = 20


_API_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s\"']*")


def _mask_api_key(text: str) -> str:
    """``api_key=SECRET`` becomes ``api_key=***`` (for anything written to logs)."""
    return _API_KEY_IN_TEXT.sub(r"\1***", text)


def _endpoint_name(path: str) -> str:
    """``efetch``, ``efetch.fcgi`` and ``/entrez/eutils/efetch.fcgi`` all name ``efetch``."""
    return path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".fcgi")


def _ids_from(params: dict[str, list[str]]) -> list[str]:
    """All comma-separated values of (possibly repeated) ``id`` parameters, blanks dropped."""
    return [part.strip() for value in params.get("id", ()) for part in value.split(",") if part.strip()]


def _first(params: dict[str, list[str]], name: str, default: str = "") -> str:
    values = params.get(name)
    return values[0].strip() if values else default


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    value = _first(params, name)
    return int(value) if value.isdigit() else default


def _dedupe(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: EutilsServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early is routine here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_STAT_COUNTS = ("requests", *ENDPOINTS, "other", "429", "faults_served", "ids_fetched")


class EutilsServer:
    """PubMed E-utilities over local XML files, on a loopback port, in a background thread.

    ``rate``/``api_key_rate``: requests per second allowed per IP without a key / per API key
    (None disables the limit). ``valid_api_keys``: when given, other keys get HTTP 400.
    ``max_esearch``: how many hits of a search can be paged through (NCBI: 9,999).
    ``translation_stack``: add a TranslationStack to esearch answers, as Entrez's other
    databases (PMC, protein, ...) still do; PubMed's own esearch dropped it (2020).
    ``time_source``: "today" for ``reldate`` (default :meth:`datetime.date.today`).
    ``verbose``: log each request to stderr (with ``api_key=***``).
    ``retry_after``: the seconds a 429 asks the caller to wait (NCBI: 2; tests use less).
    """

    def __init__(
        self,
        paths: Iterable[str | Path] = (),
        *,
        rate: float | None = 3.0,
        api_key_rate: float | None = 10.0,
        host: str = "127.0.0.1",
        port: int = 0,
        max_esearch: int = 9999,
        translation_stack: bool = False,
        time_source: Callable[[], dt.date] | None = None,
        valid_api_keys: Collection[str] | None = None,
        verbose: bool = False,
        retry_after: float = RETRY_AFTER_SECONDS,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self.rate = rate
        self.api_key_rate = api_key_rate
        self.retry_after = retry_after
        self.max_esearch = max_esearch
        self.translation_stack = translation_stack
        self.valid_api_keys = frozenset(valid_api_keys) if valid_api_keys is not None else None
        self.verbose = verbose
        self._requested_port = port
        self._time_source = time_source or dt.date.today
        self._lock = threading.RLock()
        self._records: dict[int, _Record] = {}
        self._history: dict[str, list[tuple[int, ...]]] = {}
        self._faults: list[_Fault] = []
        self._counts: Counter[str] = Counter()
        self._log: list[dict[str, Any]] = []
        self._limiter = _RateLimiter()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.load(*paths)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EutilsServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the E-utilities stand-in is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            # stop() waits for the loop to see the request to stop: up to one interval
            kwargs={"poll_interval": 0.01},
            name="eutils-stand-in",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (answers being slowed down are cut short)."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> EutilsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the E-utilities stand-in is not running: call start() first")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What KB_EUTILS_URL is set to, e.g. ``http://127.0.0.1:41234/entrez/eutils/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{EUTILS_PREFIX}"

    # -- records -----------------------------------------------------------------------------

    def load(self, *paths: str | Path) -> None:
        """Add or replace records from files/folders; later PMIDs win, DeleteCitation removes."""
        self._apply(paths, replace=False)

    def replace_records(self, *paths: str | Path) -> None:
        """Serve exactly the records of ``paths`` (e.g. a "before" and an "after" state)."""
        self._apply(paths, replace=True)

    def _apply(self, paths: Sequence[str | Path], *, replace: bool) -> None:
        """Read every file first (a bad file changes nothing), then apply them in order."""
        operations = [op for path in _expand_paths(paths) for op in _read_file(path)]
        with self._lock:
            if replace:
                self._records = {}
            for op in operations:
                if isinstance(op, _Record):
                    self._records[op.pmid] = op
                else:
                    for pmid in op:
                        self._records.pop(pmid, None)

    def add_record_xml(
        self, xml: str | bytes, *, edat: dt.date | None = None, mdat: dt.date | None = None
    ) -> int:
        """Add or replace one ``<PubmedArticle>``/``<PubmedBookArticle>``; returns its PMID."""
        data = xml.encode("utf-8") if isinstance(xml, str) else xml
        root = etree.fromstring(data, etree.XMLParser(**_XML_PARSER_OPTIONS))
        record = _index_record(root) if root.tag in _ARTICLE_TAGS else None
        if record is None:
            raise ValueError("expected one <PubmedArticle> or <PubmedBookArticle> with a PMID")
        record = dataclasses.replace(record, edat=edat or record.edat, mdat=mdat or record.mdat)
        with self._lock:
            self._records[record.pmid] = record
        return record.pmid

    def add_copies(self, pmids: Iterable[int], like: int) -> None:
        """Serve every PMID of ``pmids`` as a copy of the served record ``like``: searches find
        each with ``like``'s texts and dates, and efetch answers with ``like``'s XML as it is (its
        PMID is not rewritten, and no memory is spent per copy on XML). For scale runs where
        records are counted and searched, not fetched: a million tracked studies of which a few
        change (scripts/bench_search.py --refresh). Raises KeyError when ``like`` is not served."""
        with self._lock:
            template = self._records[int(like)]
            for pmid in pmids:
                self._records[int(pmid)] = dataclasses.replace(template, pmid=int(pmid))

    def set_dates(
        self,
        pmid: int,
        *,
        edat: dt.date | None = None,
        mdat: dt.date | None = None,
        pdat: dt.date | None = None,
    ) -> None:
        """Override the dates esearch filters and sorts on, until the record is loaded again.

        Raises KeyError for a PMID that is not served.
        """
        with self._lock:
            record = self._records[int(pmid)]
            self._records[record.pmid] = dataclasses.replace(
                record, edat=edat or record.edat, mdat=mdat or record.mdat, pdat=pdat or record.pdat
            )

    @property
    def pmids(self) -> list[int]:
        """The PMIDs being served, ascending."""
        with self._lock:
            return sorted(self._records)

    # -- faults and stats --------------------------------------------------------------------

    def inject(self, fault: str, *, count: int = 1, path: str | None = None, **params: Any) -> None:
        """Queue a fault for the next ``count`` requests to ``path`` (an endpoint; None = any).

        Faults are served after rate limiting. Kinds: ``500``/``502``/``503`` (HTML error page),
        ``429`` (as when over the rate), ``slow`` (wait ``seconds=5``, then answer), ``truncate``
        (full Content-Length, half the body, then close), ``reset`` (close without answering),
        ``error`` (200 with the utility's ``<ERROR>``; ``message=``), ``omit`` (efetch only:
        leave out the last ``n=1`` records).
        """
        kind = str(fault)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        unknown = set(params) - _FAULT_PARAMS.get(kind, set())
        if unknown:
            raise ValueError(f"fault {kind!r} takes no parameter(s) {sorted(unknown)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        endpoint = _endpoint_name(path) if path else None
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {path!r}; expected one of {ENDPOINTS}")
        with self._lock:
            self._faults.append(_Fault(kind, count, endpoint, dict(params)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def stats(self) -> dict[str, Any]:
        """What was asked since the last reset.

        Counts: ``requests`` (every E-utility request, 429s included), one per endpoint,
        ``other`` (E-utilities the stand-in lacks), ``429``, ``faults_served``, ``ids_fetched``
        (records in complete efetch answers); and ``log``: one dict per request with
        ``endpoint``, ``method``, ``params`` (``api_key`` shown as ``***``), ``status`` (None when
        the connection was reset) and ``fault``.
        """
        with self._lock:
            counts = {name: self._counts[name] for name in _STAT_COUNTS}
            return {**counts, "log": [dict(entry) for entry in self._log]}

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()

    # -- request handling (called from the handler threads) ----------------------------------

    def _serve(
        self, endpoint: str, method: str, params: dict[str, list[str]], client_ip: str
    ) -> tuple[_Answer | None, bool]:
        """Answer one E-utility request: (the answer, None to reset the connection; truncate?)."""
        api_key = _first(params, "api_key")
        caller, limit = (api_key, self.api_key_rate) if api_key else (client_ip, self.rate)
        nominal = limit if limit is not None else (NCBI_API_KEY_RATE if api_key else NCBI_KEYLESS_RATE)
        fault: _Fault | None = None
        count = 0
        answer: _Answer | None
        if api_key and self.valid_api_keys is not None and api_key not in self.valid_api_keys:
            answer = _json(
                {"error": "API key invalid", "api-key": api_key, "type": "api-key", "status": "unknown"},
                400,
            )
        else:
            allowed, count = self._limiter.hit(caller, limit)
            fault = self._take_fault(endpoint) if allowed else None
            if not allowed or (fault is not None and fault.kind == "429"):
                answer = _too_many(caller, count, nominal, self.retry_after)
            else:
                answer = self._answer_or_fault(endpoint, params, fault)
        truncate = fault is not None and fault.kind == "truncate"
        if answer is not None:
            answer.headers.setdefault("X-RateLimit-Limit", f"{nominal:g}")
            answer.headers.setdefault("X-RateLimit-Remaining", str(max(0, int(nominal) - count)))
        self._record_request(endpoint, method, params, answer, fault, truncate)
        return answer, truncate

    def _answer_or_fault(
        self, endpoint: str, params: dict[str, list[str]], fault: _Fault | None
    ) -> _Answer | None:
        kind = fault.kind if fault is not None else None
        options = fault.params if fault is not None else {}
        if kind in ("500", "502", "503"):
            return _html_error(int(kind))
        if kind == "error":
            return _error_xml(endpoint, str(options.get("message", _MSG_BACKEND)))
        if kind == "reset":
            return None
        if kind == "slow":
            self._stopping.wait(float(options.get("seconds", 5.0)))
        return self._answer(endpoint, params, omit=int(options.get("n", 1)) if kind == "omit" else 0)

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(endpoint):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record_request(
        self,
        endpoint: str,
        method: str,
        params: dict[str, list[str]],
        answer: _Answer | None,
        fault: _Fault | None,
        truncated: bool,
    ) -> None:
        shown = {k: "***" if k == "api_key" else ",".join(v) for k, v in params.items()}
        status = answer.status if answer is not None else None
        with self._lock:
            self._counts["requests"] += 1
            self._counts[endpoint if endpoint in ENDPOINTS else "other"] += 1
            self._counts["429"] += int(status == 429)
            self._counts["faults_served"] += int(fault is not None)
            if answer is not None and not truncated:
                self._counts["ids_fetched"] += answer.ids_served
            self._log.append(
                {
                    "endpoint": endpoint,
                    "method": method,
                    "params": shown,
                    "status": status,
                    "fault": fault.kind if fault is not None else None,
                }
            )

    def _answer(self, endpoint: str, params: dict[str, list[str]], omit: int) -> _Answer:
        if endpoint not in ENDPOINTS:
            message = f"{endpoint} is not served by the E-utilities stand-in\n"
            return _Answer(404, "text/plain; charset=UTF-8", [message.encode()])
        db = _first(params, "db", "pubmed") or "pubmed"
        if db != "pubmed":
            return _error_xml(endpoint, f"Invalid db name specified: {db}")
        if endpoint == "esearch":
            return self._esearch(params)
        if endpoint == "efetch":
            return self._efetch(params, omit)
        if endpoint == "epost":
            return self._epost(params)
        return self._esummary(params)

    # -- history -----------------------------------------------------------------------------

    def _store(self, webenv: str, pmids: Sequence[int]) -> tuple[str, int]:
        """Store PMIDs under ``webenv`` (a new WebEnv if unknown); returns (WebEnv, query_key)."""
        with self._lock:
            if webenv not in self._history:
                webenv = f"MCID_{secrets.token_hex(12)}"
                self._history[webenv] = []
            self._history[webenv].append(tuple(pmids))
            return webenv, len(self._history[webenv])

    def _recall(self, webenv: str, query_key: int) -> tuple[int, ...] | None:
        with self._lock:
            sets = self._history.get(webenv)
            return sets[query_key - 1] if sets and 0 < query_key <= len(sets) else None

    def _history_ids(self, params: dict[str, list[str]], endpoint: str) -> list[int] | _Answer:
        """The slice ``retstart``/``retmax`` of the set at ``WebEnv``/``query_key``, or an error.

        ``query_key`` defaults to 1 and ``retmax`` to (and at most) 10,000.
        """
        key = _int_param(params, "query_key", 1)
        stored = self._recall(_first(params, "webenv"), key)
        if stored is None:
            return _error_xml(endpoint, f"Unable to obtain query #{key}")
        start = _int_param(params, "retstart", 0)
        size = min(_int_param(params, "retmax", EFETCH_MAX_RETMAX), EFETCH_MAX_RETMAX)
        return list(stored[start : start + size])

    # -- the four E-utilities ----------------------------------------------------------------

    def _esearch(self, params: dict[str, list[str]]) -> _Answer:
        as_json = _first(params, "retmode").lower() == "json"
        webenv = _first(params, "webenv")
        term = _first(params, "term")
        if not term and _first(params, "query_key").isdigit():
            term = f"#{_first(params, 'query_key')}"
        node = _TermParser(term).parse()
        if node is None:
            return _esearch_error(_MSG_EMPTY_TERM, as_json)
        with self._lock:
            records = dict(self._records)
        search = _Search(records, lambda key: self._recall(webenv, key))
        node = search.map_terms(node)
        found = search.run(node)
        translation = f"({_translate(node)})"
        stack = search.stack(node) if self.translation_stack else None
        window = self._date_window(params)
        if window is not None:
            datetype, start, stop = window
            found = {p for p in found if start <= getattr(records[p], datetype) <= stop}
            translation += f" AND {start:%Y/%m/%d}:{stop:%Y/%m/%d}[{_FIELD_NAMES[datetype]}]"
        if _first(params, "sort").lower().replace("+", "_").replace(" ", "_") == "pub_date":
            by_date = sorted((records[p] for p in found), key=lambda r: (r.pdat, r.pmid), reverse=True)
            ordered = [r.pmid for r in by_date]
        else:
            ordered = sorted(found, reverse=True)  # PubMed's "most recent": newest PMID first
        count = len(ordered)
        if _first(params, "rettype").lower() == "count":
            if as_json:
                return _json({"header": _JSON_HEADER, "esearchresult": {"count": str(count)}})
            return _xml(f"{_ESEARCH_HEAD}<eSearchResult><Count>{count}</Count></eSearchResult>\n")
        retstart = _int_param(params, "retstart", 0)
        retmax = _int_param(params, "retmax", ESEARCH_DEFAULT_RETMAX)
        cap = self.max_esearch
        # PubMed refuses a retstart past the cap only when there are hits past it; a query with
        # fewer hits just gets an empty page (third-party live probes, 2026).
        if retstart > cap - 1 and count > cap:
            return _esearch_error(_retstart_message(cap), as_json, status=400)
        messages: list[str] = []
        if retmax > cap:
            retmax = max(0, cap - retstart)
            messages.append(f"Restrictions achieved. start and count adjusted to {retstart}, {retmax}")
        page = ordered[retstart : min(retstart + retmax, cap)]
        if count == 0:
            messages.append("No items found.")
        history: tuple[str, int] | None = None
        if _first(params, "usehistory").lower() == "y":
            history = self._store(webenv, ordered)
        result = _EsearchPage(count, page, retstart, history, translation, search, messages)
        return _esearch_json(result) if as_json else _esearch_xml(result, stack)

    def _date_window(self, params: dict[str, list[str]]) -> tuple[str, dt.date, dt.date] | None:
        """(datetype, first, last) from ``mindate``+``maxdate`` or ``reldate``; None when absent."""
        datetype = _first(params, "datetype", "pdat").lower()
        if datetype not in _DATE_TYPES:
            datetype = "pdat"
        low, high = _first(params, "mindate"), _first(params, "maxdate")
        if low and high:
            start, stop = _parse_date(low, end=False), _parse_date(high, end=True)
            return (datetype, start, stop) if start and stop else None
        reldate = _first(params, "reldate")
        if reldate.isdigit():
            today = self._time_source()
            today = today.date() if isinstance(today, dt.datetime) else today
            return datetype, today - dt.timedelta(days=int(reldate)), today
        return None

    def _efetch(self, params: dict[str, list[str]], omit: int) -> _Answer:
        retmode = _first(params, "retmode", "xml").lower()
        rettype = _first(params, "rettype", "abstract").lower()
        if retmode != "xml" or rettype not in ("abstract", "xml"):
            return _Answer(200, _XML_TYPE, [])  # what NCBI sends for a rettype it does not know
        if "id" in params:
            raw = _ids_from(params)
            if not raw:
                return _error_xml("efetch", _MSG_ID_EMPTY)
            wanted = _dedupe(int(uid) for uid in raw if _well_formed(uid))
            if not wanted:
                return _error_xml("efetch", _MSG_NO_CORRECT_IDS, 400)
        elif _first(params, "webenv"):
            found = self._history_ids(params, "efetch")
            if isinstance(found, _Answer):
                return found
            wanted = found
        else:
            return _error_xml("efetch", _MSG_NO_CORRECT_IDS, 400)
        with self._lock:
            records = [self._records[p] for p in wanted if p in self._records]
        if omit:
            records = records[: max(0, len(records) - omit)]
        if not records:
            return _Answer(200, _XML_TYPE, [_PUBMED_HEAD, _PUBMED_FOOT])
        parts = [_PUBMED_HEAD, b"\n"]
        for record in records:
            parts += (record.xml, b"\n")
        parts.append(_PUBMED_FOOT)
        return _Answer(200, _XML_TYPE, parts, ids_served=len(records))

    def _epost(self, params: dict[str, list[str]]) -> _Answer:
        raw = _ids_from(params)
        valid = _dedupe(int(uid) for uid in raw if _well_formed(uid))
        invalid = [uid for uid in raw if not _well_formed(uid)]
        # Invalid IDs are named in an <ERROR>, no longer in an <InvalidIdList> (NCBI's epost3.xml
        # in ../shared/corpus/eutils); the valid ones are stored all the same.
        errors = [_MSG_EPOST_INVALID] if invalid else []
        if not valid:
            body = "".join(f"\n\t<ERROR>{_esc(e)}</ERROR>" for e in [_MSG_EPOST_EMPTY, *errors])
            return _xml(f"{_EPOST_HEAD}<ePostResult>{body}</ePostResult>\n")
        webenv, key = self._store(_first(params, "webenv"), valid)
        body = f"\n\t<QueryKey>{key}</QueryKey>\n\t<WebEnv>{webenv}</WebEnv>"
        body += "".join(f"\n\t<ERROR>{_esc(e)}</ERROR>" for e in errors)
        return _xml(f"{_EPOST_HEAD}<ePostResult>{body}\n</ePostResult>\n")

    def _esummary(self, params: dict[str, list[str]]) -> _Answer:
        if "id" in params:
            wanted = _dedupe(int(uid) for uid in _ids_from(params) if _well_formed(uid))
        elif _first(params, "query_key") and _first(params, "webenv"):
            found = self._history_ids(params, "esummary")
            if isinstance(found, _Answer):
                return found
            wanted = found
        else:
            return _error_xml("esummary", _MSG_NO_ID_NOR_KEY)
        if not wanted:
            return _error_xml("esummary", _MSG_NO_CORRECT_IDS)
        with self._lock:
            found_records = {p: self._records.get(p) for p in wanted}
        if _first(params, "version") == "2.0":
            docs = "".join(
                _docsum_v2(_summarize(r)) if r is not None else _MISSING_SUMMARY_V2.format(uid=p)
                for p, r in found_records.items()
            )
            return _xml(
                f'{_ESUMMARY_V2_HEAD}<eSummaryResult>\n<DocumentSummarySet status="OK">\n'
                f"<DbBuild>Build-stand-in</DbBuild>\n{docs}</DocumentSummarySet>\n</eSummaryResult>\n"
            )
        docs = "".join(
            _docsum_v1(_summarize(r)) if r is not None else _MISSING_SUMMARY_V1.format(uid=p)
            for p, r in found_records.items()
        )
        return _xml(f"{_ESUMMARY_V1_HEAD}<eSummaryResult>\n{docs}\n</eSummaryResult>\n")

    # -- admin (JSON over HTTP; neither rate limited nor counted) -----------------------------

    def _admin(self, method: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            if (method, name) == ("POST", "faults"):
                options = {k: v for k, v in body.items() if k not in ("fault", "count", "path")}
                count = int(body.get("count", 1))
                self.inject(str(body["fault"]), count=count, path=body.get("path"), **options)
                return 200, {"ok": True}
            if (method, name) == ("DELETE", "faults"):
                self.clear_faults()
                return 200, {"ok": True}
            if (method, name) == ("GET", "stats"):
                return 200, self.stats()
            if (method, name) == ("POST", "reset"):
                self.reset_stats()
                return 200, {"ok": True}
            if (method, name) == ("POST", "load"):
                paths = [str(p) for p in body.get("paths", [])]
                (self.replace_records if body.get("replace") else self.load)(*paths)
                return 200, {"ok": True, "records": len(self.pmids)}
        except (KeyError, TypeError, ValueError, OSError, etree.XMLSyntaxError) as exc:
            return 400, {"error": f"{type(exc).__name__}: {exc}"}
        return 404, {"error": f"no admin endpoint {method} /admin/{name}"}


def _check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: this server has no access control."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to bind {host!r}: the E-utilities stand-in listens on loopback only "
            "(127.0.0.1, ::1, localhost)"
        )


class _Handler(BaseHTTPRequestHandler):
    """Parses requests, hands them to the :class:`EutilsServer`, writes (or sabotages) answers."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "kb-eutils-stand-in"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Request lines go to stderr only with ``verbose``, and never with an API key in them."""
        if self.server.app.verbose:
            line = f"{self.address_string()} - [{self.log_date_time_string()}] {format % args}\n"
            sys.stderr.write(_mask_api_key(line))

    def _dispatch(self, method: str) -> None:
        try:
            path = urlsplit(self.path).path
            body = self._read_body()
            if path.startswith(ADMIN_PREFIX):
                self._do_admin(method, path.removeprefix(ADMIN_PREFIX).strip("/"), body)
            elif path.startswith(EUTILS_PREFIX) and method in ("GET", "POST"):
                self._do_eutils(method, path.removeprefix(EUTILS_PREFIX), body)
            else:
                self._send(_Answer(404, "text/plain; charset=UTF-8", [b"not found\n"]))
        except ConnectionError:
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug in the stand-in must show; the client gets a 500
            traceback.print_exc()
            message = b"internal error in the E-utilities stand-in\n"
            self._send(_Answer(500, "text/plain; charset=UTF-8", [message]))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _do_eutils(self, method: str, name: str, body: bytes) -> None:
        """GET query and form-encoded POST body both count; parameter names are case-insensitive."""
        params: dict[str, list[str]] = {}
        sources = [urlsplit(self.path).query]
        if body and self.headers.get_content_type() == "application/x-www-form-urlencoded":
            sources.append(body.decode("utf-8", "replace"))
        for source in sources:
            for key, values in parse_qs(source, keep_blank_values=True).items():
                params.setdefault(key.lower(), []).extend(values)
        endpoint = name.removesuffix(".fcgi")
        answer, truncate = self.server.app._serve(endpoint, method, params, self.client_address[0])
        if answer is None:  # the "reset" fault: close the connection without a word
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        self._send(answer, truncate=truncate)

    def _do_admin(self, method: str, name: str, body: bytes) -> None:
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            status, result = 400, {"error": "the body must be a JSON object"}
        else:
            status, result = self.server.app._admin(method, name, payload)
        self._send(_json(result, status))

    def _send(self, answer: _Answer, *, truncate: bool = False) -> None:
        """Write the answer; with ``truncate`` announce the full length but send only half."""
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(answer.length))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        budget = answer.length // 2 if truncate else answer.length
        for part in answer.parts:
            if budget <= 0:
                break
            self.wfile.write(part[:budget])
            budget -= len(part)
        self.wfile.flush()
        if truncate:
            self.close_connection = True
