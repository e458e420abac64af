//! Scale-out: several nodes on one shared store and one Redis (see
//! `deploy/CLUSTER.md` for the design and its failure cases).
//!
//! Each node runs one *bridge*: a thread with its own small tokio runtime that
//! holds the Redis clients (`fred`): one for commands and publishes, one
//! subscribed to `chat:fanout`, `chat:presence` and `chat:node:<node_id>`.
//! Shards talk to it only through one bounded channel ([`Cluster`]); it talks
//! to shards only through their bounded mailboxes ([`Mesh`]). Nothing here is
//! on a lock shared with the message path.
//!
//! - Live nodes: every heartbeat `ZADD chat:nodes <now_ms> <node_id>`; members
//!   heard from within `node_ttl_ms` are live. The live set goes to every shard
//!   when it changes.
//! - Ownership: a conversation's owner node is the rendezvous
//!   (highest-random-weight) choice over the live set ([`crate::shard::placement::owner_node`]); within it,
//!   today's home shard. Requests for a conversation owned elsewhere are
//!   forwarded (`PUBLISH chat:node:<owner>`), answered on `chat:node:<origin>`.
//! - Fan-out: an owner publishes every commit (and typing, receipts,
//!   membership) on `chat:fanout`; other nodes hand it to their shards.
//!   Pub/sub is at-most-once: sessions fill gaps from the store, and owners
//!   publish the heads of recently active conversations every second (nudges)
//!   so a lost last message is filled too.
//! - Presence: `chat:presence:<user>:<node_id>` holds the user's device count
//!   on that node (TTL `node_ttl_ms`, refreshed by the heartbeat); changes are
//!   published on `chat:presence`.
//! - Fencing: the store's `(conversation, seq)` uniqueness
//!   ([`crate::store::StoreError::SeqTaken`]). Two nodes that both think they
//!   own a conversation can never store two messages under one seq.

use crate::config::ClusterConfig;
use crate::ids::{Caller, ConvId, LiveSet, NodeId};
use crate::shard::broker::{Broker, CountsByNode, overloaded};
use crate::shard::{Fanout, Forwarded, Mesh, Pushed, ShardMsg, UserEvent, home_shard, user_shard};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, reply};
use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use futures_util::future::LocalBoxFuture;
use prost::Message as _;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Redis key of the live-node set (sorted set, score: last heartbeat, ms).
pub const NODES_KEY: &str = "chat:nodes";
/// Channel every node subscribes to for fan-outs and user events.
pub const FANOUT_CHANNEL: &str = "chat:fanout";
/// Channel every node subscribes to for presence changes.
pub const PRESENCE_CHANNEL: &str = "chat:presence";

/// The channel of one node (forwarded requests and their replies).
pub fn node_channel(node: &str) -> String {
    format!("chat:node:{node}")
}

/// The presence key of a user on a node.
pub fn presence_key(user: &str, node: &str) -> String {
    format!("chat:presence:{user}:{node}")
}

/// Capacity of the channel from shards to the bridge.
const BRIDGE_QUEUE: usize = 16 * 1024;
/// Capacity of the presence channel to the bridge: apart, so a flood of
/// publishes never crowds out a device count (which the heartbeat keeps
/// refreshing: a lost one would be wrong until the user's next change).
const PRESENCE_QUEUE: usize = 64 * 1024;
/// Pub/sub messages the subscriber buffers before the bridge reads them
/// (fred's default is 32). Past it the bridge lags: every session reconciles.
const SUBSCRIBER_BUFFER: usize = 16 * 1024;
/// Most (shard, conversation) fan-outs kept for a retry after a full mailbox;
/// past it every session reconciles instead.
const MAX_TO_NUDGE: usize = 4096;
/// Heartbeats between two presence resyncs (30 s at the default 1 s beat).
const PRESENCE_RESYNC_BEATS: u64 = 30;
/// Presence publishes per pipeline when a node publishes all its counts again.
const REPUBLISH_CHUNK: usize = 512;
/// Redis key claiming a node id for one incarnation (TTL `node_ttl_ms`).
pub fn node_id_key(node: &str) -> String {
    format!("chat:node-id:{node}")
}
/// Conversations whose head moved this recently get a nudge each second.
pub const NUDGE_WINDOW: Duration = Duration::from_secs(3);

fn unix_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis is unreachable or refused us.
    #[error("cannot reach Redis at {url}: {reason}")]
    Redis {
        /// The configured URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The bridge thread could not start.
    #[error("cannot start the cluster bridge: {0}")]
    Thread(String),
    /// Another live node uses this node id.
    #[error(
        "another live node already uses node id {0:?} (set a different cluster.node_id, or leave it empty for a random one)"
    )]
    DuplicateNodeId(String),
}

/// The wire format of what nodes tell each other over Redis (never seen by
/// clients; a node drops what does not decode).
mod wire {
    use bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Envelope {
        #[prost(string, tag = "1")]
        pub from: String,
        #[prost(oneof = "Body", tags = "2, 3, 4, 5, 6, 7, 8")]
        pub body: Option<Body>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Body {
        #[prost(message, tag = "2")]
        Forward(Forward),
        #[prost(message, tag = "3")]
        Reply(ForwardReply),
        #[prost(message, tag = "4")]
        Fanout(RemoteFanout),
        #[prost(message, tag = "5")]
        User(RemoteUserEvent),
        #[prost(message, tag = "6")]
        Presence(RemotePresence),
        /// The sender joined or is leaving the live set: read it now.
        #[prost(message, tag = "7")]
        Membership(MembershipChanged),
        /// "Publish your presence counts again" (the sender's view of them may be stale).
        #[prost(message, tag = "8")]
        Republish(RepublishPresence),
    }

    /// See [`Body::Republish`].
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct RepublishPresence {}

    /// A node joined (`leaving` false) or is leaving the cluster.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MembershipChanged {
        #[prost(bool, tag = "1")]
        pub leaving: bool,
    }

