//! Client-side ordering: surface each conversation's messages in `seq` order,
//! exactly once, and say when something is missing.
//!
//! The server already sends in order; this is the SDK's own guarantee, so
//! that a replay overlapping live delivery, a retry, or a server bug can never
//! show a user a duplicate or an out-of-order line. Held-back items are bounded.

use std::collections::{BTreeMap, HashMap};

/// What became of one offered item.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// These items, in order, are ready for the application (the offered one
    /// and any held-back ones it unblocked).
    Ready(Vec<T>),
    /// Already delivered: dropped.
    Duplicate,
    /// Held back: seqs `from..to` (exclusive) are missing and should be fetched.
    Gap {
        /// First missing seq.
        from: u64,
        /// First seq after the gap.
        to: u64,
    },
}

#[derive(Debug)]
struct Conv<T> {
    /// Highest seq surfaced; every seq at or below it has been surfaced.
    delivered: u64,
    held: BTreeMap<u64, T>,
}

/// Per-conversation in-order, exactly-once delivery.
#[derive(Debug)]
pub struct Sequencer<T> {
    convs: HashMap<u64, Conv<T>>,
    max_held: usize,
}

impl<T> Sequencer<T> {
    /// A sequencer holding back at most `max_held` items per conversation.
    pub fn new(max_held: usize) -> Self {
        Self { convs: HashMap::new(), max_held }
    }

    /// Sets where a conversation stands (from a stored cursor or a handshake
    /// head). Moves forward only; drops held items at or below it.
    pub fn set_cursor(&mut self, conv: u64, seq: u64) {
        let c = self.convs.entry(conv).or_insert_with(|| Conv { delivered: 0, held: BTreeMap::new() });
        if seq > c.delivered {
            c.delivered = seq;
            c.held = c.held.split_off(&(seq + 1));
        }
    }

    /// Seqs at or below `seq` will never come (the server purged them):
    /// they count as surfaced. Moves forward only; drops held items at or
    /// below it and returns the held ones that are ready now, in order.
    pub fn skip_to(&mut self, conv: u64, seq: u64) -> Vec<T> {
        self.set_cursor(conv, seq);
        let Some(c) = self.convs.get_mut(&conv) else { return Vec::new() };
        let mut ready = Vec::new();
        while let Some(entry) = c.held.first_entry() {
            if *entry.key() != c.delivered + 1 {
                break;
            }
            c.delivered += 1;
            ready.push(entry.remove());
        }
        ready
    }

    /// The highest seq surfaced for a conversation (0 if none).
    pub fn cursor(&self, conv: u64) -> u64 {
        self.convs.get(&conv).map_or(0, |c| c.delivered)
    }

    /// Every known conversation's cursor.
    pub fn cursors(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.convs.iter().map(|(&k, c)| (k, c.delivered))
    }

    /// Whether this conversation is known (has a cursor).
    pub fn knows(&self, conv: u64) -> bool {
        self.convs.contains_key(&conv)
    }

    /// Keeps only the conversations `keep` accepts (e.g. those the user still
    /// belongs to), so cursors do not pile up over the years.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.convs.retain(|&k, _| keep(k));
    }

    /// Forgets everything (after the server asked for a resync).
    pub fn clear(&mut self) {
        self.convs.clear();
    }

    /// Offers message `seq` of `conv`.
    pub fn offer(&mut self, conv: u64, seq: u64, item: T) -> Offer<T> {
        let max_held = self.max_held;
        let c = self.convs.entry(conv).or_insert_with(|| Conv { delivered: 0, held: BTreeMap::new() });
        if seq <= c.delivered || c.held.contains_key(&seq) {
            return Offer::Duplicate;
        }
        if seq != c.delivered + 1 {
            let from = c.delivered + 1;
            if c.held.len() < max_held {
                c.held.insert(seq, item);
            }
            let to = *c.held.keys().next().unwrap_or(&seq);
            return Offer::Gap { from, to };
        }
        let mut ready = vec![item];
        c.delivered = seq;
        while let Some(entry) = c.held.first_entry() {
            if *entry.key() != c.delivered + 1 {
                break;
            }
            c.delivered += 1;
            ready.push(entry.remove());
        }
        Offer::Ready(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_once() {
        let mut s = Sequencer::new(100);
        assert_eq!(s.offer(1, 1, "a"), Offer::Ready(vec!["a"]));
        assert_eq!(s.offer(1, 1, "a"), Offer::Duplicate);
        assert_eq!(s.offer(1, 3, "c"), Offer::Gap { from: 2, to: 3 });
        assert_eq!(s.offer(1, 3, "c"), Offer::Duplicate);
        assert_eq!(s.offer(1, 2, "b"), Offer::Ready(vec!["b", "c"]));
        assert_eq!(s.cursor(1), 3);
        assert_eq!(s.cursor(2), 0);
    }

    #[test]
    fn skipping_a_purged_run_releases_what_follows_it() {
        let mut s = Sequencer::new(100);
        s.set_cursor(1, 2);
        assert_eq!(s.offer(1, 9, "i"), Offer::Gap { from: 3, to: 9 });
        assert_eq!(s.offer(1, 11, "k"), Offer::Gap { from: 3, to: 9 });
        assert_eq!(s.skip_to(1, 8), vec!["i"], "3..=8 purged: 9 is next");
        assert_eq!(s.cursor(1), 9);
        assert_eq!(s.skip_to(1, 4), Vec::<&str>::new(), "never back");
        assert_eq!(s.offer(1, 10, "j"), Offer::Ready(vec!["j", "k"]));
        assert_eq!(s.skip_to(5, 3), Vec::<&str>::new(), "an unknown conversation starts after it");
        assert_eq!(s.cursor(5), 3);
    }

    #[test]
    fn cursor_moves_forward_only_and_drops_held() {
        let mut s = Sequencer::new(100);
        s.set_cursor(7, 10);
        assert_eq!(s.offer(7, 12, 12), Offer::Gap { from: 11, to: 12 });
        s.set_cursor(7, 12);
        s.set_cursor(7, 5);
        assert_eq!(s.cursor(7), 12);
        assert_eq!(s.offer(7, 13, 13), Offer::Ready(vec![13]));
    }

    #[test]
    fn held_items_are_bounded() {
        let mut s = Sequencer::new(2);
        for seq in 3..10 {
            assert!(matches!(s.offer(1, seq, seq), Offer::Gap { .. }));
        }
        assert_eq!(s.offer(1, 1, 1), Offer::Ready(vec![1]));
        assert_eq!(s.offer(1, 2, 2), Offer::Ready(vec![2, 3, 4]));
    }
}
