//! Figures per reasoning module — how often it ran, how sure it was, how long it took, how
//! often it failed, what it cost in tokens: [`Reader::module_stats`], the `stats` command —
//! and the same over time, a day at a time: [`Reader::daily_stats`].

use chrono::{DateTime, Utc};

use super::reader::{Param, Query, Reader, int, pg_duration_us, real, sqlite_duration_us, text};
use super::{DayStats, ModuleStats};
use crate::error::Result;

// The average duration is taken over whole microseconds, summed exactly, on both sides, so
// that the two stores give the same figure (an average of floats summed in another order
// can differ in its last digit, and show as 7 µs on one side and 8 µs on the other).
const STATS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT module,
           count(*) AS uses,
           avg(confidence) AS avg_confidence,
           avg(",
        sqlite_duration_us!("started_at", "ended_at"),
        ") / 1000.0 AS avg_duration_ms,
           avg(error IS NOT NULL) AS failure_rate,
           sum(tokens_used) AS tokens
        FROM steps
        WHERE ?1 IS NULL OR started_at >= ?1
        GROUP BY module
        ORDER BY uses DESC, module"
    ),
    postgres: concat!(
        "SELECT module,
           count(*) AS uses,
           avg(confidence) AS avg_confidence,
           sum(",
        pg_duration_us!("started_at", "ended_at"),
        ")::float8 / count(",
        pg_duration_us!("started_at", "ended_at"),
        ") / 1000.0 AS avg_duration_ms,
           avg((error IS NOT NULL)::int)::float8 AS failure_rate,
           sum(tokens_used)::bigint AS tokens
        FROM steps
        WHERE $1::text IS NULL OR started_at >= ($1::text || '+00')::timestamptz
        GROUP BY module
        ORDER BY uses DESC, module"
    ),
};

const DAILY: Query<'static> = Query {
    sqlite: "SELECT substr(started_at, 1, 10) AS day, count(*) AS steps,
           sum(error IS NOT NULL) AS failures, avg(confidence) AS avg_confidence,
           sum(tokens_used) AS tokens
        FROM steps
        WHERE ?1 IS NULL OR started_at >= ?1
        GROUP BY day ORDER BY day",
    postgres: "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
           count(*) AS steps, sum((error IS NOT NULL)::int)::bigint AS failures,
           avg(confidence) AS avg_confidence, sum(tokens_used)::bigint AS tokens
        FROM steps
        WHERE $1::text IS NULL OR started_at >= ($1::text || '+00')::timestamptz
        GROUP BY day ORDER BY day",
};

impl Reader {
    /// The steps started at or after `since` (all of them for `None`), a row per UTC day
    /// that has any, oldest first: how many, how many failed, their average confidence and
    /// their tokens.
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) when the store cannot be queried.
    pub fn daily_stats(&self, since: Option<DateTime<Utc>>) -> Result<Vec<DayStats>> {
        Ok(self
            .rows(&DAILY, &[Param::time(since)])?
            .iter()
            .map(|row| DayStats {
                day: text(row, "day").unwrap_or_default(),
                steps: int(row, "steps").unwrap_or(0),
                failures: int(row, "failures").unwrap_or(0),
                avg_confidence: real(row, "avg_confidence"),
                tokens: int(row, "tokens"),
            })
            .collect())
    }

    /// Each module's figures over the steps started at or after `since` (all of them for
    /// `None`), the most used first.
    ///
    /// ```
    /// # use tracing_subscriber::prelude::*;
    /// use reasonkit_audit::read::Reader;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("audit.db");
    /// # let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
    /// # tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
    /// #     let _s = tracing::info_span!("session").entered();
    /// #     for confidence in [0.25, 0.75] {
    /// #         let _step = tracing::info_span!("step", module = "gigathink", confidence,
    /// #             tokens_used = 100).entered();
    /// #     }
    /// # });
    /// # guard.flush()?;
    /// let stats = Reader::open(&path)?.module_stats(None)?;
    /// assert_eq!(stats[0].module, "gigathink");
    /// assert_eq!(stats[0].uses, 2);
    /// assert_eq!(stats[0].avg_confidence, Some(0.5));
    /// assert_eq!(stats[0].tokens, Some(200));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) when the store cannot be queried.
    pub fn module_stats(&self, since: Option<DateTime<Utc>>) -> Result<Vec<ModuleStats>> {
        Ok(self
            .rows(&STATS, &[Param::time(since)])?
            .iter()
            .map(|row| ModuleStats {
                module: text(row, "module").unwrap_or_default(),
                uses: int(row, "uses").unwrap_or(0),
                avg_confidence: real(row, "avg_confidence"),
                avg_duration_ms: real(row, "avg_duration_ms"),
                failure_rate: real(row, "failure_rate").unwrap_or(0.0),
                tokens: int(row, "tokens"),
            })
            .collect())
    }
}
