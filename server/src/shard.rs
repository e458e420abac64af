//! Thread-per-core: the one module that knows about shards.
//!
//! Each shard is one OS thread running a current-thread tokio runtime. It owns
//! the state of the conversations homed on it ([`home_shard`]), the sessions
//! of the connections it accepted, and the presence counts of the users homed
//! on it. Shards talk only through a bounded mesh of channels ([`Mesh`]);
//! state is `Rc`/`RefCell`, never shared across threads.
//!
//! A message's path: session (any shard) → [`ShardMsg::Conv`] to the owner →
//! conversation actor sequences and stores it → [`ShardMsg::Fanout`] to every
//! shard with subscribed sessions (one per destination shard) → each session.

use crate::conversation::ConvMsg;
use crate::session::SessionHandle;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A conversation id.
pub type ConvId = u64;

/// A frame encoded once (length-delimited `ServerFrame`) and shared by every
/// connection it is written to.
pub type Frame = Bytes;

/// The shard that owns a conversation (its sequencer).
pub fn home_shard(conv: ConvId, shards: usize) -> usize {
    // Ids are random or hashed already; a multiplicative mix spreads sequential test ids too.
    (conv.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shards.max(1)
}

/// The shard that keeps a user's presence count.
pub fn user_shard(user: &str, shards: usize) -> usize {
    let h = user.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (h >> 32) as usize % shards.max(1)
}

/// What travels between shards.
#[derive(Debug)]
pub enum ShardMsg {
    /// For the actor of a conversation homed on the receiving shard.
    Conv(ConvId, ConvMsg),
    /// From a conversation's owner to a shard with subscribed sessions.
    Fanout(ConvId, Fanout),
    /// For every session of a user on the receiving shard.
    User(Arc<str>, UserEvent),
    /// Per-user bookkeeping at the user's home shard: presence and message rate.
    Presence(PresenceMsg),
    /// A renewed certificate: the endpoint takes it for new connections.
    Tls(Box<quinn::ServerConfig>),
    /// Cluster: a fan-out that did not come from a local owner (another node's
    /// owner, or a presence change): for subscribed sessions, nothing else.
    Remote(ConvId, Fanout),
    /// Cluster: the live nodes changed.
    Live(crate::cluster::LiveSet),
    /// Cluster: a user's device count on another node, for the user's home shard.
    RemotePresence {
        /// Whose.
        user: Arc<str>,
        /// Which node.
        node: crate::cluster::NodeId,
        /// Devices there.
        count: u32,
    },
    /// Cluster: a request another node forwarded to this one, the owner.
    Forwarded(Box<crate::cluster::Forwarded>),
    /// Cluster: a node (re)joined: forget the device counts it reported before.
    ForgetNode(crate::cluster::NodeId),
}

/// One stored message on its way to sessions.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Its seq.
    pub seq: u64,
    /// The framed push.
    pub frame: Frame,
    /// The session that sent it (0: none, e.g. a system line).
    pub origin: u64,
}

/// What an owner sends to subscribed shards.
#[derive(Debug, Clone)]
pub enum Fanout {
    /// Stored messages, ascending seq, each as an encoded push frame with the
    /// session that sent it (which gets no copy: its ack stands in for it).
    Messages(Arc<[Pushed]>),
    /// An ephemeral push (typing, receipts, membership): not stored, may be
    /// dropped under pressure. `datagram` is the unprefixed form, for typing.
    Ephemeral {
        /// The framed push.
        frame: Frame,
        /// The same push without its length prefix, when it may go as a datagram.
        datagram: Option<Bytes>,
        /// Sessions of this user do not get it (their own typing).
        skip_user: Option<Arc<str>>,
    },
    /// A user's presence changed. Sessions forward it once per change.
    Presence {
        /// Whose.
        user: Arc<str>,
        /// Online now.
        online: bool,
        /// Monotonic per user: older versions are ignored.
        version: u64,
    },
    /// The head moved but a fan-out to this shard was dropped: sessions fill
    /// from the store up to `head`.
    Nudge {
        /// The conversation's last seq.
        head: u64,
    },
}

