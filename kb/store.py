"""Writing parsed PubMed records to the database: idempotent, transactional upserts.

One call of :func:`store_records` is one batch and runs inside the caller's transaction, so a
batch is stored whole or not at all. Only PubMed tables are written (``studies`` and its child
tables, ``study_revisions``, and their rows of the search index ``study_search``); curated tables
are never written here, except the ``needs_review`` flag of a card whose record changed under it.

* new PMID → inserted;
* same content hash → unchanged (only ``last_fetched_at`` moves);
* different hash, a placeholder (known only from a card) or a deleted study that PubMed lists
  again → the PubMed side is replaced, and a ``study_revisions`` row says which fields changed.

Within a batch a later record of a PMID supersedes an earlier one, as in NCBI's update files.
Rows are written with Core ``executemany`` statements: the ORM unit of work would dominate a
30,000-record load.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import String, bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from kb import evidence
from kb import models as m
from kb import search
from kb.batches import chunked
from kb.errors import ParseError
from kb.pubmed import xmlzip
from kb.pubmed.records import PubmedRecord

_STUDY = m.Study.__table__


@dataclass
class StoreResult:
    """PMIDs by what happened to them in one or more batches."""

    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    status_changes: dict[int, str] = field(default_factory=dict)  # pmid -> new evidence status

    @property
    def stored(self) -> int:
        return len(self.new) + len(self.updated) + len(self.unchanged)


def serialise_writers(session: Session) -> None:
    """Serialise batch writers across processes.

    SQLite: the session's BEGIN IMMEDIATE already holds the write lock. PostgreSQL: a
    transaction-level advisory lock, so two ingests of the same new PMID cannot both insert it,
    and two curators saving the same card cannot both write its next revision.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('kb.store'))"))


class Prepared(NamedTuple):
    """A parsed record turned into rows: plain values only, cheap to pickle between processes
    (a NamedTuple unpickles several times faster than a frozen dataclass, which matters to the
    writer of a pipelined ``kb load``)."""

    pmid: int
    content_hash: str
    study: dict
    children: dict[str, list[tuple]]  # table name -> rows in _CHILD_COLUMNS order
    links: tuple[tuple[str, int | None], ...]  # (ref_type, ref_pmid) of comments/corrections


def prepare(rec: PubmedRecord, source: str, *, pack_xml: bool = False) -> Prepared:
    """The rows of ``rec``; ``pack_xml``: its ``raw_xml`` compressed as kb stores it (both databases)
    (:func:`kb.pubmed.xmlzip.pack`; kb.models.StoredXML stores such bytes as given)."""
    study = _fit_study(_study_row(rec, source))
    if pack_xml:
        study["raw_xml"] = xmlzip.pack(study["raw_xml"])
    return Prepared(
        pmid=rec.pmid,
        content_hash=rec.content_hash,
        study=study,
        children=_fit_children(_child_rows(rec)),
        links=tuple((c.ref_type, c.ref_pmid) for c in rec.comments_corrections),
    )


def store_records(
    session: Session,
    records: Iterable[PubmedRecord],
    *,
    source: str,
    now: dt.datetime | None = None,
    refresh_run_id: int | None = None,
) -> StoreResult:
    """Upsert one batch of parsed records. Runs in the caller's transaction."""
    return store_prepared(session, [prepare(r, source) for r in records], now=now, refresh_run_id=refresh_run_id)


def store_prepared(
    session: Session,
    records: Iterable[Prepared],
    *,
    now: dt.datetime | None = None,
    refresh_run_id: int | None = None,
) -> StoreResult:
    """Upsert one batch of prepared records. Runs in the caller's transaction."""
    now = now or m.utcnow()
    latest: dict[int, Prepared] = {}
    for rec in records:
        latest.pop(rec.pmid, None)  # a later occurrence supersedes (and moves to the end)
        latest[rec.pmid] = rec
    result = StoreResult()
    if not latest:
        return result
    serialise_writers(session)

    existing = _existing(session, list(latest))
    new_recs: list[Prepared] = []
    changed_recs: list[Prepared] = []
    unchanged: list[int] = []
    for pmid, rec in latest.items():
        old = existing.get(pmid)
        if old is None:
            new_recs.append(rec)
        elif old.content_hash != rec.content_hash or old.is_placeholder or old.is_deleted:
            changed_recs.append(rec)
        else:
            unchanged.append(pmid)

    if new_recs:
        stamp = {"first_fetched_at": now, "last_fetched_at": now, "last_changed_at": now}
        session.execute(insert(_STUDY), [{**r.study, **stamp} for r in new_recs])
    if changed_recs:
        search.unindex_studies(session, [r.pmid for r in changed_recs])  # while their indexed text is stored
        _replace_changed(session, changed_recs, existing, now, refresh_run_id)
    if unchanged:
        session.execute(
            update(_STUDY).where(_STUDY.c.pmid == bindparam("b_pmid")).values(last_fetched_at=bindparam("b_at")),
            [{"b_pmid": pmid, "b_at": now} for pmid in unchanged],
        )
    touched = new_recs + changed_recs
    _insert_children(session, touched)
    search.reindex_studies(session, [r.pmid for r in touched])  # the full-text index, same transaction

    for chunk in chunked(list(latest)):
        session.execute(delete(m.FetchFailure).where(m.FetchFailure.pmid.in_(chunk)))
    if touched:
        notice_targets = evidence.targets_of_notices(link for r in touched for link in r.links)
        result.status_changes = evidence.recompute(
            session, {r.pmid for r in touched} | notice_targets, refresh_run_id=refresh_run_id
        )

    result.new = [r.pmid for r in new_recs]
    result.updated = [r.pmid for r in changed_recs]
    result.unchanged = unchanged
    return result


