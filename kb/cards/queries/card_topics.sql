-- card_topics: topics of every study (kb cards build filters by topic).
-- Parameters: none. Columns: pmid, topic.
SELECT ts.pmid, t.name AS topic
  FROM topic_studies ts JOIN topics t ON t.id = ts.topic_id
 WHERE NOT ts.is_excluded
 ORDER BY ts.pmid, t.name
