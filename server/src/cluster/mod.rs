//! Scale-out: several nodes on one shared store and one Redis (see
//! `deploy/CLUSTER.md` for the design and its failure cases). This module is
//! the [`Cluster`] handle shards hold (start, stop, kill, and the
//! [`Broker`] they publish and forward through); it does not own ownership
//! itself ([`crate::shard::placement`]) nor what shards do with what arrives.
//!
//! Each node runs one *bridge* (`bridge.rs`): a thread with its own small tokio
//! runtime that holds the Redis clients (`fred`, set up by `connect.rs`: TLS
//! for `rediss://`, the ACL user): one for commands and publishes, one
//! subscribed to `chat:fanout`, `chat:presence` and `chat:node:<node_id>`. Shards talk to it only through bounded channels
//! ([`Cluster`]); it talks to shards only through their bounded mailboxes
//! ([`Mesh`]). Nothing here is on a lock shared with the message path.
//!
//! - Live nodes (`live.rs`): every heartbeat `ZADD chat:nodes <now_ms> <node_id>`;
//!   members heard from within `node_ttl_ms` are live. The live set goes to
//!   every shard when it changes.
//! - Ownership: a conversation's owner node is the rendezvous
//!   (highest-random-weight) choice over the live set
//!   ([`crate::shard::placement::owner_node`]); within it, today's home shard.
//!   Requests for a conversation owned elsewhere are forwarded (`forward.rs`:
//!   `PUBLISH chat:node:<owner>`), answered on `chat:node:<origin>`.
//! - Fan-out where members are (`interest.rs`: the rules, without I/O;
//!   `register.rs`: the bridge's effects): a node registers with a
//!   conversation's owner (and waits for its answer) before a session there
//!   reads the conversation's catch-up from the store, and gives it up 10 s
//!   after its last session of it left; every node also sends every other its
//!   whole list when the live set changes and every 10 s. An owner publishes
//!   every commit (and typing, receipts, membership lines, nudges) on
//!   `chat:node:<id>` of each node that needs it, or on `chat:fanout` while
//!   it has not heard every live node's whole list for its live set (a new
//!   owner) or when every node needs it. User events go on `chat:fanout`.
//!   Receivers hand fan-outs to their shards. Pub/sub is at-most-once:
//!   sessions fill gaps from the store, and owners publish the heads of
//!   recently active conversations every second (nudges) so a lost last
//!   message is filled too.
//! - Presence (`presence.rs`): `chat:presence:<user>:<node_id>` holds the
//!   user's device count on that node (TTL `node_ttl_ms`, refreshed by the
//!   heartbeat); changes are published on `chat:presence`.
//! - Cluster-wide rates (`rate.rs`): the message and connection counts
//!   shards take add up in `chat:rate:*` windows every 100 ms; what the
//!   other nodes counted comes back to the deciding shard (rules in
//!   [`crate::shard::window`]), so no check waits on Redis.
//! - Search (`search.rs`): a search asks every other live node's index for
//!   its top hits of the same query (the caller's conversations travel in
//!   the request), on `chat:node:<id>`; the asking shard merges them with its
//!   own ([`crate::search::merge`]). A node that fails or does not answer
//!   within [`SEARCH_TIMEOUT`] makes the search fail (`UNAVAILABLE`, retryable).
//! - Fencing: the store's `(conversation, seq)` uniqueness
//!   ([`crate::store::StoreError::SeqTaken`]). Two nodes that both think they
//!   own a conversation can never store two messages under one seq.
//!
//! What travels is one envelope per pub/sub message (`wire.rs`, over the types generated from
//! `schemas/chat/cluster/v1/cluster.proto`), sealed with the cluster secret
//! (`seal.rs`: an HMAC and the time sent), so that a client of Redis that is
//! not a node can neither forge nor replay one; unsealed ones are dropped and
//! counted ([`Cluster::rejected`]).

mod bridge;
mod connect;
mod forward;
mod interest;
mod keys;
mod live;
mod pending;
mod presence;
mod rate;
mod rate_flush;
mod register;
mod seal;
mod search;
mod search_wire;
mod wire;

