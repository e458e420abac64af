//! The names the cluster uses in Redis (keys and channels) and why the
//! bridge could not start. A leaf: every other cluster file may use it.

/// Redis key of the live-node set (sorted set, score: last heartbeat, ms).
pub const NODES_KEY: &str = "chat:nodes";
/// Channel every node subscribes to for user events, membership notices, and
/// the fan-outs an owner sends to every node (see `interest.rs`).
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

/// Redis key claiming a node id for one incarnation (TTL `node_ttl_ms`).
pub fn node_id_key(node: &str) -> String {
    format!("chat:node-id:{node}")
}

/// Redis key of a cluster-wide rate count in one window (TTL two windows).
pub fn rate_key(key: &crate::shard::broker::RateKey, window: u64) -> String {
    match key {
        crate::shard::broker::RateKey::Messages(user) => format!("chat:rate:msg:{user}:{window}"),
        crate::shard::broker::RateKey::Connections(ip) => format!("chat:rate:conn:{ip}:{window}"),
        crate::shard::broker::RateKey::UserConnections(user) => format!("chat:rate:uconn:{user}:{window}"),
    }
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
    /// The TLS setup for a `rediss://` URL could not be made (CA or client certificate files).
    #[error("TLS to Redis at {url}: {reason}")]
    Tls {
        /// The configured URL (credentials redacted).
        url: String,
        /// What is wrong with the setup.
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

impl ClusterError {
    /// Redis at `url` failed with `e`.
    pub(super) fn redis(url: &str, e: impl std::fmt::Display) -> Self {
        Self::Redis { url: crate::config::redact_url(url), reason: e.to_string() }
    }
}
