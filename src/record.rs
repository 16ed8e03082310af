//! The messages that cross the queue from the layer (caller's threads) to the writer.
//!
//! They are deliberately raw: ids, times as `SystemTime`, the span's target and its fields
//! as recorded. The writer decides what becomes which column (see [`crate::store::rows`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::ids::AuditId;

/// Appended to a field value cut at [`AuditLayerBuilder::max_field_len`](crate::AuditLayerBuilder::max_field_len).
pub const TRUNCATION_MARKER: &str = "…[truncated by reasonkit-audit]";

/// One field value, owned.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FieldValue {
    /// Recorded as a string (`field = "text"` or `%display`).
    Str(String),
    /// Recorded with `?debug` (the default for `#[instrument]` arguments).
    Debug(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// A span's or event's fields, in the order they were recorded. A name may repeat when a
/// field is recorded again; the last value wins.
pub(crate) type Fields = Vec<(&'static str, FieldValue)>;

/// Finds the last value of `name`.
#[inline]
pub(crate) fn last<'a>(
    fields: &'a [(&'static str, FieldValue)],
    name: &str,
) -> Option<&'a FieldValue> {
    fields
        .iter()
        .rev()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A value as column text. A `Debug` value that is a quoted string (what `?"text"` or an
/// `#[instrument]`ed `&str` argument gives) loses its quotes and escapes.
#[inline]
pub(crate) fn text(value: &FieldValue) -> String {
    match value {
        FieldValue::Str(s) => s.clone(),
        FieldValue::Debug(s) => unquote(s).unwrap_or_else(|| s.clone()),
        FieldValue::I64(n) => n.to_string(),
        FieldValue::U64(n) => n.to_string(),
        FieldValue::F64(n) => n.to_string(),
        FieldValue::Bool(b) => b.to_string(),
    }
}

fn unquote(debug: &str) -> Option<String> {
    if debug.len() >= 2 && debug.starts_with('"') && debug.ends_with('"') {
        serde_json::from_str::<String>(debug).ok()
    } else {
        None
    }
}

/// Limits on what a visitor keeps, shared by every span of one layer.
#[derive(Debug)]
pub(crate) struct FieldLimits {
    /// Longest value kept, in bytes; longer values are cut at a char boundary and marked.
    pub(crate) max_len: usize,
    /// How many values were cut, for the health report.
    pub(crate) truncated: AtomicU64,
}

impl FieldLimits {
    pub(crate) fn new(max_len: usize) -> Arc<Self> {
        Arc::new(FieldLimits {
            max_len,
            truncated: AtomicU64::new(0),
        })
    }

    /// `text`, copied — or, when longer than the limit, its first `max_len` bytes (cut at a
    /// character boundary) and the marker, counted. A long value is never copied whole.
    #[inline]
    pub(crate) fn keep(&self, text: &str) -> String {
        if text.len() <= self.max_len {
            return text.to_owned();
        }
        let mut cut = self.max_len;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut kept = String::with_capacity(cut + TRUNCATION_MARKER.len());
        kept.push_str(&text[..cut]);
        kept.push_str(TRUNCATION_MARKER);
        self.truncated.fetch_add(1, Ordering::Relaxed);
        kept
    }

    /// A formatted value, cut like [`FieldLimits::keep`] when too long.
    #[inline]
    pub(crate) fn cap(&self, text: String) -> String {
        if text.len() > self.max_len {
            self.keep(&text)
        } else {
            text
        }
    }
}

/// What an audited span stands for, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Session,
    Step,
    Decision,
}

impl Kind {
    /// The kind of a span with this name, if it is audited at all.
    pub(crate) fn of_span(name: &str) -> Option<Kind> {
        match name {
            "session" => Some(Kind::Session),
            "step" => Some(Kind::Step),
            "decision" => Some(Kind::Decision),
            _ => None,
        }
    }
}

/// An audited span (or an implicit parent the layer made up) was created.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) kind: Kind,
    pub(crate) id: AuditId,
    /// For a step: its session. For a decision: its step. For a session: `None`.
    pub(crate) parent: Option<AuditId>,
    /// For a step: the enclosing step, if it is nested.
    pub(crate) parent_step: Option<AuditId>,
    pub(crate) at: SystemTime,
    /// The span's target (the module path, unless set): a step's default `module`.
    pub(crate) target: &'static str,
    pub(crate) fields: Fields,
    /// The layer made this row up to hold an orphan step or decision.
    pub(crate) implicit: bool,
}

/// What a span learned while it was open, beyond its creation fields.
///
/// Most spans learn nothing, so this lives in a box allocated the first time there is
/// something to keep ([`Learned::get_or_insert`]): a span's state in the registry stays a
/// few words, and the same box crosses the queue in [`Closed`] without being copied.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    /// Fields recorded with `Span::record` after creation.
    pub(crate) recorded: Fields,
    /// The value of the last `#[instrument(ret)]` event inside the span.
    pub(crate) returned: Option<FieldValue>,
    /// The value of the last `#[instrument(err)]` (`error` field) event inside the span.
    pub(crate) error: Option<FieldValue>,
    /// An ERROR-level event happened directly inside the span.
    pub(crate) error_event: bool,
    /// Where the row really starts, when its opening had to guess: a span received over
    /// OTLP whose row was opened, as a placeholder, by a child that arrived first.
    pub(crate) started: Option<SystemTime>,
    /// For a step: its enclosing step, when its opening could not know it (the same
    /// placeholder case). The row's other keys never change.
    pub(crate) parent_step: Option<AuditId>,
}

/// What a span that learned nothing learned.
pub(crate) static NOTHING_LEARNED: Learned = Learned {
    recorded: Vec::new(),
    returned: None,
    error: None,
    error_event: false,
    started: None,
    parent_step: None,
};

