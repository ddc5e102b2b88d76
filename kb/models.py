"""The knowledge-base schema: typed SQLAlchemy 2.x models.

Analysts write SQL against these tables, so names are plain and stable. Three families:

* **PubMed data** (``studies`` and its child tables): written only by ingest/load/refresh,
  replaced wholesale when NCBI's record changes.
* **Curated content** (``cards``, ``findings``, ``limitations``, ``notes``, ``card_revisions``):
  written only by curators (and the draft extractor, marked ``source = 'extracted'``, and
  ``kb curate generate``, marked ``source = 'generated'``); no fetch
  ever touches these tables.
* **Operations** (``topics``, ``topic_studies``, ``refresh_runs``, ``fetch_failures``,
  ``study_revisions``).

Every table and column carries a ``comment``: ``docs/schema.md`` is generated from them.
Constraint names come from one naming convention so they are identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EVIDENCE_STATUSES = ("ok", "retracted", "expression_of_concern", "erratum", "updated")
CARD_STATUSES = ("draft", "reviewed", "published")
AUDIENCES = ("lay", "technical")
ITEM_SOURCES = ("curator", "extracted", "generated")
GENERATION_STATUSES = ("stored", "failed", "invalid")
RUN_STATUSES = ("running", "success", "partial", "failed")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    PostgreSQL stores ``timestamptz``; SQLite stores ISO text without an offset, which this
    type reads back as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use kb.models.utcnow()")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class StoredXML(TypeDecorator[str]):
    """A PubMed record's XML, compressed by kb (:mod:`kb.pubmed.xmlzip`: zstd with a dictionary
    trained on PubMed records, about a sixth of the text). SQLite: a BLOB value in a TEXT column,
    which SQLite stores as given, so no table rebuild was needed (migration 0011). PostgreSQL:
    a ``bytea`` column (migration 0012; PostgreSQL's own compression, without a dictionary, kept
    twice as much). Always read back as the XML text; bytes already packed by
    :func:`kb.pubmed.xmlzip.pack` are stored as given."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(LargeBinary())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: str | bytes | None, dialect: Any) -> bytes | None:
        from kb.pubmed import xmlzip

        if value is None:
            return None
        return value if isinstance(value, bytes) else xmlzip.pack(value)

    def process_result_value(self, value: str | bytes | None, dialect: Any) -> str | None:
        from kb.pubmed import xmlzip

        return None if value is None else xmlzip.unpack(value)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # JSON columns name their type (mapped_column(JSON, ...)): SQLAlchemy 2.0.30, the lowest version kb
    # supports, cannot map list[Any] / dict[str, Any] annotations through this map under PEP 563.
    type_annotation_map = {dt.datetime: UTCDateTime()}


def _curated_pmid_fk(**kw: Any) -> Mapped[int]:
    """Curated rows refer to their study with ON DELETE RESTRICT: no delete of a study can
    take curated work with it."""
    return mapped_column(ForeignKey("studies.pmid", ondelete="RESTRICT"), comment="The study", **kw)


def _pmid_fk(comment: str = "PubMed ID of the study") -> Mapped[int]:
    return mapped_column(
        ForeignKey("studies.pmid", ondelete="CASCADE"), primary_key=True, comment=comment
    )


def _position() -> Mapped[int]:
    return mapped_column(Integer, primary_key=True, comment="Order in the PubMed record, from 0")


