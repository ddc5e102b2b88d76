"""The library handle: what the command line does, a notebook does through ``kb.open`` (no click)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

import kb
from kb import models as m
from kb.config import EntrezSettings
from kb.demo import SAMPLE_PMID, sample_card_file, sample_record_files
from kb.handle import KnowledgeBase
from kb.testing.eutils import EutilsServer


def test_open_ingest_import_and_render_without_click(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    k = kb.open(f"sqlite:///{path}")
    assert isinstance(k, KnowledgeBase)
    assert not path.exists()  # nothing touched before the first call that needs it
    with EutilsServer(sample_record_files(), rate=None) as server:
        entrez = EntrezSettings(email="kb-tests@example.org", api_key=None, base_url=server.base_url,
                                backoff=0.01, rate=1000.0, rate_dir=tmp_path)
        report = k.ingest([*server.pmids, 99_999_998], entrez=entrez)
        ingested = server.pmids
    assert report.new == ingested and report.not_found == [99_999_998] and not report.failed
    with k.session(write=False) as session:
        assert session.scalars(select(m.Study.pmid).order_by(m.Study.pmid)).all() == sorted(ingested)
    draft = k.card(ingested[0])  # a study without a card renders a draft from its record
    assert f"PMID: {ingested[0]}" in draft

    saved = k.import_card(sample_card_file(), author="a notebook")
    assert saved.pmid == SAMPLE_PMID and saved.changed
    assert k.card(SAMPLE_PMID) == sample_card_file().read_text(encoding="utf-8").rstrip("\n") + "\n"
    assert "<html" in k.card(SAMPLE_PMID, "html")
    k.close()

    with kb.open(f"sqlite:///{path}") as again:  # a second handle on the same file sees it all
        assert again.card(SAMPLE_PMID, "md").startswith("#")
        assert again.readonly_engine().dialect.name == "sqlite"


def test_importing_kb_imports_nothing_heavy() -> None:
    code = ("import sys, kb; heavy = [n for n in ('sqlalchemy', 'click', 'kb.handle', 'lxml', 'Bio') "
            "if n in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_handle_names_its_database_but_never_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_DATABASE_URL", raising=False)
    monkeypatch.setenv("KB_HOME", str(tmp_path))
    assert repr(kb.open()) == f"KnowledgeBase('sqlite:///{tmp_path}/kb.sqlite3')"  # the default, resolved
    shown = repr(kb.open("postgresql://curator:s3cret-pw@db.example.org/kb"))
    assert shown == "KnowledgeBase('postgresql+psycopg://curator:***@db.example.org/kb')"
    # A URL kb refuses still prints, masked (the error comes when the handle is used).
    assert repr(kb.open("mysql://curator:s3cret-pw@db.example.org/kb")) == \
        "KnowledgeBase('mysql://curator:***@db.example.org/kb')"
