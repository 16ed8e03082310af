-- Which session each chain entry belongs to (docs/chain.md, "Evidence bundles"), as in the
-- SQLite schema's migration 0008: the writer gives each entry the session of its row as
-- the transaction wrote it; entries written before get the session their row has now.
ALTER TABLE audit_chain ADD COLUMN session_id text;

UPDATE audit_chain c SET session_id = CASE c.table_name
    WHEN 'sessions' THEN c.row_id
    WHEN 'steps' THEN (SELECT s.session_id FROM steps s WHERE s.id = c.row_id LIMIT 1)
    WHEN 'decisions' THEN (SELECT d.session_id FROM decisions d WHERE d.id = c.row_id LIMIT 1)
END
WHERE c.table_name IN ('sessions', 'steps', 'decisions');