# --------------------------------------------------------------------------------------------
# PubMed data
# --------------------------------------------------------------------------------------------


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(_in("evidence_status", EVIDENCE_STATUSES), name="evidence_status"),
        CheckConstraint(_in("record_type", ("article", "book")), name="record_type"),
        CheckConstraint("pmid > 0 AND pmid < 100000000", name="pmid_range"),
        Index(None, "pub_year"),
        Index(None, "doi"),
        Index(None, "date_revised"),
        {"comment": "One row per PubMed record (PMID). Written by ingest, load and refresh only."},
    )

    pmid: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False, comment="PubMed ID (natural key)"
    )
    pmid_version: Mapped[int] = mapped_column(
        Integer, default=1, comment="PMID Version attribute (1 unless NLM versioned the citation)"
    )
    record_type: Mapped[str] = mapped_column(
        String(16), default="article", comment="'article' (PubmedArticle) or 'book' (PubmedBookArticle)"
    )
    title: Mapped[str] = mapped_column(Text, default="", comment="Article title as plain text")
    title_markup: Mapped[str] = mapped_column(
        Text, default="", comment="Article title with PubMed's inline markup (<i>, <sup>, MathML) kept"
    )
    vernacular_title: Mapped[str | None] = mapped_column(
        Text, comment="Title in the original language, when PubMed gives one"
    )
    abstract: Mapped[str | None] = mapped_column(
        Text, comment="Abstract as plain text; sections as 'LABEL: text' separated by blank lines"
    )
    journal_title: Mapped[str | None] = mapped_column(Text, comment="Full journal title")
    journal_iso_abbrev: Mapped[str | None] = mapped_column(
        Text, comment="ISO abbreviation of the journal, e.g. 'Transfus Apher Sci'"
    )
    journal_issn: Mapped[str | None] = mapped_column(String(16), comment="Journal ISSN (print or electronic)")
    volume: Mapped[str | None] = mapped_column(String(64), comment="Journal volume")
    issue: Mapped[str | None] = mapped_column(String(64), comment="Journal issue")
    pages: Mapped[str | None] = mapped_column(String(128), comment="Pages (MedlinePgn)")
    pub_date_text: Mapped[str | None] = mapped_column(
        String(64), comment="Publication date as published, e.g. '2020 Feb' or MedlineDate '2013 Jan-Mar'"
    )
    pub_year: Mapped[int | None] = mapped_column(Integer, comment="Publication year, for sorting and filtering")
    pub_month: Mapped[int | None] = mapped_column(Integer, comment="Publication month 1-12 when known")
    pub_day: Mapped[int | None] = mapped_column(Integer, comment="Publication day when known")
    language: Mapped[str | None] = mapped_column(
        String(64), comment="Language code(s) of the article, ';'-separated (e.g. 'eng')"
    )
    doi: Mapped[str | None] = mapped_column(String(255), comment="DOI, without the 'doi:' prefix")
    pmcid: Mapped[str | None] = mapped_column(String(32), comment="PubMed Central ID, e.g. 'PMC1234567'")
    medline_status: Mapped[str | None] = mapped_column(
        String(32), comment="MEDLINE citation status (MEDLINE, PubMed-not-MEDLINE, In-Process, Publisher, ...)"
    )
    publication_status: Mapped[str | None] = mapped_column(
        String(32), comment="Publication status (ppublish, epublish, aheadofprint)"
    )
    date_revised: Mapped[dt.date | None] = mapped_column(Date, comment="DateRevised of the record at NLM")
    date_completed: Mapped[dt.date | None] = mapped_column(Date, comment="DateCompleted of the record at NLM")
    entrez_date: Mapped[dt.date | None] = mapped_column(Date, comment="Date the record entered PubMed (edat)")
    content_hash: Mapped[str | None] = mapped_column(
        String(64), comment="SHA-256 of the parsed record content; decides whether a fetch changed it"
    )
    raw_xml: Mapped[str | None] = mapped_column(
        StoredXML,
        comment="The PubMed XML of the record as last fetched (provenance, re-parsing), compressed by kb "
        "(kb.pubmed.xmlzip). SQLite: read it as text from the view study_xml",
    )
    source: Mapped[str] = mapped_column(
        String(16), default="eutils", comment="Where the record came from: 'eutils', 'file' or 'card' (placeholder)"
    )
    first_fetched_at: Mapped[dt.datetime | None] = mapped_column(comment="When kb first stored the record (UTC)")
    last_fetched_at: Mapped[dt.datetime | None] = mapped_column(comment="When kb last saw the record from PubMed (UTC)")
    last_changed_at: Mapped[dt.datetime | None] = mapped_column(
        comment="When the stored PubMed content last changed (UTC)"
    )
    is_deleted: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="PubMed deleted the citation (DeleteCitation); rows are kept"
    )
    deleted_at: Mapped[dt.datetime | None] = mapped_column(comment="When kb saw the deletion (UTC)")
    is_missing: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="A tracked PMID that E-utilities no longer returns; rows are kept"
    )
    is_retracted: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="PubMed marks the study retracted (Retracted Publication or RetractionIn)"
    )
    evidence_status: Mapped[str] = mapped_column(
        String(32),
        default="ok",
        comment="Most serious notice on the study: ok, retracted, expression_of_concern, erratum, updated",
    )
    is_placeholder: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="Known only from an imported card; the next ingest completes it"
    )

    authors: Mapped[list[Author]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Author.position"
    )


