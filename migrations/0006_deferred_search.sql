-- The full-text index is no longer kept by a trigger on every insert: that made every write
-- with text about five times slower (issue #9). The writer indexes new rows in batches when
-- it is idle (or when many are waiting), and `search_index_state` records up to which rowid
-- each table is indexed. `reasonkit-audit search` also searches the rows past that mark, so
-- a row is found as soon as it is committed. An update or a delete of a row already indexed
-- still keeps the index in step through the triggers below (rare: rows open across batches).
-- Every row is indexed, text or not (a row without text is an empty document), so that the
-- index is exactly the one FTS5 'rebuild' makes and passes its 'integrity-check'.

CREATE TABLE search_index_state (
    name TEXT PRIMARY KEY,
    indexed_rowid INTEGER NOT NULL
);
-- The triggers indexed everything until now, but not always right (see steps_fts_update):
-- rebuild the index from the rows once, and start the marks at the top.
INSERT INTO steps_fts (steps_fts) VALUES ('rebuild');
INSERT INTO decisions_fts (decisions_fts) VALUES ('rebuild');
INSERT INTO search_index_state (name, indexed_rowid)
VALUES ('steps', coalesce((SELECT max(rowid) FROM steps), 0)),
       ('decisions', coalesce((SELECT max(rowid) FROM decisions), 0));

DROP TRIGGER steps_fts_insert;
DROP TRIGGER steps_fts_delete;
DROP TRIGGER steps_fts_update_old;
DROP TRIGGER steps_fts_update_new;
DROP TRIGGER decisions_fts_insert;
DROP TRIGGER decisions_fts_delete;
DROP TRIGGER decisions_fts_update_old;
DROP TRIGGER decisions_fts_update_new;

-- One trigger for both halves of an update, so that they run in this order: SQLite fires
-- separate triggers newest first, which ran 0004's insert before its delete and left the
-- index out of step with the rows (rebuilt below).
CREATE TRIGGER steps_fts_update AFTER UPDATE OF input_summary, output_summary, error ON steps
WHEN old.rowid <= (SELECT indexed_rowid FROM search_index_state WHERE name = 'steps')
BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, input_summary, output_summary, error)
    SELECT 'delete', old.rowid, old.input_summary, old.output_summary, old.error;
    INSERT INTO steps_fts (rowid, input_summary, output_summary, error)
    SELECT new.rowid, new.input_summary, new.output_summary, new.error;
END;
-- A delete takes an indexed row out of the index, and never leaves the mark above every
-- remaining rowid: SQLite gives the next row max(rowid) + 1, which would then sit below the
-- mark, never to be indexed. (One trigger, so that the two happen in this order.)
CREATE TRIGGER steps_search_delete AFTER DELETE ON steps
BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, input_summary, output_summary, error)
    SELECT 'delete', old.rowid, old.input_summary, old.output_summary, old.error
    WHERE old.rowid <= (SELECT indexed_rowid FROM search_index_state WHERE name = 'steps');
    UPDATE search_index_state SET indexed_rowid = (SELECT coalesce(max(rowid), 0) FROM steps)
    WHERE name = 'steps' AND indexed_rowid > (SELECT coalesce(max(rowid), 0) FROM steps);
END;

CREATE TRIGGER decisions_fts_update AFTER UPDATE OF options_considered, chosen_option, rationale ON decisions
WHEN old.rowid <= (SELECT indexed_rowid FROM search_index_state WHERE name = 'decisions')
BEGIN
    INSERT INTO decisions_fts (decisions_fts, rowid, options_considered, chosen_option, rationale)
    SELECT 'delete', old.rowid, old.options_considered, old.chosen_option, old.rationale;
    INSERT INTO decisions_fts (rowid, options_considered, chosen_option, rationale)
    SELECT new.rowid, new.options_considered, new.chosen_option, new.rationale;
END;
CREATE TRIGGER decisions_search_delete AFTER DELETE ON decisions
BEGIN
    INSERT INTO decisions_fts (decisions_fts, rowid, options_considered, chosen_option, rationale)
    SELECT 'delete', old.rowid, old.options_considered, old.chosen_option, old.rationale
    WHERE old.rowid <= (SELECT indexed_rowid FROM search_index_state WHERE name = 'decisions');
    UPDATE search_index_state SET indexed_rowid = (SELECT coalesce(max(rowid), 0) FROM decisions)
    WHERE name = 'decisions' AND indexed_rowid > (SELECT coalesce(max(rowid), 0) FROM decisions);
END;
