//! `check`: integrity, foreign keys, the schema version, and every step within its
//! session's time, on a SQLite file or a PostgreSQL store ([`Reader::check`]).

use reasonkit_audit::read::Reader;

use crate::{Failure, Outcome};

/// `check`: prints what [`Reader::check`] found. Exit 0 when all is sound, 2 if not.
pub fn run(reader: &Reader) -> Result<Outcome, Failure> {
    let report = reader.check()?;
    println!("database        {}", reader.store_name());
    println!(
        "schema version  {} (this release: {})",
        report.schema_version, report.release_schema_version
    );
    match report.constraints {
        None => {
            println!("integrity       {}", report.integrity.join("; "));
            println!(
                "foreign keys    {}",
                if report.orphans == 0 {
                    "ok".to_owned()
                } else {
                    format!("{} violations", report.orphans)
                }
            );
        }
        Some(constraints) => {
            println!("integrity       ok (kept by the server)");
            println!(
                "foreign keys    {}",
                if constraints == 3 && report.orphans == 0 {
                    "ok (3 constraints, enforced by the server)".to_owned()
                } else {
                    format!(
                        "{constraints} of 3 constraints in place, {} rows without their parent",
                        report.orphans
                    )
                }
            );
        }
    }
    let outside = &report.steps_outside_session;
    if outside.is_empty() {
        println!("step times      ok (every step within its session)");
    } else {
        println!(
            "step times      {}{} steps outside their session's time ({}{}): runs merged \
             into one session, or rows edited",
            outside.len(),
            if report.outside_listed_in_part() {
                "+"
            } else {
                ""
            },
            outside[..outside.len().min(3)].join(", "),
            if outside.len() > 3 { ", …" } else { "" }
        );
    }
    if report.is_sound() {
        Ok(Outcome::Done)
    } else {
        Err(format!(
            "{}: the database failed its checks (see above)",
            reader.store_name()
        )
        .into())
    }
}