class AbstractSection(Base):
    """The stored sections of abstracts; analysts and kb read them through the view
    ``abstract_sections`` (migration 0013), which gives every section of every abstract whole.

    A section's text is part of ``studies.abstract`` (the sections joined by blank lines, labels as
    'LABEL: text'), so it is not stored twice: ``text`` is NULL and ``text_start`` and
    ``text_length`` say where it is. Most abstracts are one unlabelled section without markup:
    those have no row here at all (the view makes it from ``studies.abstract``)."""

    __tablename__ = "abstract_section_rows"
    __table_args__ = {"comment": "Stored abstract sections; read the view abstract_sections, which gives each "
                                 "section's text (here NULL where it is part of studies.abstract) and adds the "
                                 "abstracts that are one unlabelled section without markup"}

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    label: Mapped[str | None] = mapped_column(Text, comment="Section label as printed, e.g. 'METHODS'")
    nlm_category: Mapped[str | None] = mapped_column(
        String(32), comment="NLM category: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS, UNASSIGNED"
    )
    text: Mapped[str | None] = mapped_column(
        Text, comment="Section text, plain; NULL when it is substr(studies.abstract, text_start, text_length)"
    )
    text_markup: Mapped[str | None] = mapped_column(
        Text, comment="Section text with inline markup kept; NULL when it has none (the same as text): "
        "read COALESCE(text_markup, text) from the view abstract_sections"
    )
    text_start: Mapped[int | None] = mapped_column(
        Integer, comment="Where the section's text starts in studies.abstract (characters, from 1); NULL when "
        "text holds it"
    )
    text_length: Mapped[int | None] = mapped_column(
        Integer, comment="Length of the section's text in studies.abstract (characters); NULL when text holds it"
    )


class Author(Base):
    __tablename__ = "authors"
    __table_args__ = (
        Index(None, "last_name"),
        Index(None, "orcid"),
        {"comment": "Authors in byline order (investigators follow with is_investigator)"},
    )

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    last_name: Mapped[str | None] = mapped_column(Text, comment="Family name")
    fore_name: Mapped[str | None] = mapped_column(Text, comment="Given names")
    initials: Mapped[str | None] = mapped_column(String(32), comment="Initials of the given names")
    suffix: Mapped[str | None] = mapped_column(String(32), comment="Suffix such as 'Jr'")
    collective_name: Mapped[str | None] = mapped_column(Text, comment="Group author, instead of a person")
    orcid: Mapped[str | None] = mapped_column(String(19), comment="ORCID iD, bare form 0000-0000-0000-0000")
    affiliations: Mapped[list[Any]] = mapped_column(
        JSON,
        default=list, comment="Affiliations as a JSON array of strings"
    )
    is_investigator: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="From the InvestigatorList rather than the AuthorList"
    )

    study: Mapped[Study] = relationship(back_populates="authors")


class PublicationType(Base):
    __tablename__ = "publication_types"
    __table_args__ = (
        Index(None, "ui"),
        {"comment": "PubMed publication types; match on ui (MeSH unique ID), not the label"},
    )

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    ui: Mapped[str] = mapped_column(String(16), comment="MeSH UI, e.g. D016449 (Randomized Controlled Trial)")
    name: Mapped[str] = mapped_column(Text, comment="Label, e.g. 'Randomized Controlled Trial'")