@dataclass(frozen=True)
class _Existing:
    content_hash: str | None
    is_placeholder: bool
    is_deleted: bool


def _existing(session: Session, pmids: list[int]) -> dict[int, _Existing]:
    found: dict[int, _Existing] = {}
    for chunk in chunked(pmids):
        rows = session.execute(
            select(_STUDY.c.pmid, _STUDY.c.content_hash, _STUDY.c.is_placeholder, _STUDY.c.is_deleted).where(
                _STUDY.c.pmid.in_(chunk)
            )
        )
        for pmid, content_hash, placeholder, deleted in rows:
            found[pmid] = _Existing(content_hash, bool(placeholder), bool(deleted))
    return found


def _replace_changed(
    session: Session,
    recs: list[Prepared],
    existing: dict[int, _Existing],
    now: dt.datetime,
    refresh_run_id: int | None,
) -> None:
    pmids = [r.pmid for r in recs]
    previous_xml: dict[int, str | None] = {}
    for chunk in chunked(pmids):
        previous_xml.update(session.execute(select(_STUDY.c.pmid, _STUDY.c.raw_xml).where(_STUDY.c.pmid.in_(chunk))).all())
        for table in m.CHILD_TABLES:
            session.execute(delete(table).where(table.pmid.in_(chunk)))

    rows = []
    for r in recs:
        row = {**r.study, "last_fetched_at": now, "last_changed_at": now}
        if existing[r.pmid].is_placeholder:
            row["first_fetched_at"] = now
        row["b_pmid"] = row.pop("pmid")
        rows.append(row)
    by_shape: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:  # placeholders carry first_fetched_at too: group rows by their keys
        by_shape.setdefault(tuple(sorted(row)), []).append(row)
    for shape, group in by_shape.items():
        values = {k: bindparam(k) for k in shape if k != "b_pmid"}
        session.execute(update(_STUDY).where(_STUDY.c.pmid == bindparam("b_pmid")).values(**values), group)

    revisions = []
    for r in recs:
        old = existing[r.pmid]
        if old.is_placeholder:
            continue  # completing a placeholder is not a change of PubMed's record
        revisions.append(
            {
                "pmid": r.pmid,
                "changed_at": now,
                "old_content_hash": old.content_hash,
                "new_content_hash": r.content_hash,
                "changed_fields": _changed_fields(previous_xml.get(r.pmid), xmlzip.unpack(r.study["raw_xml"])),
                "previous_xml": previous_xml.get(r.pmid),
                "refresh_run_id": refresh_run_id,
            }
        )
    if revisions:
        session.execute(insert(m.StudyRevision.__table__), revisions)

    # A card written against another version of the record is marked for re-review.
    new_hash = {r.pmid: r.content_hash for r in recs}
    stale = [
        pmid
        for pmid, hash_ in session.execute(
            select(m.Card.pmid, m.Card.record_content_hash).where(m.Card.pmid.in_(pmids))
        )
        if hash_ is not None and hash_ != new_hash[pmid]
    ]
    if stale:
        evidence.flag_cards(session, stale, f"the PubMed record changed on {now:%Y-%m-%d}")
    undeleted = [r.pmid for r in recs if existing[r.pmid].is_deleted]
    if undeleted:
        session.execute(
            update(_STUDY).where(_STUDY.c.pmid.in_(undeleted)).values(is_deleted=False, deleted_at=None)
        )


