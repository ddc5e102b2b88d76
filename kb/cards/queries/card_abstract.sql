-- card_abstract: the abstract sections of a study (drafts are made from them).
-- Parameters: pmid. Columns: label, nlm_category, text.
SELECT label, nlm_category, text
  FROM abstract_sections
 WHERE pmid = :pmid
 ORDER BY position
