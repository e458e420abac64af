//! Per-user presence counts kept by a user's home shard: this node's devices
//! and, in a cluster, the counts other live nodes reported. Pure state with
//! versioned flips; `crate::presence` announces them.

use crate::ids::NodeId;
use crate::shard::msg::PresenceChange;
use std::collections::HashMap;
use std::sync::Arc;

/// A user's device counts on other nodes.
pub type RemoteCounts = Vec<(NodeId, u32)>;

/// Per-user presence counts kept by a user's home shard: this node's devices
/// and, in a cluster, the counts other live nodes reported. A user is online
/// while the sum is above zero; only flips of that are announced.
#[derive(Debug, Default)]
pub struct PresenceTable {
    users: HashMap<Arc<str>, (u32, u64)>,
    /// Devices on other nodes (cluster only).
    remote: HashMap<Arc<str>, HashMap<NodeId, u32>>,
}

/// The next presence version: a hybrid of wall time and a counter,
/// `(ms << 16) | n`, so versions stay increasing per user even across a
/// restart of the shard that counts them.
fn next_version(v: u64) -> u64 {
    let now = chat_protocol::unix_ms(std::time::SystemTime::now()) << 16;
    now.max(v + 1)
}

impl PresenceTable {
    fn remote_devices(&self, user: &str) -> u32 {
        self.remote.get(user).map_or(0, |m| m.values().sum())
    }

    /// A device connected.
    pub fn connect(&mut self, user: Arc<str>) -> PresenceChange {
        let remote = self.remote_devices(&user);
        let e = self.users.entry(user).or_insert((0, 0));
        e.0 += 1;
        let flipped = e.0 == 1 && remote == 0;
        if flipped {
            e.1 = next_version(e.1);
        }
        PresenceChange { devices: e.0, version: e.1, flipped }
    }

    /// A device disconnected.
    pub fn disconnect(&mut self, user: &Arc<str>) -> PresenceChange {
        let remote = self.remote_devices(user);
        let Some(e) = self.users.get_mut(user) else {
            return PresenceChange { devices: 0, version: 0, flipped: false };
        };
        let was = e.0;
        e.0 = e.0.saturating_sub(1);
        let flipped = was == 1 && remote == 0;
        if flipped {
            e.1 = next_version(e.1);
        }
        // The entry stays (with its version) so later changes stay ordered.
        PresenceChange { devices: e.0, version: e.1, flipped }
    }

    /// Whether a count of `user` on `node` is held.
    pub fn knows_remote(&self, user: &str, node: &str) -> bool {
        self.remote.get(user).is_some_and(|m| m.contains_key(node))
    }

    /// Presence keys say the user has no device on another node while this
    /// table had none either: if no local device, a new offline version.
    pub fn confirm_offline(&mut self, user: Arc<str>) -> Option<u64> {
        if self.remote_devices(&user) > 0 {
            return None;
        }
        let e = self.users.entry(user).or_insert((0, 0));
        if e.0 > 0 {
            return None;
        }
        e.1 = next_version(e.1);
        Some(e.1)
    }

    /// Another node reports the user's devices there; Some((online, version)) on a flip.
    pub fn set_remote(&mut self, user: Arc<str>, node: NodeId, count: u32) -> Option<(bool, u64)> {
        let before = self.remote_devices(&user);
        let m = self.remote.entry(user.clone()).or_default();
        if count == 0 {
            m.remove(&node);
            if m.is_empty() {
                self.remote.remove(&user);
            }
        } else {
            m.insert(node, count);
        }
        let after = self.remote_devices(&user);
        self.flip_if(user, before, after)
    }

    /// Nodes left the live set: their users' devices there are gone. The flips to offline.
    pub fn drop_nodes(&mut self, live: &[NodeId]) -> Vec<(Arc<str>, bool, u64)> {
        self.drop_where(|n| !live.contains(n))
    }

    /// A node (re)joined: the counts it reported before are forgotten. The flips to offline.
    pub fn forget_node(&mut self, node: &str) -> Vec<(Arc<str>, bool, u64)> {
        self.drop_where(|n| &**n == node)
    }

    /// Users with devices on other nodes: those nodes and their counts.
    pub fn remote_users(&self) -> Vec<(Arc<str>, RemoteCounts)> {
        self.remote.iter().map(|(u, m)| (u.clone(), m.iter().map(|(n, c)| (n.clone(), *c)).collect())).collect()
    }

    /// The count of `user` on `node` as held (0: none).
    pub fn remote_count(&self, user: &str, node: &str) -> u32 {
        self.remote.get(user).and_then(|m| m.get(node)).copied().unwrap_or(0)
    }

