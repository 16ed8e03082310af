//! `stats`: per module — uses, average confidence, average duration, failure rate, tokens.

use reasonkit_audit::read::Reader;

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

pub fn run(reader: &Reader, args: &Args) -> Result<Outcome, Failure> {
    let stats = reader.module_stats(args.since.as_ref().map(Since::utc))?;
    output::emit(&stats, args.json, |stats| {
        let mut table = output::table(&[
            "module",
            "uses",
            "avg conf",
            "avg duration",
            "failure rate",
            "tokens",
        ]);
        for module in stats {
            table.add_row(vec![
                Cell::new(&module.module),
                Cell::new(module.uses),
                Cell::new(output::confidence(module.avg_confidence)),
                Cell::new(output::duration_ms(module.avg_duration_ms)),
                Cell::new(format!("{:.0}%", module.failure_rate * 100.0)),
                Cell::new(output::opt(module.tokens)),
            ]);
        }
        table
    })
}
