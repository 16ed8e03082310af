//! `sessions`: newest first, with filters.

use reasonkit_audit::read::{Reader, SessionFilter};

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

pub fn run(reader: &Reader, args: &Args) -> Result<Outcome, Failure> {
    let sessions = reader.overview(&SessionFilter {
        since: args.since.as_ref().map(Since::utc),
        status: args.status.clone(),
        profile: args.profile.clone(),
        below_confidence: args.below,
        limit: Some(args.limit as usize),
        ..SessionFilter::default()
    })?;
    output::emit(&sessions, args.json, |sessions| {
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
        for session in sessions {
            table.add_row(vec![
                Cell::new(&session.id),
                Cell::new(session.started_at.format("%Y-%m-%d %H:%M:%S%.3f")),
                Cell::new(output::duration_ms(session.duration_ms)),
                Cell::new(&session.profile),
                output::status_cell(&session.status),
                Cell::new(session.steps),
                Cell::new(output::confidence(session.min_confidence)),
                Cell::new(output::opt(session.tokens)),
                Cell::new(session.errors),
            ]);
        }
        table
    })
}
