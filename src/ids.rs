//! Record identifiers: UUIDv7 made on the caller's thread without a syscall, or the id a
//! user gave a session.
//!
//! A given id names what the user meant ("run-1", a conversation id), not one span: the
//! same text may name many sessions, one after another or at once. So a given id also
//! carries a UUIDv7 of its own span, and two session spans are two rows to the writer
//! however alike their texts; the store writes the text, or, when the text already names
//! a session there, `<text>~<that UUIDv7>` (see [`AuditId::renamed`]).
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
    /// The text of a session span's `id` field (or its `gen_ai.conversation.id`), and a
    /// UUIDv7 that tells this span apart from every other session given the same text.
    Given { text: Arc<str>, instance: Uuid },
}

impl AuditId {
    /// A fresh UUIDv7 for something created at `at`.
    pub(crate) fn generate(at: SystemTime) -> Self {
        AuditId::Generated(uuid_v7(at))
    }

    /// The id of a session span given `text` as its id, created at `at`.
    pub(crate) fn given(text: impl Into<Arc<str>>, at: SystemTime) -> Self {
        AuditId::Given {
            text: text.into(),
            instance: uuid_v7(at),
        }
    }

    /// The text a given id shares with other sessions, if it is one.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn given_text(&self) -> Option<&str> {
        match self {
            AuditId::Given { text, .. } => Some(text),
            AuditId::Generated(_) => None,
        }
    }

    /// The id this session is written under when its given text already names another
    /// session: the text, `~`, and the span's own UUIDv7 — so it is the same on every
    /// attempt at a batch, and sorts by time among the runs that re-used the text.
    pub(crate) fn renamed(&self) -> String {
        match self {
            AuditId::Given { text, instance } => format!("{text}~{}", instance.hyphenated()),
            AuditId::Generated(uuid) => uuid.hyphenated().to_string(),
        }
    }
}

/// A UUIDv7 for `at`, its random bits from the thread's generator.
fn uuid_v7(at: SystemTime) -> Uuid {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut random = [0u8; 10];
    random.copy_from_slice(&fastrand::u128(..).to_le_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

impl fmt::Display for AuditId {
    /// Lowercase hyphenated for generated ids; given ids as given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditId::Generated(uuid) => fmt::Display::fmt(&uuid.hyphenated(), f),
            AuditId::Given { text, .. } => f.write_str(text),
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
    fn sessions_given_the_same_text_are_two_ids_that_print_the_same() {
        let at = SystemTime::now();
        let (a, b) = (AuditId::given("run-1", at), AuditId::given("run-1", at));
        assert_ne!(a, b);
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("run-1".into(), "run-1".into())
        );
        assert_eq!(a.given_text(), Some("run-1"));
        assert_ne!(a.renamed(), b.renamed());
        assert_eq!(a.renamed(), a.renamed(), "the same on every attempt");
        assert!(a.renamed().starts_with("run-1~"));
    }

    #[test]
    fn ids_made_a_millisecond_apart_sort_in_time_order() {
        let t = SystemTime::now();
        let a = AuditId::generate(t).to_string();
        let b = AuditId::generate(t + Duration::from_millis(1)).to_string();
        assert!(a < b, "{a} should sort before {b}");
    }
}