    /// A client's command for the owner of `conv`, on behalf of `user`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Forward {
        /// 0: no reply wanted.
        #[prost(uint64, tag = "1")]
        pub req_id: u64,
        #[prost(uint64, tag = "2")]
        pub conv: u64,
        #[prost(string, tag = "3")]
        pub user: String,
        #[prost(int32, tag = "4")]
        pub role: i32,
        /// The sending session (cluster-unique), which gets no echo of its message.
        #[prost(uint64, tag = "5")]
        pub origin: u64,
        /// The encoded `v1::Command` (its id is irrelevant).
        #[prost(bytes = "bytes", tag = "6")]
        pub command: Bytes,
        /// Not a client command: "conversation `conv` was just created, announce it".
        #[prost(bool, tag = "7")]
        pub created: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ForwardReply {
        #[prost(uint64, tag = "1")]
        pub req_id: u64,
        /// The encoded `v1::Reply` (its id is irrelevant).
        #[prost(bytes = "bytes", tag = "2")]
        pub reply: Bytes,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct PushedMsg {
        #[prost(uint64, tag = "1")]
        pub seq: u64,
        #[prost(bytes = "bytes", tag = "2")]
        pub frame: Bytes,
        #[prost(uint64, tag = "3")]
        pub origin: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct RemoteFanout {
        #[prost(uint64, tag = "1")]
        pub conv: u64,
        /// 1 messages, 2 ephemeral, 3 nudge.
        #[prost(uint32, tag = "2")]
        pub kind: u32,
        #[prost(message, repeated, tag = "3")]
        pub messages: Vec<PushedMsg>,
        #[prost(bytes = "bytes", tag = "4")]
        pub frame: Bytes,
        #[prost(bytes = "bytes", tag = "5")]
        pub datagram: Bytes,
        #[prost(string, tag = "6")]
        pub skip_user: String,
        #[prost(uint64, tag = "7")]
        pub head: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct RemoteUserEvent {
        #[prost(string, tag = "1")]
        pub user: String,
        #[prost(uint64, tag = "2")]
        pub conv: u64,
        #[prost(bool, tag = "3")]
        pub added: bool,
        #[prost(uint64, tag = "4")]
        pub since: u64,
        #[prost(bytes = "bytes", tag = "5")]
        pub frame: Bytes,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct RemotePresence {
        #[prost(string, tag = "1")]
        pub user: String,
        #[prost(uint32, tag = "2")]
        pub count: u32,
    }
}

const FANOUT_MESSAGES: u32 = 1;
const FANOUT_EPHEMERAL: u32 = 2;
const FANOUT_NUDGE: u32 = 3;

enum BridgeCmd {
    Publish { channel: &'static str, payload: Bytes },
    Forward { owner: NodeId, fwd: wire::Forward, reply: Option<oneshot::Sender<reply::Result>> },
    Reply { to: NodeId, payload: Bytes },
    Presence { user: Arc<str>, count: u32 },
    QueryPresence { users: Vec<Arc<str>>, reply: oneshot::Sender<CountsByNode> },
}

/// What shards hold of the cluster: the way to the bridge.
pub struct Cluster {
    node_id: NodeId,
    tx: mpsc::Sender<BridgeCmd>,
    presence_tx: mpsc::Sender<BridgeCmd>,
    forward_timeout: Duration,
    /// Ephemeral traffic dropped at a full queue (counted, never carried only here).
    dropped: AtomicU64,
    /// Bumped when remote user events may have been lost (see [`Cluster::reconcile_epoch`]).
    reconcile: Arc<AtomicU64>,
    presence_resync: Duration,
    stop: watch::Sender<Stop>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    Graceful,
    Kill,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

fn timeout_error(why: &str) -> WireError {
    WireError::limited(
        ErrorCode::Timeout,
        "forward_timeout_ms",
        format!("the conversation's owner node did not answer ({why}); retry"),
        Some(Duration::from_millis(200)),
    )
}

impl Cluster {
    /// Connects to Redis, announces this node, and starts the bridge. Returns
    /// once the first heartbeat is done and the live set is in the shards' mailboxes.
    pub fn start(cfg: &ClusterConfig, mesh: Mesh) -> Result<Arc<Self>, ClusterError> {
        if cfg.redis_url.starts_with("rediss:") {
            // Said, rather than connecting in the clear to what was meant to be TLS.
            return Err(redis_err(&cfg.redis_url, "TLS to Redis (rediss://) is not supported by this build"));
        }
        let node_id: NodeId = if cfg.node_id.is_empty() {
            Arc::from(format!("n{:016x}", rand::random::<u64>()).as_str())
        } else {
            Arc::from(cfg.node_id.as_str())
        };
        let (tx, rx) = mpsc::channel(BRIDGE_QUEUE);
        let (presence_tx, presence_rx) = mpsc::channel(PRESENCE_QUEUE);
        let (stop_tx, stop_rx) = watch::channel(Stop::Run);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reconcile = Arc::new(AtomicU64::new(0));
        let bridge = Bridge {
            cfg: cfg.clone(),
            node_id: node_id.clone(),
            incarnation: format!("{:016x}", rand::random::<u64>()),
            live_sent: RefCell::new(vec![None; mesh.len()]),
            to_nudge: RefCell::new(HashMap::new()),
            reconcile: reconcile.clone(),
            republish_due: std::cell::Cell::new(false),
            mesh,
            pending: RefCell::new(HashMap::new()),
            // Random: a late answer to the previous incarnation's request N
            // must not answer this one's N.
            next_req: std::cell::Cell::new((rand::random::<u64>() >> 1) | 1),
            local_presence: RefCell::new(HashMap::new()),
            live: RefCell::new(Arc::from(Vec::new())),
            heartbeat_running: std::cell::Cell::new(false),
        };
        let thread = std::thread::Builder::new()
            .name("cluster-bridge".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ClusterError::Thread(e.to_string())));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, bridge.run(rx, presence_rx, stop_rx, ready_tx));
            })
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        // A crashed predecessor's node-id claim may take up to `node_ttl_ms` to expire.
        let wait = Duration::from_secs(10) + Duration::from_millis(cfg.node_ttl_ms.saturating_mul(2));
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = stop_tx.send(Stop::Kill);
                return Err(ClusterError::Redis { url: cfg.redis_url.clone(), reason: "no answer in 10 s".into() });
            }
        }
        tracing::info!(node = %node_id, "joined the cluster");
        Ok(Arc::new(Self {
            node_id,
            tx,
            presence_tx,
            forward_timeout: Duration::from_millis(cfg.forward_timeout_ms),
            dropped: AtomicU64::new(0),
            reconcile,
            presence_resync: Duration::from_millis(cfg.heartbeat_ms.saturating_mul(PRESENCE_RESYNC_BEATS)),
            stop: stop_tx,
            thread: std::sync::Mutex::new(Some(thread)),
        }))
    }

