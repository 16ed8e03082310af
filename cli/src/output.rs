//! How results are shown: aligned tables for people, JSON for machines; colour only on a
//! terminal (or when asked), never when `NO_COLOR` is set under `--color auto`.

use std::sync::atomic::{AtomicU8, Ordering};

pub use comfy_table::Cell;
use comfy_table::{Color, ContentArrangement, Table, presets};

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

static COLOR: AtomicU8 = AtomicU8::new(0);

pub fn set_color(choice: ColorChoice) {
    let choice = match choice {
        ColorChoice::Auto if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) => {
            ColorChoice::Never
        }
        other => other,
    };
    COLOR.store(choice as u8, Ordering::Relaxed);
    anstream::ColorChoice::write_global(match choice {
        ColorChoice::Auto => anstream::ColorChoice::Auto,
        ColorChoice::Always => anstream::ColorChoice::Always,
        ColorChoice::Never => anstream::ColorChoice::Never,
    });
}

fn color() -> ColorChoice {
    match COLOR.load(Ordering::Relaxed) {
        1 => ColorChoice::Always,
        2 => ColorChoice::Never,
        _ => ColorChoice::Auto,
    }
}

/// A table with a header row, styled for a terminal only.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            header
                .iter()
                .map(|h| Cell::new(h).add_attribute(comfy_table::Attribute::Bold)),
        );
    match color() {
        ColorChoice::Always => {
            table.enforce_styling();
        }
        ColorChoice::Never => {
            table.force_no_tty();
        }
        ColorChoice::Auto => {}
    }
    table
}

/// Prints a table without trailing spaces on its lines.
pub fn print_table(table: &Table) {
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// A session or step status, coloured by how it ended.
pub fn status_cell(status: &str) -> Cell {
    let cell = Cell::new(status);
    match status {
        "completed" => cell.fg(Color::Green),
        "failed" | "interrupted" => cell.fg(Color::Red),
        "running" => cell.fg(Color::Yellow),
        _ => cell,
    }
}

pub fn confidence(value: Option<f64>) -> String {
    value.map_or_else(String::new, |c| format!("{c:.2}"))
}

pub fn duration_ms(value: Option<f64>) -> String {
    match value {
        None => String::new(),
        Some(ms) if ms < 1.0 => format!("{:.0} µs", ms * 1000.0),
        Some(ms) if ms < 1000.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{:.2} s", ms / 1000.0),
    }
}

pub fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// Shows query results: a JSON array under `--json`, else (when there are any) the table
/// `build` makes of them. Nothing found is exit 1 either way.
pub fn emit<T: serde::Serialize>(
    rows: &[T],
    json: bool,
    build: impl FnOnce(&[T]) -> Table,
) -> Result<crate::Outcome, crate::Failure> {
    if json {
        print_json(&rows)?;
    } else if !rows.is_empty() {
        print_table(&build(rows));
    }
    Ok(if rows.is_empty() {
        crate::Outcome::NothingFound
    } else {
        crate::Outcome::Done
    })
}

/// Prints a value as JSON, pretty.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), crate::Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    use std::io::Write;
    writeln!(out)?;
    Ok(())
}

/// A step's figures as the report and the web UI show them: its duration (or `open`), its
/// confidence and its tokens, joined by ` · `.
pub fn step_figures(step: &reasonkit_audit::read::Step, duration_us: Option<i64>) -> String {
    let mut figures = vec![match duration_us {
        Some(us) => duration_ms(Some(us as f64 / 1000.0)),
        None => "open".into(),
    }];
    if let Some(c) = step.confidence {
        figures.push(format!("conf {c:.2}"));
    }
    if let Some(t) = step.tokens_used {
        figures.push(format!("{t} tok"));
    }
    figures.join(" · ")
}
