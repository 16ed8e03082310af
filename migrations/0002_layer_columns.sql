-- What the tracing layer records beyond ADR-002's core columns.

-- The raw session input, written only when the builder opts in with store_inputs(true).
ALTER TABLE sessions ADD COLUMN input TEXT;
-- Every field of a span that has no column of its own, as a JSON object.
ALTER TABLE sessions ADD COLUMN attributes TEXT;

-- The enclosing step of a nested step; NULL for a top-level step.
ALTER TABLE steps ADD COLUMN parent_step_id TEXT REFERENCES steps(id);
ALTER TABLE steps ADD COLUMN attributes TEXT;

-- When the decision was made: the close of a `decision` span, or the time of a
-- `decision` event. NULL while a decision span is still open.
ALTER TABLE decisions ADD COLUMN decided_at TEXT;
ALTER TABLE decisions ADD COLUMN attributes TEXT;

-- Lookups by parent: a session's steps, a step's children, a step's decisions.
CREATE INDEX idx_steps_session ON steps(session_id, started_at);
CREATE INDEX idx_steps_parent ON steps(parent_step_id);
CREATE INDEX idx_decisions_step ON decisions(step_id);
CREATE INDEX idx_sessions_status ON sessions(status);