    /// Ephemeral publishes dropped because the bridge's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn try_send(&self, cmd: BridgeCmd) {
        if self.tx.try_send(cmd).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn envelope(&self, body: wire::Body) -> Bytes {
        Bytes::from(wire::Envelope { from: self.node_id.to_string(), body: Some(body) }.encode_to_vec())
    }

    /// Leaves the cluster: removes this node from the live set and its
    /// presence keys, then stops the bridge. Blocks until done.
    pub fn stop(&self) {
        self.halt(Stop::Graceful);
    }

    /// Stops the bridge at once, as a crash would: no deregistration, no
    /// presence cleanup (the keys expire by themselves).
    pub fn kill(&self) {
        self.halt(Stop::Kill);
    }

    fn halt(&self, how: Stop) {
        let _ = self.stop.send(how);
        let t = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl Broker for Cluster {
    /// This node's id.
    fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// Changes whenever a remote user event (added to / removed from a
    /// conversation) may have been lost on the way to this node's sessions (a
    /// full mailbox, a subscriber that lagged or reconnected): sessions that see
    /// it change reconcile their conversations with the store and fill them.
    fn reconcile_epoch(&self) -> u64 {
        self.reconcile.load(Ordering::Relaxed)
    }

    /// Publishes a fan-out of a conversation this node owns. Dropped (and
    /// counted) when the bridge is behind: stored messages are never carried
    /// only here, receivers fill gaps from the store.
    fn publish_fanout(&self, conv: ConvId, f: &Fanout) {
        let rf = match f {
            Fanout::Messages(list) => wire::RemoteFanout {
                conv,
                kind: FANOUT_MESSAGES,
                messages: list
                    .iter()
                    .map(|p| wire::PushedMsg { seq: p.seq, frame: p.frame.clone(), origin: p.origin })
                    .collect(),
                ..Default::default()
            },
            Fanout::Ephemeral { frame, datagram, skip_user } => wire::RemoteFanout {
                conv,
                kind: FANOUT_EPHEMERAL,
                frame: frame.clone(),
                datagram: datagram.clone().unwrap_or_default(),
                skip_user: skip_user.as_deref().unwrap_or_default().to_string(),
                ..Default::default()
            },
            Fanout::Nudge { head } => {
                wire::RemoteFanout { conv, kind: FANOUT_NUDGE, head: *head, ..Default::default() }
            }
            // Every node works presence out for itself (see `Cluster::presence`).
            Fanout::Presence { .. } => return,
        };
        let payload = self.envelope(wire::Body::Fanout(rf));
        self.try_send(BridgeCmd::Publish { channel: FANOUT_CHANNEL, payload });
    }

    /// Publishes a user event (added to / removed from a conversation) for the
    /// user's sessions on other nodes.
    fn publish_user_event(&self, user: &str, ev: &UserEvent) {
        let ue = match ev {
            UserEvent::Added(conv, since, frame) => wire::RemoteUserEvent {
                user: user.into(),
                conv: *conv,
                added: true,
                since: *since,
                frame: frame.clone(),
            },
            UserEvent::Removed(conv, frame) => {
                wire::RemoteUserEvent { user: user.into(), conv: *conv, added: false, since: 0, frame: frame.clone() }
            }
        };
        let payload = self.envelope(wire::Body::User(ue));
        self.try_send(BridgeCmd::Publish { channel: FANOUT_CHANNEL, payload });
    }

    /// The user's device count on this node changed: store it (with a TTL) and
    /// tell the others. Called in the order of the changes (by the user's home shard).
    fn presence(&self, user: Arc<str>, count: u32) {
        if self.presence_tx.try_send(BridgeCmd::Presence { user, count }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("presence count dropped at a full bridge queue");
        }
    }

    /// Devices of `users` on each other live node that has some (from the presence keys).
    fn remote_presence_by_node(&self, users: Vec<Arc<str>>) -> LocalBoxFuture<'_, CountsByNode> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if users.is_empty() || self.tx.send(BridgeCmd::QueryPresence { users, reply: tx }).await.is_err() {
                return HashMap::new();
            }
            rx.await.unwrap_or_default()
        })
    }

    /// Every this often each shard reads the presence keys of the remote
    /// users it holds as online (a lost "count 0" would keep them online).
    fn presence_resync_every(&self) -> Duration {
        self.presence_resync
    }

    /// Sends a command to the owner node of `conv`. Waits for room in the
    /// bridge's queue (call it in the order commands must keep), and returns
    /// the answer to await: the owner's reply, or a retryable `TIMEOUT` when
    /// the request or its answer was lost.
    fn forward(
        &self,
        owner: NodeId,
        conv: ConvId,
        caller: &Caller,
        origin: u64,
        command: Option<v1::command::Body>,
        want_reply: bool,
    ) -> LocalBoxFuture<'_, LocalBoxFuture<'static, reply::Result>> {
        let created = command.is_none();
        let command = command
            .map(|body| Bytes::from(v1::Command { id: 0, body: Some(body) }.encode_to_vec()))
            .unwrap_or_default();
        let fwd = wire::Forward {
            req_id: 0,
            conv,
            user: caller.user.to_string(),
            role: caller.role as i32,
            origin,
            command,
            created,
        };
        // The outer future waits for room in the bridge's queue (that keeps the
        // order of calls); the inner one is the answer.
        #[allow(clippy::async_yields_async)]
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let sent = self.tx.send(BridgeCmd::Forward { owner, fwd, reply: want_reply.then_some(tx) }).await.is_ok();
            let timeout = self.forward_timeout;
            let answer: LocalBoxFuture<'static, reply::Result> = Box::pin(async move {
                if !sent {
                    return reply::Result::Error(timeout_error("cluster bridge stopped").to_proto());
                }
                if !want_reply {
                    return reply::Result::Ok(v1::Empty {});
                }
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => reply::Result::Error(timeout_error("request dropped").to_proto()),
                    Err(_) => reply::Result::Error(timeout_error("timed out").to_proto()),
                }
            });
            answer
        })
    }

    /// Answers a forwarded request.
    fn reply(&self, to: NodeId, req_id: u64, result: reply::Result) {
        if req_id == 0 {
            return;
        }
        let r = v1::Reply { id: 0, result: Some(result) };
        let payload =
            self.envelope(wire::Body::Reply(wire::ForwardReply { req_id, reply: Bytes::from(r.encode_to_vec()) }));
        self.try_send(BridgeCmd::Reply { to, payload });
    }
}

