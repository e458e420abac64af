//! The owner's window of recent `(sender, client_msg_id) -> seq`: retries
//! within it are answered without a store read; beyond it the store's own
//! idempotency check answers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Recent `(sender, client_msg_id) -> seq`, the oldest forgotten first.
pub(super) struct Window {
    map: HashMap<(Arc<str>, String), u64>,
    order: VecDeque<(Arc<str>, String)>,
    cap: usize,
}

impl Window {
    /// Remembers at most `cap` ids.
    pub(super) fn new(cap: usize) -> Self {
        Self { map: HashMap::new(), order: VecDeque::new(), cap }
    }

    /// The seq stored (or being stored) under `key`.
    pub(super) fn get(&self, key: &(Arc<str>, String)) -> Option<&u64> {
        self.map.get(key)
    }

    /// Remembers `key` at `seq`, forgetting the oldest past the cap.
    pub(super) fn remember(&mut self, key: (Arc<str>, String), seq: u64) {
        if self.map.insert(key.clone(), seq).is_none() {
            self.order.push_back(key);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.map.remove(&old);
            }
        }
    }

    /// Forgets `sender`'s `cmid` (left as it was).
    pub(super) fn forget(&mut self, sender: &Arc<str>, cmid: &mut String) {
        let key = (sender.clone(), std::mem::take(cmid));
        self.map.remove(&key);
        *cmid = key.1;
    }
}
