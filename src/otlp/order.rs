//! The order a request's spans are placed in: parents before their children.

use std::collections::HashMap;

use crate::otlp::spans::{SpanId, TraceId};

/// Orders a request's spans so that a span comes after its parent when both are in it:
/// the parent's row then has its place before the child names it. `ids` gives a span's
/// trace, id and parent. Spans at the same depth keep their order. A cycle of parents
/// (which no real trace has) is cut where it closes.
pub(super) fn parents_first<T>(
    items: Vec<T>,
    ids: impl Fn(&T) -> (TraceId, SpanId, Option<SpanId>),
) -> Vec<T> {
    let keys: Vec<_> = items.iter().map(&ids).collect();
    let index: HashMap<(TraceId, SpanId), usize> = keys
        .iter()
        .enumerate()
        .map(|(i, (trace, id, _))| ((*trace, *id), i))
        .collect();
    let parent_of = |i: usize| {
        let (trace, _, parent) = keys[i];
        parent.and_then(|p| index.get(&(trace, p)).copied())
    };
    let mut depth: Vec<Option<usize>> = vec![None; items.len()];
    let mut on_path = vec![false; items.len()];
    for start in 0..items.len() {
        let mut path = Vec::new();
        let mut at = start;
        let base = loop {
            if let Some(d) = depth[at] {
                break Some(d);
            }
            path.push(at);
            on_path[at] = true;
            match parent_of(at) {
                Some(parent) if !on_path[parent] => at = parent,
                _ => break None,
            }
        };
        let top = base.map_or(0, |d| d + 1);
        for (d, &i) in (top..).zip(path.iter().rev()) {
            depth[i] = Some(d);
            on_path[i] = false;
        }
    }
    let mut keyed: Vec<(usize, T)> = depth
        .into_iter()
        .map(|d| d.unwrap_or(0))
        .zip(items)
        .collect();
    keyed.sort_by_key(|(d, _)| *d);
    keyed.into_iter().map(|(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::parents_first;

    #[test]
    fn parents_come_first_same_depths_keep_their_order_and_a_cycle_is_cut() {
        // (span, parent): 4 → 3 → 2 → 1 (the root), 5 under 1, 7 ↔ 8 a cycle.
        let spans = [(4, 3), (5, 1), (3, 2), (7, 8), (2, 1), (1, 0), (8, 7)];
        let ordered = parents_first(spans.to_vec(), |&(id, parent)| {
            ([1; 16], [id; 8], (parent != 0).then_some([parent; 8]))
        });
        let ids: Vec<u8> = ordered.iter().map(|(id, _)| *id).collect();
        let at = |id: u8| ids.iter().position(|&x| x == id).unwrap();
        assert!(
            at(1) < at(2) && at(2) < at(3) && at(3) < at(4) && at(1) < at(5),
            "{ids:?}"
        );
        assert_eq!(ids.len(), 7);
        assert!(ids.contains(&7) && ids.contains(&8));
    }
}