/// An event for one user's sessions.
#[derive(Debug, Clone)]
pub enum UserEvent {
    /// The user belongs to this conversation (newly, or its metadata
    /// changed): attach if not yet attached, live from seq `since`, and push the frame.
    Added(ConvId, u64, Frame),
    /// The user no longer belongs to it: detach and push the frame.
    Removed(ConvId, Frame),
}

/// Per-user requests, handled by the user's home shard.
#[derive(Debug)]
pub enum PresenceMsg {
    /// A device connected; the reply is the new version if the user just came online.
    Connected(Arc<str>, tokio::sync::oneshot::Sender<PresenceChange>),
    /// A device disconnected; the reply is the new version if the user just went offline.
    Disconnected(Arc<str>, tokio::sync::oneshot::Sender<PresenceChange>),
    /// Devices connected per user.
    Query(Vec<Arc<str>>, tokio::sync::oneshot::Sender<Vec<(Arc<str>, u32, u64)>>),
    /// Count one message against the user's rate; the reply is the refusal, if any.
    RateCheck(Arc<str>, tokio::sync::oneshot::Sender<Result<(), chat_protocol::WireError>>),
}

/// The outcome of a connect or disconnect at the home shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    /// Devices connected now.
    pub devices: u32,
    /// The user's presence version after this change.
    pub version: u64,
    /// Whether online/offline flipped.
    pub flipped: bool,
}

/// Senders to every shard's mailbox (bounded).
#[derive(Debug, Clone)]
pub struct Mesh {
    senders: Arc<[mpsc::Sender<ShardMsg>]>,
}

/// Returned when a mailbox is full or gone, with the message handed back.
#[derive(Debug)]
pub struct MailboxFull(pub ShardMsg);

impl Mesh {
    /// A mesh of `n` mailboxes of `capacity` each, with their receivers.
    pub fn new(n: usize, capacity: usize) -> (Self, Vec<mpsc::Receiver<ShardMsg>>) {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(capacity)).unzip();
        (Self { senders: tx.into() }, rx)
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Always false: a mesh has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Sends, waiting for room (back-pressure). For sessions, never for actors.
    pub async fn send(&self, shard: usize, msg: ShardMsg) -> Result<(), MailboxFull> {
        self.senders[shard].send(msg).await.map_err(|e| MailboxFull(e.0))
    }

    /// Sends without waiting; a full mailbox hands the message back.
    pub fn try_send(&self, shard: usize, msg: ShardMsg) -> Result<(), MailboxFull> {
        self.senders[shard].try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => MailboxFull(m),
        })
    }

    /// Sends to a conversation's owner, waiting for room.
    pub async fn to_owner(&self, conv: ConvId, msg: ConvMsg) -> Result<(), MailboxFull> {
        self.send(home_shard(conv, self.len()), ShardMsg::Conv(conv, msg)).await
    }
}

/// Sessions on this shard, by user and by subscribed conversation.
#[derive(Default)]
pub struct LocalSessions {
    by_user: HashMap<Arc<str>, Vec<Rc<SessionHandle>>>,
    by_conv: HashMap<ConvId, Vec<Rc<SessionHandle>>>,
}

impl LocalSessions {
    /// Registers a session under its user.
    pub fn add_user(&mut self, s: &Rc<SessionHandle>) {
        self.by_user.entry(s.user.clone()).or_default().push(s.clone());
    }

    /// Unregisters a session from its user and every conversation.
    pub fn remove(&mut self, s: &SessionHandle) {
        if let Some(v) = self.by_user.get_mut(&s.user) {
            v.retain(|x| x.id != s.id);
            if v.is_empty() {
                self.by_user.remove(&s.user);
            }
        }
        let convs: Vec<ConvId> = s.attached.borrow().iter().copied().collect();
        for c in convs {
            self.unsubscribe(c, s.id);
        }
    }

    /// Subscribes a session to a conversation.
    pub fn subscribe(&mut self, conv: ConvId, s: &Rc<SessionHandle>) {
        s.attached.borrow_mut().insert(conv);
        let v = self.by_conv.entry(conv).or_default();
        if !v.iter().any(|x| x.id == s.id) {
            v.push(s.clone());
        }
    }

