-- The tamper-evident chain (docs/chain.md): every row version the writer commits is a leaf
-- of one append-only hash chain. Hashes are computed by the writer, in the transaction
-- that writes the rows they cover; rows already in the file when this migration runs are
-- sealed into the chain by it (see `audit_events`, kind 'sealed').

-- The database's identity, written once: the chain's genesis value is derived from
-- `database_id`, and checkpoints name it in their origin line.
CREATE TABLE audit_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO audit_meta (key, value) VALUES ('database_id', lower(hex(randomblob(16))));
INSERT INTO audit_meta (key, value) VALUES ('chain_format', '1');

-- One row per chained row version, in commit order: `seq` is dense from 1.
CREATE TABLE audit_chain (
    seq INTEGER PRIMARY KEY,
    -- The table and the id of the row this entry covers.
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    -- SHA-256 of the row's canonical encoding, and the link: SHA-256 over the previous
    -- link, this seq and this leaf. 32 bytes each.
    leaf_hash BLOB NOT NULL,
    chain_hash BLOB NOT NULL,
    committed_at TEXT NOT NULL
);

-- What the audit trail itself did to the file: sealing rows that predate the chain (and,
-- later, pruning and erasure). Chained like every other row.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT
);
