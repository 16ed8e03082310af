//! Finding the one session whose id starts with what the user typed: the session commands
//! take a unique beginning of an id, as git takes one of a commit's.

use reasonkit_audit::read::Reader;

use crate::Failure;
use crate::db::{Db, Param, Query};

/// Finds the one session whose id starts with `prefix`.
pub fn resolve_session(db: &Db, prefix: &str) -> Result<Option<String>, Failure> {
    let query = Query {
        sqlite: "SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1 \
                 ORDER BY started_at DESC LIMIT 6",
        postgres: "SELECT id FROM sessions WHERE left(id, length($1::text)) = $1::text \
                   ORDER BY started_at DESC LIMIT 6",
    };
    let rows = db.rows(&query, &[Param::Text(Some(prefix.to_owned()))])?;
    let ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect();
    one_of(prefix, ids)
}

/// Like [`resolve_session`], through the library's read API. An id given whole is taken
/// as it is, even when it is also the beginning of longer ids.
pub fn resolve_in(reader: &Reader, prefix: &str) -> Result<Option<String>, Failure> {
    let ids = reader.ids_starting_with(prefix, 6)?;
    if ids.iter().any(|id| id == prefix) {
        return Ok(Some(prefix.to_owned()));
    }
    one_of(prefix, ids)
}

fn one_of(prefix: &str, ids: Vec<String>) -> Result<Option<String>, Failure> {
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.into_iter().next()),
        _ => Err(format!(
            "session id prefix '{prefix}' is ambiguous ({}{}); give more characters",
            ids[..ids.len().min(5)].join(", "),
            if ids.len() > 5 { ", …" } else { "" }
        )
        .into()),
    }
}
