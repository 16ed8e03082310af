//! The least a layer can do on the caller's thread and still record what the audit layer
//! records of a step span: its fields and its two times, handed to another thread.
//!
//! It has none of the audit layer's logic: no conventions, no session or step lookup, no
//! ids, no redaction limits, no overflow policy. What it keeps is what every such layer
//! pays: visiting the fields into owned values (strings copied, since tracing lends them),
//! reading the clock when the span opens and when it closes, state in the span's
//! extensions between the two, and two records through a bounded crossbeam queue, freed
//! by the thread that receives them. The caller bench sets it beside the bare registry and
//! the audit layer, so that the audit layer's own share can be told from the floor.

use std::fmt;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, bounded};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A field value, owned.
#[derive(Debug)]
pub enum Value {
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// What crosses the queue.
#[derive(Debug)]
pub enum Record {
    Opened {
        id: u64,
        at: SystemTime,
        fields: Vec<(&'static str, Value)>,
    },
    Closed {
        id: u64,
        at: SystemTime,
    },
    /// Answered once every record before it was received.
    Drain(Sender<()>),
}

struct Fields(Vec<(&'static str, Value)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), Value::Str(value.to_owned())));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), Value::U64(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), Value::I64(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), Value::F64(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), Value::Bool(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .push((field.name(), Value::Str(format!("{value:?}"))));
    }
}

/// The span's state while open: its id as sent.
struct Open(u64);

/// The floor layer; it records the spans named `step`, and nothing of the others.
pub struct FloorLayer {
    sender: Sender<Record>,
}

impl<S> Layer<S> for FloorLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "step" {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let at = SystemTime::now();
        let mut fields = Fields(Vec::with_capacity(attrs.metadata().fields().len()));
        attrs.record(&mut fields);
        let _ = self.sender.send(Record::Opened {
            id: id.into_u64(),
            at,
            fields: fields.0,
        });
        span.extensions_mut().insert(Open(id.into_u64()));
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(Open(id)) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let _ = self.sender.send(Record::Closed {
            id,
            at: SystemTime::now(),
        });
    }
}

/// The layer, the queue's other end on a thread of its own (it drops what it receives),
/// and a way to wait until it has received everything sent so far.
pub fn floor_layer(capacity: usize) -> (FloorLayer, Drain) {
    let (sender, receiver) = bounded(capacity);
    std::thread::spawn(move || receive(receiver));
    let drain = Drain(sender.clone());
    (FloorLayer { sender }, drain)
}

fn receive(receiver: Receiver<Record>) {
    for record in receiver {
        if let Record::Drain(answer) = record {
            let _ = answer.send(());
        }
    }
}

/// Waits until the receiving thread has taken every record sent before.
pub struct Drain(Sender<Record>);

impl Drain {
    pub fn wait(&self) {
        let (answer, done) = bounded(1);
        if self.0.send(Record::Drain(answer)).is_ok() {
            let _ = done.recv();
        }
    }
}
