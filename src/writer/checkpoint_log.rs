//! The layer's own checkpoints: appended by the writer thread to a file outside the
//! database, so that the chain's head is on record somewhere a later rewrite of the file
//! does not reach.
//!
//! One is written when the writer starts, after every [`checkpoint_every`] new entries, at
//! least every [`checkpoint_interval`] even when nothing was written (as CloudTrail emits
//! digests for idle hours: a gap in the series is evidence in itself), and at shutdown.
//! Each is fsynced. A checkpoint that cannot be written is a write error: reported on
//! stderr and chained into `audit_health`; the records themselves are not held up.
//!
//! [`checkpoint_every`]: crate::AuditLayerBuilder::checkpoint_every
//! [`checkpoint_interval`]: crate::AuditLayerBuilder::checkpoint_interval

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::chain;
use crate::chain::checkpoint::{Checkpoint, SignerKey};

/// Where and how often the writer writes checkpoints.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointConfig {
    pub(crate) path: PathBuf,
    pub(crate) every: u64,
    pub(crate) interval: Duration,
    pub(crate) key: Option<SignerKey>,
}

/// The writer's checkpoint state.
pub(crate) struct CheckpointLog {
    config: CheckpointConfig,
    last_size: Option<u64>,
    last_at: Instant,
}

impl CheckpointLog {
    pub(crate) fn new(config: CheckpointConfig) -> Self {
        CheckpointLog {
            config,
            last_size: None,
            last_at: Instant::now(),
        }
    }

    /// Whether a checkpoint is due, the chain now having `size` entries (when known).
    pub(crate) fn due(&self, size: Option<u64>) -> bool {
        let grown = match (size, self.last_size) {
            (Some(now), Some(last)) => now.saturating_sub(last) >= self.config.every,
            _ => false,
        };
        self.last_size.is_none() || grown || self.last_at.elapsed() >= self.config.interval
    }

    /// Reads the database's id and the chain's head with `read` and appends a checkpoint
    /// of it to the file.
    pub(crate) fn write(
        &mut self,
        read: impl FnOnce() -> Result<(String, chain::ChainHead), String>,
    ) -> Result<(), String> {
        let path = self.config.path.display().to_string();
        let (id, head) = read()
            .map_err(|e| format!("cannot read the chain head for a checkpoint to {path}: {e}"))?;
        let mut checkpoint = Checkpoint::of_head(&id, &head);
        if let Some(key) = &self.config.key {
            checkpoint = checkpoint.signed(key);
        }
        // Consumed even when the write fails: the next attempt comes with the next
        // interval, not in a tight loop.
        self.last_at = Instant::now();
        self.last_size = Some(head.size);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)
            .map_err(|e| format!("cannot open checkpoint file {path}: {e}"))?;
        writeln!(file, "{checkpoint}")
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("cannot write checkpoint file {path}: {e}"))
    }
}
