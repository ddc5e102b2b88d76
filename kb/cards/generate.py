"""Draft cards written by a language model (``kb curate generate``), through the ``llm`` library.

Any model llm knows works: OpenAI, Anthropic, Gemini through llm's plugins, and local
OpenAI-compatible servers (Ollama, llama.cpp, vLLM) listed in llm's ``extra-openai-models.yaml``.
kb uses llm's Python API only (never the ``llm`` command, which writes its own ``logs.db``; the
API logs nothing unless asked). llm resolves the keys (``llm keys set``, ``OPENAI_API_KEY``, …).

One call per study:

1. The model gets the system prompt (``kb/cards/prompts/card-v1.txt``: the rules and the example
   card's layout and tone) and the study as JSON between ``<study-data>`` delimiters: title, year,
   journal, publication types, MeSH terms and labelled abstract sections (``kb.cards.source``).
2. It answers JSON matching :func:`card_schema`, derived from :class:`~kb.cards.model.CardDoc`
   (passed to llm as the schema when the model supports schemas); kb validates the reply itself.
3. The card is stored as a draft as :func:`kb.curate.save_card` stores it (in one transaction
   with its ``card_generations`` row): every statement marked generated, the guardrail results
   (``kb.cards.guardrails``) on the card. A card a curator wrote or reviewed is never
   overwritten; ``force`` adds a generated revision on top of it (back to draft).

Calls run ``jobs`` at a time in threads. Each attempt has a deadline (``timeout``); 429, 5xx,
timeouts and dropped connections are retried ``tries`` times with exponential backoff that
honours ``Retry-After``. Every call leaves a ``card_generations`` row (``stored``, ``failed`` or
``invalid``); a study whose record, prompt and model are unchanged since its last stored
generation is not sent again, and failed ones are sent again by the next run. Results are saved
by the calling thread, those that arrive within half a second of each other (at most 32) in one
transaction, set-based (:mod:`kb.cards.batch_writer`): whole cards, so an interrupted run leaves
no half card, and the calls whose results were in hand are made again next time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kb import models as m
from kb.cards.model import ITEM_LISTS, PARAGRAPH_FIELDS, CardDoc, Item
from kb.cards.source import StudySource, load_source, load_sources, remember_source
from kb.cards.textformat import CardFormatError
from kb.errors import ConfigError, InputError
from kb.topics import get_topic
from kb.wording import counted

PROMPT_VERSION = "card-v1"
MODEL_ENV = "KB_LLM_MODEL"
INSTALL_HINT = "pip install 'kb[llm]'"
DEFAULT_TIMEOUT = 120.0
DEFAULT_TRIES = 4
DEFAULT_BACKOFF = 1.0
MAX_RETRY_AFTER = 120.0
SAVE_BATCH = 32   # results saved in one transaction, at most
SAVE_WAIT = 0.5   # seconds a result in hand waits for others to be saved with it
_BULLET_KEYS = ("label", "text")


# The prompt and the schema --------------------------------------------------------------------


@cache
def prompt_text(version: str = PROMPT_VERSION) -> str:
    resource = resources.files("kb.cards") / "prompts" / f"{version}.txt"
    if not resource.is_file():
        raise ConfigError(f"no prompt named {version!r} in kb/cards/prompts")
    return resource.read_text(encoding="utf-8")


@cache
def card_schema() -> dict[str, Any]:
    """The JSON schema of a generated card, from the fields of CardDoc: every paragraph field and
    the study type as strings, every bullet list as ``[{"label": …, "text": …}]``."""
    bullet = {"type": "object", "properties": {"label": {"type": "string", "maxLength": 200},
                                               "text": {"type": "string", "maxLength": 4000}},
              "required": list(_BULLET_KEYS), "additionalProperties": False}
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(CardDoc):
        if f.name in PARAGRAPH_FIELDS or f.name == "study_type":
            properties[f.name] = {"type": "string", "maxLength": 8000}
        elif f.name in ITEM_LISTS:
            properties[f.name] = {"type": "array", "items": bullet, "maxItems": 30}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


@cache
def prompt_sha256(version: str = PROMPT_VERSION) -> str:
    """What decides whether a stored generation is still current: the prompt and the schema."""
    data = prompt_text(version) + "\n" + json.dumps(card_schema(), sort_keys=True)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def study_message(source: StudySource) -> str:
    """The user message: the study as JSON between delimiters. JSON escaping keeps any text of the
    abstract inside the data ("</study-data>" is written "<\\/study-data>")."""
    data = json.dumps(source.data(), ensure_ascii=False, indent=1).replace("</", "<\\/")
    return f"<study-data>\n{data}\n</study-data>\nWrite the card for this study as JSON."


def schema_problems(value: Any, schema: dict[str, Any], path: str = "card") -> list[str]:
    """Where ``value`` breaks ``schema`` (the subset of JSON Schema card_schema uses)."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path} is not an object"]
        problems = [f"{path} lacks {key!r}" for key in schema.get("required", []) if key not in value]
        if schema.get("additionalProperties") is False:
            problems += [f"{path} has an unknown key {key!r}" for key in value if key not in schema["properties"]]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += schema_problems(value[key], sub, f"{path}.{key}")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path} is not a list"]
        problems = [f"{path} has more than {schema['maxItems']} items"] if len(value) > schema.get("maxItems", 1e9) else []
        for index, item in enumerate(value):
            problems += schema_problems(item, schema["items"], f"{path}[{index}]")
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path} is not a string"]
        return [f"{path} is longer than {schema['maxLength']} characters"] if len(value) > schema.get("maxLength", 1e9) else []
    return []


