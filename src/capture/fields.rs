//! The field visitor: tracing's field values become the owned values of [`crate::record`],
//! which can cross the queue.
//!
//! This runs on the caller's thread, so it does the least it can: copy strings, keep
//! numbers as numbers, and format a `Debug` value once (it is borrowed, so it cannot be
//! sent as it is). Everything else — choosing columns, JSON, hashing — happens on the
//! writer thread, in [`crate::store::rows`].

use std::fmt;

use tracing::field::{Field, Visit};

use crate::record::{FieldLimits, FieldValue, Fields};

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