use self::bridge::{Bridge, BridgeCmd, Counters, Inbox, Stop};
use crate::config::{ClusterConfig, LimitsConfig};
use crate::ids::{Caller, ConvId, NodeId};
use crate::metrics::{ClusterCounts, RedisHealth};
use crate::search::merge::Answer;
use crate::search::{IndexQuery, SearchIndex};
use crate::shard::Ask;
use crate::shard::broker::{Broker, CountsByNode, RateKey};
use crate::shard::window::ClusterWindows;
use crate::shard::{Fanout, Mesh, UserEvent};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::cluster::v1::envelope::Body;
use chat_protocol::v1::{ErrorCode, reply};
use futures_util::future::LocalBoxFuture;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

pub use self::keys::{
    ClusterError, FANOUT_CHANNEL, NODES_KEY, PRESENCE_CHANNEL, node_channel, node_id_key, presence_key,
};
#[cfg(feature = "test-support")]
pub use self::wire::{forged_fanout, sealed_forged_fanout};

/// Capacity of the channel from shards to the bridge.
const BRIDGE_QUEUE: usize = 16 * 1024;
/// Capacity of the presence channel to the bridge: apart, so a flood of
/// publishes never crowds out a device count (which the heartbeat keeps
/// refreshing: a lost one would be wrong until the user's next change).
const PRESENCE_QUEUE: usize = 64 * 1024;
/// How long a search waits for every other node's answer.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Heartbeats between two presence resyncs (30 s at the default 1 s beat).
const PRESENCE_RESYNC_BEATS: u64 = 30;

