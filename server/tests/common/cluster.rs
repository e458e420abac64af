//! The cluster harness: 3 real nodes in this process on one shared store
//! (embedded, or ScyllaDB with `CHAT_SCYLLA_NODES`) and a real `redis-server`
//! per test, reached through the real SDK over QUIC; and the waits and checks
//! the cluster tests share.
#![allow(dead_code)]

use chat_client::{Client, ClientConfig, Event, Events, Transport, Trust};
use chat_protocol::v1::{self, ConversationKind};
use chat_server::config::{Config, PUBLIC_DEV_SECRET};
use chat_server::redis_server::{self, RedisServer};
use chat_server::store::embedded::{EmbeddedConfig, EmbeddedStore};
use chat_server::store::scylla::{self, ScyllaSettings, ScyllaStore};
use chat_server::store::{Direction, MessageStore, Range, Store};
use std::sync::Arc;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(20);
pub const HEARTBEAT_MS: u64 = 200;
pub const NODE_TTL_MS: u64 = 1_000;
pub const NODE_IDS: [&str; 3] = ["node-a", "node-b", "node-c"];
/// The cluster secret of the test nodes.
pub const CLUSTER_SECRET: &str = "the test cluster's secret, 32 bytes or more";

/// Cuts every pub/sub connection (the nodes' subscribers): what is published
/// until they have reconnected and subscribed again is lost.
pub fn kill_subscribers(port: u16) -> usize {
    let r = redis_server::command(port, &["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap_or_default();
    r.trim().trim_start_matches(':').parse().unwrap_or(0)
}

/// The store every node of a test shares: one embedded store handle (the
/// nodes run in this process), or, when `CHAT_SCYLLA_NODES` is set, a fresh
/// ScyllaDB keyspace made as `chatd migrate` makes it (every test here needs a
/// store all nodes share; none can run on one embedded store per node).
pub async fn shared_store(dir: &std::path::Path) -> Arc<Store> {
    let store = if let Some(settings) = ScyllaSettings::for_tests(&format!("chat_test_{:016x}", rand::random::<u64>()))
    {
        scylla::migrate_with(&settings).await.expect("migrate");
        Arc::new(Store::from(ScyllaStore::connect(&settings).await.expect("open store")))
    } else {
        Arc::new(Store::from(
            EmbeddedStore::open(&dir.join("store"), EmbeddedConfig { fsync: false, ..EmbeddedConfig::default() })
                .unwrap(),
        ))
    };
    super::server::seed_directory(&store, super::server::CAST);
    store
}

/// One node of a test cluster.
pub fn start_node(id: &str, redis_url: &str, store: &Arc<Store>, dir: &std::path::Path) -> chat_server::ServerHandle {
    try_start_node(id, redis_url, store, dir).unwrap()
}

/// One node of a test cluster, or why it did not start.
pub fn try_start_node(
    id: &str,
    redis_url: &str,
    store: &Arc<Store>,
    dir: &std::path::Path,
) -> anyhow::Result<chat_server::ServerHandle> {
    try_start_node_with(id, redis_url, store, dir, |_| {})
}

/// One node of a test cluster with its configuration changed by `f`, or why it did not start.
pub fn try_start_node_with(
    id: &str,
    redis_url: &str,
    store: &Arc<Store>,
    dir: &std::path::Path,
    f: impl FnOnce(&mut Config),
) -> anyhow::Result<chat_server::ServerHandle> {
    let mut cfg = node_config(id, redis_url, dir);
    f(&mut cfg);
    chat_server::start_with_store(cfg, store.clone())
}

/// The configuration of one node of a test cluster.
pub fn node_config(id: &str, redis_url: &str, dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        data_dir: dir.to_path_buf(),
        node_name: id.to_string(),
        ..Default::default()
    };
    // Never a default port: a second process could hold it.
    cfg.web.listen = "127.0.0.1:0".parse().unwrap();
    cfg.auth.hs256_secret = PUBLIC_DEV_SECRET.into();
    cfg.limits.connections_per_minute_per_ip = 10_000;
    cfg.limits.connections_per_minute_per_user = 10_000;
    cfg.limits.messages_per_minute = 10_000;
    cfg.limits.conversations_per_hour = 10_000;
    cfg.limits.typing_timeout_ms = 3_000;
    cfg.cluster.redis_url = redis_url.to_string();
    cfg.cluster.secret = CLUSTER_SECRET.into();
    cfg.cluster.node_id = id.to_string();
    cfg.cluster.heartbeat_ms = HEARTBEAT_MS;
    cfg.cluster.node_ttl_ms = NODE_TTL_MS;
    cfg.cluster.forward_timeout_ms = 1_000;
    cfg
}

/// Keeps cutting every subscriber connection until `stop` is set; how many were cut.
pub fn cut_subscribers_until(port: u16, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut cuts = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            cuts += kill_subscribers(port);
            std::thread::sleep(Duration::from_millis(2));
        }
        cuts
    })
}

/// `PUBLISH channel payload` with a binary payload (as a node, or an attacker
/// on the Redis network, would).
pub fn publish_raw(port: u16, channel: &str, payload: &[u8]) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut req =
        format!("*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n", channel.len(), payload.len()).into_bytes();
    req.extend_from_slice(payload);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b":"), "{:?}", String::from_utf8_lossy(&buf[..n]));
}

pub struct Cluster {
    pub nodes: Vec<Option<chat_server::ServerHandle>>,
    pub hashes: Vec<[u8; 32]>,
    pub addrs: Vec<String>,
    pub store: Arc<Store>,
    /// Taken out while a test restarts it.
    pub redis: Option<RedisServer>,
    pub _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Self {
        let redis = RedisServer::start().unwrap();
        let url = redis.url();
        Self::start_on(redis, NODE_IDS.len(), |_, cfg| cfg.cluster.redis_url = url.clone()).await
    }