class InvalidReply(Exception):
    """The model's reply is not a card: not JSON, cut short, or not matching the schema."""


def parse_reply(text: str, source: StudySource) -> CardDoc:
    """The card in the model's reply (a JSON object, possibly in a ```json fence)."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
    if fenced:
        body = fenced[1]
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidReply(f"the reply is not JSON ({exc.msg} at character {exc.pos})") from None
    problems = schema_problems(value, card_schema())
    if problems:
        raise InvalidReply("the reply does not match the card schema: " + "; ".join(problems[:5]))
    doc = CardDoc(pmid=source.pmid, reference_title=source.title, reference_source=source.journal,
                  reference_year=source.year)
    for name in (*PARAGRAPH_FIELDS, "study_type"):
        setattr(doc, name, _clean(value[name]))
    for name in ITEM_LISTS:
        items = []
        for bullet in value[name]:
            text_ = " ".join(_clean(bullet["text"]).split())
            if text_:
                items.append(Item(text=text_, label=" ".join(_clean(bullet["label"]).split()) or None,
                                  source="generated"))
        setattr(doc, name, items)
    doc.generated_fields = [name for name in (*PARAGRAPH_FIELDS, "study_type") if getattr(doc, name)]
    return doc


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(value: str) -> str:
    """Paragraph text as the card format holds it: no control characters, no trailing spaces."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", _CONTROL.sub("", value.replace("\r", "")))]
    return "\n\n".join(p for p in paragraphs if p)


# The model -----------------------------------------------------------------------------------------