def _changed_fields(previous_xml: str | None, new_xml: str) -> list[str]:
    """Names of the record fields that differ from the previously stored version."""
    if not previous_xml:
        return ["*"]
    try:
        old, new = _parse_one(previous_xml), _parse_one(new_xml)
    except ParseError:  # an old record we can no longer parse: say "everything"
        return ["*"]
    old_fields, new_fields = old.content_fields(), new.content_fields()
    return sorted(k for k in new_fields if old_fields.get(k) != new_fields[k])


def _parse_one(xml: str) -> PubmedRecord:
    """Parse one stored record (``studies.raw_xml``) again."""
    from kb.pubmed.parse import iter_pubmed_xml

    # A record of a 2016-style MedlineCitationSet file is stored as its bare MedlineCitation.
    root = "MedlineCitationSet" if xml.lstrip().startswith("<MedlineCitation") else "PubmedArticleSet"
    data = f"<{root}>{xml}</{root}>".encode()
    for item in iter_pubmed_xml(io.BytesIO(data), name="stored record"):
        if isinstance(item, PubmedRecord):
            return item
    raise ParseError("stored record XML holds no record")


def mark_deleted(
    session: Session, pmids: Iterable[int], *, now: dt.datetime | None = None, refresh_run_id: int | None = None
) -> list[int]:
    """Apply PubMed DeleteCitation: flag the studies (rows and curated content are kept).

    Returns the PMIDs that were stored and not yet flagged.
    """
    now = now or m.utcnow()
    ids = sorted(set(pmids))
    flagged: list[int] = []
    serialise_writers(session)
    for chunk in chunked(ids):
        hit = list(
            session.execute(
                select(_STUDY.c.pmid).where(_STUDY.c.pmid.in_(chunk), _STUDY.c.is_deleted.is_(False))
            ).scalars()
        )
        if hit:
            search.unindex_studies(session, hit)  # takes them out of the search index
            session.execute(update(_STUDY).where(_STUDY.c.pmid.in_(hit)).values(is_deleted=True, deleted_at=now))
            session.execute(
                insert(m.StudyEvent.__table__),
                [{"pmid": p, "at": now, "kind": "deleted", "detail": "DeleteCitation",
                  "refresh_run_id": refresh_run_id} for p in hit],
            )
            evidence.flag_cards(session, hit, "PubMed deleted this citation")
            flagged += hit
    return flagged


# --------------------------------------------------------------------------------------------
# Record → rows
# --------------------------------------------------------------------------------------------


def _study_row(r: PubmedRecord, source: str) -> dict:
    return {
        "pmid": r.pmid,
        "pmid_version": r.pmid_version,
        "record_type": r.record_type,
        "title": r.title,
        "title_markup": r.title_markup,
        "vernacular_title": r.vernacular_title,
        "abstract": r.abstract,
        "journal_title": r.journal_title,
        "journal_iso_abbrev": r.journal_iso_abbrev,
        "journal_issn": r.journal_issn,
        "volume": r.volume,
        "issue": r.issue,
        "pages": r.pages,
        "pub_date_text": r.pub_date.text,
        "pub_year": r.pub_date.year,
        "pub_month": r.pub_date.month,
        "pub_day": r.pub_date.day,
        "language": ";".join(r.languages) or None,
        "doi": r.doi,
        "pmcid": r.pmcid,
        "medline_status": r.medline_status,
        "publication_status": r.publication_status,
        "date_revised": r.date_revised,
        "date_completed": r.date_completed,
        "entrez_date": r.entrez_date,
        "content_hash": r.content_hash,
        "raw_xml": r.raw_xml,
        "source": source,
        "is_placeholder": False,
    }


# Child rows are tuples in this column order, inserted with the driver's executemany: building
# ~50 parameter dicts per record through SQLAlchemy cost as much as the database work itself.
_CHILD_COLUMNS: dict[type, tuple[str, ...]] = {
    m.AbstractSection: ("pmid", "position", "label", "nlm_category", "text", "text_markup", "text_start",
                        "text_length"),
    m.Author: ("pmid", "position", "last_name", "fore_name", "initials", "suffix", "collective_name", "orcid",
               "affiliations", "is_investigator"),
    m.PublicationType: ("pmid", "position", "ui", "name"),
    m.MeshHeading: ("pmid", "position", "descriptor_ui", "descriptor_name", "is_major", "qualifiers"),
    m.Keyword: ("pmid", "position", "keyword", "owner", "is_major"),
    m.Grant: ("pmid", "position", "grant_id", "acronym", "agency", "country"),
    m.CommentCorrection: ("pmid", "position", "ref_type", "ref_pmid", "ref_source", "note"),
    m.Chemical: ("pmid", "position", "registry_number", "substance_ui", "substance_name"),
    m.ArticleId: ("pmid", "position", "id_type", "value"),
}
_JSON_COLUMNS = frozenset({"affiliations", "qualifiers"})
_EMPTY_JSON_LIST = "[]"


