//! The `[cluster]` section: Redis, node ids, timings and the secret nodes
//! seal their messages with, and the checks that refuse a cluster that could
//! not work. It does not connect to anything (the cluster module does).

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// Scale-out: several `chatd` nodes behind a load balancer on one shared store
/// and one Redis. Empty `redis_url` (the default): a single node, no Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis URL (`redis://host:6379`, `rediss://user:password@host:6380` for
    /// TLS and an ACL user). Empty (default): single node.
    pub redis_url: String,
    /// `rediss://` only: the CA certificates (PEM) that sign the Redis
    /// server's certificate. Empty (default): the system's trusted roots.
    pub redis_ca_file: String,
    /// `rediss://` only: this node's client certificate chain (PEM), for a
    /// Redis that asks for one (`tls-auth-clients`). Empty: none.
    pub redis_cert_file: String,
    /// The key (PEM) of `redis_cert_file`.
    pub redis_key_file: String,
    /// The Redis ACL user (overrides one in the URL). Empty: the URL's, or none.
    pub redis_username: String,
    /// The Redis password (overrides one in the URL), usually from the
    /// environment (`CHAT_CLUSTER__REDIS_PASSWORD`). Empty: the URL's, or none.
    pub redis_password: String,
    /// This node's id in the cluster. Empty (default): a random one at each start.
    pub node_id: String,
    /// How often the node announces itself and refreshes its presence keys, ms. Default 1000.
    pub heartbeat_ms: u64,
    /// A node not heard from for this long is dead: its conversations move and
    /// its users go offline, ms. Default 5000.
    pub node_ttl_ms: u64,
    /// How long a request forwarded to a conversation's owner node waits for
    /// its answer before the client is told to retry, ms. Default 3000.
    pub forward_timeout_ms: u64,
    /// The secret every node seals what it publishes on Redis with (at least
    /// 32 bytes, the same on every node; required in a cluster): a client of
    /// Redis without it cannot forge or replay a node's messages. Usually
    /// from the environment (`CHAT_CLUSTER__SECRET`).
    pub secret: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            redis_ca_file: String::new(),
            redis_cert_file: String::new(),
            redis_key_file: String::new(),
            redis_username: String::new(),
            redis_password: String::new(),
            node_id: String::new(),
            heartbeat_ms: 1_000,
            node_ttl_ms: 5_000,
            forward_timeout_ms: 3_000,
            secret: String::new(),
        }
    }
}

impl ClusterConfig {
    /// Whether this node runs in a cluster.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// Refuses cluster settings that cannot work or would lose data.
    /// `shared_store`: whether the store the nodes run on is shared by all of them.
    pub fn check(&self, shared_store: bool) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if !shared_store {
            return Err(ConfigError::Inconsistent(
                "cluster.redis_url is set but store.backend = \"embedded\": each node would keep its own copy of \
                 the conversations, so messages sent on one node would be missing (and seqs assigned twice) on the \
                 others; use store.backend = \"scylla\" (a store all nodes share), or leave cluster.redis_url empty \
                 for a single node"
                    .into(),
            ));
        }
        if self.heartbeat_ms == 0 || self.node_ttl_ms < 2 * self.heartbeat_ms {
            return Err(ConfigError::Inconsistent(
                "cluster.node_ttl_ms must be at least twice cluster.heartbeat_ms (and heartbeat_ms above 0)".into(),
            ));
        }
        if self.secret.len() < 32 {
            return Err(ConfigError::Inconsistent(
                "cluster.secret (at least 32 bytes, the same on every node) is required in a cluster: nodes seal \
                 what they publish on Redis with it, so that a client of Redis cannot forge their messages \
                 (e.g. CHAT_CLUSTER__SECRET=$(openssl rand -hex 32))"
                    .into(),
            ));
        }
        let tls = self.redis_url.starts_with("rediss:");
        let tls_files = [&self.redis_ca_file, &self.redis_cert_file, &self.redis_key_file];
        if !tls && tls_files.iter().any(|f| !f.is_empty()) {
            return Err(ConfigError::Inconsistent(
                "cluster.redis_ca_file, redis_cert_file and redis_key_file are for TLS to Redis: use a rediss:// \
                 cluster.redis_url (or leave them empty)"
                    .into(),
            ));
        }
        if self.redis_cert_file.is_empty() != self.redis_key_file.is_empty() {
            return Err(ConfigError::Inconsistent(
                "cluster.redis_cert_file and cluster.redis_key_file go together (a client certificate and its key)"
                    .into(),
            ));
        }
        if !self.redis_username.is_empty() && self.redis_password.is_empty() && !self.redis_url.contains('@') {
            return Err(ConfigError::Inconsistent(
                "cluster.redis_username needs a password (cluster.redis_password, or in cluster.redis_url)".into(),
            ));
        }
        if self.forward_timeout_ms == 0 {
            return Err(ConfigError::Inconsistent("cluster.forward_timeout_ms must be above 0".into()));
        }
        if self.node_id.len() > 64 || self.node_id.contains(|c: char| c.is_whitespace() || c == ':') {
            return Err(ConfigError::Inconsistent("cluster.node_id: at most 64 characters, no spaces or ':'".into()));
        }
        Ok(())
    }
}
