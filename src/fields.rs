//! Field visitors: tracing's field values become owned values that can cross the queue.
//!
//! This runs on the caller's thread, so it does the least it can: copy strings, keep
//! numbers as numbers, and format a `Debug` value once (it is borrowed, so it cannot be
//! sent as it is). Everything else — choosing columns, JSON, hashing — happens on the
//! writer thread, in [`crate::rows`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};

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
    fn keep(&self, text: &str) -> String {
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
    fn cap(&self, text: String) -> String {
        if text.len() > self.max_len {
            self.keep(&text)
        } else {
            text
        }
    }
}

/// Collects every field of a span, a `Span::record` call or an event.
pub(crate) struct Collector<'a> {
    pub(crate) fields: Fields,
    limits: &'a FieldLimits,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(limits: &'a FieldLimits, capacity: usize) -> Self {
        Collector {
            fields: Vec::with_capacity(capacity),
            limits,
        }
    }
}

impl Visit for Collector<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), FieldValue::F64(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), FieldValue::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), FieldValue::U64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), FieldValue::Bool(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let value = self.limits.keep(value);
        self.fields.push((field.name(), FieldValue::Str(value)));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // What `#[instrument(err)]` and `error = &e as &dyn Error` give: the Display text.
        let text = self.limits.cap(value.to_string());
        self.fields.push((field.name(), FieldValue::Str(text)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = self.limits.cap(format!("{value:?}"));
        self.fields.push((field.name(), FieldValue::Debug(text)));
    }
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
}