def get_model(name: str | None, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The llm model named ``name`` (``kb curate generate --model``, or ``$KB_LLM_MODEL`` through it)."""
    try:
        import llm
    except ImportError:
        raise ConfigError(f"kb curate generate needs the llm library: {INSTALL_HINT}") from None
    if not name:
        raise ConfigError(f"choose a model with --model or {MODEL_ENV} (any model llm knows: see `llm models`)")
    try:
        model = llm.get_model(name)
    except llm.UnknownModelError:
        raise ConfigError(f"llm knows no model {name!r}: see `llm models`, install its plugin or add it to "
                          f"{llm.user_dir() / 'extra-openai-models.yaml'}") from None
    _own_retries(model, timeout)
    return model


def _own_retries(model: Any, timeout: float) -> None:
    """llm's OpenAI-compatible models build an OpenAI client per call, with the client's own
    retries (2) and a 600 s timeout. kb applies its retry policy and timeout instead, and shares
    one client between calls (a new client per call costs more than kb's whole overhead)."""
    original = getattr(model, "get_client", None)
    if original is None or not hasattr(model, "api_base"):
        return
    lock = threading.Lock()
    clients: dict[Any, Any] = {}

    def get_client(key: Any, *, async_: bool = False) -> Any:
        if async_:
            return original(key, async_=True)
        with lock:
            if key not in clients:
                clients[key] = original(key).with_options(timeout=timeout, max_retries=0)
            return clients[key]

    model.get_client = get_client


@dataclass
class Settings:
    model_name: str
    timeout: float = DEFAULT_TIMEOUT
    tries: int = DEFAULT_TRIES
    backoff: float = DEFAULT_BACKOFF
    jobs: int = 4
    force: bool = False
    author: str | None = None

    def options(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "tries": self.tries, "backoff": self.backoff, "jobs": self.jobs,
                "force": self.force}


@dataclass
class CallResult:
    pmid: int
    text: str | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model_answered: str | None = None
    duration_ms: int = 0
    attempts: int = 0
    retries: list[str] = field(default_factory=list)
    kb_seconds: float = 0.0       # time in kb's own code (prompt building), not in the call
    kb_cpu: float = 0.0           # the same, CPU time of the thread
    client_cpu: float = 0.0       # CPU time inside the model's client (llm and its plugin), all attempts


class _Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _TimedOut(_Retryable):
    """The model's client gave up waiting (its own timeout is kb's): reported as kb's deadline is,
    whichever of the two ends the attempt first."""


def call_model(model: Any, source: StudySource, settings: Settings, *, secrets: Iterable[str] = ()) -> CallResult:
    """One study's call, with retries; never raises (a failure is in ``CallResult.error``)."""
    started, cpu = time.perf_counter(), time.thread_time()
    result = CallResult(pmid=source.pmid)
    system, message = prompt_text(), study_message(source)
    schema = card_schema() if getattr(model, "supports_schema", False) else None
    result.kb_seconds, result.kb_cpu = time.perf_counter() - started, time.thread_time() - cpu
    spent: list[float] = []
    for attempt in range(1, settings.tries + 1):
        result.attempts = attempt
        try:
            result.text, usage, result.model_answered = _with_deadline(
                lambda: _prompt(model, system, message, schema), settings.timeout, spent)
            result.input_tokens, result.output_tokens = usage
            for secret in secrets:  # a reply that echoes a key does not store it
                result.text = result.text.replace(secret, "***")
            result.error = None
            break
        except _Retryable as exc:
            result.error = _redact(str(exc), secrets)
            if attempt == settings.tries:
                break
            wait = exc.wait if exc.wait is not None else settings.backoff * 2 ** (attempt - 1)
            result.retries.append(f"{result.error}; waited {wait:g} s")
            time.sleep(min(wait, MAX_RETRY_AFTER))
        except Exception as exc:  # a model or plugin error that retrying will not fix
            result.error = _redact(_describe(exc), secrets)
            break
    result.duration_ms = int((time.perf_counter() - started) * 1000)
    result.client_cpu = sum(spent)
    return result


def _prompt(model: Any, system: str, message: str, schema: dict[str, Any] | None) -> tuple[str, tuple, str]:
    try:
        response = model.prompt(message, system=system, schema=schema, stream=False)
        text = response.text()
        usage = response.usage()
    except Exception as exc:
        status = _status_of(exc)
        if status is not None and (status in (408, 409, 425, 429) or status >= 500):
            raise _Retryable(_describe(exc), _retry_after(exc)) from exc
        names = type(exc).__name__ + " " + type(exc.__cause__).__name__
        if status is None and (isinstance(exc, TimeoutError) or "Timeout" in names):
            raise _TimedOut(_describe(exc)) from exc
        if status is None and re.search(r"Connection|Protocol|ReadError|RemoteDisconnected|IncompleteRead", names):
            raise _Retryable(_describe(exc)) from exc
        raise
    answered = getattr(response, "resolved_model", None) or ((response.json() or {}).get("model")
                                                              if hasattr(response, "json") else None)
    return text, (usage.input, usage.output), answered or model.model_id


def _with_deadline(call: Callable[[], Any], timeout: float, spent: list[float] | None = None) -> Any:
    """``call()``, or a retryable timeout after ``timeout`` seconds (the call is abandoned in its
    daemon thread; for OpenAI-compatible models the client's own timeout ends it too). The CPU
    time of a call that ends is added to ``spent``."""
    box: dict[str, Any] = {}

    def run() -> None:
        cpu = time.thread_time()
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        if spent is not None:
            spent.append(time.thread_time() - cpu)

    thread = threading.Thread(target=run, daemon=True, name="kb-llm-call")
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or isinstance(box.get("error"), _TimedOut):
        raise _Retryable(f"no answer within {timeout:g} s") from box.get("error")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _status_of(exc: BaseException) -> int | None:
    for candidate in (exc, exc.__cause__):
        status = getattr(candidate, "status_code", None) or getattr(getattr(candidate, "response", None),
                                                                    "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    status = _status_of(exc)
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    return f"HTTP {status}: {text}" if status and str(status) not in text else f"{type(exc).__name__}: {text}"


_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|key|tok)-[A-Za-z0-9_\-]{8,}")


def secrets_to_hide() -> list[str]:
    """Values that must never reach an output, a log or a row: API keys in the environment and
    the keys llm stores."""
    values = [v for k, v in os.environ.items() if re.search(r"KEY|TOKEN|SECRET|PASSWORD", k) and len(v) >= 6]
    try:
        import llm

        values += [v for v in llm.load_keys().values() if isinstance(v, str) and len(v) >= 6]
    except Exception:  # llm missing or keys.json unreadable: nothing more to hide
        pass
    return sorted(set(values), key=len, reverse=True)


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)


# Which studies, and storing the results --------------------------------------------------------


def is_curated(session: Session, pmid: int) -> bool:
    """Whether a person wrote or reviewed the card of ``pmid`` (a kb-made draft is not curated)."""
    return pmid in curated_among(session, [pmid])


def curated_among(session: Session, pmids: Iterable[int], *, chunk: int = 500) -> set[int]:
    """Those of ``pmids`` whose card a person wrote or reviewed: a card that is not a draft, or a
    draft with a paragraph kb did not write or a curator's bullet (a few queries per ``chunk``)."""
    wanted = sorted(set(pmids))
    found: set[int] = set()
    fields = [getattr(m.Card, name) for name in PARAGRAPH_FIELDS[1:]]
    for start in range(0, len(wanted), chunk):
        ids = wanted[start:start + chunk]
        rows = session.execute(select(m.Card.pmid, m.Card.status, m.Card.extracted_fields, m.Card.generated_fields,
                                      *fields).where(m.Card.pmid.in_(ids))).all()
        drafts = []
        for pmid, status, extracted, generated, *values in rows:
            made_by_kb = set(extracted or []) | set(generated or [])
            if status != "draft" or any(value and name not in made_by_kb
                                        for name, value in zip(PARAGRAPH_FIELDS[1:], values)):
                found.add(pmid)
            else:
                drafts.append(pmid)
        for table in (m.Finding, m.Limitation, m.Note):
            if drafts:
                found.update(session.scalars(select(table.pmid).where(table.pmid.in_(drafts), table.source == "curator")
                                             .distinct()))
    return found


def select_studies(session: Session, *, pmids: Iterable[int] = (), missing: bool = False,
                   topic: str | None = None, retry_failed: bool = True) -> list[int]:
    """The PMIDs to generate for: the ones given; or (``missing``) every study without a curated
    card, or (``topic``) those of one topic; with every study whose last generation failed."""
    wanted = list(dict.fromkeys(pmids))
    if wanted:
        return wanted
    candidates = select(m.Study.pmid).where(~m.Study.is_placeholder, ~m.Study.is_deleted).where(
        ~m.Study.pmid.in_(select(m.Card.pmid).where(m.Card.status != "draft")))
    if topic is not None:
        topic_row = get_topic(session, topic)
        candidates = candidates.where(m.Study.pmid.in_(
            select(m.TopicStudy.pmid).where(m.TopicStudy.topic_id == topic_row.id, ~m.TopicStudy.is_excluded)))
    elif not missing:
        raise InputError("give PMIDs, --missing or --topic NAME")
    chosen = set(session.scalars(candidates).all())
    if retry_failed:
        latest = select(m.CardGeneration.pmid, func.max(m.CardGeneration.id).label("id")).group_by(
            m.CardGeneration.pmid).subquery()
        chosen |= set(session.scalars(select(m.CardGeneration.pmid).join(latest, latest.c.id == m.CardGeneration.id)
                                      .where(m.CardGeneration.status != "stored")).all())
    return sorted(chosen)


def is_current(session: Session, source: StudySource, model_name: str) -> bool:
    """Whether a stored generation already used this record, prompt and model."""
    return source.pmid in current_among(session, [source], model_name)


def current_among(session: Session, sources: Iterable[StudySource], model_name: str, *, chunk: int = 500) -> set[int]:
    """The PMIDs of ``sources`` with a stored generation from the same record, prompt and model."""
    wanted = {s.pmid: s.content_hash for s in sources}
    ids, found = sorted(wanted), set()
    for start in range(0, len(ids), chunk):
        rows = session.execute(select(m.CardGeneration.pmid, m.CardGeneration.record_content_hash).where(
            m.CardGeneration.pmid.in_(ids[start:start + chunk]), m.CardGeneration.status == "stored",
            m.CardGeneration.prompt_sha256 == prompt_sha256(), m.CardGeneration.model_requested == model_name,
        ).distinct())
        found.update(pmid for pmid, content_hash in rows if content_hash is not None and content_hash == wanted[pmid])
    return found


def store_result(session: Session, source: StudySource, result: CallResult, settings: Settings) -> m.CardGeneration:
    """The card (when the reply is one) and its card_generations row, in the caller's transaction."""
    from kb.cards import guardrails
    from kb.curate import save_card

    row = m.CardGeneration(
        pmid=source.pmid, model_requested=settings.model_name, model_answered=result.model_answered,
        prompt_version=PROMPT_VERSION, prompt_sha256=prompt_sha256(), record_content_hash=source.content_hash,
        options={**settings.options(), "attempts": result.attempts, "retries": result.retries},
        input_tokens=result.input_tokens, output_tokens=result.output_tokens, duration_ms=result.duration_ms,
        raw_reply=result.text, status="failed", error=result.error,
    )
    if result.error is None:
        try:
            doc = parse_reply(result.text or "", source)
            row.card = doc.to_json()
            if is_curated(session, source.pmid) and not settings.force:
                row.checks = guardrails.check_card(doc, source=source.text(), design=source.design,
                                                   publication_types=source.publication_types)
                raise InvalidReply("a curator saved a card meanwhile; it was kept (--force adds a revision)")
            remember_source(session, source)  # save_card checks the card against the same source
            saved = save_card(session, doc, action="generate", author=settings.author, status="draft")
            card = session.get(m.Card, source.pmid)
            row.status, row.card_revision, row.checks = "stored", saved.revision, card.checks if card else None
        except (InvalidReply, CardFormatError) as exc:
            row.status, row.error = "invalid", str(exc)
    session.add(row)
    session.flush()
    return row


@dataclass
class GenerateReport:
    stored: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)    # record, prompt and model as last time
    curated: list[int] = field(default_factory=list)      # a curator's card, left alone
    failed: dict[int, str] = field(default_factory=dict)  # the call failed
    invalid: dict[int, str] = field(default_factory=dict) # the reply was not a card
    failed_checks: int = 0                                # stored drafts with a blocking check failed
    input_tokens: int = 0
    output_tokens: int = 0
    kb_seconds: float = 0.0                               # kb's own time, the model calls excluded
    kb_cpu: float = 0.0                                   # the same, CPU time (no waiting for the GIL)
    client_cpu: float = 0.0                               # CPU time inside the model's client (llm)
    transactions: int = 0                                 # the results were saved in so many batches

    @property
    def problems(self) -> dict[int, str]:
        return {**self.failed, **self.invalid}

    def summary(self) -> str:
        return (f"generated {counted(len(self.stored), 'draft')} ({self.failed_checks} with failed checks), unchanged "
                f"{len(self.unchanged)}, curated cards kept {len(self.curated)}, failed {len(self.failed)}, "
                f"invalid replies {len(self.invalid)}; tokens in {self.input_tokens}, out {self.output_tokens}")


