//! reasonkit-audit on the peer bench's workload: the layer, as the README installs it.

#[path = "../../common.rs"]
mod common;

use tracing_subscriber::prelude::*;

fn install(db: &std::path::Path) -> common::Side {
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(db)
        .build()
        .expect("the audit database opens");
    let guard = std::sync::Arc::new(guard);
    let flushing = guard.clone();
    common::Side {
        dispatch: tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        flush: Box::new(move || flushing.flush().expect("flushed")),
        keep: Box::new(guard),
    }
}

fn main() {
    common::run(install);
}
