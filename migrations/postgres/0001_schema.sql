-- The audit trail in PostgreSQL: ADR-002's tables with native types, the columns the
-- SQLite schema gained in its migrations 0002-0005, and the writer's own bookkeeping.
--
-- Keys are chosen so that the three record tables can later be distributed by session
-- with Citus (see docs/postgres.md): `sessions` by `id`, `steps` and `decisions` by
-- `session_id`, every primary and foreign key including it. `decisions.session_id` is
-- the one column SQLite does not have; the writer fills it from the decision's step.
-- Ids are text, not uuid: a session may carry the `id` its caller gave it.

CREATE TABLE sessions (
    id text PRIMARY KEY,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    profile text NOT NULL,
    input_hash text NOT NULL,
    status text NOT NULL,
    input text,
    attributes jsonb NOT NULL DEFAULT '{}',
    pid bigint,
    host text
);

CREATE TABLE steps (
    session_id text NOT NULL REFERENCES sessions (id),
    id text NOT NULL,
    module text NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    input_summary text,
    output_summary text,
    confidence double precision,
    tokens_used bigint,
    error text,
    parent_step_id text,
    attributes jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, id),
    FOREIGN KEY (session_id, parent_step_id) REFERENCES steps (session_id, id)
);

CREATE TABLE decisions (
    session_id text NOT NULL,
    id text NOT NULL,
    step_id text NOT NULL,
    decision_type text NOT NULL,
    options_considered text,
    chosen_option text,
    rationale text,
    decided_at timestamptz,
    attributes jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, id),
    FOREIGN KEY (session_id, step_id) REFERENCES steps (session_id, id)
);

-- ADR-002's indexes.
CREATE INDEX idx_sessions_started ON sessions (started_at);
CREATE INDEX idx_steps_module ON steps (module);
CREATE INDEX idx_steps_confidence ON steps (confidence);
-- Lookups the layer and the CLI make.
CREATE INDEX idx_steps_session ON steps (session_id, started_at);
CREATE INDEX idx_steps_id ON steps (id);
CREATE INDEX idx_decisions_step ON decisions (step_id);
CREATE INDEX idx_decisions_id ON decisions (id);
CREATE INDEX idx_sessions_status ON sessions (status);
CREATE INDEX idx_sessions_host_pid ON sessions (host, pid) WHERE status = 'running';

CREATE TABLE audit_health (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at timestamptz NOT NULL,
    pid bigint NOT NULL,
    host text NOT NULL,
    kind text NOT NULL,
    count bigint NOT NULL,
    detail text
);
CREATE INDEX idx_audit_health_recorded ON audit_health (recorded_at);

-- The tamper-evident chain, as in SQLite (docs/chain.md): the database's identity, one
-- entry per chained row version in commit order (`seq` dense from 1), and what the audit
-- trail itself did to the store.
CREATE TABLE audit_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO audit_meta (key, value)
    VALUES ('database_id', replace(gen_random_uuid()::text, '-', '')), ('chain_format', '1');

CREATE TABLE audit_chain (
    seq bigint PRIMARY KEY,
    table_name text NOT NULL,
    row_id text NOT NULL,
    leaf_hash bytea NOT NULL,
    chain_hash bytea NOT NULL,
    committed_at timestamptz NOT NULL
);

CREATE TABLE audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at timestamptz NOT NULL,
    kind text NOT NULL,
    detail text
);

-- Batches committed, per writer: a batch whose COMMIT outcome the writer could not learn
-- (the connection dropped during it) is sent again, and finds itself here if it landed.
CREATE TABLE audit_batches (
    writer_id text NOT NULL,
    batch bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (writer_id, batch)
);
