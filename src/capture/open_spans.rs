//! Which closing spans may be of interest, answered without looking the span up.
//!
//! Every span of the application closes through the layer's `on_close`, which is given
//! only the span's id. Deciding whether the span is audited took a lookup in the registry
//! (its metadata, then its extensions): for the spans the layer ignores, most of what an
//! unrelated span cost the caller with the layer installed. This is a counting filter over
//! span ids: a span whose callsite the layer does not ignore is counted in its slot when it
//! opens and uncounted when it closes, so a slot at zero proves no such span is open under
//! an id of that slot, and the close returns after one load. A slot above zero may be
//! shared with an unrelated span, which is then looked up as before: a false positive
//! costs what every close cost before, and no audited span is ever missed.

use std::sync::atomic::{AtomicU32, Ordering};

use tracing::span::Id;

/// The slots: 16 KiB, so that even thousands of open audited spans leave most ids of
/// unrelated spans in slots at zero.
const SLOTS: usize = 4_096;

/// Open spans of interest, counted per slot of their ids.
#[derive(Debug)]
pub(crate) struct OpenSpans {
    counts: Box<[AtomicU32]>,
}

impl OpenSpans {
    pub(crate) fn new() -> Self {
        OpenSpans {
            counts: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// A span of interest opened under `id`.
    #[inline]
    pub(crate) fn opened(&self, id: &Id) {
        self.counts[slot(id)].fetch_add(1, Ordering::Relaxed);
    }

    /// A span counted by [`OpenSpans::opened`] closed.
    #[inline]
    pub(crate) fn closed(&self, id: &Id) {
        // Never below zero, even if a close came without its opening (which the registry
        // does not do): an underflow would hide every later span of the slot.
        let _ = self.counts[slot(id)]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Whether a span of interest may be open under `id`; `false` is certain.
    ///
    /// The span's opening happened before its close (the registry hands the span from one
    /// to the other), so the load sees its count.
    #[inline]
    pub(crate) fn may_hold(&self, id: &Id) -> bool {
        self.counts[slot(id)].load(Ordering::Relaxed) != 0
    }
}

/// The slot of an id. The registry's ids pack a slab index, a thread and a generation, so
/// they are mixed (Fibonacci hashing) before taking the top bits.
#[inline]
fn slot(id: &Id) -> usize {
    let mixed = id.into_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - SLOTS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_zero_exactly_when_none_of_its_spans_is_open() {
        let open = OpenSpans::new();
        let ids: Vec<Id> = (1..=10_000).map(Id::from_u64).collect();
        assert!(ids.iter().all(|id| !open.may_hold(id)));
        for id in &ids[..100] {
            open.opened(id);
        }
        // Every open one is seen, and most others are not.
        assert!(ids[..100].iter().all(|id| open.may_hold(id)));
        let false_positives = ids[100..].iter().filter(|id| open.may_hold(id)).count();
        assert!(false_positives < 9_900 / 10, "{false_positives} of 9,900");
        // Two spans of one slot: the slot stays set until both closed.
        let shared = ids[100..]
            .iter()
            .find(|id| slot(id) == slot(&ids[0]))
            .expect("10,000 ids fill every slot of 4,096");
        open.opened(shared);
        open.closed(&ids[0]);
        assert!(open.may_hold(shared));
        open.closed(shared);
        for id in &ids[1..100] {
            open.closed(id);
        }
        assert!(ids.iter().all(|id| !open.may_hold(id)));
        // A close without its opening does not wrap the count around.
        open.closed(&ids[0]);
        assert!(!open.may_hold(&ids[0]));
    }

    #[test]
    fn the_ids_of_a_slab_spread_over_the_slots() {
        // The registry's ids for spans open at once on one thread are consecutive indexes.
        let used: std::collections::HashSet<usize> =
            (1..=4_096).map(|n| slot(&Id::from_u64(n))).collect();
        assert!(used.len() > 4_096 / 2, "{} slots", used.len());
    }
}