class MeshHeading(Base):
    __tablename__ = "mesh_headings"
    __table_args__ = (
        Index(None, "descriptor_ui"),
        Index(None, "descriptor_name"),
        {"comment": "MeSH headings indexed on the study"},
    )

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    descriptor_ui: Mapped[str] = mapped_column(String(16), comment="Descriptor UI, e.g. D014806")
    descriptor_name: Mapped[str] = mapped_column(Text, comment="Descriptor, e.g. 'Vitamin B 12'")
    is_major: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="Major topic, on the descriptor or any of its qualifiers"
    )
    qualifiers: Mapped[list[Any]] = mapped_column(
        JSON,
        default=list, comment="Qualifiers as a JSON array of {ui, name, is_major}"
    )


class Keyword(Base):
    __tablename__ = "keywords"
    __table_args__ = {"comment": "Author or NLM keywords"}

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    keyword: Mapped[str] = mapped_column(Text, comment="Keyword text")
    owner: Mapped[str | None] = mapped_column(String(16), comment="KeywordList owner (NOTNLM = author keywords)")
    is_major: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), comment="Major topic flag")


class Grant(Base):
    __tablename__ = "grants"
    __table_args__ = {"comment": "Funding listed on the study"}

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    grant_id: Mapped[str | None] = mapped_column(Text, comment="Grant number")
    acronym: Mapped[str | None] = mapped_column(String(32), comment="Institute acronym")
    agency: Mapped[str | None] = mapped_column(Text, comment="Funding agency")
    country: Mapped[str | None] = mapped_column(Text, comment="Agency country")


class CommentCorrection(Base):
    __tablename__ = "comments_corrections"
    __table_args__ = (
        Index(None, "ref_pmid"),
        Index(None, "ref_type"),
        {
            "comment": "Links to other records: retractions (RetractionIn/RetractionOf), errata "
            "(ErratumIn/ErratumFor), expressions of concern, updates, comments"
        },
    )

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    ref_type: Mapped[str] = mapped_column(String(64), comment="RefType, e.g. RetractionIn, ErratumFor, CommentOn")
    ref_pmid: Mapped[int | None] = mapped_column(
        Integer, comment="PMID of the linked record (may not be in the knowledge base)"
    )
    ref_source: Mapped[str | None] = mapped_column(Text, comment="Citation of the linked record")
    note: Mapped[str | None] = mapped_column(Text, comment="Note on the link")


class Chemical(Base):
    __tablename__ = "chemicals"
    __table_args__ = (Index(None, "substance_ui"), {"comment": "Substances indexed on the study"})

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    registry_number: Mapped[str | None] = mapped_column(String(64), comment="CAS or UNII registry number")
    substance_ui: Mapped[str | None] = mapped_column(String(16), comment="MeSH UI of the substance")
    substance_name: Mapped[str] = mapped_column(Text, comment="Substance name, e.g. 'Vitamin B 12'")


class ArticleId(Base):
    __tablename__ = "article_ids"
    __table_args__ = (
        Index(None, "id_type", "value"),
        {"comment": "Identifiers of the article (doi, pii, pmc, mid, ...)"},
    )

    pmid: Mapped[int] = _pmid_fk()
    position: Mapped[int] = _position()
    id_type: Mapped[str] = mapped_column(String(32), comment="IdType: doi, pii, pmc, pubmed, mid, ...")
    value: Mapped[str] = mapped_column(Text, comment="The identifier")


