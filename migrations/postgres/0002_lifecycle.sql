-- The trail's lifecycle (docs/chain.md, "Pruning" and "Erasure"), as in the SQLite
-- schema's migration 0007: which rows each chained pruning removed, for `verify` to tell
-- them from rows deleted behind the trail's back.
CREATE TABLE audit_pruned (
    table_name text NOT NULL,
    row_id text NOT NULL,
    event_id bigint NOT NULL REFERENCES audit_events (id),
    PRIMARY KEY (table_name, row_id)
);