    /// Unsubscribes. The owner learns lazily when the shard has nobody left
    /// (the mailbox answers the next fan-out that finds no session).
    pub fn unsubscribe(&mut self, conv: ConvId, session_id: u64) {
        let Some(v) = self.by_conv.get_mut(&conv) else { return };
        v.retain(|x| {
            if x.id == session_id {
                x.attached.borrow_mut().remove(&conv);
                false
            } else {
                true
            }
        });
        if v.is_empty() {
            self.by_conv.remove(&conv);
        }
    }

    /// Sessions subscribed to a conversation.
    pub fn of_conv(&self, conv: ConvId) -> &[Rc<SessionHandle>] {
        self.by_conv.get(&conv).map_or(&[], |v| v.as_slice())
    }

    /// Sessions of a user.
    pub fn of_user(&self, user: &str) -> &[Rc<SessionHandle>] {
        self.by_user.get(user).map_or(&[], |v| v.as_slice())
    }

    /// Number of sessions.
    pub fn count(&self) -> usize {
        self.by_user.values().map(Vec::len).sum()
    }
}

/// A user's device counts on other nodes.
pub type RemoteCounts = Vec<(crate::cluster::NodeId, u32)>;

/// Per-user presence counts kept by a user's home shard: this node's devices
/// and, in a cluster, the counts other live nodes reported. A user is online
/// while the sum is above zero; only flips of that are announced.
#[derive(Debug, Default)]
pub struct PresenceTable {
    users: HashMap<Arc<str>, (u32, u64)>,
    /// Devices on other nodes (cluster only).
    remote: HashMap<Arc<str>, HashMap<crate::cluster::NodeId, u32>>,
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
    pub fn set_remote(&mut self, user: Arc<str>, node: crate::cluster::NodeId, count: u32) -> Option<(bool, u64)> {
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
    pub fn drop_nodes(&mut self, live: &[crate::cluster::NodeId]) -> Vec<(Arc<str>, bool, u64)> {
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

    fn drop_where(&mut self, gone: impl Fn(&crate::cluster::NodeId) -> bool) -> Vec<(Arc<str>, bool, u64)> {
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

    /// Devices (on this node) and version of a user.
    pub fn get(&self, user: &str) -> (u32, u64) {
        self.users.get(user).copied().unwrap_or((0, 0))
    }
}

/// Everything a shard thread owns, behind one `Rc`.
pub struct ShardState {
    /// This shard's index.
    pub id: usize,
    /// Sessions connected here.
    pub sessions: RefCell<LocalSessions>,
    /// Actors of the conversations homed here.
    pub actors: RefCell<HashMap<ConvId, mpsc::Sender<ConvMsg>>>,
    /// Presence of the users homed here.
    pub presence: RefCell<PresenceTable>,
    /// This shard's endpoint, once started.
    pub endpoint: RefCell<Option<quinn::Endpoint>>,
    /// Cluster: the live nodes as last heard from the bridge (empty: single node).
    pub live: RefCell<crate::cluster::LiveSet>,
}

impl ShardState {
    /// Empty state for shard `id`.
    pub fn new(id: usize) -> Self {
        Self {
            id,
            sessions: RefCell::new(LocalSessions::default()),
            actors: RefCell::new(HashMap::new()),
            presence: RefCell::new(PresenceTable::default()),
            endpoint: RefCell::new(None),
            live: RefCell::new(Arc::from(Vec::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_spread() {
        let mut hits = [0usize; 4];
        for conv in 1..=4000u64 {
            let s = home_shard(conv, 4);
            assert_eq!(s, home_shard(conv, 4));
            hits[s] += 1;
        }
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
        assert_eq!(home_shard(12345, 1), 0);
        assert!(user_shard("alice", 3) < 3);
    }

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
    fn presence_merges_other_nodes() {
        let mut p = PresenceTable::default();
        let a: Arc<str> = "alice".into();
        let (n1, n2): (crate::cluster::NodeId, crate::cluster::NodeId) = ("n1".into(), "n2".into());
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
        let (n1, n2): (crate::cluster::NodeId, crate::cluster::NodeId) = ("n1".into(), "n2".into());
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
