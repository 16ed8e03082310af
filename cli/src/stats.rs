//! `stats`: per module — uses, average confidence, average duration, failure rate, tokens.

use crate::db::{Db, Param, Query};
use crate::output::{self, Cell};
use crate::since::Since;
use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only steps started since: 30m, 24h, 7d, 2w, or a date
    #[arg(long)]
    since: Option<Since>,
    /// JSON instead of a table
    #[arg(long)]
    json: bool,
}

// The average duration is taken over whole microseconds, summed exactly, on both sides, so
// that the two stores print the same figure (an average of floats summed in another order
// can differ in its last digit, and show as 7 µs on one side and 8 µs on the other).
const SQLITE: &str = concat!(
    "
    SELECT module,
           count(*) AS uses,
           avg(confidence) AS avg_confidence,
           avg(",
    crate::sqlite_duration_us!("started_at", "ended_at"),
    ") / 1000.0 AS avg_duration_ms,
           avg(error IS NOT NULL) AS failure_rate,
           sum(tokens_used) AS tokens
    FROM steps
    WHERE ?1 IS NULL OR started_at >= ?1
    GROUP BY module
    ORDER BY uses DESC, module"
);

const POSTGRES: &str = concat!(
    "SELECT module,
           count(*) AS uses,
           avg(confidence) AS avg_confidence,
           sum(",
    crate::duration_us!("started_at", "ended_at"),
    ")::float8 / count(",
    crate::duration_us!("started_at", "ended_at"),
    ") / 1000.0 AS avg_duration_ms,
           avg((error IS NOT NULL)::int)::float8 AS failure_rate,
           sum(tokens_used)::bigint AS tokens
    FROM steps
    WHERE $1::text IS NULL OR started_at >= ($1::text || '+00')::timestamptz
    GROUP BY module
    ORDER BY uses DESC, module"
);

pub fn run(db: &Db, args: &Args) -> Result<Outcome, Failure> {
    let query = Query {
        sqlite: SQLITE,
        postgres: POSTGRES,
    };
    let since = Param::Text(args.since.as_ref().map(|s| s.0.clone()));
    let rows = db.rows(&query, &[since])?;
    output::emit(&rows, args.json, |rows| {
        let mut table = output::table(&[
            "module",
            "uses",
            "avg conf",
            "avg duration",
            "failure rate",
            "tokens",
        ]);
        for row in rows {
            table.add_row(vec![
                Cell::new(row["module"].as_str().unwrap_or_default()),
                Cell::new(row["uses"].to_string()),
                Cell::new(output::confidence(row["avg_confidence"].as_f64())),
                Cell::new(output::duration_ms(row["avg_duration_ms"].as_f64())),
                Cell::new(format!(
                    "{:.0}%",
                    row["failure_rate"].as_f64().unwrap_or(0.0) * 100.0
                )),
                Cell::new(output::opt(row["tokens"].as_i64())),
            ]);
        }
        table
    })
}
