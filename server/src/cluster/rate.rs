//! Cluster-wide rates, the bridge's table: the counts shards add
//! ([`crate::shard::broker::Broker::rate_add`]) are summed per key and window
//! and sent every [`RATE_FLUSH`] as one pipeline of `INCRBY` + `PEXPIRE` on
//! `chat:rate:...` keys; each reply (the cluster total) minus what this node
//! added is what the other nodes counted, handed to whoever decides: a
//! user's home shard (messages) or the node's connection windows. A key whose
//! total has reached half its limit is read again at every flush (`INCRBY
//! key 0`) even when this node adds nothing, so that a node learns of the
//! others' actions within about two flush intervals, not only at its own
//! next one. The rule itself is [`crate::shard::window`]'s; the Redis
//! effects are `rate_flush.rs`'s; nothing here waits on a shard.

use crate::config::LimitsConfig;
use crate::shard::broker::RateKey;
use crate::shard::window::{ClusterWindows, window_of};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often counts go to Redis (and the others' come back): the bound on
/// how stale a node's view of the other nodes' counts is.
pub(super) const RATE_FLUSH: Duration = Duration::from_millis(100);
/// Most keys waiting for the next flush; past it new keys are dropped (and
/// counted), which only makes the others learn of them later.
const MAX_PENDING: usize = 64 * 1024;

/// This node's connection windows, shared by its shards (admission only,
/// never the message path) and the bridge that updates them.
pub(super) type ConnWindows = Arc<Mutex<ClusterWindows<IpAddr>>>;

/// What the bridge holds of the rates.
pub(super) struct Rates {
    /// Counts not yet sent, per (key, window).
    pending: HashMap<(RateKey, u64), u64>,
    /// What this node has added to Redis, per (key, window).
    own: HashMap<(RateKey, u64), u64>,
    /// Keys at half their limit or more: read at every flush.
    watched: HashSet<(RateKey, u64)>,
    /// The limits per minute: messages per user, connections per address,
    /// connections per user.
    limits: (u64, u64, u64),
    /// Flushes that failed (a Redis outage, a missing ACL permission).
    pub(super) failures: Cell<u64>,
    /// This node's connection windows (what the others counted goes there).
    pub(super) conns: ConnWindows,
}

impl Rates {
    /// For these limits (the per-address windows are `conns`).
    pub(super) fn new(l: &LimitsConfig, conns: ConnWindows) -> Self {
        Self {
            pending: HashMap::new(),
            own: HashMap::new(),
            watched: HashSet::new(),
            limits: (
                u64::from(l.messages_per_minute),
                u64::from(l.connections_per_minute_per_ip),
                u64::from(l.connections_per_minute_per_user),
            ),
            failures: Cell::new(0),
            conns,
        }
    }

    /// Adds one count; false if it was dropped (too many keys waiting).
    pub(super) fn add(&mut self, key: RateKey, window: u64) -> bool {
        let len = self.pending.len();
        match self.pending.get_mut(&(key.clone(), window)) {
            Some(n) => *n += 1,
            None if len < MAX_PENDING => drop(self.pending.insert((key, window), 1)),
            None => return false,
        }
        true
    }

    /// The counts to send now, and the watched keys of the current window (adding 0).
    pub(super) fn take(&mut self, now_ms: u64) -> Vec<((RateKey, u64), u64)> {
        let now = window_of(now_ms);
        self.watched.retain(|(_, w)| *w == now);
        for k in &self.watched {
            self.pending.entry(k.clone()).or_insert(0);
        }
        self.pending.drain().collect()
    }

    /// Redis says `key` totals `total` in `window` after this node added
    /// `added`: what the others counted. Old windows are forgotten.
    pub(super) fn others(&mut self, key: &RateKey, window: u64, added: u64, total: u64, now_ms: u64) -> u64 {
        let now = window_of(now_ms);
        self.own.retain(|(_, w), _| *w + 1 >= now);
        let own = self.own.entry((key.clone(), window)).or_default();
        *own += added;
        let others = total.saturating_sub(*own);
        let limit = match key {
            RateKey::Messages(_) => self.limits.0,
            RateKey::Connections(_) => self.limits.1,
            RateKey::UserConnections(_) => self.limits.2,
        };
        if total.saturating_mul(2) >= limit && window == now && self.watched.len() < MAX_PENDING {
            self.watched.insert((key.clone(), window));
        }
        others
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::window::WINDOW_MS;

    #[test]
    fn counts_are_summed_bounded_and_others_are_the_rest() {
        let l = LimitsConfig { messages_per_minute: 10, connections_per_minute_per_ip: 5, ..Default::default() };
        let mut r = Rates::new(&l, Arc::new(Mutex::new(ClusterWindows::new(5))));
        let u = RateKey::Messages(Arc::from("u"));
        assert!(r.add(u.clone(), 7) && r.add(u.clone(), 7) && r.add(u.clone(), 8));
        let now = 7 * WINDOW_MS;
        let mut batch = r.take(now);
        batch.sort_by_key(|((_, w), _)| *w);
        assert_eq!(batch, vec![((u.clone(), 7), 2), ((u.clone(), 8), 1)]);
        assert_eq!(r.others(&u, 7, 2, 4, now), 2, "4 in Redis, 2 of them ours");
        assert!(r.take(now).is_empty(), "below half the limit: read only when counting");
        assert_eq!(r.others(&u, 7, 1, 9, now), 6, "9 now, 3 ours");
        assert_eq!(r.take(now), vec![((u.clone(), 7), 0)], "at half the limit: read at every flush");
        assert!(r.take(now + WINDOW_MS).is_empty(), "until its window is over");
        for i in 0..MAX_PENDING {
            assert!(r.add(RateKey::Connections(IpAddr::from([10, 0, (i >> 8) as u8, i as u8])), i as u64 / 65_536));
        }
        assert!(!r.add(u, 9), "past the bound: dropped");
    }
}