/// The bridge's state, on its own thread.
struct Bridge {
    cfg: ClusterConfig,
    node_id: NodeId,
    mesh: Mesh,
    pending: RefCell<HashMap<u64, oneshot::Sender<reply::Result>>>,
    next_req: std::cell::Cell<u64>,
    /// Device counts of this node's users (non-zero only).
    local_presence: RefCell<HashMap<Arc<str>, u32>>,
    live: RefCell<LiveSet>,
    heartbeat_running: std::cell::Cell<bool>,
    /// Random per start: the value of this node's claim on its id.
    incarnation: String,
    /// The live set each shard was last handed (None: not yet): a full
    /// mailbox gets it at the next beat, the heartbeat never waits on a shard.
    live_sent: RefCell<Vec<Option<LiveSet>>>,
    /// Stored fan-outs a full mailbox refused, per (shard, conversation): the
    /// head to nudge there at the next beat.
    to_nudge: RefCell<HashMap<(usize, ConvId), u64>>,
    /// See [`Cluster::reconcile_epoch`].
    reconcile: Arc<AtomicU64>,
    /// Publish every local count again at the next beat (requests coalesce).
    republish_due: std::cell::Cell<bool>,
}

fn redis_err(url: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Redis { url: url.to_string(), reason: e.to_string() }
}

fn build_client(url: &str, buffer: usize) -> Result<Client, ClusterError> {
    let config = Config::from_url(url).map_err(|e| redis_err(url, e))?;
    Builder::from_config(config)
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(2);
            p.broadcast_channel_capacity = buffer;
        })
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2))
        .build()
        .map_err(|e| redis_err(url, e))
}

