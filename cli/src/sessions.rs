//! `sessions`: newest first, with filters.

use crate::db::{Db, Param, Query};
use crate::output::{self, Cell};
use crate::since::Since;
use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only sessions started since: 30m, 24h, 7d, 2w, or a date (2026-11-30)
    #[arg(long)]
    since: Option<Since>,
    /// Only sessions with this status (running, completed, failed, interrupted, …)
    #[arg(long)]
    status: Option<String>,
    /// Only sessions with this profile
    #[arg(long)]
    profile: Option<String>,
    /// Only sessions with a step whose confidence is below CONF
    #[arg(long, value_name = "CONF")]
    below: Option<f64>,
    /// At most this many sessions
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: u32,
    /// JSON instead of a table
    #[arg(long)]
    json: bool,
}

const SQLITE: &str = concat!(
    "
    SELECT s.id, s.started_at, s.ended_at, s.profile, s.status, ",
    crate::sqlite_duration_ms!("s.started_at", "s.ended_at"),
    " AS duration_ms,
           (SELECT count(*) FROM steps st WHERE st.session_id = s.id) AS steps,
           (SELECT min(confidence) FROM steps st WHERE st.session_id = s.id) AS min_confidence,
           (SELECT sum(tokens_used) FROM steps st WHERE st.session_id = s.id) AS tokens,
           (SELECT count(*) FROM steps st WHERE st.session_id = s.id AND st.error IS NOT NULL) AS errors
    FROM sessions s
    WHERE (?1 IS NULL OR s.started_at >= ?1)
      AND (?2 IS NULL OR s.status = ?2)
      AND (?3 IS NULL OR s.profile = ?3)
      AND (?4 IS NULL OR EXISTS (SELECT 1 FROM steps st WHERE st.session_id = s.id AND st.confidence < ?4))
    ORDER BY s.started_at DESC, s.rowid DESC
    LIMIT ?5"
);

const POSTGRES: &str = concat!(
    "SELECT s.id, ",
    crate::utc!("s.started_at"),
    " AS started_at, ",
    crate::utc!("s.ended_at"),
    " AS ended_at, s.profile, s.status, ",
    crate::duration_ms!("s.started_at", "s.ended_at"),
    " AS duration_ms,
           (SELECT count(*) FROM steps st WHERE st.session_id = s.id) AS steps,
           (SELECT min(confidence) FROM steps st WHERE st.session_id = s.id) AS min_confidence,
           (SELECT sum(tokens_used)::bigint FROM steps st WHERE st.session_id = s.id) AS tokens,
           (SELECT count(*) FROM steps st WHERE st.session_id = s.id AND st.error IS NOT NULL) AS errors
    FROM sessions s
    WHERE ($1::text IS NULL OR s.started_at >= ($1::text || '+00')::timestamptz)
      AND ($2::text IS NULL OR s.status = $2)
      AND ($3::text IS NULL OR s.profile = $3)
      AND ($4::float8 IS NULL OR EXISTS (SELECT 1 FROM steps st WHERE st.session_id = s.id AND st.confidence < $4))
    ORDER BY s.started_at DESC, s.id DESC
    LIMIT $5"
);

const QUERY: Query<'static> = Query {
    sqlite: SQLITE,
    postgres: POSTGRES,
};

pub fn run(db: &Db, args: &Args) -> Result<Outcome, Failure> {
    let params = [
        Param::Text(args.since.as_ref().map(|s| s.0.clone())),
        Param::Text(args.status.clone()),
        Param::Text(args.profile.clone()),
        Param::Real(args.below),
        Param::Int(i64::from(args.limit)),
    ];
    let rows = db.rows(&QUERY, &params)?;
    output::emit(&rows, args.json, |rows| {
        let mut table = output::table(&[
            "id",
            "started (UTC)",
            "duration",
            "profile",
            "status",
            "steps",
            "min conf",
            "tokens",
            "errors",
        ]);
        for row in rows {
            let text = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
            table.add_row(vec![
                Cell::new(text("id")),
                Cell::new(text("started_at").get(..23).unwrap_or_default()),
                Cell::new(output::duration_ms(row["duration_ms"].as_f64())),
                Cell::new(text("profile")),
                output::status_cell(&text("status")),
                Cell::new(row["steps"].to_string()),
                Cell::new(output::confidence(row["min_confidence"].as_f64())),
                Cell::new(output::opt(row["tokens"].as_i64())),
                Cell::new(row["errors"].to_string()),
            ]);
        }
        table
    })
}
