//! `search TEXT`: full-text search over step summaries and errors, and decision options,
//! choices and rationales ([`Reader::search`], which also reads the rows not indexed yet).

use reasonkit_audit::read::{HitKind, Reader};

use crate::output::{self, Cell};
use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Words to find (all of them, in any order; a quoted phrase for an exact sequence)
    text: String,
    /// At most this many matches
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: u32,
    /// JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub fn run(reader: &Reader, args: &Args) -> Result<Outcome, Failure> {
    let hits = reader.search(&args.text, args.limit as usize)?;
    output::emit(&hits, args.json, |hits| {
        let mut table = output::table(&["session", "kind", "module", "match"]);
        for hit in hits {
            table.add_row(vec![
                Cell::new(&hit.session_id),
                Cell::new(match hit.kind {
                    HitKind::Step => "step",
                    HitKind::Decision => "decision",
                }),
                Cell::new(&hit.module),
                Cell::new(hit.snippet.replace('\n', " ")),
            ]);
        }
        table
    })
}
