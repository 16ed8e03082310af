//! Record identifiers: UUIDv7 made on the caller's thread without a syscall, or the id a
//! user gave a session.
//!
//! UUIDv7 puts the creation time in the high bits, so ids made one after another sort one
//! after another and SQLite's primary-key B-trees grow at their right edge. The random
//! bits come from a per-thread `fastrand` generator rather than the OS, which would cost a
//! `getrandom` syscall per span.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// The id of a session, step or decision row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AuditId {
    /// A UUIDv7 this crate generated.
    Generated(Uuid),
    /// The text of a session span's `id` field.
    Given(Arc<str>),
}

impl AuditId {
    /// A fresh UUIDv7 for something created at `at`.
    pub(crate) fn generate(at: SystemTime) -> Self {
        let millis = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut random = [0u8; 10];
        random.copy_from_slice(&fastrand::u128(..).to_le_bytes()[..10]);
        AuditId::Generated(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }
}

impl fmt::Display for AuditId {
    /// Lowercase hyphenated for generated ids; given ids as given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditId::Generated(uuid) => fmt::Display::fmt(&uuid.hyphenated(), f),
            AuditId::Given(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn generated_ids_are_lowercase_hyphenated_uuid_v7() {
        let id = AuditId::generate(SystemTime::now()).to_string();
        let parsed = Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(id, id.to_lowercase());
        assert_eq!(id.len(), 36);
    }

    #[test]
    fn ids_made_a_millisecond_apart_sort_in_time_order() {
        let t = SystemTime::now();
        let a = AuditId::generate(t).to_string();
        let b = AuditId::generate(t + Duration::from_millis(1)).to_string();
        assert!(a < b, "{a} should sort before {b}");
    }
}
