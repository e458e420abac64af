//! The way to the other nodes, as shards see it: a small trait the cluster
//! implements (`crate::cluster::Cluster`, over Redis), so the owner, sessions
//! and presence publish and forward without knowing how. A single node has
//! none (`Shared::broker` is `None`).

use crate::ids::{Caller, ConvId, NodeId};
use crate::metrics::RedisHealth;
use crate::search::IndexQuery;
use crate::search::merge::Answer;
use crate::shard::msg::Ask;
use crate::shard::msg::{Fanout, UserEvent};
use chat_protocol::WireError;
use chat_protocol::v1::{ErrorCode, reply};
use futures_util::future::LocalBoxFuture;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Device counts per user on the other nodes that have some.
pub type CountsByNode = HashMap<Arc<str>, Vec<(NodeId, u32)>>;

/// Conversations whose head moved this recently get a head nudge each second
/// on every node, so a session that lost the last fan-out fills it.
pub const NUDGE_WINDOW: Duration = Duration::from_secs(3);

/// What a cluster-wide rate counts (see [`crate::shard::window`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A user's messages (`limits.messages_per_minute`).
    Messages(Arc<str>),
    /// New connections from an address (`limits.connections_per_minute_per_ip`, by its rate key).
    Connections(IpAddr),
    /// A user's new connections (`limits.connections_per_minute_per_user`).
    UserConnections(Arc<str>),
}

/// What shards need of the other nodes. Every method is cheap and never
/// waits on a shard; publishes are best-effort (receivers fill gaps from the
/// store), forwarded requests are answered or time out retryably.
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// This node's id.
    fn node_id(&self) -> &NodeId;

    /// Redis as this node's heartbeat sees it (None: no Redis).
    fn redis_health(&self) -> Option<RedisHealth> {
        None
    }

    /// Publishes a fan-out of a conversation this node owns.
    fn publish_fanout(&self, conv: ConvId, f: &Fanout);

    /// Returns once this node gets the fan-outs of `conv`, which `shard`
    /// has a session subscribed to (call it before reading the
    /// conversation's catch-up from the store, so that nothing falls between).
    fn want(&self, conv: ConvId, shard: usize) -> LocalBoxFuture<'_, ()>;

    /// `shard` has no session of `conv` left (the node stops getting its
    /// fan-outs a while after the last shard released it).
    fn release(&self, conv: ConvId, shard: usize);

    /// Publishes a user event (added to / removed from a conversation).
    fn publish_user_event(&self, user: &str, ev: &UserEvent);

    /// The user's device count on this node changed (in order, by the user's home shard).
    fn presence(&self, user: Arc<str>, count: u32);

    /// Devices of `users` on each other live node that has some.
    fn remote_presence_by_node(&self, users: Vec<Arc<str>>) -> LocalBoxFuture<'_, CountsByNode>;

    /// How often shards re-read the presence of remote users they hold online.
    fn presence_resync_every(&self) -> Duration;

    /// Sends a command to `owner`, the node that owns `conv` (in call order);
    /// the returned future is its answer, or a retryable `TIMEOUT`.
    fn forward(
        &self,
        owner: NodeId,
        conv: ConvId,
        caller: &Caller,
        origin: u64,
        ask: Ask,
        want_reply: bool,
    ) -> LocalBoxFuture<'_, LocalBoxFuture<'static, reply::Result>>;

    /// Answers a request another node forwarded here.
    fn reply(&self, to: NodeId, req_id: u64, result: reply::Result);

    /// Changes whenever remote user events may have been lost (sessions then
    /// reconcile their conversations with the store).
    fn reconcile_epoch(&self) -> u64;

    /// Adds one action of `key` in `window` to the cluster-wide count (sent
    /// to Redis in batches; never waits).
    fn rate_add(&self, key: RateKey, window: u64);

    /// Cluster-wide connection rate: None if `ip` may connect now (and
    /// counts it), else how long to wait. Never waits on Redis.
    fn connection_refused_for(&self, ip: IpAddr) -> Option<Duration>;

    /// The answers of every other live node's search index to `q` (each
    /// its top `q.limit`), or a retryable `UNAVAILABLE` when one of them
    /// failed or did not answer in time: never a silently partial result.
    fn search_others(&self, q: IndexQuery) -> LocalBoxFuture<'_, Result<Vec<Answer>, WireError>>;

    /// Devices of `users` on the other live nodes, summed.
    fn remote_presence(&self, users: Vec<Arc<str>>) -> LocalBoxFuture<'_, HashMap<Arc<str>, u32>> {
        let by_node = self.remote_presence_by_node(users);
        Box::pin(async move { by_node.await.into_iter().map(|(u, n)| (u, n.iter().map(|(_, c)| c).sum())).collect() })
    }
}

/// The answer to a forwarded request the owner has no room for (retryable).
pub fn overloaded() -> WireError {
    WireError::limited(
        ErrorCode::Timeout,
        "forward_timeout_ms",
        "the owner node is overloaded; retry",
        Some(Duration::from_millis(200)),
    )
}