def _insert_sql(model: type, dialect: str) -> str:
    columns = _CHILD_COLUMNS[model]
    if dialect == "postgresql":
        marks = ["CAST(%s AS JSON)" if c in _JSON_COLUMNS else "%s" for c in columns]
    else:
        marks = ["?"] * len(columns)
    return f"INSERT INTO {model.__tablename__} ({', '.join(columns)}) VALUES ({', '.join(marks)})"


# The two JSON columns written by every load, built from json's own C string encoder: the same
# text as json.dumps(..., ensure_ascii=False) (tests/test_storage.py compares them over the
# corpus) at a third of its cost, which a 30,000-record load pays some 200,000 times.
_json_str = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring


def _json_value(value: object) -> str:
    return _json_str(value) if type(value) is str else json.dumps(value)


def _json_strings(values: Sequence[str]) -> str:
    """``json.dumps(list(values), ensure_ascii=False)`` for strings."""
    if not values:
        return _EMPTY_JSON_LIST
    return "[" + ", ".join([_json_str(v) for v in values]) + "]"


def _json_qualifiers(qualifiers: Sequence) -> str:
    """``json.dumps([{"ui": …, "name": …, "is_major": …}, …], ensure_ascii=False)``."""
    if not qualifiers:
        return _EMPTY_JSON_LIST
    return "[" + ", ".join([
        f'{{"ui": {_json_value(q.ui)}, "name": {_json_value(q.name)}, "is_major": {_json_value(q.is_major)}}}'
        for q in qualifiers]) + "]"


def _section_rows(r: PubmedRecord) -> list[tuple]:
    """The stored rows of the abstract's sections (migration 0013): each section's text is in
    ``studies.abstract`` already (the sections joined, labels as 'LABEL: text'), so it is not stored
    again. A row keeps ``text`` NULL and where the text is in the abstract (``text_start``, from 1,
    and ``text_length``, in characters); an abstract that is one unlabelled, uncategorised section
    without markup has no row at all. The view ``abstract_sections`` gives the sections whole."""
    p = r.pmid
    sections = r.abstract_sections
    abstract = r.abstract or ""
    if len(sections) == 1:
        s = sections[0]
        if s.label is None and s.nlm_category is None and s.text and s.text == abstract and s.text_markup == s.text:
            return []
    rows = []
    at = 0  # where the next section's part ('LABEL: text', or the text) starts in the abstract
    for i, s in enumerate(sections):
        start = at + (len(s.label) + 2 if s.label else 0)
        markup = s.text_markup if s.text_markup != s.text else None
        if s.text and abstract[start:start + len(s.text)] == s.text:
            rows.append((p, i, s.label, s.nlm_category, None, markup, start + 1, len(s.text)))
        else:  # not found where the abstract has it (a record stored otherwise): the text itself
            rows.append((p, i, s.label, s.nlm_category, s.text, markup, None, None))
        if s.label or s.text:
            at += len(f"{s.label}: {s.text}" if s.label else s.text) + 2
    return rows


def _child_rows(r: PubmedRecord) -> dict[str, list[tuple]]:
    p = r.pmid
    return {
        "abstract_section_rows": _section_rows(r),
        "authors": [
            (p, i, a.last_name, a.fore_name, a.initials, a.suffix, a.collective_name, a.orcid,
             _json_strings(a.affiliations), a.is_investigator)
            for i, a in enumerate(r.authors)
        ],
        "publication_types": [(p, i, t.ui, t.name) for i, t in enumerate(r.publication_types)],
        "mesh_headings": [
            (p, i, h.descriptor_ui, h.descriptor_name, h.is_major, _json_qualifiers(h.qualifiers))
            for i, h in enumerate(r.mesh_headings)
        ],
        "keywords": [(p, i, k.keyword, k.owner, k.is_major) for i, k in enumerate(r.keywords)],
        "grants": [(p, i, g.grant_id, g.acronym, g.agency, g.country) for i, g in enumerate(r.grants)],
        "comments_corrections": [
            (p, i, c.ref_type, c.ref_pmid, c.ref_source, c.note) for i, c in enumerate(r.comments_corrections)
        ],
        "chemicals": [
            (p, i, c.registry_number, c.substance_ui, c.substance_name) for i, c in enumerate(r.chemicals)
        ],
        "article_ids": [(p, i, a.id_type, a.value) for i, a in enumerate(r.article_ids)],
    }