class StudyRevision(Base):
    __tablename__ = "study_revisions"
    __table_args__ = (
        Index(None, "pmid", "changed_at"),
        {"comment": "History of changes to a study's PubMed data: one row per change seen"},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    pmid: Mapped[int] = mapped_column(ForeignKey("studies.pmid", ondelete="CASCADE"), comment="The study")
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="When kb saw the change (UTC)")
    old_content_hash: Mapped[str | None] = mapped_column(String(64), comment="Content hash before")
    new_content_hash: Mapped[str | None] = mapped_column(String(64), comment="Content hash after")
    changed_fields: Mapped[list[Any]] = mapped_column(
        JSON,
        default=list, comment="Names of the fields that changed, as a JSON array"
    )
    previous_xml: Mapped[str | None] = mapped_column(
        StoredXML,
        comment="The record's XML before the change (compressed like studies.raw_xml)",
    )
    refresh_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("refresh_runs.id", ondelete="SET NULL"), comment="The refresh that saw it, if any"
    )


EVENT_KINDS = (
    "retracted",
    "expression_of_concern",
    "erratum",
    "updated",
    "status_cleared",
    "deleted",
    "missing",
    "found_again",
)


class StudyEvent(Base):
    __tablename__ = "study_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        Index(None, "at"),
        Index(None, "pmid"),
        {
            "comment": "Things curators must hear about a study, as they happen: evidence status changes "
            "(retracted, expression_of_concern, erratum, updated, status_cleared), PubMed deletions, "
            "PMIDs E-utilities no longer returns (missing, found_again). Content changes are in study_revisions."
        },
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    pmid: Mapped[int] = mapped_column(ForeignKey("studies.pmid", ondelete="CASCADE"), comment="The study")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="When kb saw it (UTC)")
    kind: Mapped[str] = mapped_column(String(32), comment="What happened (see the table comment)")
    detail: Mapped[str | None] = mapped_column(Text, comment="More about it, e.g. the notice's PMID")
    refresh_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("refresh_runs.id", ondelete="SET NULL"), comment="The refresh that saw it, if any"
    )


# --------------------------------------------------------------------------------------------
# Curated content
# --------------------------------------------------------------------------------------------


class Card(Base):
    __tablename__ = "cards"
    __table_args__ = (
        CheckConstraint(_in("status", CARD_STATUSES), name="status"),
        Index(None, "status"),
        {"comment": "The curated lay summary card of a study (one per study). Never written by a fetch."},
    )

    pmid: Mapped[int] = _curated_pmid_fk(primary_key=True)
    headline: Mapped[str | None] = mapped_column(Text, comment="Card headline")
    quick_summary: Mapped[str | None] = mapped_column(Text, comment="One-paragraph quick summary")
    what_research_found: Mapped[str | None] = mapped_column(Text, comment="What the research found")
    who_was_studied: Mapped[str | None] = mapped_column(Text, comment="Study details: who was studied")
    how_long: Mapped[str | None] = mapped_column(Text, comment="Study details: how long")
    what_they_took: Mapped[str | None] = mapped_column(Text, comment="Study details: what they took")
    key_findings: Mapped[str | None] = mapped_column(Text, comment="Technical analysis: key findings")
    study_design: Mapped[str | None] = mapped_column(Text, comment="Technical analysis: study design")
    dosage_administration: Mapped[str | None] = mapped_column(
        Text, comment="Technical analysis: dosage & administration"
    )
    results_efficacy: Mapped[str | None] = mapped_column(Text, comment="Technical analysis: results & efficacy")
    clinical_relevance: Mapped[str | None] = mapped_column(Text, comment="Technical analysis: clinical relevance")
    technical_limitations: Mapped[str | None] = mapped_column(
        Text, comment="Technical analysis: limitations (paragraphs; kb's earlier bullets stay in limitations)"
    )
    curated_study_type: Mapped[str | None] = mapped_column(
        Text, comment="Study type as the curator states it (compare with publication_types)"
    )
    reference_title: Mapped[str | None] = mapped_column(
        Text, comment="Study title as the card states it (kb curate lint compares it with the record)"
    )
    reference_source: Mapped[str | None] = mapped_column(Text, comment="Journal as the card states it")
    reference_year: Mapped[int | None] = mapped_column(Integer, comment="Publication year as the card states it")
    extracted_fields: Mapped[list[Any]] = mapped_column(
        JSON,
        default=list, server_default="[]",
        comment="Card fields whose text was extracted from the abstract and not yet rewritten by a curator (JSON array)",
    )
    generated_fields: Mapped[list[Any]] = mapped_column(
        JSON,
        default=list, server_default="[]",
        comment="Card fields a language model wrote (kb curate generate) and no curator has rewritten (JSON array)",
    )
    checks: Mapped[dict[str, Any] | None] = mapped_column(
        JSON,
        comment="Guardrail results for the generated text, computed when the card was saved (JSON; empty when "
                "nothing on the card is generated)",
    )
    check_overrides: Mapped[list[Any]] = mapped_column(
        JSON,
        default=list, server_default="[]",
        comment="Failed checks a curator overrode to publish: check, author, time (JSON array)",
    )
    status: Mapped[str] = mapped_column(String(16), default="draft", comment="draft, reviewed or published")
    curator: Mapped[str | None] = mapped_column(Text, comment="Who curated the card")
    record_content_hash: Mapped[str | None] = mapped_column(
        String(64), comment="content_hash of the PubMed record the card was written against"
    )
    needs_review: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="Set when the study changed, was retracted or deleted after writing"
    )
    review_reason: Mapped[str | None] = mapped_column(Text, comment="Why the card needs review")
    reviewed_by: Mapped[str | None] = mapped_column(Text, comment="Who last marked the card reviewed (kb curate review)")
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(comment="When the card was last marked reviewed (UTC)")
    revision: Mapped[int] = mapped_column(Integer, default=0, comment="Number of the current revision")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="Created (UTC)")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow, comment="Last changed (UTC)")


