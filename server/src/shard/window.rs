//! Cluster-wide rate windows, sans-IO: the rule that decides whether one more
//! action of a key (a user's messages, an address's connections) would pass
//! its limit across all nodes. Each node counts its own actions at once and
//! learns the others' counts later (from Redis, through the bridge, every
//! batch interval), so no check waits on Redis. Counts are kept in fixed
//! windows of [`WINDOW_MS`] and read as a sliding window: the previous
//! window's count weighted by the part of it still inside the last minute,
//! plus the current one's. Times are given (`now_ms`), never read here.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// Length of one counting window (the limits are per minute), ms.
pub const WINDOW_MS: u64 = 60_000;

/// The window `now_ms` falls in.
pub fn window_of(now_ms: u64) -> u64 {
    now_ms / WINDOW_MS
}

/// Counts of one key: this node's and the other nodes', for the previous and the current window.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// The current window.
    window: u64,
    /// This node's count, [previous, current].
    local: [u64; 2],
    /// The other nodes' counts as last learned, [previous, current].
    others: [u64; 2],
}

impl Counts {
    /// Moves to `window` (later than or equal to the current one).
    fn roll(&mut self, window: u64) {
        if window == self.window {
            return;
        }
        let (local, others) = if window == self.window + 1 { (self.local[1], self.others[1]) } else { (0, 0) };
        *self = Counts { window, local: [local, 0], others: [others, 0] };
    }

    /// Previous and current window totals.
    fn totals(&self) -> (u64, u64) {
        (self.local[0] + self.others[0], self.local[1] + self.others[1])
    }
}

/// The sliding estimate at `now_ms` of a key whose previous and current
/// windows hold `prev` and `cur` (current window starting at `start`).
fn estimate(prev: u64, cur: u64, start: u64, now_ms: u64) -> f64 {
    let into = now_ms.saturating_sub(start).min(WINDOW_MS) as f64 / WINDOW_MS as f64;
    prev as f64 * (1.0 - into) + cur as f64
}

/// How long from `now_ms` until one more action fits under `limit`, if
/// nothing more is counted meanwhile.
fn wait_until_room(prev: u64, cur: u64, start: u64, now_ms: u64, limit: u64) -> Duration {
    let room = limit.saturating_sub(1) as f64;
    let w = WINDOW_MS as f64;
    let at = if (cur as f64) <= room && prev > 0 {
        // Within this window, once enough of the previous one has slid out.
        start as f64 + w * (1.0 - (room - cur as f64) / prev as f64)
    } else if (cur as f64) <= room {
        now_ms as f64
    } else {
        // In the next window, once enough of this one has slid out.
        (start + WINDOW_MS) as f64 + w * (1.0 - room / cur as f64)
    };
    Duration::from_millis((at.ceil() as u64).saturating_sub(now_ms).max(1))
}

/// Cluster-wide counts per key, as one node knows them.
#[derive(Debug)]
pub struct ClusterWindows<K> {
    limit: u64,
    keys: HashMap<K, Counts>,
}

impl<K: Eq + Hash + Clone> ClusterWindows<K> {
    /// Windows for a limit of `limit` actions per minute.
    pub fn new(limit: u32) -> Self {
        Self { limit: u64::from(limit.max(1)), keys: HashMap::new() }
    }

    /// Counts one action of `key` if it fits under the limit across the
    /// cluster (as known now): the window it was counted in, or how long
    /// to wait.
    pub fn admit(&mut self, key: &K, now_ms: u64) -> Result<u64, Duration> {
        let window = window_of(now_ms);
        let c = self.keys.entry(key.clone()).or_default();
        c.roll(window);
        let (prev, cur) = c.totals();
        let start = window * WINDOW_MS;
        if estimate(prev, cur, start, now_ms) + 1.0 > self.limit as f64 {
            return Err(wait_until_room(prev, cur, start, now_ms, self.limit));
        }
        c.local[1] += 1;
        Ok(window)
    }

    /// What the other nodes have counted for `key` in `window` (learned
    /// from Redis; counts only grow within a window, so a late, smaller
    /// answer changes nothing).
    pub fn learn(&mut self, key: &K, window: u64, others: u64, now_ms: u64) {
        let now = window_of(now_ms);
        if window + 1 < now || window > now {
            return;
        }
        let c = self.keys.entry(key.clone()).or_default();
        c.roll(now);
        let slot = usize::from(window == now);
        c.others[slot] = c.others[slot].max(others);
    }

    /// Forgets keys with nothing in the last two windows.
    pub fn retain_recent(&mut self, now_ms: u64) {
        let now = window_of(now_ms);
        self.keys.retain(|_, c| c.window + 1 >= now);
    }

    /// Keys held (for tests and bounds).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000 * WINDOW_MS; // the start of a window

    #[test]
    fn own_and_others_counts_share_one_limit() {
        let mut w = ClusterWindows::new(10);
        for i in 0..6 {
            assert_eq!(w.admit(&"u", T0 + i), Ok(1_000));
        }
        // The other nodes counted 4 in this window: the 11th is refused.
        w.learn(&"u", 1_000, 4, T0 + 10);
        let wait = w.admit(&"u", T0 + 20).unwrap_err();
        // Nothing slides out of the current window before it ends; then the
        // 10 of it weigh less and less: room for one more at 10% into the next.
        assert_eq!(wait, Duration::from_millis(WINDOW_MS - 20 + WINDOW_MS / 10));
        // A late, smaller answer does not lower what is known.
        w.learn(&"u", 1_000, 1, T0 + 30);
        assert!(w.admit(&"u", T0 + 40).is_err());
        // Another key is counted apart.
        assert!(w.admit(&"v", T0 + 40).is_ok());
    }

    #[test]
    fn the_previous_window_slides_out() {
        let mut w = ClusterWindows::new(10);
        w.learn(&"u", 1_000, 10, T0 + 1);
        // Half into the next window, half of the previous 10 still counts.
        let half = T0 + WINDOW_MS + WINDOW_MS / 2;
        for _ in 0..5 {
            assert!(w.admit(&"u", half).is_ok());
        }
        let wait = w.admit(&"u", half).unwrap_err();
        // 5 + 10 * (1 - x) <= 9 once x >= 0.6: 10% later.
        assert_eq!(wait, Duration::from_millis(WINDOW_MS / 10));
        assert!(w.admit(&"u", half + WINDOW_MS / 10).is_ok());
        // Two windows on, nothing of it is left.
        let later = T0 + 3 * WINDOW_MS;
        for _ in 0..10 {
            assert!(w.admit(&"u", later).is_ok());
        }
        assert!(w.admit(&"u", later).is_err());
    }

    #[test]
    fn stale_answers_are_ignored_and_idle_keys_forgotten() {
        let mut w = ClusterWindows::new(3);
        w.learn(&"u", 998, 100, T0);
        w.learn(&"u", 1_001, 100, T0);
        assert!(w.admit(&"u", T0).is_ok(), "a window too old or not yet begun counts nothing");
        w.retain_recent(T0 + WINDOW_MS);
        assert_eq!(w.len(), 1);
        w.retain_recent(T0 + 2 * WINDOW_MS);
        assert!(w.is_empty());
    }
}
