//! The chain in a SQLite file: its head, appending leaves and events inside the write
//! transaction that wrote their rows, and the leaf of a row as it stands. The encoding is
//! `chain/`'s; PostgreSQL's twin is in `store/postgres/statements.rs`.

use rusqlite::{Connection, OptionalExtension};

use crate::chain::{AUDIT_EVENTS, Cell, ChainHead, DECISIONS, Leaf, TableSpec, genesis, link};

/// The database's random id, from `audit_meta`.
pub(crate) fn database_id(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM audit_meta WHERE key = 'database_id'",
        [],
        |row| row.get(0),
    )
    .optional()
}

/// The last entry's seq and stored link, or (0, genesis) for an empty chain. The stored
/// link is returned as it is, whatever its length: the next link is computed from the
/// stored bytes, and `verify` reports an entry whose link was damaged.
fn stored_head(conn: &Connection) -> rusqlite::Result<(u64, Vec<u8>)> {
    let last: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, chain_hash FROM audit_chain ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match last {
        Some((seq, hash)) => Ok((u64::try_from(seq).unwrap_or(0), hash)),
        None => {
            let id = database_id(conn)?.unwrap_or_default();
            Ok((0, genesis(&id).to_vec()))
        }
    }
}

/// The chain's head as stored, for a checkpoint.
///
/// # Errors
/// A SQLite error, or `InvalidColumnType` when the stored last link is not 32 bytes
/// (a damaged chain: `verify` says where).
pub(crate) fn head(conn: &Connection) -> rusqlite::Result<ChainHead> {
    let (size, hash) = stored_head(conn)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| {
        rusqlite::Error::InvalidColumnType(1, "chain_hash".into(), rusqlite::types::Type::Blob)
    })?;
    Ok(ChainHead { size, hash })
}

/// The entry of a row whose session the writer knows (a session's, a step's, or none:
/// health rows and events belong to no session).
const APPEND: &str = "INSERT INTO audit_chain (seq, table_name, row_id, leaf_hash, chain_hash, \
     committed_at, session_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The entry of a decision: its session is its step's, read from the rows this
/// transaction just wrote.
const APPEND_DECISION: &str = "INSERT INTO audit_chain (seq, table_name, row_id, leaf_hash, \
     chain_hash, committed_at, session_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
     (SELECT s.session_id FROM decisions d JOIN steps s ON s.id = d.step_id WHERE d.id = ?3))";

/// The entry of the migration to schema 5, which seals the rows found when the chain was
/// created: `audit_chain` has no `session_id` yet (schema 8 fills it for these entries).
const APPEND_BEFORE_SESSIONS: &str = "INSERT INTO audit_chain (seq, table_name, row_id, \
     leaf_hash, chain_hash, committed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Appends `leaves` to the chain, after its current head. Must run inside the write
/// transaction that wrote the rows, so that the head read here is the head this commit
/// extends even when several processes write the file. Each entry is given the session of
/// its row as the transaction wrote it (what evidence bundles count, docs/chain.md).
pub(crate) fn append(
    conn: &Connection,
    leaves: &[Leaf],
    committed_at: &str,
) -> rusqlite::Result<Option<ChainHead>> {
    append_with(conn, leaves, committed_at, true)
}

/// [`append`] for the migration to schema 5, before `audit_chain` had a `session_id`.
pub(crate) fn append_before_sessions(
    conn: &Connection,
    leaves: &[Leaf],
    committed_at: &str,
) -> rusqlite::Result<Option<ChainHead>> {
    append_with(conn, leaves, committed_at, false)
}

fn append_with(
    conn: &Connection,
    leaves: &[Leaf],
    committed_at: &str,
    with_sessions: bool,
) -> rusqlite::Result<Option<ChainHead>> {
    if leaves.is_empty() {
        return Ok(None);
    }
    let (mut seq, previous) = stored_head(conn)?;
    // One row per entry: multi-row INSERTs of 64 entries were tried and counted the same
    // instructions under callgrind, so the simple statement stays. A decision's entry has
    // a statement of its own, so that the others bind their session and look nothing up.
    let mut plain = conn.prepare_cached(if with_sessions {
        APPEND
    } else {
        APPEND_BEFORE_SESSIONS
    })?;
    // Before schema 8 there is no session to look up, and no column for it.
    let mut of_decision = with_sessions
        .then(|| conn.prepare_cached(APPEND_DECISION))
        .transpose()?;
    let mut last = link(&previous, seq + 1, &leaves[0].hash);
    for (index, leaf) in leaves.iter().enumerate() {
        seq += 1;
        if index > 0 {
            last = link(&last, seq, &leaf.hash);
        }
        let seq_value = i64::try_from(seq).unwrap_or(i64::MAX);
        let params: [&dyn rusqlite::ToSql; 7] = [
            &seq_value,
            &leaf.table,
            &leaf.row_id,
            &&leaf.hash[..],
            &&last[..],
            &committed_at,
            &leaf.session,
        ];
        let insert = match of_decision.as_mut() {
            Some(lookup) if leaf.session.is_none() && leaf.table == DECISIONS.name => lookup,
            _ => &mut plain,
        };
        // The statements without a session parameter take the first six.
        let width = insert.parameter_count().min(params.len());
        insert.execute(&params[..width])?;
    }
    Ok(Some(ChainHead {
        size: seq,
        hash: last,
    }))
}

/// Inserts an `audit_events` row of `kind` and chains it, inside the caller's write
/// transaction; the event's id and its chain entry.
pub(crate) fn append_event(
    conn: &Connection,
    kind: &str,
    detail: &str,
    at: &str,
) -> rusqlite::Result<(i64, Option<u64>)> {
    conn.execute(
        "INSERT INTO audit_events (recorded_at, kind, detail) VALUES (?1, ?2, ?3)",
        (at, kind, detail),
    )?;
    let event = conn.last_insert_rowid();
    let leaf = Leaf::of(
        &AUDIT_EVENTS,
        event.to_string(),
        [
            Cell::Integer(event),
            Cell::text(at),
            Cell::text(kind),
            Cell::text(detail),
        ],
    );
    Ok((event, append(conn, &[leaf], at)?.map(|h| h.size)))
}

/// The leaf of a row as it stands in the file (for rows changed by a statement whose
/// result the writer did not compute itself, e.g. marking sessions interrupted).
pub(crate) fn leaf_of_stored_row(
    conn: &Connection,
    table: &TableSpec,
    id: &str,
) -> rusqlite::Result<Option<Leaf>> {
    let sql = table.select("WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row([id], |row| {
        let cells = (0..table.columns.len())
            .map(|i| row.get_ref(i).map(Cell::from))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Leaf::of(table, id.to_owned(), cells))
    })
    .optional()
}
