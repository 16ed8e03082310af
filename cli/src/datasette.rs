//! `datasette-metadata`: a Datasette metadata file — title, a description of every table
//! and column, and ADR-002's query examples as canned queries.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to this file instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// ADR-002's first query example, verbatim.
pub const LOW_CONFIDENCE_SESSIONS: &str =
    "SELECT DISTINCT s.id, s.started_at, MIN(st.confidence) as min_conf
FROM sessions s
JOIN steps st ON st.session_id = s.id
GROUP BY s.id
HAVING MIN(st.confidence) < 0.7;";

/// ADR-002's second query example, verbatim.
pub const MODULE_USAGE: &str = "SELECT module, COUNT(*) as uses, AVG(confidence) as avg_conf
FROM steps
WHERE started_at > datetime('now', '-7 days')
GROUP BY module
ORDER BY uses DESC;";

/// ADR-002's third query example, with its session id made a parameter.
pub const REPLAY: &str = "SELECT * FROM steps
WHERE session_id = :session_id
ORDER BY started_at;";

pub fn metadata(database: &str) -> Value {
    json!({
        "title": "ReasonKit audit trail",
        "description": "Every reasoning session, step and decision recorded by reasonkit-audit (ADR-002: SQLite for audit trail).",
        "databases": {
            database: {
                "description": "Sessions contain steps; steps contain nested steps and decisions. Times are UTC text (YYYY-MM-DD HH:MM:SS.ffffff).",
                "tables": {
                    "sessions": {
                        "description": "One row per reasoning session (a span named `session`).",
                        "columns": {
                            "id": "The session's `id` field, else a UUIDv7.",
                            "started_at": "When the session span was created (UTC).",
                            "ended_at": "When it closed (UTC); NULL while running or if interrupted.",
                            "profile": "The `profile` field, else 'default' ('implicit' for a session made up for a lone step).",
                            "input_hash": "Lowercase hex SHA-256 of the `input` field (or an explicit `input_hash`).",
                            "status": "running, completed, failed, interrupted, or the `status` field recorded by the application.",
                            "input": "The raw input, only when the layer was built with store_inputs(true).",
                            "attributes": "Every other field of the session span, as JSON.",
                            "pid": "The process that wrote the session.",
                            "host": "The host that process ran on."
                        }
                    },
                    "steps": {
                        "description": "One row per reasoning step (a span named `step`).",
                        "fts_table": "steps_fts",
                        "fts_pk": "rowid",
                        "columns": {
                            "id": "A UUIDv7.",
                            "session_id": "The session the step belongs to.",
                            "module": "The reasoning module (`module` field, else the span's target).",
                            "started_at": "When the step started (UTC).",
                            "ended_at": "When it ended (UTC); NULL while open.",
                            "input_summary": "What the step was given.",
                            "output_summary": "What it produced (or its #[instrument(ret)] value).",
                            "confidence": "The step's confidence.",
                            "tokens_used": "Tokens used (or gen_ai.usage input + output tokens).",
                            "error": "The error, if the step failed.",
                            "parent_step_id": "The enclosing step of a nested step.",
                            "attributes": "Every other field of the step span, as JSON."
                        }
                    },
                    "decisions": {
                        "description": "One row per decision (a span or event named `decision`).",
                        "fts_table": "decisions_fts",
                        "fts_pk": "rowid",
                        "columns": {
                            "id": "A UUIDv7.",
                            "step_id": "The step the decision was made in.",
                            "decision_type": "What was decided ('unspecified' when not given).",
                            "options_considered": "The options, as JSON.",
                            "chosen_option": "The option chosen.",
                            "rationale": "Why.",
                            "decided_at": "When the decision was made (UTC).",
                            "attributes": "Every other field, as JSON."
                        }
                    },
                    "audit_health": {
                        "description": "What the audit layer itself could not record as asked: dropped records, truncated fields, write errors.",
                        "columns": {
                            "recorded_at": "When (UTC).",
                            "pid": "The writing process.",
                            "host": "Its host.",
                            "kind": "dropped_records, lost_after_stop, truncated_fields, write_errors, closes_without_open, unwritten_at_shutdown.",
                            "count": "How many since the previous row of this kind.",
                            "detail": "The latest error message, for write_errors."
                        }
                    },
                    "audit_chain": {
                        "description": "The tamper-evident chain (docs/chain.md): one entry per row version committed, in order. `reasonkit-audit verify` recomputes it.",
                        "columns": {
                            "seq": "The entry's position, dense from 1.",
                            "table_name": "The table of the row covered.",
                            "row_id": "The id of the row covered.",
                            "leaf_hash": "SHA-256 of the row's canonical encoding.",
                            "chain_hash": "SHA-256 over the previous chain_hash, seq and leaf_hash.",
                            "committed_at": "When the entry was committed (UTC); not in the chain's links, proven in evidence bundles.",
                            "session_id": "The session of the row as this entry's transaction wrote it (NULL for health rows and events): what an evidence bundle counts."
                        }
                    },
                    "audit_meta": {
                        "description": "The database's identity: database_id, from which the chain starts and which checkpoints name.",
                        "columns": {
                            "key": "database_id or chain_format.",
                            "value": "Its value."
                        }
                    },
                    "audit_events": {
                        "description": "What the audit trail did to the file itself, chained like every row: 'sealed' (rows from before the chain, sealed by the migration).",
                        "columns": {
                            "id": "The event's number.",
                            "recorded_at": "When (UTC).",
                            "kind": "What happened.",
                            "detail": "The details, as JSON."
                        }
                    },
                    "search_index_state": {
                        "description": "How far the full-text index (steps_fts, decisions_fts) has caught up: the writer indexes new rows in batches; rows past the mark are found by `reasonkit-audit search`, not yet by Datasette's search.",
                        "columns": {
                            "name": "steps or decisions.",
                            "indexed_rowid": "Rows up to this rowid are in the index."
                        }
                    },
                    "schema_migrations": {
                        "description": "The schema migrations applied to this file, in order.",
                        "columns": {
                            "version": "The schema version after the migration.",
                            "name": "The migration file.",
                            "applied_at": "When it was applied (UTC)."
                        }
                    }
                },
                "queries": {
                    "low_confidence_sessions": {
                        "title": "Sessions with low-confidence steps",
                        "description": "ADR-002: sessions whose weakest step has confidence below 0.7.",
                        "sql": LOW_CONFIDENCE_SESSIONS
                    },
                    "module_usage": {
                        "title": "Module usage statistics (last 7 days)",
                        "description": "ADR-002: uses and average confidence per module.",
                        "sql": MODULE_USAGE
                    },
                    "replay": {
                        "title": "Reasoning chain replay",
                        "description": "ADR-002: one session's steps in execution order.",
                        "sql": REPLAY
                    }
                }
            }
        }
    })
}

/// Datasette names a database after its file name without the extension.
pub fn database_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "audit".to_owned(), |s| s.to_string_lossy().into_owned())
}

pub fn run(path: &Path, args: &Args) -> Result<Outcome, Failure> {
    let text = serde_json::to_string_pretty(&metadata(&database_name(path)))? + "\n";
    match &args.output {
        Some(file) => std::fs::write(file, text)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?,
        None => print!("{text}"),
    }
    Ok(Outcome::Done)
}
