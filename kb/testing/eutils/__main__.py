"""``python -m kb.testing.eutils``: serve PubMed XML files as a stand-in for NCBI E-utilities."""

import sys

from kb.testing.eutils.cli import main

sys.exit(main())
