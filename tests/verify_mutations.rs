//! The mutation test of `verify`: on a database of more than 10,000 rows written by the
//! layer, every single-row mutation of each kind — any one column of sampled rows of every
//! table changed, a row deleted, a forged row inserted, two rows' contents swapped, a chain
//! entry edited, deleted or moved — must be detected, and the untouched copy must verify
//! clean. A "tamper-evident" library that never built its chain (PyPI's signledger 1.0)
//! would pass every other test; it fails this one.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{Audit, write_realistic};
use proptest::prelude::*;
use reasonkit_audit::FindingKind;
use rusqlite::types::Value;

/// The database every mutation starts from, written once per test binary.
fn original() -> &'static Path {
    static DB: OnceLock<(tempfile::TempDir, PathBuf, u64)> = OnceLock::new();
    let (_, path, _) = DB.get_or_init(|| {
        // Small max_field_len: truncations leave audit_health rows, chained like the rest.
        let audit = Audit::with(|b| b.max_field_len(44));
        let rows = write_realistic(&audit, 600);
        let Audit {
            dir, path, guard, ..
        } = audit;
        guard.shutdown().unwrap();
        (dir, path, rows)
    });
    path
}

/// A fresh copy of the original database to mutate.
struct Copy {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn copy() -> Copy {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutated.db");
    std::fs::copy(original(), &path).unwrap();
    Copy { _dir: dir, path }
}

/// A change to make to the copy, and the row (table, id) a finding should name, if any.
struct Mutation {
    what: String,
    sql: Vec<(String, Vec<Value>)>,
    names: Option<(String, String)>,
}

fn columns(db: &rusqlite::Connection, table: &str) -> Vec<String> {
    db.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A value other than `old`, of a plausible kind.
fn changed(old: &Value) -> Value {
    match old {
        Value::Null => Value::Text("x".into()),
        // Far from the others: an integer id changed by one would collide with the next.
        Value::Integer(n) => Value::Integer(n.wrapping_add(1_000_003)),
        Value::Real(f) if f.is_finite() => Value::Real(f + 0.001),
        Value::Real(_) => Value::Real(1.0),
        Value::Text(t) => Value::Text(format!("{t}x")),
        Value::Blob(b) => Value::Blob([b.as_slice(), b"x"].concat()),
    }
}

fn rowids(db: &rusqlite::Connection, table: &str) -> Vec<i64> {
    db.prepare(&format!("SELECT rowid FROM {table} ORDER BY rowid"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// First, middle, last and a few spread between: the rows to mutate in each table.
fn sample(all: &[i64], extra: usize) -> Vec<i64> {
    if all.is_empty() {
        return Vec::new();
    }
    let mut picked = vec![all[0], all[all.len() / 2], all[all.len() - 1]];
    for k in 1..=extra {
        picked.push(all[(k * 7919) % all.len()]);
    }
    picked.sort_unstable();
    picked.dedup();
    picked
}

fn row(db: &rusqlite::Connection, table: &str, rowid: i64) -> Vec<Value> {
    let n = columns(db, table).len();
    db.query_row(
        &format!("SELECT * FROM {table} WHERE rowid = ?1"),
        [rowid],
        |r| (0..n).map(|i| r.get::<_, Value>(i)).collect(),
    )
    .unwrap()
}

fn id_text(value: &Value) -> String {
    match value {
        Value::Integer(n) => n.to_string(),
        Value::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

const TABLES: [&str; 4] = ["sessions", "steps", "decisions", "audit_health"];

/// Every mutation of the kinds the issue lists, over sampled rows and entries.
fn mutations(db: &rusqlite::Connection, extra: usize) -> Vec<Mutation> {
    let mut out = Vec::new();
    for table in TABLES {
        let cols = columns(db, table);
        let all = rowids(db, table);
        assert!(!all.is_empty(), "the fixture has rows in {table}");
        for rowid in sample(&all, extra) {
            let values = row(db, table, rowid);
            let id = id_text(&values[0]);
            for (i, column) in cols.iter().enumerate() {
                let names = if i == 0 {
                    None // a changed id shows as an unknown row and a missing one
                } else {
                    Some((table.to_owned(), id.clone()))
                };
                out.push(Mutation {
                    what: format!("{table}.{column} of row {id}"),
                    sql: vec![(
                        format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"),
                        vec![changed(&values[i]), Value::Integer(rowid)],
                    )],
                    names,
                });
            }
            out.push(Mutation {
                what: format!("delete {table} row {id}"),
                sql: vec![(
                    format!("DELETE FROM {table} WHERE rowid = ?1"),
                    vec![Value::Integer(rowid)],
                )],
                names: Some((table.to_owned(), id.clone())),
            });
            // A forged row: a copy of this one under a new id.
            let forged_id = match &values[0] {
                Value::Integer(_) => Value::Integer(1_000_000 + rowid),
                _ => Value::Text(format!("forged-{rowid}")),
            };
            let mut forged = values.clone();
            forged[0] = forged_id.clone();
            let marks = vec!["?"; cols.len()].join(", ");
            out.push(Mutation {
                what: format!("insert a forged {table} row"),
                sql: vec![(format!("INSERT INTO {table} VALUES ({marks})"), forged)],
                names: Some((table.to_owned(), id_text(&forged_id))),
            });
        }
        // Two rows' contents swapped (ids kept).
        let (a, b) = (all[1], all[all.len() - 2]);
        let (va, vb) = (row(db, table, a), row(db, table, b));
        let set = cols[1..]
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let update = format!("UPDATE {table} SET {set} WHERE rowid = ?1");
        let with = |rowid: i64, values: &[Value]| {
            let mut params = vec![Value::Integer(rowid)];
            params.extend(values[1..].iter().cloned());
            params
        };
        out.push(Mutation {
            what: format!("swap the contents of two {table} rows"),
            sql: vec![(update.clone(), with(a, &vb)), (update, with(b, &va))],
            names: Some((table.to_owned(), id_text(&va[0]))),
        });
    }
    // The chain itself.
    let seqs = rowids(db, "audit_chain");
    let last = *seqs.last().unwrap();
    for seq in sample(&seqs, extra) {
        let flip = |column: &str| {
            // One bit of one byte inverted: never the same value (an `x'ee'` written over a
            // byte that already was 0xee once changed nothing).
            let mut bytes: Vec<u8> = db
                .query_row(
                    &format!("SELECT {column} FROM audit_chain WHERE seq = ?1"),
                    [seq],
                    |r| r.get(0),
                )
                .unwrap();
            bytes[5] ^= 0x01;
            Mutation {
                what: format!("flip a bit of {column} of entry {seq}"),
                sql: vec![(
                    format!("UPDATE audit_chain SET {column} = ?1 WHERE seq = ?2"),
                    vec![Value::Blob(bytes), Value::Integer(seq)],
                )],
                names: None,
            }
        };
        out.push(flip("leaf_hash"));
        out.push(flip("chain_hash"));
        let other = if seq == seqs[0] { seqs[1] } else { seqs[0] };
        for column in ["table_name", "row_id"] {
            out.push(Mutation {
                what: format!("entry {seq} names another row's {column}"),
                sql: vec![(
                    format!(
                        "UPDATE audit_chain SET {column} = \
                         (SELECT {column} || '' FROM audit_chain WHERE seq = ?2) || \
                         CASE WHEN (SELECT {column} FROM audit_chain WHERE seq = ?2) = \
                                   (SELECT {column} FROM audit_chain WHERE seq = ?1) \
                              THEN '-x' ELSE '' END WHERE seq = ?1"
                    ),
                    vec![Value::Integer(seq), Value::Integer(other)],
                )],
                names: None,
            });
        }
        out.push(Mutation {
            what: format!("delete entry {seq}"),
            sql: vec![(
                "DELETE FROM audit_chain WHERE seq = ?1".into(),
                vec![Value::Integer(seq)],
            )],
            names: None,
        });
        out.push(Mutation {
            what: format!("move entry {seq} to the end"),
            sql: vec![(
                "UPDATE audit_chain SET seq = ?2 WHERE seq = ?1".into(),
                vec![Value::Integer(seq), Value::Integer(last + 1)],
            )],
            names: None,
        });
        if seq != last {
            out.push(Mutation {
                what: format!("swap entries {seq} and {}", seq + 1),
                sql: vec![
                    (
                        "UPDATE audit_chain SET seq = -1 WHERE seq = ?1".into(),
                        vec![Value::Integer(seq)],
                    ),
                    (
                        "UPDATE audit_chain SET seq = ?1 WHERE seq = ?2".into(),
                        vec![Value::Integer(seq), Value::Integer(seq + 1)],
                    ),
                    (
                        "UPDATE audit_chain SET seq = ?1 WHERE seq = -1".into(),
                        vec![Value::Integer(seq + 1)],
                    ),
                ],
                names: None,
            });
        }
    }
    out.push(Mutation {
        what: "change the database id".into(),
        sql: vec![(
            "UPDATE audit_meta SET value = 'ffffffffffffffffffffffffffffffff' \
             WHERE key = 'database_id'"
                .into(),
            vec![],
        )],
        names: None,
    });
    out
}

/// Applies `mutation` to a fresh copy, as someone with the file would (foreign keys off),
/// and verifies it: the findings, or the error SQLite refused the mutation with.
fn try_findings_after(
    mutation: &Mutation,
) -> Result<Vec<reasonkit_audit::Finding>, rusqlite::Error> {
    let copy = copy();
    {
        let db = rusqlite::Connection::open(&copy.path).unwrap();
        db.pragma_update(None, "foreign_keys", "OFF").unwrap();
        for (sql, params) in &mutation.sql {
            let changed = db.execute(sql, rusqlite::params_from_iter(params))?;
            assert_eq!(
                changed, 1,
                "{}: {sql} changed {changed} rows",
                mutation.what
            );
        }
    }
    Ok(reasonkit_audit::verify(&copy.path)
        .unwrap_or_else(|e| panic!("{}: {e}", mutation.what))
        .findings)
}

fn findings_after(mutation: &Mutation) -> Vec<reasonkit_audit::Finding> {
    try_findings_after(mutation).unwrap_or_else(|e| panic!("{}: {e}", mutation.what))
}

#[test]
fn every_single_row_mutation_of_every_kind_is_detected_and_the_original_is_clean() {
    let db = rusqlite::Connection::open(original()).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM steps) + \
             (SELECT count(*) FROM decisions) + (SELECT count(*) FROM audit_health)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(rows >= 10_000, "{rows} rows");
    let clean = reasonkit_audit::verify(&copy().path).unwrap();
    assert!(clean.is_intact(), "{:?}", clean.findings);

    let all = mutations(&db, 3);
    let mut missed = Vec::new();
    let mut kinds = std::collections::BTreeMap::new();
    for mutation in &all {
        let findings = findings_after(mutation);
        if findings.is_empty() {
            missed.push(mutation.what.clone());
            continue;
        }
        if let Some((table, id)) = &mutation.names {
            assert!(
                findings
                    .iter()
                    .any(|f| f.table.as_deref() == Some(table) && f.row_id.as_deref() == Some(id)),
                "{}: no finding names {table} {id}: {findings:?}",
                mutation.what
            );
        }
        for f in &findings {
            *kinds.entry(f.kind.as_str()).or_insert(0) += 1;
        }
    }
    println!(
        "{} mutations on {rows} rows, {} detected; finding kinds: {kinds:?}",
        all.len(),
        all.len() - missed.len()
    );
    assert!(missed.is_empty(), "not detected: {missed:#?}");
    for kind in [
        FindingKind::Modified,
        FindingKind::Deleted,
        FindingKind::Inserted,
        FindingKind::Reordered,
        FindingKind::EntryEdited,
        FindingKind::EntryMissing,
    ] {
        assert!(
            kinds.contains_key(kind.as_str()),
            "no {kind:?} finding in {kinds:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Any one column of any row of any table, changed to any other value, is detected.
    #[test]
    fn a_random_change_to_any_column_of_any_row_is_detected(
        table in 0..TABLES.len(),
        row_pick in any::<prop::sample::Index>(),
        column_pick in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>().prop_filter("SQLite stores NaN as NULL", |f| !f.is_nan()).prop_map(Value::Real),
            ".{0,40}".prop_map(Value::Text),
        ],
    ) {
        let db = rusqlite::Connection::open(original()).unwrap();
        let table = TABLES[table];
        let all = rowids(&db, table);
        let rowid = all[row_pick.index(all.len())];
        let cols = columns(&db, table);
        let column = column_pick.index(cols.len());
        let old = row(&db, table, rowid)[column].clone();
        // Only a value SQLite would store differently from the old one is a change.
        let same: bool = db
            .query_row("SELECT ?1 IS ?2 AND typeof(?1) = typeof(?2)", [&old, &replacement], |r| r.get(0))
            .unwrap();
        prop_assume!(!same && column != 0);
        let mutation = Mutation {
            what: format!("{table}.{} of rowid {rowid} = {replacement:?}", cols[column]),
            sql: vec![(
                format!("UPDATE {table} SET {} = ?1 WHERE rowid = ?2", cols[column]),
                vec![replacement, Value::Integer(rowid)],
            )],
            names: None,
        };
        // A value the schema refuses (NULL in a NOT NULL column) is no mutation at all.
        let findings = try_findings_after(&mutation);
        prop_assume!(findings.is_ok());
        prop_assert!(!findings.unwrap().is_empty(), "not detected: {}", mutation.what);
    }
}
