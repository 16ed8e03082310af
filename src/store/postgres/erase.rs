//! Erasure in the PostgreSQL store: [`crate::erase()`]'s erasure, in one transaction under
//! the chain lock.
//!
//! PostgreSQL keeps the old versions of the updated rows until they are vacuumed, and its
//! WAL archive and backups keep them as long as they are kept: the content is gone from
//! every query and from `verify`'s view at once, but from the disk only after `VACUUM`
//! (`VACUUM FULL` to rewrite the tables) and the rotation of archives made before.

use super::connection::Writing;
use super::images;
use super::statements::{PgResult, append, append_event, lock_chain};
use crate::chain::{self, Leaf, TableSpec};
use crate::lifecycle::erase::{Erase, EraseReport, Selector, closed_sessions};

/// Each table with content and its image list, in erasure order.
const TABLES: [(&TableSpec, &str); 3] = [
    (&chain::SESSIONS, images::SESSIONS),
    (&chain::STEPS, images::STEPS),
    (&chain::DECISIONS, images::DECISIONS),
];

/// The tombstones as an UPDATE's SET list, in PostgreSQL's types.
fn tombstone_set(table: &TableSpec) -> String {
    table
        .content
        .iter()
        .map(|&i| {
            let column = table.columns[i];
            let value = match table.tombstone(i) {
                chain::Cell::Text(t) if column == "attributes" => {
                    format!("'{}'::jsonb", String::from_utf8_lossy(t))
                }
                chain::Cell::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
                _ => "NULL".to_owned(),
            };
            format!("{column} = {value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Erases in one transaction; `Ok(Err(why))` when it refuses (nothing changed).
pub(crate) fn erase_in(
    connection: &mut Writing,
    erase: &Erase,
) -> PgResult<Result<EraseReport, String>> {
    let mut tx = connection.begin()?;
    let matching: Vec<(String, String)> = match &erase.selector {
        Selector::Session(id) => tx.query(
            "SELECT id, status FROM sessions WHERE id = $1 FOR UPDATE",
            &[id],
        )?,
        Selector::Attribute { name, value } => tx.query(
            "SELECT id, status FROM sessions WHERE attributes ->> $1 = $2 \
             ORDER BY started_at, id FOR UPDATE",
            &[name, value],
        )?,
    }
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<PgResult<_>>()?;
    let sessions = match closed_sessions(matching) {
        Ok(sessions) => sessions,
        Err(why) => return Ok(Err(why)),
    };
    // The chain lock first: the rows' latest entries read next stay their latest.
    lock_chain(&mut tx)?;
    let mut reseal: Vec<Leaf> = Vec::new();
    let mut listed = Vec::new();
    for (table, image) in TABLES {
        let key = if table.name == "sessions" {
            "id"
        } else {
            "session_id"
        };
        let rows = tx.query(
            &format!(
                "SELECT {image} FROM {} AS t WHERE t.{key} = ANY($1) ORDER BY t.id",
                table.name
            ),
            &[&sessions],
        )?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| chain::row_id(images::cells(r)[0]))
            .collect();
        let latest: std::collections::HashMap<String, Vec<u8>> = tx
            .query(
                "SELECT DISTINCT ON (row_id) row_id, leaf_hash FROM audit_chain \
                 WHERE table_name = $1 AND row_id = ANY($2) ORDER BY row_id, seq DESC",
                &[&table.name, &ids],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<PgResult<_>>()?;
        for (row, id) in rows.iter().zip(ids) {
            let cells = images::cells(row);
            let split = chain::split_leaf(table, &cells);
            match latest.get(&id) {
                Some(l) if l[..] == split[..] => {}
                Some(l) if l[..] == chain::leaf(table.name, cells.iter().copied())[..] => {
                    reseal.push(Leaf::of(table, id.clone(), cells.iter().copied()));
                }
                _ => {
                    return Ok(Err(format!(
                        "{} row {id} does not match its chained version; erasing it would \
                         hide that (run `reasonkit-audit verify`; nothing erased)",
                        table.name
                    )));
                }
            }
            listed.push(serde_json::json!([
                table.name,
                id,
                chain::hex(&chain::content_digest(table, &cells))
            ]));
        }
    }
    let mut report = EraseReport {
        sessions: sessions.len() as u64,
        rows: listed.len() as u64,
        resealed: reseal.len() as u64,
        ..EraseReport::default()
    };
    append(&mut tx, &reseal)?;
    let detail = serde_json::json!({
        "reason": erase.reason,
        "selector": erase.selector_text(),
        "sessions": sessions.len(),
        "rows": listed,
    })
    .to_string();
    report.event_seq = append_event(&mut tx, "erased", &detail)?.1;
    super::search::forget_sessions(&mut tx, &sessions)?;
    for (table, _) in TABLES {
        let key = if table.name == "sessions" {
            "id"
        } else {
            "session_id"
        };
        tx.execute(
            &format!(
                "UPDATE {} SET {} WHERE {key} = ANY($1)",
                table.name,
                tombstone_set(table)
            ),
            &[&sessions],
        )?;
    }
    tx.commit()?;
    report.session_ids = sessions;
    Ok(Ok(report))
}
