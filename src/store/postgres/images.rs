//! A row as the chain hashes it, read back from PostgreSQL.
//!
//! The chain's leaf encoding (docs/chain.md) is defined over SQLite's values: text,
//! integers, reals. Each PostgreSQL table is therefore read through one list of
//! expressions, in the chain's column order, that gives those values: `timestamptz` as
//! the same `YYYY-MM-DD HH:MM:SS.ffffff` UTC text the SQLite store holds, `jsonb` as its
//! text, `bigint` and `double precision` as themselves. The writer computes every leaf
//! from what its statements RETURN through these lists, and `verify` reads the tables
//! through the same lists, so both hash exactly what the store holds.

use postgres::Row;
use postgres::types::Type;

use crate::chain::{self, Cell, Leaf, TableSpec};

use crate::store::sql::pg_utc;

/// The expressions that read each table's row image, in the chain's column order, over
/// the table aliased `t`.
pub(crate) const SESSIONS: &str = concat!(
    "t.id, ",
    pg_utc!("t.started_at"),
    ", ",
    pg_utc!("t.ended_at"),
    ", t.profile, t.input_hash, t.status, t.input, t.attributes::text, t.pid, t.host"
);
pub(crate) const STEPS: &str = concat!(
    "t.id, t.session_id, t.module, ",
    pg_utc!("t.started_at"),
    ", ",
    pg_utc!("t.ended_at"),
    ", t.input_summary, t.output_summary, t.confidence, t.tokens_used, t.error, \
     t.parent_step_id, t.attributes::text"
);
pub(crate) const DECISIONS: &str = concat!(
    "t.id, t.step_id, t.decision_type, t.options_considered, t.chosen_option, t.rationale, ",
    pg_utc!("t.decided_at"),
    ", t.attributes::text"
);
pub(crate) const AUDIT_HEALTH: &str = concat!(
    "t.id, ",
    pg_utc!("t.recorded_at"),
    ", t.pid, t.host, t.kind, t.count, t.detail"
);

pub(crate) const AUDIT_EVENTS: &str =
    concat!("t.id, ", pg_utc!("t.recorded_at"), ", t.kind, t.detail");

/// The image list of each chained table, in [`chain::CHAINED_TABLES`] order.
pub(crate) const CHAINED: [(&TableSpec, &str); 5] = [
    (&chain::SESSIONS, SESSIONS),
    (&chain::STEPS, STEPS),
    (&chain::DECISIONS, DECISIONS),
    (&chain::AUDIT_HEALTH, AUDIT_HEALTH),
    (&chain::AUDIT_EVENTS, AUDIT_EVENTS),
];

/// The leaf of a row read through the image list of `table`.
pub(crate) fn leaf(table: &TableSpec, row: &Row) -> Leaf {
    let cells = cells(row);
    let id = cells.first().copied().unwrap_or(Cell::Null);
    Leaf::of(table, chain::row_id(id), cells)
}

/// A row read through an image list, as chain cells.
pub(crate) fn cells(row: &Row) -> Vec<Cell<'_>> {
    (0..row.len()).map(|i| cell(row, i)).collect()
}

/// One value of an image row as a chain cell.
fn cell(row: &Row, i: usize) -> Cell<'_> {
    let kind = row.columns()[i].type_();
    if *kind == Type::INT8 {
        row.get::<_, Option<i64>>(i)
            .map_or(Cell::Null, Cell::Integer)
    } else if *kind == Type::FLOAT8 {
        row.get::<_, Option<f64>>(i).map_or(Cell::Null, Cell::Real)
    } else {
        row.try_get::<_, Option<&str>>(i)
            .ok()
            .flatten()
            .map_or(Cell::Null, Cell::text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lists_have_one_expression_per_chained_column() {
        for (list, spec) in [
            (SESSIONS, &chain::SESSIONS),
            (STEPS, &chain::STEPS),
            (DECISIONS, &chain::DECISIONS),
            (AUDIT_HEALTH, &chain::AUDIT_HEALTH),
            (AUDIT_EVENTS, &chain::AUDIT_EVENTS),
        ] {
            // Split at top-level commas (to_char's arguments hold commas of their own).
            let mut depth = 0;
            let mut parts = vec![String::new()];
            for c in list.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(String::new());
                        continue;
                    }
                    _ => {}
                }
                parts.last_mut().unwrap().push(c);
            }
            let named: Vec<String> = parts
                .iter()
                .map(|p| {
                    let p = p.trim();
                    let p = p.strip_prefix("to_char(").unwrap_or(p);
                    let p = p.strip_prefix("t.").unwrap_or(p);
                    p.split([' ', ':']).next().unwrap().to_owned()
                })
                .collect();
            assert_eq!(named, spec.columns, "{list}");
        }
    }
}
