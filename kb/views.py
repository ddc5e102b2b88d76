"""Documentation of the analyst views (created by migrations 0004, 0011 and 0013), column by column.

``docs/schema.md`` is rendered from this and from the live schema (``python -m kb.schema_docs``);
a test fails when a view has a column documented nowhere, or when the file is stale.
"""

from __future__ import annotations

VIEWS: dict[str, tuple[str, dict[str, str]]] = {
    "abstract_sections": (
        "The sections of every abstract, in order: one row per section of a structured abstract, one row for an "
        "unstructured one (a table until migration 0013, with the same columns and rows). An abstract that is one "
        "unlabelled section is stored once, as `studies.abstract`: its row here is made from it (the table "
        "`abstract_section_rows` holds the other sections, and the markup of such a section where it has some).",
        {
            "pmid": "PubMed ID of the study",
            "position": "Order in the PubMed record, from 0",
            "label": "Section label as printed, e.g. 'METHODS'",
            "nlm_category": "NLM category: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS, UNASSIGNED",
            "text": "Section text, plain",
            "text_markup": "Section text with inline markup kept; NULL when it has none (the same as text): read "
            "COALESCE(text_markup, text)",
        },
    ),
    "study_overview": (
        "One row per study with the fields analysts filter on most, flattened.",
        {
            "pmid": "PubMed ID",
            "title": "Article title, plain text",
            "journal": "ISO journal abbreviation",
            "pub_year": "Publication year",
            "first_author": "First author as 'Last Initials' (or the group name)",
            "author_count": "Number of authors (investigators not counted)",
            "study_type": "Study type from the publication types, most specific evidence first: meta-analysis, "
            "systematic review, randomized controlled trial, clinical trial, observational study, case report, "
            "review, commentary, other",
            "major_mesh": "Major MeSH topics, '; '-separated, in record order",
            "evidence_status": "ok, retracted, expression_of_concern, erratum or updated",
            "is_retracted": "PubMed marks the study retracted",
            "is_deleted": "PubMed deleted the citation",
            "is_missing": "E-utilities no longer returns the PMID",
            "is_placeholder": "Known only from an imported card",
            "doi": "DOI",
            "pmcid": "PubMed Central ID",
            "card_status": "Status of the curated card (draft, reviewed, published); empty without a card",
            "card_needs_review": "The card must be reviewed again (the study changed, was retracted or deleted)",
            "curated_study_type": "Study type as the curator wrote it on the card (the card shows it instead of study_type)",
        },
    ),
    "card_items": (
        "One row per finding, limitation and note of every card, with its study.",
        {
            "kind": "finding, limitation or note",
            "item_id": "id of the row in findings, limitations or notes",
            "pmid": "PubMed ID of the study",
            "position": "Order within its section, from 0",
            "audience": "lay or technical",
            "label": "Bullet label, e.g. 'Get Tested'",
            "text": "The bullet or paragraph",
            "source": "curator (written by a person) or extracted (from the abstract)",
            "author": "Who wrote it",
            "updated_at": "Last changed (UTC)",
            "study_title": "Title of the study",
            "pub_year": "Publication year of the study",
            "evidence_status": "Evidence status of the study",
            "card_status": "Status of the card",
        },
    ),
    "topic_studies_overview": (
        "Topics (saved searches) to their studies, exclusions included (is_excluded).",
        {
            "topic": "Topic name",
            "topic_id": "Topic id",
            "pmid": "PubMed ID",
            "is_excluded": "A curator's false positive for this topic",
            "added_at": "When the topic first found the study (UTC)",
            "title": "Title of the study",
            "pub_year": "Publication year",
            "evidence_status": "Evidence status of the study",
            "is_retracted": "PubMed marks the study retracted",
        },
    ),
    "study_xml": (
        "The PubMed XML of each study as text (migration 0011). On SQLite `studies.raw_xml` is stored compressed, "
        "and this view reads it with `kb_xml(blob)`, a function kb registers on its own connections: from "
        "another program, call `kb.pubmed.xmlzip.register_sqlite_functions(connection)` first, or use "
        "`kb export`. SQLite only: on PostgreSQL (migration 0012) `studies.raw_xml` is `bytea` compressed the same "
        "way, which PostgreSQL cannot decompress in SQL, so there is no such view there: read the XML through kb "
        "(`kb.models.Study.raw_xml`) or with `kb.pubmed.xmlzip.unpack(raw_xml)`.",
        {
            "pmid": "PubMed ID",
            "xml": "The record's XML as last fetched, exactly as it appeared in PubMed's file or answer",
        },
    ),
}