SessionFactory = Callable[[], AbstractContextManager[Session]]


def generate(session_factory: SessionFactory, pmids: Iterable[int], settings: Settings, model: Any, *,
             on_done: Callable[[int, str], None] | None = None) -> GenerateReport:
    """Generate drafts for ``pmids``: ``settings.jobs`` calls at a time; each result stored in its
    own transaction as it arrives. ``on_done(pmid, outcome)`` is called after each study."""
    from kb.cards import guardrails

    from kb.cards.batch_writer import store_batch

    report = GenerateReport()
    started, cpu = time.perf_counter(), time.thread_time()
    wanted = list(dict.fromkeys(pmids))
    with session_factory() as session:
        found = load_sources(session, wanted)
        for pmid in wanted:
            if pmid not in found:
                load_source(session, pmid)  # says why it cannot be generated
        curated = set() if settings.force else curated_among(session, wanted)
        current = set() if settings.force else current_among(
            session, [found[p] for p in wanted if p not in curated], settings.model_name)
    sources: list[StudySource] = []
    for pmid in wanted:
        if pmid in curated:
            report.curated.append(pmid)
        elif pmid in current:
            report.unchanged.append(pmid)
        else:
            sources.append(found[pmid])
            continue
        if on_done:
            on_done(pmid, "kept")
    report.kb_seconds += time.perf_counter() - started
    report.kb_cpu += time.thread_time() - cpu
    secrets = secrets_to_hide()
    for batch in _run_calls(model, sources, settings, secrets):
        handled, cpu = time.perf_counter(), time.thread_time()
        with session_factory() as session:  # the results in hand: whole cards, one transaction
            outcomes = store_batch(session, batch, settings)
        report.transactions += 1
        for (source, result), outcome in zip(batch, outcomes):
            if outcome.status == "stored":
                report.stored.append(source.pmid)
                report.failed_checks += bool(guardrails.failed(outcome.checks, blocking_only=True))
            elif outcome.status == "invalid":
                report.invalid[source.pmid] = outcome.error or ""
            else:
                report.failed[source.pmid] = outcome.error or ""
            report.input_tokens += result.input_tokens or 0
            report.output_tokens += result.output_tokens or 0
            report.kb_seconds += result.kb_seconds
            report.kb_cpu += result.kb_cpu
            report.client_cpu += result.client_cpu
        report.kb_seconds += time.perf_counter() - handled
        report.kb_cpu += time.thread_time() - cpu
        if on_done:
            for outcome in outcomes:
                on_done(outcome.pmid, outcome.status)
    return report


