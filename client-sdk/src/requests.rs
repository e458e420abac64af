//! Request bookkeeping: ids, who waits for each reply, deadlines, and the
//! requests made while disconnected that wait for a connection.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Requests in flight on the current connection, by id.
#[derive(Debug)]
pub(crate) struct InFlight<W> {
    next_id: u64,
    pending: HashMap<u64, (W, Instant)>,
}

impl<W> InFlight<W> {
    /// Empty; ids start at 1 (0 is the handshake's).
    pub fn new() -> Self {
        Self { next_id: 1, pending: HashMap::new() }
    }

    /// A fresh id, never reused for the life of the client.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Records that `waiter` waits for the reply to `id` until `deadline`.
    pub fn insert(&mut self, id: u64, waiter: W, deadline: Instant) {
        self.pending.insert(id, (waiter, deadline));
    }

    /// The waiter of reply `id`, if it is still expected.
    pub fn complete(&mut self, id: u64) -> Option<W> {
        self.pending.remove(&id).map(|(w, _)| w)
    }

    /// Removes and returns the waiters whose deadline passed.
    pub fn expired(&mut self, now: Instant) -> Vec<W> {
        let ids: Vec<u64> = self.pending.iter().filter(|(_, (_, d))| *d <= now).map(|(id, _)| *id).collect();
        ids.into_iter().filter_map(|id| self.complete(id)).collect()
    }

    /// Removes every waiter (the connection dropped).
    pub fn drain(&mut self) -> Vec<W> {
        self.pending.drain().map(|(_, (w, _))| w).collect()
    }

    /// How many replies are expected.
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

/// Items waiting for a connection, each until its deadline, in arrival order.
#[derive(Debug)]
pub(crate) struct Deferred<T> {
    items: VecDeque<(T, Instant)>,
}

impl<T> Deferred<T> {
    /// Empty.
    pub fn new() -> Self {
        Self { items: VecDeque::new() }
    }

    /// Queues `item` until `deadline`.
    pub fn push(&mut self, item: T, deadline: Instant) {
        self.items.push_back((item, deadline));
    }

    /// Removes and returns the items whose deadline passed.
    pub fn expired(&mut self, now: Instant) -> Vec<T> {
        let (gone, keep): (VecDeque<_>, VecDeque<_>) = self.items.drain(..).partition(|(_, d)| *d <= now);
        self.items = keep;
        gone.into_iter().map(|(t, _)| t).collect()
    }

    /// Takes everything still waiting, oldest first, with its deadline.
    pub fn drain(&mut self) -> Vec<(T, Instant)> {
        self.items.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_are_unique_and_replies_complete_once() {
        let mut r = InFlight::new();
        let now = Instant::now();
        let a = r.next_id();
        let b = r.next_id();
        assert_ne!(a, b);
        assert_ne!(a, 0);
        r.insert(a, "a", now + Duration::from_secs(1));
        r.insert(b, "b", now + Duration::from_secs(1));
        assert_eq!(r.complete(b), Some("b"));
        assert_eq!(r.complete(b), None);
        assert_eq!(r.complete(999), None);
        assert_eq!(r.len(), 1);
        assert_eq!(r.drain(), vec!["a"]);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn deadlines_expire() {
        let mut r = InFlight::new();
        let now = Instant::now();
        r.insert(1, "soon", now + Duration::from_millis(10));
        r.insert(2, "later", now + Duration::from_secs(10));
        assert!(r.expired(now).is_empty());
        assert_eq!(r.expired(now + Duration::from_millis(10)), vec!["soon"]);
        assert_eq!(r.complete(2), Some("later"));
    }

    #[test]
    fn deferred_keeps_order_and_expires() {
        let mut d = Deferred::new();
        let now = Instant::now();
        d.push(1, now + Duration::from_secs(5));
        d.push(2, now + Duration::from_millis(1));
        d.push(3, now + Duration::from_secs(5));
        assert_eq!(d.expired(now + Duration::from_millis(2)), vec![2]);
        let left: Vec<_> = d.drain().into_iter().map(|(t, _)| t).collect();
        assert_eq!(left, vec![1, 3]);
    }
}
