//! The order a request's spans are placed in: parents before their children.

use std::collections::HashMap;

use crate::otlp::placement::Item;
use crate::otlp::spans::{SpanId, TraceId};

/// Orders a request's spans so that a span comes after its parent when both are in it:
/// the parent's row then has its place before the child names it. A cycle of parents
/// (which no real trace has) is cut where it closes.
pub(super) fn parents_first(items: &mut [Item<'_>]) {
    let index: HashMap<(TraceId, SpanId), usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| ((item.trace, item.id), i))
        .collect();
    let parent_of = |i: usize| {
        items[i]
            .parent
            .and_then(|p| index.get(&(items[i].trace, p)).copied())
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
    let mut keyed: Vec<(usize, usize)> = depth
        .iter()
        .enumerate()
        .map(|(i, d)| (d.unwrap_or(0), i))
        .collect();
    keyed.sort();
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    apply_order(items, &order);
}

/// Rearranges `items` so that position `k` holds what was at `order[k]`.
fn apply_order<T>(items: &mut [T], order: &[usize]) {
    let mut position: Vec<usize> = (0..items.len()).collect(); // where each original is now
    let mut at: Vec<usize> = (0..items.len()).collect(); // which original is at each place
    for (k, &original) in order.iter().enumerate() {
        let from = position[original];
        if from != k {
            items.swap(k, from);
            let displaced = at[k];
            at[k] = original;
            at[from] = displaced;
            position[original] = k;
            position[displaced] = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::apply_order;

    #[test]
    fn apply_order_moves_each_item_where_the_order_says() {
        let mut items = vec!['a', 'b', 'c', 'd', 'e'];
        apply_order(&mut items, &[3, 0, 4, 1, 2]);
        assert_eq!(items, vec!['d', 'a', 'e', 'b', 'c']);
    }
}
