//! SQL text both stores' readers share: a PostgreSQL time as the SQLite file's text, so a
//! row read from either store carries the same text (the chain hashes it; the read side
//! shows and compares it).

/// A PostgreSQL `timestamptz` column as the SQLite store's text: UTC, microseconds
/// (`2026-12-06 09:30:00.123456`). A macro, so that `concat!` can build queries with it.
macro_rules! pg_utc {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        )
    };
}
pub(crate) use pg_utc;