impl Learned {
    /// The box in `slot`, allocated now if the span had learned nothing until now.
    pub(crate) fn get_or_insert(slot: &mut Option<Box<Learned>>) -> &mut Learned {
        slot.get_or_insert_with(Box::default)
    }

    /// The span failed: an ERROR event or an `error` event value inside it.
    pub(crate) fn failed(&self) -> bool {
        self.error_event || self.error.is_some()
    }

    /// The row's start or enclosing step is corrected: its UPDATE must write them.
    pub(crate) fn moves(&self) -> bool {
        self.started.is_some() || self.parent_step.is_some()
    }
}

/// An audited span closed. Carries what was learned while it was open.
#[derive(Debug)]
pub(crate) struct Closed {
    pub(crate) id: AuditId,
    pub(crate) at: SystemTime,
    /// `None` when the span learned nothing while open: see [`Closed::learned`].
    pub(crate) learned: Option<Box<Learned>>,
}

impl Closed {
    /// What the span learned while open (nothing, for most spans).
    pub(crate) fn learned(&self) -> &Learned {
        self.learned.as_deref().unwrap_or(&NOTHING_LEARNED)
    }
}

/// A `decision` event: a decision made in a single moment.
#[derive(Debug)]
pub(crate) struct Decided {
    pub(crate) id: AuditId,
    pub(crate) step: AuditId,
    pub(crate) at: SystemTime,
    pub(crate) fields: Fields,
}

/// A session joined into another (a trace whose root span links to a span of another
/// trace's run, received over OTLP after some of its spans were already written): every
/// step of `from` moves to `into`, and `from` stays as the pointer to it — status
/// `joined`, ended `at`, `otel.joined_into` in its attributes — so that whoever finds the
/// trace's own session finds where its steps went. Each row it changes is chained.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) struct Joined {
    pub(crate) from: AuditId,
    pub(crate) into: AuditId,
    pub(crate) at: SystemTime,
    /// The trace the joined session is of (hex): each moved step that does not name its
    /// trace yet gets it as `otel.trace_id`, since its new session's is another trace's.
    pub(crate) trace: String,
}

/// One message to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    Opened(Opened),
    /// A row already in the store, still open, whose close this process will send: the
    /// writer tracks it as committed, so the close becomes an UPDATE. (A receiver started
    /// again finishing the placeholders of the one before it.)
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    Adopted(Opened),
    Closed(Closed),
    Decided(Decided),
    /// A session's steps move to another session, and it stays as a pointer to it.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    Joined(Joined),
    /// Commit everything received so far, then answer.
    Flush(crossbeam_channel::Sender<Result<(), String>>),
    /// Commit everything received so far, then stop.
    Shutdown,
}

/// A record's time as the stores write it (SQLite's text; PostgreSQL reads the same): `YYYY-MM-DD HH:MM:SS.ffffff`, UTC, which SQLite's date
/// functions read and which sorts and compares correctly as text.
pub(crate) fn timestamp(at: SystemTime) -> String {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::<chrono::Utc>::from(at);
    let micros = t.nanosecond() % 1_000_000_000 / 1_000;
    // Digits written straight into the text: the writer formats two or three of these per
    // row, and `write!` (which chrono's `format` is slower still than) showed in its
    // profile. Years outside 0..=9999 take the general path.
    let Ok(year @ 0..=9_999) = u32::try_from(t.year()) else {
        return timestamp_formatted(&t);
    };
    let mut text = [0u8; 26];
    let mut put = |at: usize, value: u32, width: usize| {
        let mut value = value;
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    put(20, micros, 6);
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        text[at] = separator;
    }
    // ASCII digits and separators only, so nothing is replaced.
    String::from_utf8_lossy(&text).into_owned()
}

/// [`timestamp`] through `write!`, for any year.
fn timestamp_formatted(t: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let mut text = String::with_capacity(26);
    let _ = write!(
        text,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() % 1_000_000_000 / 1_000
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_at_a_char_boundary_marked_and_counted() {
        let limits = FieldLimits::new(5);
        let cut = limits.cap("ab€€€".to_owned()); // '€' is 3 bytes: boundary at 5 is mid-char
        assert_eq!(cut, format!("ab€{TRUNCATION_MARKER}"));
        assert_eq!(limits.truncated.load(Ordering::Relaxed), 1);
        assert_eq!(limits.cap("short".to_owned()), "short");
        assert_eq!(limits.keep("ab€€€"), format!("ab€{TRUNCATION_MARKER}"));
        assert_eq!(limits.keep("short"), "short");
        assert_eq!(limits.truncated.load(Ordering::Relaxed), 2);
    }

    proptest::proptest! {
        /// The digits written by hand are the text `write!` makes, for any time from
        /// before 1970 to past 9999, at any nanosecond (leap seconds included).
        #[test]
        fn timestamps_written_by_hand_are_those_write_makes(
            seconds in -100_000_000_000i64..400_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let at = if seconds >= 0 {
                std::time::UNIX_EPOCH + std::time::Duration::new(seconds.unsigned_abs(), nanos)
            } else {
                std::time::UNIX_EPOCH - std::time::Duration::new(seconds.unsigned_abs(), nanos)
            };
            let t = chrono::DateTime::<chrono::Utc>::from(at);
            proptest::prop_assert_eq!(timestamp(at), timestamp_formatted(&t));
        }
    }

    #[test]
    fn a_timestamp_reads_as_sqlite_and_people_expect() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::new(1_733_526_245, 7_654_321);
        assert_eq!(timestamp(at), "2024-12-06 23:04:05.007654");
        assert_eq!(
            timestamp(std::time::UNIX_EPOCH),
            "1970-01-01 00:00:00.000000"
        );
    }
}
