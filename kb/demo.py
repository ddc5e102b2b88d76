"""``kb demo``: kb's main job end to end on data shipped with the package, online or not.

It loads a handful of real PubMed records (``kb/sample/pubmed``, see ``kb/sample/PROVENANCE.md``)
with the same code as ``kb load``, imports the project's example card (``kb/sample/card-31902683.txt``)
with the same code as ``kb curate import``, renders that card, and builds the card site. Nothing is
fetched: the network is never touched. Running it again changes nothing, and a card a curator has
changed since is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from kb import models as m
from kb.ingest import IngestReport, load_files

SAMPLE_PMID = 31902683
SAMPLE_AUTHOR = "kb demo"


def sample_dir() -> Path:
    """The folder of sample data inside the installed package."""
    return Path(str(resources.files("kb") / "sample"))


def sample_record_files() -> list[Path]:
    return sorted((sample_dir() / "pubmed").glob("*.xml"))


def sample_card_file() -> Path:
    return sample_dir() / f"card-{SAMPLE_PMID}.txt"


@dataclass
class DemoResult:
    load: IngestReport
    card_imported: bool  # False when the card was there already (kept as it is)
    card_text: str
    site_index: Path
    site_cards: int
    warnings: list[str] = field(default_factory=list)


def run_demo(sessions: sessionmaker[Session], site_dir: Path) -> DemoResult:
    """Load the sample records, import the example card, render it and build the site in ``site_dir``."""
    from kb import curate
    from kb.cards.data import load_card
    from kb.cards.render import render
    from kb.cards.site import build_site

    report = load_files(sessions, sample_record_files())
    read = curate.read_card_file(sample_card_file())
    warnings = list(read.warnings)
    with sessions.begin() as session:
        imported = session.get(m.Card, SAMPLE_PMID) is None
        if imported:
            _, plan = curate.import_card(session, read, status="published", author=SAMPLE_AUTHOR)
            warnings += [w for w in plan.warnings if w not in warnings]
    with sessions() as session:
        text = render(load_card(session, SAMPLE_PMID), "text")  # what `kb card` prints
        site = build_site(session, site_dir)
    return DemoResult(report, imported, text, site.index, site.cards, warnings)