impl Bridge {
    async fn run(
        self,
        mut rx: mpsc::Receiver<BridgeCmd>,
        mut presence_rx: mpsc::Receiver<BridgeCmd>,
        mut stop: watch::Receiver<Stop>,
        ready: std::sync::mpsc::Sender<Result<(), ClusterError>>,
    ) {
        let url = self.cfg.redis_url.clone();
        let setup = async {
            let client = build_client(&url, 32)?;
            let sub = build_client(&url, SUBSCRIBER_BUFFER)?;
            client.init().await.map_err(|e| redis_err(&url, e))?;
            sub.init().await.map_err(|e| redis_err(&url, e))?;
            Ok::<_, ClusterError>((client, sub))
        };
        let (client, sub) = match setup.await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let channels = vec![FANOUT_CHANNEL.to_string(), PRESENCE_CHANNEL.to_string(), node_channel(&self.node_id)];
        let mut messages = sub.message_rx();
        let mut reconnects = sub.reconnect_rx();
        if let Err(e) = sub.subscribe(channels.clone()).await {
            let _ = ready.send(Err(redis_err(&url, e)));
            return;
        }
        let me = Rc::new(self);
        if let Err(e) = me.claim_node_id(&client).await {
            let _ = ready.send(Err(e));
            return;
        }
        if let Err(e) = me.heartbeat(&client).await {
            let _ = ready.send(Err(redis_err(&url, e)));
            return;
        }
        // Tell the others now rather than at their next heartbeat: until every
        // node sees the same live set, two of them may both own a conversation
        // (safe, fenced by the store, but every send then costs a retry).
        publish(&client, FANOUT_CHANNEL.to_string(), membership_notice(&me.node_id, false));
        let _ = ready.send(Ok(()));
        let mut hb = tokio::time::interval(Duration::from_millis(me.cfg.heartbeat_ms));
        hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let how = loop {
            tokio::select! {
                Some(cmd) = presence_rx.recv() => me.command(&client, cmd),
                cmd = rx.recv() => match cmd {
                    Some(cmd) => me.command(&client, cmd),
                    None => break Stop::Graceful,
                },
                m = messages.recv() => match m {
                    Ok(m) => me.message(&client, m),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "cluster bridge fell behind on pub/sub; sessions reconcile with the store");
                        me.reconcile_all();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        // The client replaced its stream: take the new one (not in a tight loop).
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        messages = sub.message_rx();
                    }
                },
                r = reconnects.recv() => {
                    if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        reconnects = sub.reconnect_rx();
                    } else {
                        // A new connection has no subscriptions: take them again.
                        tracing::info!("redis subscriber reconnected; subscribing again");
                        let (sub, channels, me, client) = (sub.clone(), channels.clone(), me.clone(), client.clone());
                        tokio::task::spawn_local(async move {
                            if let Err(e) = sub.subscribe(channels).await {
                                tracing::warn!(error = %e, "resubscribe failed");
                            }
                            // Whatever was published meanwhile is lost: membership
                            // events too. Sessions reconcile with the store, and
                            // the others hear this node's presence again.
                            me.reconcile_all();
                            me.republish_due.set(true);
                            publish(&client, FANOUT_CHANNEL.to_string(), republish_request(&me.node_id));
                        });
                    }
                }
                _ = hb.tick() => {
                    // Answers that never came: the asker gave up (timed out) already.
                    me.pending.borrow_mut().retain(|_, tx| !tx.is_closed());
                    me.retry_nudges();
                    if me.republish_due.replace(false) {
                        me.republish_presence(&client);
                    }
                    me.heartbeat_now(&client);
                }
                r = stop.changed() => {
                    let how = if r.is_ok() { *stop.borrow() } else { Stop::Graceful };
                    if how != Stop::Run {
                        break how;
                    }
                }
            }
        };
        if how == Stop::Graceful {
            let users: Vec<String> = me.local_presence.borrow().keys().map(|u| presence_key(u, &me.node_id)).collect();
            let leave = async {
                let _: Result<(), _> = client.zrem(NODES_KEY, me.node_id.to_string()).await;
                let key = node_id_key(&me.node_id);
                let held: Result<Option<String>, _> = client.get(&key).await;
                if matches!(held, Ok(Some(v)) if v == me.incarnation) {
                    let _: Result<(), _> = client.del(key).await;
                }
                let bye = membership_notice(&me.node_id, true);
                let _: Result<(), _> = client.publish(FANOUT_CHANNEL, bye).await;
                if !users.is_empty() {
                    let _: Result<(), _> = client.del(users).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), leave).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), sub.quit()).await;
        }
        tracing::debug!(node = %me.node_id, ?how, "cluster bridge stopped");
    }

    fn command(self: &Rc<Self>, client: &Client, cmd: BridgeCmd) {
        match cmd {
            BridgeCmd::Publish { channel, payload } => publish(client, channel.to_string(), payload),
            BridgeCmd::Reply { to, payload } => publish(client, node_channel(&to), payload),
            BridgeCmd::Forward { owner, mut fwd, reply } => {
                if let Some(reply) = reply {
                    let id = self.next_req.get();
                    // Never 0 ("no answer wanted").
                    self.next_req.set(id.checked_add(1).unwrap_or(1));
                    fwd.req_id = id;
                    self.pending.borrow_mut().insert(id, reply);
                }
                let payload = Bytes::from(
                    wire::Envelope { from: self.node_id.to_string(), body: Some(wire::Body::Forward(fwd)) }
                        .encode_to_vec(),
                );
                publish(client, node_channel(&owner), payload);
            }
            BridgeCmd::Presence { user, count } => {
                let key = presence_key(&user, &self.node_id);
                if count == 0 {
                    self.local_presence.borrow_mut().remove(&user);
                } else {
                    self.local_presence.borrow_mut().insert(user.clone(), count);
                }
                let payload = Bytes::from(
                    wire::Envelope {
                        from: self.node_id.to_string(),
                        body: Some(wire::Body::Presence(wire::RemotePresence { user: user.to_string(), count })),
                    }
                    .encode_to_vec(),
                );
                let (client, ttl) = (client.clone(), self.cfg.node_ttl_ms as i64);
                tokio::task::spawn_local(async move {
                    let r: Result<(), Error> = if count == 0 {
                        client.del(key).await
                    } else {
                        client.set(key, count as i64, Some(Expiration::PX(ttl)), None, false).await
                    };
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "presence key not written");
                    }
                    let _: Result<(), Error> = client.publish(PRESENCE_CHANNEL, payload).await;
                });
            }
            BridgeCmd::QueryPresence { users, reply } => {
                let others: Vec<NodeId> = self.live.borrow().iter().filter(|n| **n != self.node_id).cloned().collect();
                let client = client.clone();
                tokio::task::spawn_local(async move {
                    let mut out = CountsByNode::new();
                    if !others.is_empty() {
                        let keys: Vec<String> =
                            users.iter().flat_map(|u| others.iter().map(move |n| presence_key(u, n))).collect();
                        let counts: Result<Vec<Option<i64>>, Error> = client.mget(keys).await;
                        if let Ok(counts) = counts {
                            for (i, c) in counts.into_iter().enumerate() {
                                let n = u32::try_from(c.unwrap_or(0)).unwrap_or(0);
                                if n > 0 {
                                    let node = others[i % others.len()].clone();
                                    out.entry(users[i / others.len()].clone()).or_default().push((node, n));
                                }
                            }
                        }
                    }
                    let _ = reply.send(out);
                });
            }
        }
    }

    /// Runs a heartbeat now unless one is running.
    fn heartbeat_now(self: &Rc<Self>, client: &Client) {
        if !self.heartbeat_running.replace(true) {
            let (me, client) = (self.clone(), client.clone());
            tokio::task::spawn_local(async move {
                if let Err(e) = me.heartbeat(&client).await {
                    tracing::warn!(error = %e, "cluster heartbeat failed (Redis unreachable?)");
                }
                me.heartbeat_running.set(false);
            });
        }
    }

    /// Publishes every local device count again (pipelined, in bounded
    /// chunks): after a node joined the live set or this subscriber lost
    /// pub/sub, the others' view of this node's users may be stale.
    fn republish_presence(&self, client: &Client) {
        let users: Vec<(Arc<str>, u32)> = self.local_presence.borrow().iter().map(|(u, c)| (u.clone(), *c)).collect();
        if users.is_empty() {
            return;
        }
        let (client, from) = (client.clone(), self.node_id.to_string());
        tokio::task::spawn_local(async move {
            for chunk in users.chunks(REPUBLISH_CHUNK) {
                let pipe = client.pipeline();
                for (u, c) in chunk {
                    let body = wire::Body::Presence(wire::RemotePresence { user: u.to_string(), count: *c });
                    let payload = Bytes::from(wire::Envelope { from: from.clone(), body: Some(body) }.encode_to_vec());
                    let _: Result<(), Error> = pipe.publish(PRESENCE_CHANNEL, payload).await;
                }
                if let Err(e) = pipe.all::<Vec<Value>>().await {
                    tracing::debug!(error = %e, "presence not published again");
                    return;
                }
            }
        });
    }

    /// Sessions reconcile their conversations with the store (and fill them):
    /// remote user events may have been lost.
    fn reconcile_all(&self) {
        self.reconcile.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands the live set to every shard that does not have it yet. A shard
    /// must not miss a change of owners, but the heartbeat never waits on
    /// one: a full mailbox gets it at the next beat.
    fn hand_live(&self, live: &LiveSet) {
        for (shard, sent) in self.live_sent.borrow_mut().iter_mut().enumerate() {
            if sent.as_ref() != Some(live) {
                match self.mesh.try_send(shard, ShardMsg::Live(live.clone())) {
                    Ok(()) => *sent = Some(live.clone()),
                    Err(_) => tracing::warn!(shard, "live set not handed to a full shard mailbox; next beat"),
                }
            }
        }
    }

    /// Stored fan-outs `shard` refused (full mailbox): nudge it at the next beat.
    fn to_nudge(&self, shard: usize, conv: ConvId, head: u64) {
        let mut t = self.to_nudge.borrow_mut();
        if t.len() >= MAX_TO_NUDGE && !t.contains_key(&(shard, conv)) {
            drop(t);
            tracing::warn!("too many refused fan-outs to retry; sessions reconcile with the store");
            self.reconcile_all();
            return;
        }
        let h = t.entry((shard, conv)).or_default();
        *h = (*h).max(head);
    }

    /// Hands the refused fan-outs over again, as nudges; what is refused again waits.
    fn retry_nudges(&self) {
        let mut t = self.to_nudge.borrow_mut();
        t.retain(|&(shard, conv), &mut head| {
            self.mesh.try_send(shard, ShardMsg::Remote(conv, Fanout::Nudge { head })).is_err()
        });
    }

    /// Claims this node id for this incarnation (`SET NX` with a TTL the
    /// heartbeat refreshes). A claim held by someone else is waited out for
    /// `node_ttl_ms` and a beat (a crashed predecessor's expires); a live
    /// node keeps refreshing its own, and this one refuses to start.
    async fn claim_node_id(&self, client: &Client) -> Result<(), ClusterError> {
        let url = &self.cfg.redis_url;
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.cfg.node_ttl_ms.saturating_add(self.cfg.heartbeat_ms.max(100)));
        loop {
            if self.refresh_claim(client).await.map_err(|e| redis_err(url, e))? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::DuplicateNodeId(self.node_id.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(self.cfg.heartbeat_ms.clamp(10, 500))).await;
        }
    }

    /// Takes or refreshes this node's claim on its id; false if another incarnation holds it.
    async fn refresh_claim(&self, client: &Client) -> Result<bool, Error> {
        let key = node_id_key(&self.node_id);
        let ttl = Expiration::PX(self.cfg.node_ttl_ms as i64);
        let set: Option<String> =
            client.set(&key, self.incarnation.as_str(), Some(ttl.clone()), Some(SetOptions::NX), false).await?;
        if set.is_some() {
            return Ok(true);
        }
        let held: Option<String> = client.get(&key).await?;
        if held.as_deref() == Some(self.incarnation.as_str()) {
            let _: () = client.set(&key, self.incarnation.as_str(), Some(ttl), Some(SetOptions::XX), false).await?;
            return Ok(true);
        }
        Ok(held.is_none() && self.try_claim_again(client, &key).await?)
    }

    async fn try_claim_again(&self, client: &Client, key: &str) -> Result<bool, Error> {
        let ttl = Expiration::PX(self.cfg.node_ttl_ms as i64);
        let set: Option<String> =
            client.set(key, self.incarnation.as_str(), Some(ttl), Some(SetOptions::NX), false).await?;
        Ok(set.is_some())
    }

    /// One heartbeat: announce this node, read the live set (pushing it to
    /// the shards when it changed), refresh this node's presence keys.
    async fn heartbeat(&self, client: &Client) -> Result<(), Error> {
        if !self.refresh_claim(client).await? {
            tracing::error!(node = %self.node_id, "another node took this node id (two nodes share one cluster.node_id?)");
        }
        let now = unix_ms();
        let oldest = now.saturating_sub(self.cfg.node_ttl_ms) as f64;
        let _: () = client.zadd(NODES_KEY, None, None, false, false, (now as f64, self.node_id.to_string())).await?;
        let _: () = client.zremrangebyscore(NODES_KEY, f64::NEG_INFINITY, oldest).await?;
        let members: Vec<String> = client.zrangebyscore(NODES_KEY, oldest, f64::INFINITY, false, None).await?;
        let mut set: BTreeSet<NodeId> = members.iter().map(|m| Arc::from(m.as_str())).collect();
        set.insert(self.node_id.clone());
        let live: LiveSet = set.into_iter().collect::<Vec<_>>().into();
        if *live != **self.live.borrow() {
            tracing::info!(nodes = ?live, "live nodes changed");
            let gained = live.iter().any(|n| !self.live.borrow().contains(n));
            *self.live.borrow_mut() = live.clone();
            if gained {
                // A node that joined or came back knows nothing of our users,
                // and what we held of its users was dropped: everyone
                // (this node too) publishes its counts again.
                self.republish_due.set(true);
                publish(client, FANOUT_CHANNEL.to_string(), republish_request(&self.node_id));
            }
        }
        self.hand_live(&live);
        let users: Vec<(Arc<str>, u32)> = self.local_presence.borrow().iter().map(|(u, c)| (u.clone(), *c)).collect();
        if !users.is_empty() {
            let pipe = client.pipeline();
            for (u, c) in users {
                let key = presence_key(&u, &self.node_id);
                let _: () =
                    pipe.set(key, c as i64, Some(Expiration::PX(self.cfg.node_ttl_ms as i64)), None, false).await?;
            }
            let _: Vec<Value> = pipe.all().await?;
        }
        Ok(())
    }

    /// A pub/sub message from another node.
    fn message(self: &Rc<Self>, client: &Client, m: fred::types::Message) {
        let Some(bytes) = m.value.as_bytes() else {
            tracing::warn!(channel = %m.channel, "non-binary cluster message dropped");
            return;
        };
        let env = match wire::Envelope::decode(bytes) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(channel = %m.channel, error = %e, "malformed cluster message dropped");
                return;
            }
        };
        if *env.from == *self.node_id {
            return;
        }
        let from: NodeId = Arc::from(env.from.as_str());
        if matches!(env.body, Some(wire::Body::Membership(wire::MembershipChanged { leaving: false }))) {
            // A node (re)started: whatever counts its previous incarnation left
            // here are stale. Forgotten before anything it publishes next.
            for shard in 0..self.mesh.len() {
                if let Err(back) = self.mesh.try_send(shard, ShardMsg::ForgetNode(from.clone())) {
                    let mesh = self.mesh.clone();
                    tokio::task::spawn_local(async move { mesh.send(shard, back.0).await });
                }
            }
        }
        let leaving = matches!(env.body, Some(wire::Body::Membership(wire::MembershipChanged { leaving: true })));
        if leaving || !self.live.borrow().contains(&from) {
            // A node joined or is leaving: agree on owners now, not at the next beat.
            self.heartbeat_now(client);
        }
        match env.body {
            Some(wire::Body::Forward(f)) => self.forwarded(client, from, f),
            Some(wire::Body::Reply(r)) => {
                let Some(tx) = self.pending.borrow_mut().remove(&r.req_id) else { return };
                match v1::Reply::decode(r.reply) {
                    Ok(v1::Reply { result: Some(result), .. }) => drop(tx.send(result)),
                    _ => tracing::warn!(from = %from, "malformed forwarded reply dropped"),
                }
            }
            Some(wire::Body::Fanout(f)) => {
                let conv = f.conv;
                let fanout = match f.kind {
                    FANOUT_MESSAGES => {
                        let list: Vec<Pushed> = f
                            .messages
                            .into_iter()
                            .map(|p| Pushed { seq: p.seq, frame: p.frame, origin: p.origin })
                            .collect();
                        if list.is_empty() || list.windows(2).any(|w| w[0].seq >= w[1].seq) {
                            tracing::warn!(from = %from, "malformed fan-out dropped");
                            return;
                        }
                        Fanout::Messages(list.into())
                    }
                    FANOUT_EPHEMERAL => Fanout::Ephemeral {
                        frame: f.frame,
                        datagram: (!f.datagram.is_empty()).then_some(f.datagram),
                        skip_user: (!f.skip_user.is_empty()).then(|| Arc::from(f.skip_user.as_str())),
                    },
                    FANOUT_NUDGE => Fanout::Nudge { head: f.head },
                    _ => {
                        tracing::warn!(from = %from, kind = f.kind, "unknown fan-out kind dropped");
                        return;
                    }
                };
                let head = match &fanout {
                    Fanout::Messages(list) => list.last().map(|p| p.seq),
                    Fanout::Nudge { head } => Some(*head),
                    _ => None,
                };
                for shard in 0..self.mesh.len() {
                    if self.mesh.try_send(shard, ShardMsg::Remote(conv, fanout.clone())).is_err() {
                        tracing::debug!(conv, shard, "remote fan-out refused by a full mailbox");
                        if let Some(head) = head {
                            self.to_nudge(shard, conv, head);
                        }
                    }
                }
            }
            Some(wire::Body::User(u)) => {
                let user: Arc<str> = Arc::from(u.user.as_str());
                let ev = if u.added {
                    UserEvent::Added(u.conv, u.since, u.frame)
                } else {
                    UserEvent::Removed(u.conv, u.frame)
                };
                for shard in 0..self.mesh.len() {
                    if self.mesh.try_send(shard, ShardMsg::User(user.clone(), ev.clone())).is_err() {
                        tracing::warn!(shard, "remote user event refused by a full mailbox; sessions reconcile");
                        self.reconcile_all();
                    }
                }
            }
            Some(wire::Body::Presence(p)) => {
                let user: Arc<str> = Arc::from(p.user.as_str());
                let shard = user_shard(&user, self.mesh.len());
                let _ = self.mesh.try_send(shard, ShardMsg::RemotePresence { user, node: from, count: p.count });
            }
            Some(wire::Body::Republish(_)) => self.republish_due.set(true),
            Some(wire::Body::Membership(_)) | None => {}
        }
    }

    fn forwarded(&self, client: &Client, from: NodeId, f: wire::Forward) {
        let command = if f.created {
            None
        } else {
            match v1::Command::decode(f.command) {
                Ok(v1::Command { body: Some(body), .. }) => Some(body),
                _ => {
                    tracing::warn!(from = %from, "malformed forwarded command dropped");
                    return;
                }
            }
        };
        let role = v1::Role::try_from(f.role).unwrap_or(v1::Role::Client);
        let req = Forwarded {
            from: from.clone(),
            req_id: f.req_id,
            conv: f.conv,
            caller: Caller { user: Arc::from(f.user.as_str()), role },
            origin: f.origin,
            command,
        };
        let shard = home_shard(f.conv, self.mesh.len());
        if self.mesh.try_send(shard, ShardMsg::Forwarded(Box::new(req))).is_err() && f.req_id != 0 {
            let e = overloaded();
            let r = v1::Reply { id: 0, result: Some(reply::Result::Error(e.to_proto())) };
            let payload = Bytes::from(
                wire::Envelope {
                    from: self.node_id.to_string(),
                    body: Some(wire::Body::Reply(wire::ForwardReply {
                        req_id: f.req_id,
                        reply: Bytes::from(r.encode_to_vec()),
                    })),
                }
                .encode_to_vec(),
            );
            publish(client, node_channel(&from), payload);
        }
    }
}

