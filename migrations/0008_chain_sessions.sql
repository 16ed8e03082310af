-- Which session each chain entry belongs to (docs/chain.md, "Evidence bundles").
--
-- An evidence bundle proves that it holds *every* entry of a session: the checkpoint it
-- carries commits to a tree of per-session heads (how many entries each session has, and
-- its last), and each entry's session is part of the Merkle leaf the bundle proves. So the
-- session must be written with the entry, by the writer, in the transaction that wrote the
-- row: the writer fills it from the row as just written (a step's `session_id`, a
-- decision's step's). Health rows and events belong to no session (NULL).
--
-- Entries written before this migration get the session their row has now, which is the
-- session it had when chained for every row except the steps of a trace joined into
-- another over OTLP (they name the session they were moved to). Rows pruned before it
-- have none.
ALTER TABLE audit_chain ADD COLUMN session_id TEXT;

UPDATE audit_chain SET session_id = CASE table_name
    WHEN 'sessions' THEN row_id
    WHEN 'steps' THEN (SELECT session_id FROM steps WHERE steps.id = audit_chain.row_id)
    WHEN 'decisions' THEN (SELECT s.session_id FROM decisions d JOIN steps s ON s.id = d.step_id
                           WHERE d.id = audit_chain.row_id)
END
WHERE table_name IN ('sessions', 'steps', 'decisions');
