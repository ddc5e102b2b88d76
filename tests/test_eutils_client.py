"""The E-utilities client against the stand-in server: backoff that honours Retry-After,
timeouts, error bodies, and an API key that never leaks."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import URL

from kb import db as kbdb
from kb.cli import cli
from kb.config import EntrezSettings
from kb.errors import NetworkError
from kb.pubmed.eutils import EutilsClient, PermanentError, RateLimiter
from kb.testing.eutils import EutilsServer

from .conftest import url_text

SECRET = "kbtestsecretkey0123456789abcdef"


@pytest.fixture
def server(corpus: Path):  # type: ignore[no-untyped-def]
    with EutilsServer([corpus / "ncbiutils" / "pubmed.xml"], rate=None) as srv:
        yield srv


def make_client(server: EutilsServer, tmp_path: Path, **kw) -> tuple[EutilsClient, list[float]]:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    settings = EntrezSettings(email="t@example.org", api_key=kw.pop("api_key", None), base_url=server.base_url)
    client = EutilsClient(settings, sleep=slept.append, backoff=kw.pop("backoff", 0.5), **kw)
    client.limiter = RateLimiter(100, key="test", directory=tmp_path)
    return client, slept


def test_fetch_returns_records_and_sends_identity(server: EutilsServer, tmp_path: Path) -> None:
    client, _ = make_client(server, tmp_path)
    records = client.efetch_pubmed(server.pmids)
    assert sorted(r.pmid for r in records) == sorted(server.pmids)
    entry = server.stats()["log"][-1]
    assert entry["method"] == "POST"
    assert entry["params"]["tool"] == "kb" and entry["params"]["email"] == "t@example.org"


def test_retry_after_is_honoured_and_backoff_grows(server: EutilsServer, tmp_path: Path) -> None:
    client, slept = make_client(server, tmp_path, backoff=0.5)
    server.inject("429", count=1, path="efetch")
    server.inject("500", count=2, path="efetch")
    records = client.efetch_pubmed(server.pmids[:2])
    assert len(records) == 2
    # 429 with Retry-After: 2 -> at least 2 s; then 500s -> 0.5 * 2**1, 0.5 * 2**2
    assert slept == [2.0, 1.0, 2.0]
    assert client.stats.rate_limited == 1 and client.stats.retries == 3 and client.stats.requests == 4


def test_timeout_is_retried(server: EutilsServer, tmp_path: Path) -> None:
    client, slept = make_client(server, tmp_path, timeout=0.5, backoff=0.01)
    server.inject("slow", count=1, path="efetch", seconds=3)
    records = client.efetch_pubmed(server.pmids[:1])
    assert len(records) == 1 and len(slept) == 1


@pytest.mark.parametrize("fault", ["truncate", "reset", "error", "502", "503"])
def test_transient_faults_are_retried(server: EutilsServer, tmp_path: Path, fault: str) -> None:
    client, slept = make_client(server, tmp_path, backoff=0.01)
    server.inject(fault, count=1, path="efetch")
    assert len(client.efetch_pubmed(server.pmids[:3])) == 3
    assert len(slept) == 1


def test_gives_up_after_max_tries(server: EutilsServer, tmp_path: Path) -> None:
    client, slept = make_client(server, tmp_path, backoff=0.01, max_tries=3)
    server.inject("500", count=3, path="efetch")
    with pytest.raises(NetworkError, match="efetch.fcgi failed after 3 tries: HTTP 500"):
        client.efetch_pubmed(server.pmids[:1])
    assert len(slept) == 2


def test_error_inside_a_200_answer_is_an_error(server: EutilsServer, tmp_path: Path) -> None:
    client, _ = make_client(server, tmp_path, backoff=0.01, max_tries=2)
    server.inject("error", count=2, path="efetch", message="Search Backend failed: oops")
    with pytest.raises(NetworkError, match="Search Backend failed: oops"):
        client.efetch_pubmed(server.pmids[:1])


def test_omitted_ids_are_simply_absent(server: EutilsServer, tmp_path: Path) -> None:
    client, _ = make_client(server, tmp_path)
    assert [r.pmid for r in client.efetch_pubmed([99999997])] == []


def test_invalid_api_key_never_leaks(corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with EutilsServer([corpus / "ncbiutils" / "pubmed.xml"], rate=None, valid_api_keys={"other"}) as srv:
        client, _ = make_client(srv, tmp_path, api_key=SECRET)
        with caplog.at_level(logging.DEBUG), pytest.raises(PermanentError) as info:
            client.efetch_pubmed(srv.pmids[:1])
    assert "HTTP 400" in str(info.value) and SECRET not in str(info.value)
    assert SECRET not in caplog.text
    assert SECRET not in repr(client.settings)


def test_api_key_absent_from_output_logs_and_database(corpus: Path, sqlite_url: URL, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A debug run whose fetches fail (429s echo the key in NCBI's body): no trace of the key."""
    with EutilsServer([corpus / "ncbiutils" / "pubmed.xml"], rate=3.0, api_key_rate=10.0) as srv:
        monkeypatch.setenv("KB_EUTILS_URL", srv.base_url)
        monkeypatch.setenv("KB_RATE_DIR", str(tmp_path))
        monkeypatch.setenv("KB_EUTILS_TRIES", "2")
        monkeypatch.setenv("KB_EUTILS_BACKOFF", "0.01")
        monkeypatch.setenv("NCBI_API_KEY", SECRET)
        srv.inject("429", count=2, path="efetch")
        result = CliRunner().invoke(cli, ["--debug", "-v", "--db", url_text(sqlite_url), "ingest", *map(str, srv.pmids)])
        assert result.exit_code == 1
        assert SECRET not in result.output and SECRET not in result.stderr
        assert any(entry["params"].get("api_key") == "***" for entry in srv.stats()["log"])
    engine = kbdb.create_kb_engine(sqlite_url)
    with engine.connect() as conn:
        errors = conn.execute(text("SELECT error FROM fetch_failures")).scalars().all()
        assert errors and all(SECRET not in e for e in errors)
        dump = "\n".join(conn.connection.dbapi_connection.iterdump())
    engine.dispose()
    assert SECRET not in dump
    assert not any(SECRET in p.name for p in tmp_path.iterdir())


def test_a_late_start_keeps_the_next_request_apart(tmp_path: Path) -> None:
    """A process whose turn came long ago but which started only now (it woke late on a loaded
    machine) is recorded; the next process waits a whole interval after that start instead of
    going at once behind it (two starts 0 s apart: NCBI answers 429)."""
    late, next_one = (RateLimiter(5, key="shared", directory=tmp_path) for _ in range(2))
    with late._locked() as (_, _, write):
        now = time.time()
        write(now - 10, now)  # its reservation is 10 s old; it started just now
    started = time.monotonic()
    next_one.wait()
    assert time.monotonic() - started >= next_one.interval * 0.95
    with late._locked() as (next_free, last_start, _):  # and the turn after it comes an interval later
        assert last_start > now and next_free >= last_start + late.interval - 1e-6
