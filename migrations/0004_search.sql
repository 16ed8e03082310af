-- Full-text search (FTS5) over what people look for in a reasoning trail: step summaries
-- and errors, decision options, choices and rationales. External-content tables: the text
-- stays in `steps` and `decisions`; triggers keep the indexes in step with every write.
-- Rows with none of these texts are not indexed at all, so plain steps cost nothing here.

CREATE VIRTUAL TABLE steps_fts USING fts5(
    input_summary, output_summary, error,
    content = 'steps', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE decisions_fts USING fts5(
    options_considered, chosen_option, rationale,
    content = 'decisions', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER steps_fts_insert AFTER INSERT ON steps
WHEN new.input_summary IS NOT NULL OR new.output_summary IS NOT NULL OR new.error IS NOT NULL
BEGIN
    INSERT INTO steps_fts (rowid, input_summary, output_summary, error)
    VALUES (new.rowid, new.input_summary, new.output_summary, new.error);
END;
CREATE TRIGGER steps_fts_delete AFTER DELETE ON steps
WHEN old.input_summary IS NOT NULL OR old.output_summary IS NOT NULL OR old.error IS NOT NULL
BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, input_summary, output_summary, error)
    VALUES ('delete', old.rowid, old.input_summary, old.output_summary, old.error);
END;
CREATE TRIGGER steps_fts_update_old AFTER UPDATE OF input_summary, output_summary, error ON steps
WHEN old.input_summary IS NOT NULL OR old.output_summary IS NOT NULL OR old.error IS NOT NULL
BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, input_summary, output_summary, error)
    VALUES ('delete', old.rowid, old.input_summary, old.output_summary, old.error);
END;
CREATE TRIGGER steps_fts_update_new AFTER UPDATE OF input_summary, output_summary, error ON steps
WHEN new.input_summary IS NOT NULL OR new.output_summary IS NOT NULL OR new.error IS NOT NULL
BEGIN
    INSERT INTO steps_fts (rowid, input_summary, output_summary, error)
    VALUES (new.rowid, new.input_summary, new.output_summary, new.error);
END;

CREATE TRIGGER decisions_fts_insert AFTER INSERT ON decisions
WHEN new.options_considered IS NOT NULL OR new.chosen_option IS NOT NULL OR new.rationale IS NOT NULL
BEGIN
    INSERT INTO decisions_fts (rowid, options_considered, chosen_option, rationale)
    VALUES (new.rowid, new.options_considered, new.chosen_option, new.rationale);
END;
CREATE TRIGGER decisions_fts_delete AFTER DELETE ON decisions
WHEN old.options_considered IS NOT NULL OR old.chosen_option IS NOT NULL OR old.rationale IS NOT NULL
BEGIN
    INSERT INTO decisions_fts (decisions_fts, rowid, options_considered, chosen_option, rationale)
    VALUES ('delete', old.rowid, old.options_considered, old.chosen_option, old.rationale);
END;
CREATE TRIGGER decisions_fts_update_old AFTER UPDATE OF options_considered, chosen_option, rationale ON decisions
WHEN old.options_considered IS NOT NULL OR old.chosen_option IS NOT NULL OR old.rationale IS NOT NULL
BEGIN
    INSERT INTO decisions_fts (decisions_fts, rowid, options_considered, chosen_option, rationale)
    VALUES ('delete', old.rowid, old.options_considered, old.chosen_option, old.rationale);
END;
CREATE TRIGGER decisions_fts_update_new AFTER UPDATE OF options_considered, chosen_option, rationale ON decisions
WHEN new.options_considered IS NOT NULL OR new.chosen_option IS NOT NULL OR new.rationale IS NOT NULL
BEGIN
    INSERT INTO decisions_fts (rowid, options_considered, chosen_option, rationale)
    VALUES (new.rowid, new.options_considered, new.chosen_option, new.rationale);
END;

-- Rows written before this migration.
INSERT INTO steps_fts (steps_fts) VALUES ('rebuild');
INSERT INTO decisions_fts (decisions_fts) VALUES ('rebuild');
