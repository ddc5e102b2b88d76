-- card_items: the findings, limitations and notes of a card, in card order.
-- Parameters: pmid. Columns: kind (finding, limitation, note), audience, position, label, text, source.
SELECT kind, audience, position, label, text, source
  FROM card_items
 WHERE pmid = :pmid
 ORDER BY kind, audience, position
