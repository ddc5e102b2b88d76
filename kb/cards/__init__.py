"""Summary cards: data, text format, rendering, drafts and curation."""
