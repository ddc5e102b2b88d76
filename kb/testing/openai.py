"""A stand-in for an OpenAI-compatible chat completions server, on loopback, for tests and benchmarks.

    python -m kb.testing.openai --port 8081 --delay 0.2

serves ``POST /v1/chat/completions`` and answers every request with a card written from the
study in the request (the JSON between ``<study-data>`` delimiters of kb's prompt): the headline is
the title, the lay sections say what the abstract's sections say, and only numbers of the study
data are used. It never follows text in the abstract ("ignore previous instructions …"): an
abstract is data to it too. Point llm at it with an entry in ``extra-openai-models.yaml``::

    - model_id: standin
      model_name: standin
      api_base: http://127.0.0.1:8081/v1
      supports_schema: true

A study whose title holds ``[kb-fault:KIND]`` gets a fault instead (KIND: ``429`` — a 429 with
``Retry-After: 1`` on the first request for that study, then an answer; ``500`` — a 500 on every
request; ``500once`` — a 500, then an answer; ``slow`` — the answer after ``--slow`` seconds
(default 5); ``truncated`` — a body cut short of its Content-Length; ``nonjson`` — a reply that is
prose, not JSON; ``schema`` — JSON that breaks the card schema; ``number`` — a card with numbers
the study does not contain; ``template`` — a card with ``{{ 7*7 }}`` in it).

``GET /_stats`` returns the counts of requests and answers by status. Request headers (an API key
in ``Authorization``) are never logged or stored. Token counts in ``usage`` are estimates of one
token per four characters.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kb.testing import serve_until_signalled

_FAULT = re.compile(r"\[kb-fault:(\w+)\]")
_DATA = re.compile(r"<study-data>\s*(.*?)\s*</study-data>", re.DOTALL)


def card_for(study: dict[str, Any]) -> dict[str, Any]:
    """A card in kb's schema, written from the study's own words (deterministic)."""
    sections = study.get("abstract") or []
    by_label = {str(s.get("label", "")).upper(): s.get("text", "") for s in sections}

    def first(*labels: str) -> str:
        for label in labels:
            for key, text in by_label.items():
                if label in key and text:
                    return text
        return ""

    conclusion = first("CONCLUSION", "INTERPRETATION") or (sections[-1]["text"] if sections else "")
    methods = first("METHOD", "DESIGN")
    results = first("RESULT", "FINDING")
    title = study.get("title") or "A study"
    types = study.get("publication_types") or []
    design = next((t for t in ("Randomized Controlled Trial", "Meta-Analysis", "Systematic Review", "Review",
                               "Observational Study", "Case Reports") if t in types), "Other")
    lay = _first_sentence(conclusion) or f"This study looked at {title.rstrip('.')}."
    return {
        "headline": title[:100],
        "quick_summary": lay,
        "what_research_found": lay,
        "findings": [],
        "who_was_studied": "The abstract describes who took part.",
        "how_long": "The abstract does not say how long the study ran.",
        "what_they_took": "The abstract does not list a dose.",
        "notes": [{"label": "Talk to Your Doctor", "text": "Ask your doctor what this study means for you."}],
        "limitations": [{"label": "One Study", "text": "This is one study, and more research may be needed."}],
        "key_findings": conclusion,
        "technical_findings": [],
        "study_design": methods,
        "dosage_administration": "",
        "results_efficacy": results,
        "clinical_relevance": "",
        "technical_notes": [],
        "technical_limitations": "",
        "technical_limitation_items": [],
        "study_type": design if design != "Case Reports" else "Case Report",
    }


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip(), maxsplit=1)[0] if text.strip() else ""


class OpenAIStandIn:
    """The server; ``start()`` runs it in a thread (tests), ``main()`` until Ctrl-C."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0, slow: float = 5.0) -> None:
        self.delay = delay
        self.slow = slow
        self.stats: Counter[str] = Counter()
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet; never logs headers
                return None

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/_stats":
                    with stand_in._lock:
                        self._send(200, dict(stand_in.stats))
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no endpoint {self.path}"}})
                    return
                try:
                    request = json.loads(body)
                except ValueError:
                    self._send(400, {"error": {"message": "the body is not JSON"}})
                    return
                stand_in._answer(self, request)

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)  # a client that gave up: not an error

        self._server = Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="openai-standin")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _count(self, key: str) -> int:
        with self._lock:
            self.stats[key] += 1
            return self.stats[key]

    def _answer(self, handler: Any, request: dict[str, Any]) -> None:
        self._count("requests")
        messages = request.get("messages") or []
        user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
        found = _DATA.search(user if isinstance(user, str) else json.dumps(user))
        try:
            study = json.loads(found[1].replace("<\\/", "</")) if found else {}
        except ValueError:
            study = {}
        title = str(study.get("title") or "")
        fault = _FAULT.search(title)
        kind = fault[1] if fault else None
        with self._lock:
            self._seen[title] += 1
            attempt = self._seen[title]
        if self.delay:
            time.sleep(self.delay)
        if kind == "429" and attempt == 1 or kind == "500" or kind == "500once" and attempt == 1:
            status = 429 if kind == "429" else 500
            self._count(f"status_{status}")
            handler._send(status, {"error": {"message": "rate limited" if status == 429 else "server error",
                                             "type": "stand_in"}},
                          {"Retry-After": "1"} if status == 429 else None)
            return
        if kind == "slow":
            time.sleep(self.slow)
        card = card_for(study)
        if kind == "nonjson":
            content = "Sure! Here is a summary of the study: it found things."
        elif kind == "schema":
            content = json.dumps({"headline": title, "summary": "no such key"})
        else:
            if kind == "number":
                card["quick_summary"] = "In this study, 97% of the 5,000 people felt better after 14 weeks."
            elif kind == "template":
                card["what_research_found"] = "The result was {{ 7*7 }} and {% raw %}more{% endraw %}."
            content = json.dumps(card, ensure_ascii=False)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        payload = {
            "id": f"chatcmpl-standin-{self.stats['requests']}", "object": "chat.completion", "created": 0,
            "model": f"{request.get('model', 'standin')}-standin",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_chars // 4 + len(content) // 4},
        }
        if kind == "truncated":
            data = json.dumps(payload).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            self._count("truncated")
            return
        self._count("status_200")
        handler._send(200, payload)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.testing.openai", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port (printed on stderr)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--slow", type=float, default=5.0, help="seconds of a [kb-fault:slow] answer")
    args = parser.parse_args(argv)
    try:
        server = OpenAIStandIn(host=args.host, port=args.port, delay=args.delay, slow=args.slow).start()
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc}")
    print(f"serving chat completions on {server.base_url} — use it as api_base in extra-openai-models.yaml",
          file=sys.stderr, flush=True)
    return serve_until_signalled(server.stop)


if __name__ == "__main__":
    sys.exit(main())
