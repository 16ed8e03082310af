//! `erase --session ID | --attribute NAME=VALUE --reason TEXT`: a person's data goes from
//! the trail (the content of the sessions' rows), after a chained `erased` event that lets
//! `verify` check that nothing else changed.

use std::path::Path;

use crate::{Failure, Outcome};

/// `erase` arguments.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["session", "attribute"])))]
pub struct Args {
    /// The session to erase (its full id)
    #[arg(long)]
    session: Option<String>,
    /// Every session whose attribute has this value, e.g. user_id=u-4711
    #[arg(long, value_name = "NAME=VALUE")]
    attribute: Option<String>,
    /// Why, for the record: the request's reference (required)
    #[arg(long)]
    reason: String,
}

pub fn run(path: &Path, args: &Args) -> Result<Outcome, Failure> {
    let erase = match (&args.session, &args.attribute) {
        (Some(id), _) => reasonkit_audit::Erase::session(id.clone()),
        (None, Some(pair)) => {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--attribute takes NAME=VALUE, not {pair:?}"))?;
            reasonkit_audit::Erase::attribute(name, value)
        }
        (None, None) => return Err("give --session ID or --attribute NAME=VALUE".into()),
    };
    let erase = erase.reason(args.reason.clone());
    let report = match path
        .to_str()
        .filter(|p| reasonkit_audit::postgres::is_postgres_url(p))
    {
        Some(url) => reasonkit_audit::postgres::erase(url, &erase)?,
        None => reasonkit_audit::erase(path, &erase)?,
    };
    println!(
        "erased the content of {} rows of {} sessions: {}",
        report.rows,
        report.sessions,
        report.session_ids.join(", ")
    );
    if let Some(seq) = report.event_seq {
        println!(
            "recorded as chain entry {seq} (kind erased); verify checks that nothing else changed"
        );
    }
    Ok(Outcome::Done)
}