# Text longer than its column's declared length (codes such as the ISSN, a MeSH UI, the volume,
# the ';'-joined languages) is cut to that length, on both databases: PostgreSQL refuses an
# over-long VARCHAR (and with it the whole batch) where SQLite stores it whole, so one odd record
# could fail a load on one database only. The content hash is the parsed record's, uncut.
_STUDY_LIMITS = {c.name: c.type.length for c in _STUDY.columns if isinstance(c.type, String) and c.type.length}
_CHILD_LIMITS = {
    model.__tablename__: tuple(
        (i, col.type.length)
        for i, name in enumerate(columns)
        if isinstance((col := model.__table__.c[name]).type, String) and col.type.length
    )
    for model, columns in _CHILD_COLUMNS.items()
}


def _fit_study(row: dict) -> dict:
    for name, limit in _STUDY_LIMITS.items():
        value = row.get(name)
        if value is not None and len(value) > limit:
            row[name] = value[:limit]
    return row


def _fit_row(row: tuple, limits: tuple[tuple[int, int], ...]) -> tuple:
    for i, limit in limits:
        value = row[i]
        if value is not None and len(value) > limit:
            cells = list(row)
            for j, most in limits:
                if cells[j] is not None and len(cells[j]) > most:
                    cells[j] = cells[j][:most]
            return tuple(cells)
    return row


def _fit_children(children: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    for name, rows in children.items():
        limits = _CHILD_LIMITS[name]
        if limits and rows:
            children[name] = [_fit_row(row, limits) for row in rows]
    return children


def _insert_children(session: Session, recs: list[Prepared]) -> None:
    if not recs:
        return
    conn = session.connection()
    dialect = conn.dialect.name
    for model in m.CHILD_TABLES:
        name = model.__tablename__
        rows = [row for r in recs for row in r.children[name]]
        if rows:
            conn.exec_driver_sql(_insert_sql(model, dialect), rows)


# --------------------------------------------------------------------------------------------
# Placeholders and failures
# --------------------------------------------------------------------------------------------


# After a load that added or changed this many studies, PostgreSQL's statistics are gathered at once.
ANALYZE_AFTER = 500


def update_statistics(session: Session) -> None:
    """PostgreSQL plans with the statistics ANALYZE keeps (the PMID floor of a broad search reads
    them, kb.search); autovacuum gathers them when it runs, and on some servers it is off. After a
    bulk load kb gathers them at once, as PostgreSQL's "Populating a Database" advises: a sample
    of each table, seconds at most. SQLite: nothing to do (FTS5 keeps its own counts)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE"))


def ensure_placeholder(session: Session, pmid: int, *, title: str = "", pub_year: int | None = None) -> bool:
    """Create a placeholder study for a card whose PMID is not stored yet. True if created."""
    if session.get(m.Study, pmid) is not None:
        return False
    session.execute(
        insert(_STUDY).values(
            pmid=pmid, title=title, title_markup=title, pub_year=pub_year, source="card",
            is_placeholder=True, pmid_version=1, record_type="article", evidence_status="ok",
        )
    )
    return True


def record_fetch_failures(session: Session, pmids: Iterable[int], error: str, *, now: dt.datetime | None = None) -> None:
    """Queue PMIDs whose fetch failed for the next run (attempts counted)."""
    now = now or m.utcnow()
    ids = sorted(set(pmids))
    ff = m.FetchFailure
    for chunk in chunked(ids):
        known = set(session.execute(select(ff.pmid).where(ff.pmid.in_(chunk))).scalars())
        if known:
            session.execute(
                update(ff)
                .where(ff.pmid.in_(known))
                .values(error=error, attempts=ff.attempts + 1, last_failed_at=now)
            )
        fresh = [p for p in chunk if p not in known]
        if fresh:
            session.execute(
                insert(ff),
                [{"pmid": p, "error": error, "attempts": 1, "first_failed_at": now, "last_failed_at": now} for p in fresh],
            )


def queued_failures(session: Session) -> list[int]:
    return list(session.execute(select(m.FetchFailure.pmid).order_by(m.FetchFailure.pmid)).scalars())


def count_studies(session: Session) -> int:
    return session.execute(select(func.count()).select_from(_STUDY)).scalar_one()


__all__ = [
    "StoreResult",
    "store_records",
    "mark_deleted",
    "ensure_placeholder",
    "serialise_writers",
    "record_fetch_failures",
    "queued_failures",
    "count_studies",
]