    /// `n` nodes (ids from [`NODE_IDS`]) on `redis`, each configured by
    /// `configure(i, cfg)` after the defaults of [`node_config`].
    pub async fn start_on(redis: RedisServer, n: usize, configure: impl Fn(usize, &mut Config)) -> Self {
        // CHAT_LOG=chat_server=debug shows what the nodes do.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("CHAT_LOG"))
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let store = shared_store(dir.path()).await;
        let mut nodes = Vec::new();
        let mut hashes = Vec::new();
        let mut addrs = Vec::new();
        for (i, id) in NODE_IDS.iter().enumerate().take(n) {
            let mut cfg = node_config(id, "", &dir.path().join(format!("node{i}")));
            configure(i, &mut cfg);
            let h = chat_server::start_with_store(cfg, store.clone()).unwrap();
            match Trust::cert_hash_hex(h.cert_sha256()).unwrap() {
                Trust::CertHashes(v) => hashes.extend(v),
                Trust::Roots(_) => unreachable!("a hash makes a hash trust"),
            }
            addrs.push(h.addr().to_string());
            nodes.push(Some(h));
        }
        // Every node hears of every other within a heartbeat or two.
        tokio::time::sleep(Duration::from_millis(3 * HEARTBEAT_MS)).await;
        Cluster { nodes, hashes, addrs, store, redis: Some(redis), _dir: dir }
    }

    /// A client of `user` on node `node`, moving on to the other nodes on reconnect.
    pub fn client_config(&self, user: &str, role: &str, node: usize) -> ClientConfig {
        let token = super::token(user, role);
        let others: Vec<String> =
            (1..self.addrs.len()).map(|k| self.addrs[(node + k) % self.addrs.len()].clone()).collect();
        let mut c = ClientConfig::new(self.addrs[node].clone(), token, Trust::CertHashes(self.hashes.clone()))
            .transport(Transport::Quic)
            .with_fallback_addrs(others)
            .request_timeout(Duration::from_secs(3));
        c.backoff.initial = Duration::from_millis(50);
        c.backoff.max = Duration::from_millis(300);
        c
    }

    pub async fn connect(&self, user: &str, role: &str, node: usize) -> (Client, Events) {
        Client::connect(self.client_config(user, role, node)).await.unwrap()
    }

    pub fn redis_port(&self) -> u16 {
        self.redis.as_ref().expect("redis is running").port()
    }

    /// Creates conversations until one is owned by node `owner` (so its
    /// deliveries to the other nodes cross Redis); its id.
    pub async fn create_owned_by(
        &self,
        creator: &Client,
        kind: ConversationKind,
        members: &[&str],
        owner: usize,
    ) -> u64 {
        loop {
            let conv = create(creator, kind, members).await;
            if self.owner_of(conv) == owner {
                return conv;
            }
        }
    }

    /// The node that owns `conv` while all nodes live.
    pub fn owner_of(&self, conv: u64) -> usize {
        let live: Vec<Arc<str>> = NODE_IDS[..self.nodes.len()].iter().map(|n| Arc::from(*n)).collect();
        let owner = chat_server::shard::owner_node(conv, &live).unwrap();
        NODE_IDS.iter().position(|n| **n == **owner).unwrap()
    }

    pub async fn kill(&mut self, node: usize) {
        let h = self.nodes[node].take().unwrap();
        tokio::task::spawn_blocking(move || h.kill()).await.unwrap();
    }

    /// Every stored message of `conv`, in seq order.
    pub async fn stored(&self, conv: u64) -> Vec<v1::Message> {
        use prost::Message as _;
        let range = Range { after: 0, before: u64::MAX, limit: 1_000_000, direction: Direction::Forward };
        let rows = self.store.read_range(conv, range).await.unwrap();
        rows.into_iter()
            .map(|(seq, b)| {
                let m = v1::Message::decode(b.as_ref()).unwrap();
                assert_eq!(m.seq, seq);
                m
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for h in self.nodes.iter_mut().filter_map(Option::take) {
            h.shutdown();
        }
        self.store.close();
    }
}

/// Waits for the next event that `f` picks.
pub async fn next_where<T>(ev: &mut Events, f: impl FnMut(Event) -> Option<T>) -> T {
    super::next_where(ev, WAIT, f).await
}

/// Waits for `user`'s presence to become `online`.
pub async fn presence_change(ev: &mut Events, user: &str, online: bool) -> v1::PresenceEvent {
    next_where(ev, |e| match e {
        Event::Presence(p) if p.user_id == user && p.online == online => Some(p),
        _ => None,
    })
    .await
}

/// Collects `n` user messages of `conv` (system lines skipped).
pub async fn messages(ev: &mut Events, conv: u64, n: usize) -> Vec<v1::Message> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = next_where(ev, |e| match e {
            Event::Message(m) if m.conversation_id == conv => Some(m),
            _ => None,
        })
        .await;
        out.push(m);
    }
    out
}

pub async fn create(c: &Client, kind: ConversationKind, members: &[&str]) -> u64 {
    let ok = c.create_conversation(kind, "t", "", members.iter().map(|s| s.to_string()).collect()).await.unwrap();
    ok.summary.unwrap().conversation.unwrap().id
}

/// Seqs of a delivery log: 1..=n, each once, in order.
pub fn assert_exactly_once_in_order(who: &str, got: &[v1::Message], n: usize) {
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    let want: Vec<u64> = (1..=n as u64).collect();
    assert_eq!(seqs, want, "{who}: every message once, in seq order");
}