    fn drop_where(&mut self, gone: impl Fn(&NodeId) -> bool) -> Vec<(Arc<str>, bool, u64)> {
        let users: Vec<Arc<str>> =
            self.remote.iter().filter(|(_, m)| m.keys().any(&gone)).map(|(u, _)| u.clone()).collect();
        let mut flips = Vec::new();
        for user in users {
            let before = self.remote_devices(&user);
            if let Some(m) = self.remote.get_mut(&user) {
                m.retain(|n, _| !gone(n));
                if m.is_empty() {
                    self.remote.remove(&user);
                }
            }
            let after = self.remote_devices(&user);
            if let Some((online, v)) = self.flip_if(user.clone(), before, after) {
                flips.push((user, online, v));
            }
        }
        flips
    }

    fn flip_if(&mut self, user: Arc<str>, remote_before: u32, remote_after: u32) -> Option<(bool, u64)> {
        let e = self.users.entry(user).or_insert((0, 0));
        let (was, now) = (e.0 + remote_before > 0, e.0 + remote_after > 0);
        if was == now {
            return None;
        }
        e.1 = next_version(e.1);
        Some((now, e.1))
    }

    /// Forgets users with no device anywhere whose last change is older than
    /// `keep_ms` at `now_ms` (the table would otherwise hold everyone who ever
    /// connected). Safe for ordering: a forgotten user's next version comes
    /// from the clock, above every version given out that long ago.
    pub fn prune(&mut self, now_ms: u64, keep_ms: u64) -> usize {
        let before = self.users.len();
        let remote = &self.remote;
        self.users.retain(|u, &mut (devices, version)| {
            devices > 0 || remote.contains_key(u) || (version >> 16).saturating_add(keep_ms) > now_ms
        });
        before - self.users.len()
    }

    /// Users held (with a device, or recently without).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is held.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Devices (on this node) and version of a user.
    pub fn get(&self, user: &str) -> (u32, u64) {
        self.users.get(user).copied().unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_counts_devices() {
        let mut p = PresenceTable::default();
        let a: Arc<str> = "alice".into();
        assert!(p.connect(a.clone()).flipped);
        assert!(!p.connect(a.clone()).flipped);
        assert!(!p.disconnect(&a).flipped);
        let off = p.disconnect(&a);
        assert!(off.flipped);
        assert_eq!(off.devices, 0);
        let on = p.connect(a.clone());
        assert!(on.flipped && on.version > off.version, "versions only grow");
    }

    #[test]
    fn the_table_forgets_who_left_long_ago() {
        let mut p = PresenceTable::default();
        let (a, b): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        p.connect(a.clone());
        p.connect(b.clone());
        let gone = p.disconnect(&b);
        let now = gone.version >> 16;
        assert_eq!(p.prune(now + 1_000, 60_000), 0, "bob left a second ago: kept");
        assert_eq!(p.prune(now + 61_000, 60_000), 1, "a minute later: forgotten");
        assert_eq!(p.len(), 1, "alice is still online");
        assert_eq!(p.get("bob"), (0, 0));
        // (In use a minute passes first; here the clock must move past that millisecond.)
        std::thread::sleep(std::time::Duration::from_millis(2));
        let back = p.connect(b.clone());
        assert!(back.flipped && back.version > gone.version, "versions still only grow");
        p.set_remote(a.clone(), "n2".into(), 1);
        p.disconnect(&a);
        assert_eq!(p.prune(u64::MAX >> 16, 0), 0, "online on another node: kept");
    }

    #[test]
    fn presence_merges_other_nodes() {
        let mut p = PresenceTable::default();
        let a: Arc<str> = "alice".into();
        let (n1, n2): (NodeId, NodeId) = ("n1".into(), "n2".into());
        let (online, v1) = p.set_remote(a.clone(), n1.clone(), 1).unwrap();
        assert!(online);
        assert_eq!(p.set_remote(a.clone(), n2.clone(), 2), None, "already online");
        assert!(!p.connect(a.clone()).flipped, "online elsewhere: no flip");
        assert!(!p.disconnect(&a).flipped);
        assert_eq!(p.set_remote(a.clone(), n2.clone(), 0), None);
        // n1 dies: its devices go, and alice goes offline.
        let flips = p.drop_nodes(std::slice::from_ref(&n2));
        assert_eq!(flips.len(), 1);
        assert!(!flips[0].1 && flips[0].2 > v1);
    }

    #[test]
    fn a_rejoining_node_counts_are_forgotten() {
        let mut p = PresenceTable::default();
        let (a, b): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let (n1, n2): (NodeId, NodeId) = ("n1".into(), "n2".into());
        p.set_remote(a.clone(), n1.clone(), 2);
        p.set_remote(b.clone(), n1.clone(), 1);
        p.set_remote(b.clone(), n2.clone(), 1);
        assert_eq!(p.remote_count("alice", "n1"), 2);
        let mut flips = p.forget_node("n1");
        flips.sort();
        assert_eq!(flips.len(), 1, "bob is still online on n2: {flips:?}");
        assert_eq!((&*flips[0].0, flips[0].1), ("alice", false));
        assert_eq!(p.remote_count("alice", "n1"), 0);
        assert_eq!(p.remote_users(), vec![(b, vec![(n2, 1)])]);
    }
}