/// Tests only: a crafted `chat:fanout` envelope from `from` (a hostile or
/// broken node), a nudge to `head` or, with `seq`, one stored message at
/// `seq` carrying `frame`.
#[doc(hidden)]
pub fn forged_fanout(from: &str, conv: ConvId, head: u64, seq: Option<(u64, Bytes)>) -> Vec<u8> {
    let f = match seq {
        Some((seq, frame)) => wire::RemoteFanout {
            conv,
            kind: FANOUT_MESSAGES,
            messages: vec![wire::PushedMsg { seq, frame, origin: 0 }],
            ..Default::default()
        },
        None => wire::RemoteFanout { conv, kind: FANOUT_NUDGE, head, ..Default::default() },
    };
    wire::Envelope { from: from.to_string(), body: Some(wire::Body::Fanout(f)) }.encode_to_vec()
}

/// "Publish your presence counts again", from `node`.
fn republish_request(node: &str) -> Bytes {
    let body = wire::Body::Republish(wire::RepublishPresence {});
    Bytes::from(wire::Envelope { from: node.to_string(), body: Some(body) }.encode_to_vec())
}

/// "`node` joined (or is leaving) the live set": read it now.
fn membership_notice(node: &str, leaving: bool) -> Bytes {
    let body = wire::Body::Membership(wire::MembershipChanged { leaving });
    Bytes::from(wire::Envelope { from: node.to_string(), body: Some(body) }.encode_to_vec())
}

