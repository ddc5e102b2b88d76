"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 22:25:04.019178
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('fetch_failures',
    sa.Column('pmid', sa.Integer(), autoincrement=False, nullable=False, comment='PubMed ID'),
    sa.Column('error', sa.Text(), nullable=False, comment='Last error'),
    sa.Column('attempts', sa.Integer(), nullable=False, comment='Failed attempts so far'),
    sa.Column('first_failed_at', sa.DateTime(timezone=True), nullable=False, comment='First failure (UTC)'),
    sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=False, comment='Latest failure (UTC)'),
    sa.PrimaryKeyConstraint('pmid', name=op.f('pk_fetch_failures')),
    comment='PMIDs whose fetch failed; the next ingest or refresh retries them'
    )
    op.create_table('refresh_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False, comment='Start (UTC)'),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True, comment='End (UTC); empty while running or if killed'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='running, success, partial, failed'),
    sa.Column('counts', sa.JSON(), nullable=False, comment='Per-topic counts (new, changed, retracted, failed) as JSON'),
    sa.Column('requests_made', sa.Integer(), nullable=False, comment='E-utilities requests made'),
    sa.Column('rate_limited', sa.Integer(), nullable=False, comment='HTTP 429 answers received'),
    sa.Column('is_complete', sa.Boolean(), server_default=sa.false(), nullable=False, comment='Every topic completed'),
    sa.Column('error', sa.Text(), nullable=True, comment='Error that ended the run, if any'),
    sa.CheckConstraint("status IN ('running', 'success', 'partial', 'failed')", name=op.f('ck_refresh_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_runs')),
    comment='One row per kb refresh run'
    )
    op.create_table('studies',
    sa.Column('pmid', sa.Integer(), autoincrement=False, nullable=False, comment='PubMed ID (natural key)'),
    sa.Column('pmid_version', sa.Integer(), nullable=False, comment='PMID Version attribute (1 unless NLM versioned the citation)'),
    sa.Column('record_type', sa.String(length=16), nullable=False, comment="'article' (PubmedArticle) or 'book' (PubmedBookArticle)"),
    sa.Column('title', sa.Text(), nullable=False, comment='Article title as plain text'),
    sa.Column('title_markup', sa.Text(), nullable=False, comment="Article title with PubMed's inline markup (<i>, <sup>, MathML) kept"),
    sa.Column('vernacular_title', sa.Text(), nullable=True, comment='Title in the original language, when PubMed gives one'),
    sa.Column('abstract', sa.Text(), nullable=True, comment="Abstract as plain text; sections as 'LABEL: text' separated by blank lines"),
    sa.Column('journal_title', sa.Text(), nullable=True, comment='Full journal title'),
    sa.Column('journal_iso_abbrev', sa.Text(), nullable=True, comment="ISO abbreviation of the journal, e.g. 'Transfus Apher Sci'"),
    sa.Column('journal_issn', sa.String(length=16), nullable=True, comment='Journal ISSN (print or electronic)'),
    sa.Column('volume', sa.String(length=64), nullable=True, comment='Journal volume'),
    sa.Column('issue', sa.String(length=64), nullable=True, comment='Journal issue'),
    sa.Column('pages', sa.String(length=128), nullable=True, comment='Pages (MedlinePgn)'),
    sa.Column('pub_date_text', sa.String(length=64), nullable=True, comment="Publication date as published, e.g. '2020 Feb' or MedlineDate '2013 Jan-Mar'"),
    sa.Column('pub_year', sa.Integer(), nullable=True, comment='Publication year, for sorting and filtering'),
    sa.Column('pub_month', sa.Integer(), nullable=True, comment='Publication month 1-12 when known'),
    sa.Column('pub_day', sa.Integer(), nullable=True, comment='Publication day when known'),
    sa.Column('language', sa.String(length=64), nullable=True, comment="Language code(s) of the article, ';'-separated (e.g. 'eng')"),
    sa.Column('doi', sa.String(length=255), nullable=True, comment="DOI, without the 'doi:' prefix"),
    sa.Column('pmcid', sa.String(length=32), nullable=True, comment="PubMed Central ID, e.g. 'PMC1234567'"),
    sa.Column('medline_status', sa.String(length=32), nullable=True, comment='MEDLINE citation status (MEDLINE, PubMed-not-MEDLINE, In-Process, Publisher, ...)'),
    sa.Column('publication_status', sa.String(length=32), nullable=True, comment='Publication status (ppublish, epublish, aheadofprint)'),
    sa.Column('date_revised', sa.Date(), nullable=True, comment='DateRevised of the record at NLM'),
    sa.Column('date_completed', sa.Date(), nullable=True, comment='DateCompleted of the record at NLM'),
    sa.Column('entrez_date', sa.Date(), nullable=True, comment='Date the record entered PubMed (edat)'),
    sa.Column('content_hash', sa.String(length=64), nullable=True, comment='SHA-256 of the parsed record content; decides whether a fetch changed it'),
    sa.Column('raw_xml', sa.Text(), nullable=True, comment='The PubMed XML of the record as last fetched (provenance, re-parsing)'),
    sa.Column('source', sa.String(length=16), nullable=False, comment="Where the record came from: 'eutils', 'file' or 'card' (placeholder)"),
    sa.Column('first_fetched_at', sa.DateTime(timezone=True), nullable=True, comment='When kb first stored the record (UTC)'),
    sa.Column('last_fetched_at', sa.DateTime(timezone=True), nullable=True, comment='When kb last saw the record from PubMed (UTC)'),
    sa.Column('last_changed_at', sa.DateTime(timezone=True), nullable=True, comment='When the stored PubMed content last changed (UTC)'),
    sa.Column('is_deleted', sa.Boolean(), server_default=sa.false(), nullable=False, comment='PubMed deleted the citation (DeleteCitation); rows are kept'),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True, comment='When kb saw the deletion (UTC)'),
    sa.Column('is_missing', sa.Boolean(), server_default=sa.false(), nullable=False, comment='A tracked PMID that E-utilities no longer returns; rows are kept'),
    sa.Column('is_retracted', sa.Boolean(), server_default=sa.false(), nullable=False, comment='PubMed marks the study retracted (Retracted Publication or RetractionIn)'),
    sa.Column('evidence_status', sa.String(length=32), nullable=False, comment='Most serious notice on the study: ok, retracted, expression_of_concern, erratum, updated'),
    sa.Column('is_placeholder', sa.Boolean(), server_default=sa.false(), nullable=False, comment='Known only from an imported card; the next ingest completes it'),
    sa.CheckConstraint("evidence_status IN ('ok', 'retracted', 'expression_of_concern', 'erratum', 'updated')", name=op.f('ck_studies_evidence_status')),
    sa.CheckConstraint("record_type IN ('article', 'book')", name=op.f('ck_studies_record_type')),
    sa.CheckConstraint('pmid > 0 AND pmid < 100000000', name=op.f('ck_studies_pmid_range')),
    sa.PrimaryKeyConstraint('pmid', name=op.f('pk_studies')),
    comment='One row per PubMed record (PMID). Written by ingest, load and refresh only.'
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_date_revised'), ['date_revised'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_doi'), ['doi'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_pub_year'), ['pub_year'], unique=False)

    op.create_table('topics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False, comment='Short name used on the command line'),
    sa.Column('query', sa.Text(), nullable=False, comment='The PubMed query'),
    sa.Column('query_translation', sa.Text(), nullable=True, comment="NCBI's translation of the query, as last seen"),
    sa.Column('since', sa.Date(), nullable=True, comment='Earliest Entrez date to search from'),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=True, comment='Entrez date up to which the topic is complete; advances only when a run completes it'),
    sa.Column('last_count', sa.Integer(), nullable=True, comment='Total hits of the query at the last run'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='Created (UTC)'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topics')),
    sa.UniqueConstraint('name', name=op.f('uq_topics_name')),
    comment='Saved PubMed searches that kb refresh re-runs'
    )
    op.create_table('abstract_sections',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('label', sa.Text(), nullable=True, comment="Section label as printed, e.g. 'METHODS'"),
    sa.Column('nlm_category', sa.String(length=32), nullable=True, comment='NLM category: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS, UNASSIGNED'),
    sa.Column('text', sa.Text(), nullable=False, comment='Section text, plain'),
    sa.Column('text_markup', sa.Text(), nullable=False, comment='Section text with inline markup kept'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_abstract_sections_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_abstract_sections')),
    comment='Sections of a structured abstract (one row for an unstructured one)'
    )
    op.create_table('article_ids',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('id_type', sa.String(length=32), nullable=False, comment='IdType: doi, pii, pmc, pubmed, mid, ...'),
    sa.Column('value', sa.Text(), nullable=False, comment='The identifier'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_article_ids_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_article_ids')),
    comment='Identifiers of the article (doi, pii, pmc, mid, ...)'
    )
    with op.batch_alter_table('article_ids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_article_ids_id_type_value'), ['id_type', 'value'], unique=False)

    op.create_table('authors',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('last_name', sa.Text(), nullable=True, comment='Family name'),
    sa.Column('fore_name', sa.Text(), nullable=True, comment='Given names'),
    sa.Column('initials', sa.String(length=32), nullable=True, comment='Initials of the given names'),
    sa.Column('suffix', sa.String(length=32), nullable=True, comment="Suffix such as 'Jr'"),
    sa.Column('collective_name', sa.Text(), nullable=True, comment='Group author, instead of a person'),
    sa.Column('orcid', sa.String(length=19), nullable=True, comment='ORCID iD, bare form 0000-0000-0000-0000'),
    sa.Column('affiliations', sa.JSON(), nullable=False, comment='Affiliations as a JSON array of strings'),
    sa.Column('is_investigator', sa.Boolean(), server_default=sa.false(), nullable=False, comment='From the InvestigatorList rather than the AuthorList'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_authors_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_authors')),
    comment='Authors in byline order (investigators follow with is_investigator)'
    )
    with op.batch_alter_table('authors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authors_last_name'), ['last_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_authors_orcid'), ['orcid'], unique=False)

    op.create_table('card_revisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
    sa.Column('revision', sa.Integer(), nullable=False, comment='Revision number, from 1'),
    sa.Column('author', sa.Text(), nullable=True, comment='Who saved it'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='Saved (UTC)'),
    sa.Column('action', sa.String(length=32), nullable=False, comment='edit, import, status, ...'),
    sa.Column('card_text', sa.Text(), nullable=False, comment="The card in kb's text format, as saved"),
    sa.Column('content', sa.JSON(), nullable=False, comment="The card's fields and bullets as JSON"),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_card_revisions_pmid_studies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_revisions')),
    sa.UniqueConstraint('pmid', 'revision', name=op.f('uq_card_revisions_pmid_revision')),
    comment='Every saved version of a card with its findings, limitations and notes'
    )
    op.create_table('cards',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
    sa.Column('headline', sa.Text(), nullable=True, comment='Card headline'),
    sa.Column('quick_summary', sa.Text(), nullable=True, comment='One-paragraph quick summary'),
    sa.Column('what_research_found', sa.Text(), nullable=True, comment='What the research found'),
    sa.Column('who_was_studied', sa.Text(), nullable=True, comment='Study details: who was studied'),
    sa.Column('how_long', sa.Text(), nullable=True, comment='Study details: how long'),
    sa.Column('what_they_took', sa.Text(), nullable=True, comment='Study details: what they took'),
    sa.Column('key_findings', sa.Text(), nullable=True, comment='Technical analysis: key findings'),
    sa.Column('study_design', sa.Text(), nullable=True, comment='Technical analysis: study design'),
    sa.Column('dosage_administration', sa.Text(), nullable=True, comment='Technical analysis: dosage & administration'),
    sa.Column('results_efficacy', sa.Text(), nullable=True, comment='Technical analysis: results & efficacy'),
    sa.Column('clinical_relevance', sa.Text(), nullable=True, comment='Technical analysis: clinical relevance'),
    sa.Column('curated_study_type', sa.Text(), nullable=True, comment='Study type as the curator states it (compare with publication_types)'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='draft, reviewed or published'),
    sa.Column('curator', sa.Text(), nullable=True, comment='Who curated the card'),
    sa.Column('record_content_hash', sa.String(length=64), nullable=True, comment='content_hash of the PubMed record the card was written against'),
    sa.Column('needs_review', sa.Boolean(), server_default=sa.false(), nullable=False, comment='Set when the study changed, was retracted or deleted after writing'),
    sa.Column('review_reason', sa.Text(), nullable=True, comment='Why the card needs review'),
    sa.Column('revision', sa.Integer(), nullable=False, comment='Number of the current revision'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='Created (UTC)'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, comment='Last changed (UTC)'),
    sa.CheckConstraint("status IN ('draft', 'reviewed', 'published')", name=op.f('ck_cards_status')),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_cards_pmid_studies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('pmid', name=op.f('pk_cards')),
    comment='The curated lay summary card of a study (one per study). Never written by a fetch.'
    )
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cards_status'), ['status'], unique=False)

    op.create_table('chemicals',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('registry_number', sa.String(length=64), nullable=True, comment='CAS or UNII registry number'),
    sa.Column('substance_ui', sa.String(length=16), nullable=True, comment='MeSH UI of the substance'),
    sa.Column('substance_name', sa.Text(), nullable=False, comment="Substance name, e.g. 'Vitamin B 12'"),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_chemicals_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_chemicals')),
    comment='Substances indexed on the study'
    )
    with op.batch_alter_table('chemicals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chemicals_substance_ui'), ['substance_ui'], unique=False)

    op.create_table('comments_corrections',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('ref_type', sa.String(length=64), nullable=False, comment='RefType, e.g. RetractionIn, ErratumFor, CommentOn'),
    sa.Column('ref_pmid', sa.Integer(), nullable=True, comment='PMID of the linked record (may not be in the knowledge base)'),
    sa.Column('ref_source', sa.Text(), nullable=True, comment='Citation of the linked record'),
    sa.Column('note', sa.Text(), nullable=True, comment='Note on the link'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_comments_corrections_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_comments_corrections')),
    comment='Links to other records: retractions (RetractionIn/RetractionOf), errata (ErratumIn/ErratumFor), expressions of concern, updates, comments'
    )
    with op.batch_alter_table('comments_corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comments_corrections_ref_pmid'), ['ref_pmid'], unique=False)
        batch_op.create_index(batch_op.f('ix_comments_corrections_ref_type'), ['ref_type'], unique=False)

    op.create_table('findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order within the card section, from 0'),
    sa.Column('audience', sa.String(length=16), nullable=False, comment="'lay' or 'technical'"),
    sa.Column('label', sa.Text(), nullable=True, comment="Bullet label, e.g. 'Get Tested'"),
    sa.Column('text', sa.Text(), nullable=False, comment='Bullet or paragraph text'),
    sa.Column('source', sa.String(length=16), nullable=False, comment="'curator' (written by a person) or 'extracted' (from the abstract)"),
    sa.Column('author', sa.Text(), nullable=True, comment='Who wrote it'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='Created (UTC)'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, comment='Last changed (UTC)'),
    sa.CheckConstraint("audience IN ('lay', 'technical')", name=op.f('ck_findings_audience')),
    sa.CheckConstraint("source IN ('curator', 'extracted')", name=op.f('ck_findings_source')),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_findings_pmid_studies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_findings')),
    sa.UniqueConstraint('pmid', 'audience', 'position', name=op.f('uq_findings_pmid_audience_position')),
    comment='What the research found: one row per bullet or paragraph of a card'
    )
    op.create_table('grants',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('grant_id', sa.Text(), nullable=True, comment='Grant number'),
    sa.Column('acronym', sa.String(length=32), nullable=True, comment='Institute acronym'),
    sa.Column('agency', sa.Text(), nullable=True, comment='Funding agency'),
    sa.Column('country', sa.Text(), nullable=True, comment='Agency country'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_grants_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_grants')),
    comment='Funding listed on the study'
    )
    op.create_table('keywords',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('keyword', sa.Text(), nullable=False, comment='Keyword text'),
    sa.Column('owner', sa.String(length=16), nullable=True, comment='KeywordList owner (NOTNLM = author keywords)'),
    sa.Column('is_major', sa.Boolean(), server_default=sa.false(), nullable=False, comment='Major topic flag'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_keywords_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_keywords')),
    comment='Author or NLM keywords'
    )
    op.create_table('limitations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order within the card section, from 0'),
    sa.Column('audience', sa.String(length=16), nullable=False, comment="'lay' or 'technical'"),
    sa.Column('label', sa.Text(), nullable=True, comment="Bullet label, e.g. 'Get Tested'"),
    sa.Column('text', sa.Text(), nullable=False, comment='Bullet or paragraph text'),
    sa.Column('source', sa.String(length=16), nullable=False, comment="'curator' (written by a person) or 'extracted' (from the abstract)"),
    sa.Column('author', sa.Text(), nullable=True, comment='Who wrote it'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='Created (UTC)'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, comment='Last changed (UTC)'),
    sa.CheckConstraint("audience IN ('lay', 'technical')", name=op.f('ck_limitations_audience')),
    sa.CheckConstraint("source IN ('curator', 'extracted')", name=op.f('ck_limitations_source')),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_limitations_pmid_studies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_limitations')),
    sa.UniqueConstraint('pmid', 'audience', 'position', name=op.f('uq_limitations_pmid_audience_position')),
    comment='Study limitations: one row per bullet or paragraph of a card'
    )
    op.create_table('mesh_headings',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('descriptor_ui', sa.String(length=16), nullable=False, comment='Descriptor UI, e.g. D014806'),
    sa.Column('descriptor_name', sa.Text(), nullable=False, comment="Descriptor, e.g. 'Vitamin B 12'"),
    sa.Column('is_major', sa.Boolean(), server_default=sa.false(), nullable=False, comment='Major topic, on the descriptor or any of its qualifiers'),
    sa.Column('qualifiers', sa.JSON(), nullable=False, comment='Qualifiers as a JSON array of {ui, name, is_major}'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_mesh_headings_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_mesh_headings')),
    comment='MeSH headings indexed on the study'
    )
    with op.batch_alter_table('mesh_headings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mesh_headings_descriptor_name'), ['descriptor_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_mesh_headings_descriptor_ui'), ['descriptor_ui'], unique=False)

    op.create_table('notes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order within the card section, from 0'),
    sa.Column('audience', sa.String(length=16), nullable=False, comment="'lay' or 'technical'"),
    sa.Column('label', sa.Text(), nullable=True, comment="Bullet label, e.g. 'Get Tested'"),
    sa.Column('text', sa.Text(), nullable=False, comment='Bullet or paragraph text'),
    sa.Column('source', sa.String(length=16), nullable=False, comment="'curator' (written by a person) or 'extracted' (from the abstract)"),
    sa.Column('author', sa.Text(), nullable=True, comment='Who wrote it'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='Created (UTC)'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, comment='Last changed (UTC)'),
    sa.CheckConstraint("audience IN ('lay', 'technical')", name=op.f('ck_notes_audience')),
    sa.CheckConstraint("source IN ('curator', 'extracted')", name=op.f('ck_notes_source')),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_notes_pmid_studies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes')),
    sa.UniqueConstraint('pmid', 'audience', 'position', name=op.f('uq_notes_pmid_audience_position')),
    comment='What this means for you and other notes: one row per bullet or paragraph of a card'
    )
    op.create_table('publication_types',
    sa.Column('pmid', sa.Integer(), nullable=False, comment='PubMed ID of the study'),
    sa.Column('position', sa.Integer(), nullable=False, comment='Order in the PubMed record, from 0'),
    sa.Column('ui', sa.String(length=16), nullable=False, comment='MeSH UI, e.g. D016449 (Randomized Controlled Trial)'),
    sa.Column('name', sa.Text(), nullable=False, comment="Label, e.g. 'Randomized Controlled Trial'"),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_publication_types_pmid_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pmid', 'position', name=op.f('pk_publication_types')),
    comment='PubMed publication types; match on ui (MeSH unique ID), not the label'
    )
    with op.batch_alter_table('publication_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_publication_types_ui'), ['ui'], unique=False)

    op.create_table('study_revisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pmid', sa.Integer(), nullable=False, comment='The study'),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False, comment='When kb saw the change (UTC)'),
    sa.Column('old_content_hash', sa.String(length=64), nullable=True, comment='Content hash before'),
    sa.Column('new_content_hash', sa.String(length=64), nullable=True, comment='Content hash after'),
    sa.Column('changed_fields', sa.JSON(), nullable=False, comment='Names of the fields that changed, as a JSON array'),
    sa.Column('previous_xml', sa.Text(), nullable=True, comment="The record's XML before the change"),
    sa.Column('refresh_run_id', sa.Integer(), nullable=True, comment='The refresh that saw it, if any'),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_study_revisions_pmid_studies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['refresh_run_id'], ['refresh_runs.id'], name=op.f('fk_study_revisions_refresh_run_id_refresh_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_revisions')),
    comment="History of changes to a study's PubMed data: one row per change seen"
    )
    with op.batch_alter_table('study_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_revisions_pmid_changed_at'), ['pmid', 'changed_at'], unique=False)

    op.create_table('topic_studies',
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('pmid', sa.Integer(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False, comment='When the topic first found it (UTC)'),
    sa.Column('is_excluded', sa.Boolean(), server_default=sa.false(), nullable=False, comment="A curator's false positive: never re-added to the topic"),
    sa.ForeignKeyConstraint(['pmid'], ['studies.pmid'], name=op.f('fk_topic_studies_pmid_studies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], name=op.f('fk_topic_studies_topic_id_topics'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('topic_id', 'pmid', name=op.f('pk_topic_studies')),
    comment='Which studies each topic found'
    )
    with op.batch_alter_table('topic_studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topic_studies_pmid'), ['pmid'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('topic_studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topic_studies_pmid'))

    op.drop_table('topic_studies')
    with op.batch_alter_table('study_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_revisions_pmid_changed_at'))

    op.drop_table('study_revisions')
    with op.batch_alter_table('publication_types', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_publication_types_ui'))

    op.drop_table('publication_types')
    op.drop_table('notes')
    with op.batch_alter_table('mesh_headings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mesh_headings_descriptor_ui'))
        batch_op.drop_index(batch_op.f('ix_mesh_headings_descriptor_name'))

    op.drop_table('mesh_headings')
    op.drop_table('limitations')
    op.drop_table('keywords')
    op.drop_table('grants')
    op.drop_table('findings')
    with op.batch_alter_table('comments_corrections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comments_corrections_ref_type'))
        batch_op.drop_index(batch_op.f('ix_comments_corrections_ref_pmid'))

    op.drop_table('comments_corrections')
    with op.batch_alter_table('chemicals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chemicals_substance_ui'))

    op.drop_table('chemicals')
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cards_status'))

    op.drop_table('cards')
    op.drop_table('card_revisions')
    with op.batch_alter_table('authors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authors_orcid'))
        batch_op.drop_index(batch_op.f('ix_authors_last_name'))

    op.drop_table('authors')
    with op.batch_alter_table('article_ids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_article_ids_id_type_value'))

    op.drop_table('article_ids')
    op.drop_table('abstract_sections')
    op.drop_table('topics')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studies_pub_year'))
        batch_op.drop_index(batch_op.f('ix_studies_doi'))
        batch_op.drop_index(batch_op.f('ix_studies_date_revised'))

    op.drop_table('studies')
    op.drop_table('refresh_runs')
    op.drop_table('fetch_failures')

