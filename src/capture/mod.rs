//! The caller's thread: tracing's callbacks become the records of [`crate::record`], sent
//! to the writer thread through a bounded queue. Nothing here touches a store, hashes or
//! builds JSON: each callback does the least it can, since it runs inside the user's code.
//!
//! - `layer.rs`: [`AuditLayer`](crate::AuditLayer), the tracing callbacks — the hot path —
//!   and what it does when the queue is full ([`OverflowPolicy`](crate::OverflowPolicy)).
//! - `conventions.rs`: which spans are audited and as what: our own names, the
//!   OpenTelemetry GenAI conventions, the agent frameworks' spans; decided once per callsite.
//! - `context.rs`: each audited span's state in the registry, and the session and step a
//!   new span or event belongs to.
//! - `placement.rs`: where a framework step opened outside every session belongs (rig
//!   links its turns by `follows_from` only).
//! - `fields.rs`: the field visitor, copying values and cutting long ones.
//! - `open_spans.rs`: which closing spans may be the layer's, known without a lookup.

pub(crate) mod context;
pub(crate) mod conventions;
pub(crate) mod fields;
pub(crate) mod layer;
pub(crate) mod open_spans;
pub(crate) mod placement;
