//! Which of some rows are already in the store, and whether each is still open: what the
//! OTLP receiver asks before it writes a span a client may be sending again (a retry after
//! a lost answer, or after the receiver before it was killed), so nothing is written twice.

use std::collections::HashMap;

use crate::error::Result;
use crate::read::reader::{Param, Query, Reader, Row, int, text};

/// What the store holds of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Written, not yet ended (`ended_at` is null): a placeholder still to be completed.
    Open,
    /// Written and ended.
    Ended,
}

/// A row found, and for a session the `otel.id_ms` its trace's row ids start with, when
/// it was joined into another session that session's id (`otel.joined_into`), whether it
/// is a conversation's session (`otel.conversation`), and whether it was erased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) presence: Presence,
    pub(crate) id_ms: Option<i64>,
    pub(crate) joined_into: Option<String>,
    pub(crate) conversation: bool,
    /// A session whose content an erasure replaced by tombstones (`input_hash` `erased`).
    pub(crate) erased: bool,
}

const SESSIONS: Query<'static> = Query {
    sqlite: "SELECT id, ended_at IS NULL AS open, \
             json_extract(attributes, '$.\"otel.id_ms\"') AS id_ms, \
             json_extract(attributes, '$.\"otel.joined_into\"') AS joined_into, \
             json_extract(attributes, '$.\"otel.conversation\"') IS NOT NULL AS conversation, \
             input_hash = 'erased' AS erased FROM sessions \
             WHERE id IN (SELECT value FROM json_each(?1))",
    postgres: "SELECT id, ended_at IS NULL AS open, (attributes->>'otel.id_ms')::bigint AS id_ms, \
               attributes->>'otel.joined_into' AS joined_into, \
               attributes ? 'otel.conversation' AS conversation, \
               input_hash = 'erased' AS erased FROM sessions WHERE id IN (SELECT jsonb_array_elements_text($1::text::jsonb))",
};

const STEPS: Query<'static> = Query {
    sqlite: "SELECT id, ended_at IS NULL AS open, NULL AS id_ms, NULL AS joined_into, \
             0 AS conversation, 0 AS erased FROM steps \
             WHERE id IN (SELECT value FROM json_each(?1))",
    postgres: "SELECT id, ended_at IS NULL AS open, NULL::bigint AS id_ms, \
               NULL::text AS joined_into, false AS conversation, false AS erased FROM steps \
               WHERE id IN (SELECT jsonb_array_elements_text($1::text::jsonb))",
};

/// How many ids one query asks about.
const CHUNK: usize = 500;

impl Reader {
    /// The rows among `ids` (sessions and steps) that the store holds, with whether each
    /// is still open. Ids it does not hold are absent from the answer.
    pub(crate) fn presence(&self, ids: &[String]) -> Result<HashMap<String, Found>> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let list = serde_json::Value::from(chunk.to_vec()).to_string();
            for query in [&SESSIONS, &STEPS] {
                self.each_row(query, &[Param::Text(Some(list.clone()))], |row| {
                    let presence = if flag(&row, "open") {
                        Presence::Open
                    } else {
                        Presence::Ended
                    };
                    if let Some(id) = text(&row, "id") {
                        let id_ms = int(&row, "id_ms");
                        let joined_into = text(&row, "joined_into");
                        found.insert(
                            id,
                            Found {
                                presence,
                                id_ms,
                                joined_into,
                                conversation: flag(&row, "conversation"),
                                erased: flag(&row, "erased"),
                            },
                        );
                    }
                    Ok(())
                })?;
            }
        }
        Ok(found)
    }
}

/// A boolean column: SQLite gives 0 or 1, PostgreSQL a boolean.
fn flag(row: &Row, column: &str) -> bool {
    match row.get(column) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}
