//! What `verify` accepts as the trail's own lifecycle, not tampering: rows removed by a
//! chained pruning, and rows whose content a chained erasure replaced.
//!
//! Both are `audit_events` rows, chained like every other row, whose detail commits to
//! exactly what they did (docs/chain.md, "Pruning" and "Erasure"):
//! - a `pruned` event states how many rows it removed and the digest of their (table, id)
//!   pairs; `audit_pruned` says which rows those were. The rows listed there for the event
//!   must hash to its digest, or none of them is accepted as pruned (a finding says so);
//! - an `erased` event lists each erased row with the digest of its content before
//!   erasure. Such a row is accepted when its content columns hold exactly the tombstones
//!   and its split leaf, recomputed from its other columns and the listed digest, is its
//!   latest chained leaf: any other change to it is still found.

use std::collections::HashMap;

use serde_json::Value;

use crate::chain::{self, CHAINED_TABLES, Hash};

/// One `pruned` or `erased` event: its chain entry, its id, its kind and its detail.
pub(crate) struct Event {
    pub(crate) seq: u64,
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) detail: String,
}

/// A row listed in `audit_pruned`: its table, its id, and the event that pruned it.
pub(crate) struct PrunedRow {
    pub(crate) table: String,
    pub(crate) row_id: String,
    pub(crate) event_id: i64,
}

/// The erased and pruned rows `verify` accepts, by (table index, row id).
#[derive(Default)]
pub(crate) struct Lifecycle {
    /// Erased rows: the erasing event's entry and the content digest it recorded.
    pub(crate) erased: HashMap<(u8, String), (u64, Hash)>,
    /// Pruned rows whose event's digest holds: the pruning event's entry.
    pub(crate) pruned: HashMap<(u8, String), u64>,
}

fn table_index(name: &str) -> Option<u8> {
    CHAINED_TABLES
        .iter()
        .position(|t| t.name == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// A 32-byte hash from its 64 hex digits, or `None`.
pub(crate) fn hash_of_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A pruning whose rows listed in `audit_pruned` are not the ones it committed to: none of
/// them is accepted as pruned, and `verify` says so.
pub(crate) struct AlteredPruning {
    /// The pruning event's chain entry and id.
    pub(crate) seq: u64,
    pub(crate) event_id: i64,
    /// How many rows `audit_pruned` lists for it, and how many it committed to.
    pub(crate) listed: u64,
    pub(crate) stated: Option<u64>,
}

/// The rows the lifecycle events account for, from the events and the pruned rows; and the
/// prunings whose listed rows do not hash to their digest, which account for none.
pub(crate) fn accepted(
    events: Vec<Event>,
    pruned: Vec<PrunedRow>,
) -> (Lifecycle, Vec<AlteredPruning>) {
    let mut out = Lifecycle::default();
    let mut altered = Vec::new();
    let mut by_event: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for row in pruned {
        by_event
            .entry(row.event_id)
            .or_default()
            .push((row.table, row.row_id));
    }
    for event in events {
        let Ok(detail) = serde_json::from_str::<Value>(&event.detail) else {
            continue;
        };
        match event.kind.as_str() {
            "erased" => {
                for row in detail["rows"].as_array().into_iter().flatten() {
                    let (Some(table), Some(id), Some(content)) = (
                        row[0].as_str().and_then(table_index),
                        row[1].as_str(),
                        row[2].as_str().and_then(hash_of_hex),
                    ) else {
                        continue;
                    };
                    out.erased
                        .insert((table, id.to_owned()), (event.seq, content));
                }
            }
            "pruned" => {
                let mut rows = by_event.remove(&event.id).unwrap_or_default();
                let stated = detail["rows"].as_u64();
                let digest = detail["rows_digest"].as_str().and_then(hash_of_hex);
                let count = rows.len() as u64;
                if stated != Some(count) || digest != Some(chain::pruned_digest(&mut rows)) {
                    altered.push(AlteredPruning {
                        seq: event.seq,
                        event_id: event.id,
                        listed: count,
                        stated,
                    });
                    continue;
                }
                for (table, id) in rows {
                    if let Some(index) = table_index(&table) {
                        out.pruned.insert((index, id), event.seq);
                    }
                }
            }
            _ => {}
        }
    }
    (out, altered)
}

/// For a row a chained erasure lists: that event's entry, and — when its content columns
/// hold the tombstones — the leaf it must have had before it was erased.
pub(crate) fn erased_leaf(
    lifecycle: &Lifecycle,
    index: u8,
    id: &str,
    cells: &[chain::Cell<'_>],
) -> Option<(u64, Option<Hash>)> {
    let (seq, content) = lifecycle.erased.get(&(index, id.to_owned()))?;
    let table = CHAINED_TABLES.get(usize::from(index))?;
    let leaf =
        chain::is_tombstoned(table, cells).then(|| chain::split_leaf_with(table, cells, content));
    Some((*seq, leaf))
}
