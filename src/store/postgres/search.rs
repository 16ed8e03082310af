//! Search in the PostgreSQL store: the words of steps and decisions in `search_terms`, a
//! `tsvector` per row under a GIN index (migration 0003), written in bulk, apart from the
//! writes.
//!
//! An index updated by every insert would cost the writes two to three times (the research
//! note measured binary COPY at 53k rows/s without a GIN index and 15k with one), and even
//! in bulk the words cost the server more than writing the rows did (BENCHMARKS.md). So the
//! layer's writers never index: [`catch_up`] (`reasonkit-audit index --db …`, and `import`
//! for what it imports) indexes the rows of the chain's entries past the mark
//! `audit_meta.search_indexed`, [`CHUNK`] entries per transaction, and moves the mark. The
//! chain is a prefix of commits (its lock orders them), so every row version at or before
//! the mark is indexed as it is now; the rows of the entries past it — the tail — are what
//! a search reads itself ([`SEARCH_TAIL`]), so it finds every committed row whether or not
//! anyone has indexed. Two indexers never work at once: the mark's row is locked `FOR
//! UPDATE SKIP LOCKED`, and one that finds it taken stops.
//!
//! The words are PostgreSQL's `simple` configuration over the same columns the SQLite
//! file's FTS5 index covers ([`STEP_TEXT`], [`DECISION_TEXT`]). Pruning and erasure remove
//! their sessions' words in their own transactions.

use crate::error::{Error, Result};

use super::connection::{Tx, Writing};
use super::statements::PgResult;

/// How many chain entries one indexing transaction covers.
pub const CHUNK: i64 = 4_096;

/// The searchable text of a step aliased `st`.
pub const STEP_TEXT: &str = "concat_ws(' ', st.input_summary, st.output_summary, st.error)";

/// The searchable text of a decision aliased `d`.
pub const DECISION_TEXT: &str =
    "concat_ws(' ', d.options_considered, d.chosen_option, d.rationale)";

/// The rows a query must read itself, as `(table_name, row_id)`: those of the chain's
/// entries past the mark, steps and decisions only. For a `WITH tail AS (…)`.
pub const SEARCH_TAIL: &str = "SELECT DISTINCT c.table_name, c.row_id FROM audit_chain c \
     WHERE c.seq > (SELECT value::bigint FROM audit_meta WHERE key = 'search_indexed') \
     AND c.table_name IN ('steps', 'decisions')";

/// Brings the search index of the PostgreSQL store `connection` names up to the chain's
/// head, a chunk per transaction; returns how many chain entries it covered. Stops early,
/// without waiting, when another process is indexing the same store.
///
/// # Errors
/// [`Error::Postgres`] when the store cannot be reached or migrated, or a chunk fails
/// (the chunks before it stay indexed).
pub fn catch_up(connection: &str) -> Result<u64> {
    let target = super::parse_target(connection)?;
    let mut writing = target
        .connect()
        .map(Writing::new)
        .map_err(|message| Error::Postgres { message })?;
    super::schema::migrate(writing.client(), &target.to_string())
        .map_err(|message| Error::Postgres { message })?;
    let mut covered = 0;
    loop {
        let (entries, more) = index_chunk(&mut writing).map_err(|e| Error::Postgres {
            message: format!(
                "indexing PostgreSQL {target} for search: {}",
                super::target::message(&e)
            ),
        })?;
        covered += entries;
        if !more {
            return Ok(covered);
        }
    }
}

