//! adk-telemetry 2.3.0 on the peer bench's workload: its `SqliteSpanExporter` recording
//! every span (`record_all_spans(true)`), installed by hand with no fmt layer — its
//! documented record-all setup. (Its `init_with_sqlite` keeps only its agent-loop span
//! names, so it would store none of these spans; see ../../../BENCHMARKS.md.)

#[path = "../../common.rs"]
mod common;

use std::sync::Arc;

use adk_telemetry::span_exporter::AdkSpanLayer;
use adk_telemetry::sqlite::SqliteSpanExporter;
use tracing_subscriber::prelude::*;

fn install(db: &std::path::Path) -> common::Side {
    let exporter = Arc::new(
        SqliteSpanExporter::new(db)
            .expect("the database opens")
            .record_all_spans(true),
    );
    let flushing = exporter.clone();
    common::Side {
        dispatch: tracing::Dispatch::new(
            tracing_subscriber::registry().with(AdkSpanLayer::new(exporter.clone())),
        ),
        // Its flush gives up after 10 s under load; asked again until it succeeds.
        flush: Box::new(move || while flushing.flush().is_err() {}),
        keep: Box::new(exporter),
    }
}

fn main() {
    common::run(install);
}
