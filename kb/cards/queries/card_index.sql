-- card_index: one row per card of the static site (kb cards build).
-- Parameters: status (a card status, or NULL or '' for all studies, drafts included),
-- topic (a topic name, or NULL or '' for every topic). A placeholder study without a card (a PMID
-- kb knows only from `kb topic exclude`) has neither record nor card: it is not a card of the site.
SELECT o.pmid, o.title, o.pub_year, o.study_type, o.evidence_status, o.is_retracted, o.is_deleted,
       c.status AS card_status, c.headline, c.curated_study_type, o.journal
  FROM study_overview o
  LEFT JOIN cards c ON c.pmid = o.pmid
 WHERE NOT (o.is_placeholder AND c.pmid IS NULL)
   AND (NULLIF(CAST(:status AS TEXT), '') IS NULL OR c.status = :status)
   AND (NULLIF(CAST(:topic AS TEXT), '') IS NULL OR o.pmid IN (SELECT ts.pmid FROM topic_studies ts JOIN topics t ON t.id = ts.topic_id
                                     WHERE t.name = :topic AND NOT ts.is_excluded))
 ORDER BY o.pub_year DESC, o.pmid
