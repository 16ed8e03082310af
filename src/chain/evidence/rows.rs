//! A row as a bundle writes it, and back: stored cells as JSON values ([`cell_json`]),
//! JSON values as the cells a leaf is hashed over ([`row_leaves`]), and a row with its
//! content withheld ([`sealed`]). Making a bundle (`build.rs`) and checking one
//! (`check.rs`) both use it, so the two read a value the same way.

use super::{RowRecord, SealedRow, hex, unhex};
use crate::chain::{Cell, DECISIONS, SESSIONS, STEPS, TableSpec, content_digest, leaf, split_leaf};

pub(crate) fn spec_of(table: &str) -> Option<&'static TableSpec> {
    match table {
        "sessions" => Some(&SESSIONS),
        "steps" => Some(&STEPS),
        "decisions" => Some(&DECISIONS),
        _ => None,
    }
}

/// A stored value as the bundle writes it (see [`RowRecord`]).
pub(crate) fn cell_json(cell: Cell<'_>) -> serde_json::Value {
    use serde_json::{Value, json};
    match cell {
        Cell::Null => Value::Null,
        Cell::Integer(n) => Value::from(n),
        Cell::Real(f) => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None if f > 0.0 => json!({ "real": "inf" }),
            None => json!({ "real": "-inf" }),
        },
        Cell::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::from(text),
            Err(_) => json!({ "text_hex": hex(bytes) }),
        },
        Cell::Blob(bytes) => json!({ "blob": hex(bytes) }),
    }
}

/// A bundled value as its cell's bytes.
pub(crate) enum Owned {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

fn owned(value: &serde_json::Value) -> Result<Owned, String> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => Owned::Null,
        Value::String(s) => Owned::Text(s.as_bytes().to_vec()),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if !n.is_f64() => Owned::Integer(i),
            (_, Some(f)) => Owned::Real(f),
            _ => return Err(format!("the number {n} is neither an i64 nor a real")),
        },
        Value::Object(o) if o.len() == 1 => {
            let (kind, v) = o.iter().next().ok_or("an empty object")?;
            let text = v.as_str().unwrap_or_default();
            match kind.as_str() {
                "blob" => Owned::Blob(unhex(text).ok_or("a blob that is not hex")?),
                "text_hex" => Owned::Text(unhex(text).ok_or("text_hex that is not hex")?),
                "real" if text == "inf" => Owned::Real(f64::INFINITY),
                "real" if text == "-inf" => Owned::Real(f64::NEG_INFINITY),
                _ => return Err(format!("a value {value} of no known form")),
            }
        }
        other => return Err(format!("a value {other} of no known form")),
    })
}

/// A row with its content withheld (for a profile's bundle).
///
/// # Errors
/// When the row's values are of no known form.
pub(crate) fn sealed(row: &RowRecord) -> Result<SealedRow, String> {
    let spec = spec_of(&row.table).ok_or("a row of a table that is not chained")?;
    let values = owned_values(spec, &row.columns)?;
    let digest = content_digest(spec, &cells_of(&values));
    let columns = row
        .columns
        .iter()
        .filter(|(name, _)| {
            spec.columns
                .iter()
                .position(|c| c == name)
                .is_some_and(|i| !spec.content.contains(&i))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(SealedRow {
        row: RowRecord {
            table: row.table.clone(),
            columns,
        },
        content: hex(&digest),
    })
}

/// A bundled row's values, in its table's column order.
pub(crate) fn owned_values(
    spec: &TableSpec,
    columns: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<Owned>, String> {
    if let Some(unknown) = columns.keys().find(|k| !spec.columns.contains(&k.as_str())) {
        return Err(format!("a column {unknown:?} the table does not have"));
    }
    spec.columns
        .iter()
        .map(|c| columns.get(*c).map_or(Ok(Owned::Null), owned))
        .collect()
}

pub(crate) fn cells_of(values: &[Owned]) -> Vec<Cell<'_>> {
    values
        .iter()
        .map(|v| match v {
            Owned::Null => Cell::Null,
            Owned::Integer(i) => Cell::Integer(*i),
            Owned::Real(f) => Cell::real(*f),
            Owned::Text(t) => Cell::Text(t),
            Owned::Blob(b) => Cell::Blob(b),
        })
        .collect()
}

/// A bundled row's split and whole leaves.
pub(crate) fn row_leaves(
    spec: &TableSpec,
    columns: &serde_json::Map<String, serde_json::Value>,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let values = owned_values(spec, columns)?;
    let cells = cells_of(&values);
    Ok((
        split_leaf(spec, &cells).to_vec(),
        leaf(spec.name, cells.iter().copied()).to_vec(),
    ))
}
