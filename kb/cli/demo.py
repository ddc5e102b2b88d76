"""``kb demo``: the main job end to end on the sample data shipped with kb (no network needed)."""

from __future__ import annotations

from pathlib import Path

import click

from kb.cli.options import pass_kb, quiet_option
from kb.cli.output import stderr
from kb.config import kb_home, mask_url
from kb.handle import KnowledgeBase
from kb.wording import counted


@click.command("demo")
@click.option("--site", "site_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to build the card site (default: $KB_HOME/site).")
@quiet_option
@pass_kb
def demo(app: KnowledgeBase, site_dir: Path | None, quiet: bool) -> None:
    """Show kb's main job on sample data shipped with kb, online or not.

    Loads six real PubMed records into the database (as kb load does), imports the project's
    example summary card for PMID 31902683 (as kb curate import does), prints that card on stdout
    (as kb card does) and builds the card site (as kb cards build does). Nothing is fetched from
    the network. Running it again changes nothing; a card a curator has edited since is kept.
    """
    from kb.demo import SAMPLE_PMID, run_demo, sample_record_files

    site = site_dir or kb_home() / "site"
    sessions = app.sessions()
    result = run_demo(sessions, site)
    click.echo(result.card_text, nl=False)
    load = result.load
    stderr(
        f"\nloaded {len(sample_record_files())} sample PubMed files into {mask_url(app.url)}: "
        f"new {len(load.new)}, updated {len(load.updated)}, unchanged {len(load.unchanged)}",
        quiet=quiet,
    )
    stderr(("imported" if result.card_imported else "kept the stored") + f" card of PMID {SAMPLE_PMID}: "
           f"printed above (again: kb card {SAMPLE_PMID}; as HTML: kb card {SAMPLE_PMID} --format html)", quiet=quiet)
    stderr(f"card site: {counted(result.site_cards, 'card')}, open file://{result.site_index.resolve()}", quiet=quiet)
    stderr(f"next: kb ingest {SAMPLE_PMID} (fetches the full PubMed record; needs network), "
           "kb load FILE|DIR for PubMed XML you have, kb curate edit PMID, kb --help", quiet=quiet)
