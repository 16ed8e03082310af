-- The core tables of ADR-002 ("SQLite for Audit Trail"), exactly as the ADR writes them.

-- Reasoning sessions
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    profile TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    status TEXT NOT NULL
);

-- Individual reasoning steps
CREATE TABLE steps (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    module TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    input_summary TEXT,
    output_summary TEXT,
    confidence REAL,
    tokens_used INTEGER,
    error TEXT
);

-- Module decisions and branching
CREATE TABLE decisions (
    id TEXT PRIMARY KEY,
    step_id TEXT NOT NULL REFERENCES steps(id),
    decision_type TEXT NOT NULL,
    options_considered TEXT,
    chosen_option TEXT,
    rationale TEXT
);

-- Indexes for common queries
CREATE INDEX idx_sessions_started ON sessions(started_at);
CREATE INDEX idx_steps_module ON steps(module);
CREATE INDEX idx_steps_confidence ON steps(confidence);
