-- What lets the next writer tell a crashed run from a live one, and the layer's own health.

-- The process that wrote the session: a session left 'running' by a process that no
-- longer exists on this host is marked 'interrupted' when a layer next opens the file.
ALTER TABLE sessions ADD COLUMN pid INTEGER;
ALTER TABLE sessions ADD COLUMN host TEXT;

-- Anything the layer could not record as asked: dropped records (queue full under the
-- drop policy), records that arrived after the writer stopped, truncated field values,
-- failed commits and refused rows. One row per kind per commit in which it happened;
-- `count` is how many since the previous row of that kind.
CREATE TABLE audit_health (
    id INTEGER PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX idx_audit_health_recorded ON audit_health(recorded_at);
CREATE INDEX idx_sessions_host_pid ON sessions(host, pid) WHERE status = 'running';