/// Publishes without waiting; the order of calls is the order on the wire
/// (one connection, tasks first polled in spawn order).
fn publish(client: &Client, channel: String, payload: Bytes) {
    let client = client.clone();
    tokio::task::spawn_local(async move {
        let r: Result<(), Error> = client.publish(channel, payload).await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "publish failed (receivers fill from the store)");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(mesh: Mesh) -> Bridge {
        Bridge {
            cfg: ClusterConfig::default(),
            node_id: Arc::from("me"),
            live_sent: RefCell::new(vec![None; mesh.len()]),
            mesh,
            pending: RefCell::new(HashMap::new()),
            next_req: std::cell::Cell::new(1),
            local_presence: RefCell::new(HashMap::new()),
            live: RefCell::new(Arc::from(Vec::new())),
            heartbeat_running: std::cell::Cell::new(false),
            incarnation: "x".into(),
            to_nudge: RefCell::new(HashMap::new()),
            reconcile: Arc::new(AtomicU64::new(0)),
            republish_due: std::cell::Cell::new(false),
        }
    }

    #[test]
    fn refused_fanouts_are_nudged_again_and_bounded() {
        let (mesh, mut rx) = Mesh::new(1, 1);
        let b = bridge(mesh.clone());
        // The mailbox is full: what is refused waits, the highest head kept.
        mesh.try_send(0, ShardMsg::Live(Arc::from(Vec::new()))).unwrap();
        b.to_nudge(0, 7, 5);
        b.to_nudge(0, 7, 9);
        b.to_nudge(0, 7, 3);
        b.retry_nudges();
        assert_eq!(b.to_nudge.borrow().len(), 1, "still refused: kept");
        rx[0].try_recv().unwrap();
        b.retry_nudges();
        assert!(b.to_nudge.borrow().is_empty());
        match rx[0].try_recv() {
            Ok(ShardMsg::Remote(7, Fanout::Nudge { head: 9 })) => {}
            other => panic!("{other:?}"),
        }
        // Past the bound every session reconciles instead.
        for conv in 0..MAX_TO_NUDGE as u64 {
            b.to_nudge(0, conv, 1);
        }
        assert_eq!(b.reconcile.load(Ordering::Relaxed), 0);
        b.to_nudge(0, u64::MAX, 1);
        assert_eq!(b.reconcile.load(Ordering::Relaxed), 1);
        assert_eq!(b.to_nudge.borrow().len(), MAX_TO_NUDGE);
    }

    #[test]
    fn the_live_set_waits_for_room_without_blocking() {
        let (mesh, mut rx) = Mesh::new(2, 1);
        let b = bridge(mesh.clone());
        mesh.try_send(1, ShardMsg::Live(Arc::from(Vec::new()))).unwrap();
        let live: LiveSet = ["node-0", "node-1"].map(NodeId::from).to_vec().into();
        b.hand_live(&live);
        assert!(matches!(rx[0].try_recv(), Ok(ShardMsg::Live(l)) if l == live));
        rx[1].try_recv().unwrap();
        assert!(rx[1].try_recv().is_err(), "shard 1 was full: not yet");
        b.hand_live(&live);
        assert!(rx[0].try_recv().is_err(), "shard 0 has it: not twice");
        assert!(matches!(rx[1].try_recv(), Ok(ShardMsg::Live(l)) if l == live));
    }

    #[test]
    fn envelopes_round_trip_and_garbage_is_an_error() {
        let env = wire::Envelope {
            from: "a".into(),
            body: Some(wire::Body::Presence(wire::RemotePresence { user: "u".into(), count: 2 })),
        };
        let back = wire::Envelope::decode(Bytes::from(env.encode_to_vec())).unwrap();
        assert_eq!(back, env);
        assert!(wire::Envelope::decode(&b"\xff\xff\xff"[..]).is_err());
    }
}