/// What shards hold of the cluster: the way to the bridge.
pub struct Cluster {
    node_id: NodeId,
    tx: mpsc::Sender<BridgeCmd>,
    presence_tx: mpsc::Sender<BridgeCmd>,
    forward_timeout: Duration,
    /// Ephemeral traffic dropped at a full queue (counted, never carried only here).
    dropped: Arc<AtomicU64>,
    /// Connections per address across the cluster, as this node knows them.
    conn_windows: rate::ConnWindows,
    /// Bumped when remote user events may have been lost (see [`Broker::reconcile_epoch`]).
    reconcile: Arc<AtomicU64>,
    /// What the bridge counts (rejected envelopes, fan-outs received, the last heartbeat).
    counters: Arc<Counters>,
    /// Requests forwarded to their owner node.
    forwards: AtomicU64,
    /// Fan-outs handed to the bridge to publish.
    published: AtomicU64,
    /// The heartbeat period: Redis is down after three without success (see [`Cluster::redis_health`]).
    heartbeat: Duration,
    presence_resync: Duration,
    stop: watch::Sender<Stop>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to Redis, announces this node, and starts the bridge. Returns
    /// once the first heartbeat is done and the live set is in the shards'
    /// mailboxes. `limits`: the message and connection rates counted across
    /// nodes; `search`: this node's index, which other nodes' searches read.
    pub fn start(
        cfg: &ClusterConfig,
        limits: &LimitsConfig,
        mesh: Mesh,
        search: Option<Arc<dyn SearchIndex>>,
    ) -> Result<Arc<Self>, ClusterError> {
        let conns_per_minute = limits.connections_per_minute_per_ip;
        let node_id: NodeId = if cfg.node_id.is_empty() {
            Arc::from(format!("n{:016x}", rand::random::<u64>()).as_str())
        } else {
            Arc::from(cfg.node_id.as_str())
        };
        let (tx, commands) = mpsc::channel(BRIDGE_QUEUE);
        let (presence_tx, presence) = mpsc::channel(PRESENCE_QUEUE);
        let (stop_tx, stop_rx) = watch::channel(Stop::Run);
        let reconcile = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(Counters::default());
        let dropped = Arc::new(AtomicU64::new(0));
        let conn_windows = Arc::new(std::sync::Mutex::new(ClusterWindows::new(conns_per_minute)));
        let bridge = Bridge::new(
            cfg.clone(),
            node_id.clone(),
            mesh,
            reconcile.clone(),
            counters.clone(),
            rate::Rates::new(limits, conn_windows.clone()),
            dropped.clone(),
        )
        .with_search(search);
        let (thread, ready) = bridge.spawn(Inbox { commands, presence }, stop_rx)?;
        // A crashed predecessor's node-id claim may take up to `node_ttl_ms` to expire.
        let wait = Duration::from_secs(10) + Duration::from_millis(cfg.node_ttl_ms.saturating_mul(2));
        match ready.recv_timeout(wait) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = stop_tx.send(Stop::Kill);
                return Err(ClusterError::redis(&cfg.redis_url, "no answer in 10 s"));
            }
        }
        tracing::info!(node = %node_id, "joined the cluster");
        Ok(Arc::new(Self {
            node_id,
            tx,
            presence_tx,
            forward_timeout: Duration::from_millis(cfg.forward_timeout_ms),
            dropped,
            conn_windows,
            reconcile,
            counters,
            forwards: AtomicU64::new(0),
            published: AtomicU64::new(0),
            heartbeat: Duration::from_millis(cfg.heartbeat_ms.max(1)),
            presence_resync: Duration::from_millis(cfg.heartbeat_ms.saturating_mul(PRESENCE_RESYNC_BEATS)),
            stop: stop_tx,
            thread: std::sync::Mutex::new(Some(thread)),
        }))
    }

    /// Messages from Redis dropped for not being sealed with the cluster
    /// secret (forged, altered, replayed, or from a node with another secret).
    pub fn rejected(&self) -> u64 {
        self.counters.rejected.load(Ordering::Relaxed)
    }

    /// The counters the metrics show.
    pub fn counts(&self) -> ClusterCounts {
        ClusterCounts {
            forwards: self.forwards.load(Ordering::Relaxed),
            fanouts_published: self.published.load(Ordering::Relaxed),
            fanouts_received: self.counters.fanouts_received.load(Ordering::Relaxed),
            rejected: self.rejected(),
            dropped: self.dropped(),
        }
    }

    /// Redis as the heartbeat sees it: down once no heartbeat succeeded for
    /// three heartbeat periods (at least 2 s): failing ones, or one stuck
    /// waiting for Redis.
    pub fn redis_health(&self) -> RedisHealth {
        let last = self.counters.last_beat_ms.load(Ordering::Relaxed);
        let age = Duration::from_millis(chat_protocol::unix_ms(std::time::SystemTime::now()).saturating_sub(last));
        RedisHealth { up: age <= (self.heartbeat * 3).max(Duration::from_secs(2)), last_heartbeat: age }
    }

    /// Commands waiting for the bridge now.
    pub fn queue_depth(&self) -> usize {
        (self.tx.max_capacity() - self.tx.capacity()) + (self.presence_tx.max_capacity() - self.presence_tx.capacity())
    }

    /// Fan-outs (messages, typing, receipts, nudges...) this node received
    /// from other nodes' owners.
    pub fn fanouts_received(&self) -> u64 {
        self.counters.fanouts_received.load(Ordering::Relaxed)
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

    /// Publishes `body` on `chat:fanout` (to every node), unless the bridge is behind.
    fn publish(&self, body: Body) {
        let payload = wire::encode(&self.node_id, body);
        self.try_send(BridgeCmd::Publish { channel: FANOUT_CHANNEL, payload });
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

    /// Redis as the heartbeat sees it.
    fn redis_health(&self) -> Option<RedisHealth> {
        Some(Cluster::redis_health(self))
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
        // Presence is not published: every node works it out for itself (see `Cluster::presence`).
        if let Some(rf) = wire::remote_fanout(conv, f) {
            self.published.fetch_add(1, Ordering::Relaxed);
            let payload = wire::encode(&self.node_id, Body::Fanout(rf));
            self.try_send(BridgeCmd::Fanout { conv, payload });
        }
    }

    /// Returns once this node gets the fan-outs of `conv`, which `shard` has a
    /// session subscribed to: at once if its owner already sends them here
    /// (or is this node), else when the owner answered the registration (or
    /// after `forward_timeout_ms` without an answer).
    fn want(&self, conv: ConvId, shard: usize) -> LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            let (ready, rx) = oneshot::channel();
            if self.tx.send(BridgeCmd::Want { conv, shard, ready }).await.is_ok() {
                let _ = rx.await;
            }
        })
    }

    /// `shard` has no session of `conv` left.
    fn release(&self, conv: ConvId, shard: usize) {
        self.try_send(BridgeCmd::Release { conv, shard });
    }

    /// Publishes a user event (added to / removed from a conversation) for the
    /// user's sessions on other nodes.
    fn publish_user_event(&self, user: &str, ev: &UserEvent) {
        self.publish(Body::User(wire::remote_user_event(user, ev)));
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
        ask: Ask,
        want_reply: bool,
    ) -> LocalBoxFuture<'_, LocalBoxFuture<'static, reply::Result>> {
        self.forwards.fetch_add(1, Ordering::Relaxed);
        let fwd = wire::forward(conv, caller, origin, ask);
        // The outer future waits for room in the bridge's queue (that keeps the
        // order of calls); the inner one is the answer.
        #[allow(clippy::async_yields_async)]
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let sent = self.tx.send(BridgeCmd::Forward { owner, fwd, reply: want_reply.then_some(tx) }).await.is_ok();
            pending::answer(sent.then_some(rx), want_reply, self.forward_timeout)
        })
    }

    /// Adds one action to the cluster-wide count (batched by the bridge);
    /// dropped and counted when its queue is full.
    fn rate_add(&self, key: RateKey, window: u64) {
        self.try_send(BridgeCmd::RateAdd { key, window });
    }

    /// The connection windows: this node's counts at once, the others' as
    /// the bridge last learned them (at most a flush interval old).
    fn connection_refused_for(&self, ip: IpAddr) -> Option<Duration> {
        let now = chat_protocol::unix_ms(std::time::SystemTime::now());
        let admitted = self.conn_windows.lock().map(|mut w| w.admit(&ip, now)).unwrap_or(Ok(0));
        match admitted {
            Ok(window) => {
                self.rate_add(RateKey::Connections(ip), window);
                None
            }
            Err(wait) => Some(wait),
        }
    }

    /// Asks every other live node (through the bridge) and waits for all
    /// their answers, each for at most [`SEARCH_TIMEOUT`].
    fn search_others(&self, q: IndexQuery) -> LocalBoxFuture<'_, Result<Vec<Answer>, WireError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let cmd = BridgeCmd::Search { query: Box::new(q), reply: tx };
            let waits = match self.tx.send(cmd).await {
                Ok(()) => rx.await.map_err(|_| search_unavailable("the cluster bridge stopped"))?,
                Err(_) => return Err(search_unavailable("the cluster bridge stopped")),
            };
            let answers = futures_util::future::join_all(waits.into_iter().map(|(node, rx)| async move {
                match tokio::time::timeout(SEARCH_TIMEOUT, rx).await {
                    Ok(Ok(Ok(a))) => Ok(a),
                    Ok(Ok(Err(why))) => Err(format!("node {node}: {why}")),
                    Ok(Err(_)) => Err(format!("node {node} dropped the search")),
                    Err(_) => Err(format!("node {node} did not answer within {} ms", SEARCH_TIMEOUT.as_millis())),
                }
            }))
            .await;
            answers.into_iter().collect::<Result<Vec<_>, _>>().map_err(|why| search_unavailable(&why))
        })
    }

    /// Answers a forwarded request.
    fn reply(&self, to: NodeId, req_id: u64, result: reply::Result) {
        if req_id == 0 {
            return;
        }
        let payload: Bytes = wire::reply(&self.node_id, req_id, result);
        self.try_send(BridgeCmd::Reply { to, payload });
    }
}

/// A cluster-wide search that cannot be complete: retryable, and says which node and why.
fn search_unavailable(why: &str) -> WireError {
    let mut e = WireError::new(
        ErrorCode::Unavailable,
        format!("search could not reach every node of the cluster ({why}); retry"),
    );
    e.retry_after = Some(Duration::from_millis(500));
    e
}
