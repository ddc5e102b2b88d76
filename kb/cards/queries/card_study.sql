-- card_study: the study behind a card, with its card row if it has one.
-- Parameters: pmid. One row, or none when the PMID is not stored.
SELECT s.pmid, s.title, s.title_markup, s.journal_title, s.journal_iso_abbrev, s.volume, s.issue,
       s.pages, s.pub_year, s.doi, s.pmcid, s.content_hash, s.evidence_status, s.is_retracted,
       s.is_deleted, s.is_placeholder, o.study_type,
       c.pmid AS card_pmid, c.headline, c.quick_summary, c.what_research_found, c.who_was_studied,
       c.how_long, c.what_they_took, c.key_findings, c.study_design AS card_study_design,
       c.dosage_administration, c.results_efficacy, c.technical_limitations, c.clinical_relevance, c.curated_study_type,
       c.reference_title, c.reference_source, c.reference_year, c.extracted_fields, c.generated_fields,
       c.checks, c.status,
       c.curator, c.record_content_hash, c.needs_review, c.review_reason, c.reviewed_by, c.reviewed_at,
       c.revision, c.updated_at
  FROM studies s
  JOIN study_overview o ON o.pmid = s.pmid
  LEFT JOIN cards c ON c.pmid = s.pmid
 WHERE s.pmid = :pmid