/// Indexes the rows of the chain's next chunk past the mark and moves it, in one
/// transaction: how many entries it covered, and whether more wait. `(0, false)` when
/// another process holds the mark: that one is indexing.
pub(crate) fn index_chunk(connection: &mut Writing) -> PgResult<(u64, bool)> {
    let mut tx = connection.begin()?;
    let Some(mark) = tx
        .query_opt(
            "SELECT value::bigint FROM audit_meta WHERE key = 'search_indexed' \
             FOR UPDATE SKIP LOCKED",
            &[],
        )?
        .map(|row| row.try_get::<_, i64>(0))
        .transpose()?
    else {
        tx.rollback()?;
        return Ok((0, false));
    };
    let upto: i64 = tx
        .query_one(
            "SELECT coalesce(max(seq), $1) FROM \
             (SELECT seq FROM audit_chain WHERE seq > $1 ORDER BY seq LIMIT $2) AS next",
            &[&mark, &CHUNK],
        )?
        .try_get(0)?;
    if upto == mark {
        tx.rollback()?;
        return Ok((0, false));
    }
    let sql = format!(
        "INSERT INTO search_terms AS t (table_name, row_id, session_id, terms) \
         SELECT DISTINCT ON (st.id) 'steps', st.id, st.session_id, \
                to_tsvector('simple', {STEP_TEXT}) \
         FROM steps st WHERE st.id IN (SELECT row_id FROM audit_chain \
              WHERE seq > $1 AND seq <= $2 AND table_name = 'steps') \
         UNION ALL \
         SELECT DISTINCT ON (d.id) 'decisions', d.id, d.session_id, \
                to_tsvector('simple', {DECISION_TEXT}) \
         FROM decisions d WHERE d.id IN (SELECT row_id FROM audit_chain \
              WHERE seq > $1 AND seq <= $2 AND table_name = 'decisions') \
         ON CONFLICT (table_name, row_id) DO UPDATE \
         SET session_id = excluded.session_id, terms = excluded.terms"
    );
    tx.execute(&sql, &[&mark, &upto])?;
    tx.execute(
        "UPDATE audit_meta SET value = $1::bigint::text WHERE key = 'search_indexed'",
        &[&upto],
    )?;
    let more: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM audit_chain WHERE seq > $1)",
            &[&upto],
        )?
        .try_get(0)?;
    tx.commit()?;
    Ok((u64::try_from(upto - mark).unwrap_or(0), more))
}

/// Removes the words of these sessions' steps and decisions (pruned or erased), waiting
/// for an indexing transaction that holds the mark so that it cannot put them back.
pub(crate) fn forget_sessions(tx: &mut Tx<'_>, sessions: &[String]) -> PgResult<()> {
    tx.execute(
        "SELECT 1 FROM audit_meta WHERE key = 'search_indexed' FOR UPDATE",
        &[],
    )?;
    tx.execute(
        "DELETE FROM search_terms WHERE session_id = ANY($1)",
        &[&sessions],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a real server: while another connection holds the mark (another host's
    /// writer indexing), a writer's chunk leaves at once without waiting or indexing; once
    /// it is free, the chunk indexes, and the next finds nothing left.
    #[test]
    fn one_writer_indexes_at_a_time_and_the_others_do_not_wait() {
        let Some(db) = super::super::test_server::TestDatabase::create("search lock") else {
            return;
        };
        let mut writing = Writing::new(db.migrated());
        let mut other = db.client();
        other
            .batch_execute(
                "INSERT INTO sessions (id, started_at, profile, input_hash, status) \
                 VALUES ('s', now(), 'p', 'h', 'completed'); \
                 INSERT INTO steps (session_id, id, module, started_at, input_summary) \
                 VALUES ('s', 'st', 'm', now(), 'searchable words'); \
                 INSERT INTO audit_chain VALUES \
                 (1, 'sessions', 's', '\\x00', '\\x00', now()), \
                 (2, 'steps', 'st', '\\x00', '\\x00', now())",
            )
            .unwrap();
        let mut holder = other.transaction().unwrap();
        holder
            .batch_execute("SELECT 1 FROM audit_meta WHERE key = 'search_indexed' FOR UPDATE")
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(index_chunk(&mut writing).unwrap(), (0, false));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let indexed = |client: &mut postgres::Client| -> i64 {
            client
                .query_one("SELECT count(*) FROM search_terms", &[])
                .unwrap()
                .get(0)
        };
        holder.rollback().unwrap();
        assert_eq!(indexed(&mut other), 0);
        assert_eq!(
            index_chunk(&mut writing).unwrap(),
            (2, false),
            "one chunk covers both entries"
        );
        assert_eq!(indexed(&mut other), 1);
        let mark: String = other
            .query_one(
                "SELECT value FROM audit_meta WHERE key = 'search_indexed'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(mark, "2");
        assert_eq!(index_chunk(&mut writing).unwrap(), (0, false));
    }
}