def _run_calls(model: Any, sources: list[StudySource], settings: Settings,
               secrets: list[str]) -> Iterator[list[tuple[StudySource, CallResult]]]:
    """The calls, ``settings.jobs`` at a time in daemon threads, yielded as they finish: a result
    with those that finish within ``SAVE_WAIT`` seconds after it, at most ``SAVE_BATCH``. When the
    consumer stops (Ctrl-C), no new call starts and the calls in flight or in hand are abandoned
    unsaved (the next run makes them again)."""
    todo: queue.Queue[StudySource] = queue.Queue()
    done: queue.Queue[tuple[StudySource, CallResult]] = queue.Queue()
    stop = threading.Event()
    for source in sources:
        todo.put(source)

    def work() -> None:
        while not stop.is_set():
            try:
                source = todo.get_nowait()
            except queue.Empty:
                return
            done.put((source, call_model(model, source, settings, secrets=secrets)))

    for _ in range(max(1, min(settings.jobs, len(sources)))):
        threading.Thread(target=work, daemon=True, name="kb-generate").start()
    try:
        left = len(sources)
        while left:
            try:
                batch = [done.get(timeout=0.2)]
            except queue.Empty:
                continue
            until = time.monotonic() + SAVE_WAIT  # a few more: fewer, larger transactions
            while len(batch) < min(SAVE_BATCH, left):
                try:
                    batch.append(done.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            left -= len(batch)
            yield batch
    finally:
        stop.set()