class _CardItem:
    """Shape shared by findings, limitations and notes: one row per bullet or paragraph."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    pmid: Mapped[int] = _curated_pmid_fk()
    position: Mapped[int] = mapped_column(Integer, comment="Order within the card section, from 0")
    audience: Mapped[str] = mapped_column(String(16), default="lay", comment="'lay' or 'technical'")
    label: Mapped[str | None] = mapped_column(Text, comment="Bullet label, e.g. 'Get Tested'")
    text: Mapped[str] = mapped_column(Text, comment="Bullet or paragraph text")
    source: Mapped[str] = mapped_column(
        String(16), default="curator",
        comment="'curator' (written by a person), 'extracted' (from the abstract) or 'generated' (by a language model)"
    )
    author: Mapped[str | None] = mapped_column(Text, comment="Who wrote it")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="Created (UTC)")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow, comment="Last changed (UTC)")

    @staticmethod
    def _item_args(what: str) -> tuple:
        return (
            CheckConstraint(_in("audience", AUDIENCES), name="audience"),
            CheckConstraint(_in("source", ITEM_SOURCES), name="source"),
            UniqueConstraint("pmid", "audience", "position"),
            {"comment": f"{what}: one row per bullet or paragraph of a card"},
        )


class Finding(_CardItem, Base):
    __tablename__ = "findings"
    __table_args__ = _CardItem._item_args("What the research found")


class Limitation(_CardItem, Base):
    __tablename__ = "limitations"
    __table_args__ = _CardItem._item_args("Study limitations")


class Note(_CardItem, Base):
    __tablename__ = "notes"
    __table_args__ = _CardItem._item_args("What this means for you and other notes")


class CardRevision(Base):
    __tablename__ = "card_revisions"
    __table_args__ = (
        UniqueConstraint("pmid", "revision"),
        {"comment": "Every saved version of a card with its findings, limitations and notes"},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # No foreign key: a card's history outlives its card and a placeholder study (kb curate delete).
    pmid: Mapped[int] = mapped_column(Integer, comment="The study (PMID); kept after the card is deleted")
    revision: Mapped[int] = mapped_column(Integer, comment="Revision number, from 1")
    author: Mapped[str | None] = mapped_column(Text, comment="Who saved it")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="Saved (UTC)")
    action: Mapped[str] = mapped_column(
        String(32), comment="edit, import, status, review, revert, delete, draft, ..."
    )
    status_from: Mapped[str | None] = mapped_column(String(16), comment="The card's status before this revision")
    status_to: Mapped[str | None] = mapped_column(
        String(16), comment="The card's status after this revision (NULL: the card was deleted)"
    )
    card_text: Mapped[str] = mapped_column(Text, comment="The card in kb's text format, as saved")
    content: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment="The card's fields and bullets as JSON"
    )


class CardGeneration(Base):
    __tablename__ = "card_generations"
    __table_args__ = (
        CheckConstraint(_in("status", GENERATION_STATUSES), name="status"),
        Index(None, "pmid", "created_at"),
        {"comment": "One row per language-model call of kb curate generate: what was asked, what came back, "
                    "the checks and the outcome"},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    pmid: Mapped[int] = mapped_column(ForeignKey("studies.pmid", ondelete="CASCADE"), comment="The study")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="When the call finished (UTC)")
    model_requested: Mapped[str] = mapped_column(Text, comment="Model asked for (--model / KB_LLM_MODEL)")
    model_answered: Mapped[str | None] = mapped_column(Text, comment="Model that answered, as the reply names it")
    prompt_version: Mapped[str] = mapped_column(String(64), comment="Prompt file, e.g. card-v1")
    prompt_sha256: Mapped[str] = mapped_column(String(64), comment="SHA-256 of the prompt and the JSON schema")
    record_content_hash: Mapped[str | None] = mapped_column(
        String(64), comment="content_hash of the PubMed record the card was generated from"
    )
    options: Mapped[dict[str, Any]] = mapped_column(
        JSON,
        default=dict, comment="Call options: timeout, tries, attempts made, model options (JSON)"
    )
    input_tokens: Mapped[int | None] = mapped_column(Integer, comment="Tokens in, as the model reports them")
    output_tokens: Mapped[int | None] = mapped_column(Integer, comment="Tokens out, as the model reports them")
    duration_ms: Mapped[int | None] = mapped_column(Integer, comment="Time of the call, retries included")
    raw_reply: Mapped[str | None] = mapped_column(Text, comment="The model's reply, as received")
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON, comment="The card parsed from the reply (JSON)")
    checks: Mapped[dict[str, Any] | None] = mapped_column(JSON, comment="Guardrail results for the parsed card (JSON)")
    status: Mapped[str] = mapped_column(
        String(16), comment="stored (a draft card was saved), failed (the call failed) or invalid (the reply "
                            "was not a card)"
    )
    error: Mapped[str | None] = mapped_column(Text, comment="Why the call failed or the reply was refused")
    card_revision: Mapped[int | None] = mapped_column(Integer, comment="Card revision the generation saved")


# --------------------------------------------------------------------------------------------
# Operations: topics, refresh runs, fetch failures
# --------------------------------------------------------------------------------------------


class Topic(Base):
    __tablename__ = "topics"
    __table_args__ = {"comment": "Saved PubMed searches that kb refresh re-runs"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, comment="Short name used on the command line")
    query: Mapped[str] = mapped_column(Text, comment="The PubMed query")
    query_translation: Mapped[str | None] = mapped_column(Text, comment="NCBI's translation of the query, as last seen")
    since: Mapped[dt.date | None] = mapped_column(Date, comment="Earliest Entrez date to search from")
    watermark: Mapped[dt.datetime | None] = mapped_column(
        comment="Entrez date up to which the topic is complete; advances only when a run completes it"
    )
    last_count: Mapped[int | None] = mapped_column(Integer, comment="Total hits of the query at the last run")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="Created (UTC)")


class TopicStudy(Base):
    __tablename__ = "topic_studies"
    __table_args__ = (Index(None, "pmid"), {"comment": "Which studies each topic found"})

    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True, comment="The topic"
    )
    pmid: Mapped[int] = mapped_column(
        ForeignKey("studies.pmid", ondelete="CASCADE"), primary_key=True, comment="The study"
    )
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="When the topic first found it (UTC)")
    is_excluded: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="A curator's false positive: never re-added to the topic"
    )


class RefreshRun(Base):
    __tablename__ = "refresh_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        {"comment": "One row per kb refresh run"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="Start (UTC)")
    finished_at: Mapped[dt.datetime | None] = mapped_column(comment="End (UTC); empty while running or if killed")
    status: Mapped[str] = mapped_column(String(16), default="running", comment="running, success, partial, failed")
    counts: Mapped[dict[str, Any]] = mapped_column(
        JSON,
        default=dict, comment="Per-topic counts (found, new, linked, changed, retracted, failed) and the tracked-study pass, as JSON"
    )
    requests_made: Mapped[int] = mapped_column(Integer, default=0, comment="E-utilities requests made")
    rate_limited: Mapped[int] = mapped_column(Integer, default=0, comment="HTTP 429 answers received")
    is_complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), comment="Every topic completed")
    error: Mapped[str | None] = mapped_column(Text, comment="Error that ended the run, if any")
    read_at: Mapped[dt.datetime | None] = mapped_column(
        comment="When a person marked the changes up to this run read (kb report changes --mark-read)"
    )
    read_by: Mapped[str | None] = mapped_column(Text, comment="Who marked them read")


class FetchFailure(Base):
    __tablename__ = "fetch_failures"
    __table_args__ = {"comment": "PMIDs whose fetch failed; the next ingest or refresh retries them"}

    pmid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, comment="PubMed ID")
    error: Mapped[str] = mapped_column(Text, comment="Last error")
    attempts: Mapped[int] = mapped_column(Integer, default=1, comment="Failed attempts so far")
    first_failed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="First failure (UTC)")
    last_failed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="Latest failure (UTC)")


class SourceFile(Base):
    __tablename__ = "source_files"
    __table_args__ = (
        Index(None, "sha256"),
        {"comment": "PubMed XML files applied by kb load (baseline and update files), in order"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, comment="File name, e.g. pubmed25n1275.xml.gz")
    sha256: Mapped[str] = mapped_column(String(64), comment="SHA-256 of the file's bytes")
    size_bytes: Mapped[int] = mapped_column(BigInteger, comment="File size")
    status: Mapped[str] = mapped_column(
        String(16),
        comment="'running' (or killed while running), 'complete', 'failed' or 'interrupted' (Ctrl-C); the "
        "batches stored before a stop are whole and kept",
    )
    records: Mapped[int] = mapped_column(Integer, default=0, comment="Records stored from the file")
    deletions: Mapped[int] = mapped_column(Integer, default=0, comment="DeleteCitation PMIDs applied")
    error: Mapped[str | None] = mapped_column(Text, comment="The error that stopped the file, if any")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="Start (UTC)")
    finished_at: Mapped[dt.datetime | None] = mapped_column(comment="End (UTC)")


CHILD_TABLES = (
    AbstractSection,
    Author,
    PublicationType,
    MeshHeading,
    Keyword,
    Grant,
    CommentCorrection,
    Chemical,
    ArticleId,
)
CURATED_TABLES = (Card, Finding, Limitation, Note, CardRevision)
# A card's bullet lists by kind (the ``kind`` of kb.cards.model.Item lists): one table each.
BULLET_TABLES = {"finding": Finding, "limitation": Limitation, "note": Note}

__all__ = [
    "Base",
    "NAMING_CONVENTION",
    "utcnow",
    "Study",
    "AbstractSection",
    "Author",
    "PublicationType",
    "MeshHeading",
    "Keyword",
    "Grant",
    "CommentCorrection",
    "Chemical",
    "ArticleId",
    "StudyRevision",
    "StudyEvent",
    "Card",
    "Finding",
    "Limitation",
    "Note",
    "CardRevision",
    "Topic",
    "TopicStudy",
    "RefreshRun",
    "FetchFailure",
    "SourceFile",
    "BULLET_TABLES",
    "CHILD_TABLES",
    "CURATED_TABLES",
]
