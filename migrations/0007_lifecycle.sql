-- The trail's lifecycle (docs/chain.md, "Pruning" and "Erasure").
--
-- A pruning deletes old closed sessions with their steps and decisions, after a chained
-- `audit_events` row (kind 'pruned') that commits to the (table, id) pairs it removes.
-- This table says which rows each pruning removed, so that `verify` can tell them from
-- rows deleted behind the trail's back: the rows listed for a pruning must hash to the
-- digest its event recorded. Their chain entries stay, so the chain and every checkpoint
-- still verify.
CREATE TABLE audit_pruned (
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    event_id INTEGER NOT NULL REFERENCES audit_events (id),
    PRIMARY KEY (table_name, row_id)
) WITHOUT ROWID;
