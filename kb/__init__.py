"""kb: a literature-tracking knowledge base for evidence about health interventions."""

__version__ = "0.1.0"
