//! Erasure: a person's data goes from the trail, and an auditor can still check that
//! nothing else changed.
//!
//! GDPR Art. 17 lets a person have their data erased; an audit trail must still show that
//! nothing *else* was touched. An erasure replaces the content columns of a closed
//! session's rows — the session, its steps, their decisions: inputs, summaries, errors,
//! options, rationales, attributes, the input hash — by tombstones, and keeps ids, times,
//! modules, confidence, status, the tree and every chain entry. Each row is chained as a
//! split leaf, which hashes its content apart (docs/chain.md, "Split leaf"); a chained
//! `erased` event records, per row, the digest of its content before erasure, so `verify`
//! recomputes the row's leaf from its remaining columns and that digest: any change to an
//! erased row's structure, or content put back, is still found.
//!
//! What an erasure asks ([`Erase`]), reports ([`EraseReport`]) and refuses is here, once;
//! each store erases in its own file: `store/sqlite/erase.rs`, `store/postgres/erase.rs`.

/// Which sessions to erase, and why.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let db = dir.path().join("audit.db");
/// # use tracing_subscriber::prelude::*;
/// # let (layer, guard) = reasonkit_audit::AuditLayer::builder().path(&db).build()?;
/// # tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
/// #     tracing::info_span!("session", user_id = "u-4711").in_scope(|| {});
/// # });
/// # guard.shutdown()?;
/// use reasonkit_audit::Erase;
/// let report = reasonkit_audit::erase(
///     &db,
///     &Erase::attribute("user_id", "u-4711").reason("GDPR Art. 17 request 2026-118"),
/// )?;
/// println!("{} rows of {} sessions erased", report.rows, report.sessions);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Erase {
    pub(crate) selector: Selector,
    pub(crate) reason: String,
}

/// How the sessions are chosen.
#[derive(Clone, Debug)]
pub(crate) enum Selector {
    Session(String),
    Attribute { name: String, value: String },
}

impl Erase {
    /// The session with this id.
    pub fn session(id: impl Into<String>) -> Self {
        Erase {
            selector: Selector::Session(id.into()),
            reason: String::new(),
        }
    }

    /// Every session whose attribute `name` (a field no column took, e.g. `user_id`) has
    /// this value, as text.
    pub fn attribute(name: impl Into<String>, value: impl Into<String>) -> Self {
        Erase {
            selector: Selector::Attribute {
                name: name.into(),
                value: value.into(),
            },
            reason: String::new(),
        }
    }

    /// Why (a request's reference); recorded in the `erased` event. Required.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// How the event describes the selector: never the attribute's value, which may be
    /// the very personal data being erased.
    pub(crate) fn selector_text(&self) -> String {
        match &self.selector {
            Selector::Session(_) => "session".into(),
            Selector::Attribute { name, .. } => format!("attribute {name}"),
        }
    }
}

/// What an erasure did.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EraseReport {
    /// The sessions erased.
    pub session_ids: Vec<String>,
    /// How many sessions.
    pub sessions: u64,
    /// Rows whose content was replaced (sessions, steps, decisions).
    pub rows: u64,
    /// Rows chained again as split leaves first (written before split leaves existed).
    pub resealed: u64,
    /// The `erased` event's chain entry.
    pub event_seq: Option<u64>,
}

/// The ids of the matching sessions, (id, status) each, or why they cannot be erased:
/// none matches, or one is still running.
pub(crate) fn closed_sessions(
    matching: Vec<(String, String)>,
) -> std::result::Result<Vec<String>, String> {
    if matching.is_empty() {
        return Err("no session matches; nothing erased".into());
    }
    if let Some((id, _)) = matching.iter().find(|(_, status)| status == "running") {
        return Err(format!(
            "session {id} is still running; erase it once it has ended (nothing erased)"
        ));
    }
    Ok(matching.into_iter().map(|(id, _)| id).collect())
}

/// Why an erasure without a reason is refused: the `erased` event must say what request
/// it answers.
pub(crate) const NO_REASON: &str =
    "give the reason for the record (--reason: the request's reference)";
