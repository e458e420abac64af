//! The server under test: a `chatd` we start (release build next to this
//! executable, fresh data directory, the limits the scenario needs) or one
//! already running. For ours: CPU seconds and RSS from `/proc`, SIGTERM at the
//! end; `crash` kills it with SIGKILL and starts it again on the same data
//! directory and ports.

use crate::scenario::Limits;
use anyhow::{Context, bail};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a started server may take to print its address and hash.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts to start a killed chatd again on its ports.
const RESTART_ATTEMPTS: u32 = 10;
/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// One node to connect to.
#[derive(Debug, Clone)]
pub struct Node {
    /// UDP address.
    pub addr: SocketAddr,
    /// Pinned certificate hash (hex).
    pub cert_hash: String,
}

/// Where to reach the server (one node, or the nodes of a cluster) and how to authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    /// The nodes; user `u` connects to node `u % nodes.len()`.
    pub nodes: Vec<Node>,
    /// HS256 secret for minting tokens.
    pub token_secret: String,
}

impl Target {
    /// Running servers from the command line: `hashes` has one entry for all or one per address.
    pub fn external(addrs: &[SocketAddr], hashes: &[String], token_secret: String) -> anyhow::Result<Self> {
        if hashes.len() != 1 && hashes.len() != addrs.len() {
            bail!(
                "--cert-hash takes one hash for every node or one per --server address ({} given for {})",
                hashes.len(),
                addrs.len()
            );
        }
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, &addr)| Node { addr, cert_hash: hashes[if hashes.len() == 1 { 0 } else { i }].clone() })
            .collect();
        Ok(Self { nodes, token_secret })
    }

    /// The node of user `u`.
    pub fn node_of(&self, u: usize) -> usize {
        u % self.nodes.len().max(1)
    }
}

/// What the report says about the server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// "spawned" or "external".
    pub mode: &'static str,
    /// Its address.
    pub addr: String,
    /// Shards asked for (spawned; 0 = one per core).
    pub shards: Option<usize>,
    /// Environment overrides given to it.
    pub env: Vec<String>,
    /// Where its log (stderr) went.
    pub log: Option<String>,
    /// Its data directory (deleted afterwards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
}

/// A `chatd` this process started.
pub struct Spawned {
    child: Mutex<Child>,
    launch: Launch,
    /// What the processes [`Spawned::kill9`] killed used.
    killed: Mutex<Usage>,
    _data: tempfile::TempDir,
    /// Where it listens, its hash, the dev secret.
    pub target: Target,
    /// Its web endpoint (WebSocket at `/ws`), from its banner.
    pub web: Option<SocketAddr>,
    /// For the report.
    pub info: ServerInfo,
}

/// Resource use read from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// User + system CPU seconds so far.
    pub cpu_seconds: f64,
    /// Current resident set, bytes.
    pub rss_bytes: u64,
    /// Peak resident set, bytes.
    pub peak_rss_bytes: u64,
}

/// The `chatd` next to this executable, or an error with the command that builds it.
pub fn find_chatd(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let exe = std::env::current_exe().context("cannot locate the loadgen executable")?;
    let chatd = exe.parent().map(|d| d.join("chatd")).context("the loadgen executable has no directory")?;
    if !chatd.is_file() {
        bail!(
            "{} not found; build it with:\n    cargo build --release -p chat-server -p loadgen --bin chatd --bin loadgen\n\
             and run target/release/loadgen (or pass --chatd PATH, or --server ADDR for a running server)",
            chatd.display()
        );
    }
    Ok(chatd)
}

/// A free UDP port on loopback (bound, read, released).
fn free_udp_port() -> anyhow::Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP socket on loopback")?;
    Ok(s.local_addr()?.port())
}

/// How to start our chatd (again, after a crash: same ports, same data).
struct Launch {
    chatd: PathBuf,
    addr: SocketAddr,
    shards: usize,
    data_dir: PathBuf,
    web_listen: SocketAddr,
    env: Vec<String>,
    log_path: PathBuf,
}

/// What a started chatd printed.
struct Banner {
    hash: String,
    web: Option<SocketAddr>,
}

impl Launch {
    /// Starts chatd (its log appended to `log_path`) and reads its banner.
    fn run(&self) -> anyhow::Result<(Child, Banner)> {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))?;
        let mut cmd = Command::new(&self.chatd);
        cmd.arg("serve")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--shards")
            .arg(self.shards.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--web-listen")
            .arg(self.web_listen.to_string())
            .env_remove("CHAT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for kv in &self.env {
            let (k, v) = kv.split_once('=').expect("KEY=VALUE");
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("cannot start {}", self.chatd.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        // Read its banner on a thread (bounded by START_TIMEOUT), then keep draining.
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.try_send(line).is_err() {
                    // Nobody listens any more: keep reading so the pipe never fills.
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut listening, mut hash, mut web, mut banner_done) = (false, None, None, false);
        while !(listening && hash.is_some() && banner_done) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let _ = child.wait();
                    match status {
                        Some(st) => {
                            bail!("chatd exited ({st}) before it listened; its log: {}", self.log_path.display())
                        }
                        None => bail!(
                            "chatd did not print its address and certificate hash within {START_TIMEOUT:?}; its log: {}",
                            self.log_path.display()
                        ),
                    }
                }
            };
            if line.starts_with("chatd listening on") {
                listening = true;
            } else if let Some(rest) = line.strip_prefix("certificate sha256: ") {
                hash = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(url) = line.strip_prefix("web app: ") {
                let hostport = url.trim().trim_start_matches("http://").trim_start_matches("https://");
                web = hostport.trim_end_matches('/').parse().ok();
            } else if line.starts_with("data directory: ") || line.starts_with("store: ") {
                // The banner's last line.
                banner_done = true;
            }
        }
        Ok((child, Banner { hash: hash.unwrap_or_default(), web }))
    }
}

impl Spawned {
    /// Starts `chatd serve` on a free loopback port with a fresh data
    /// directory (in `data_in`, else the temporary directory).
    pub fn start(
        chatd: &std::path::Path,
        shards: usize,
        limits: &Limits,
        data_in: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("loadgen-chatd-");
        let data = match data_in {
            Some(dir) => {
                builder.tempdir_in(dir).with_context(|| format!("cannot make a directory in {}", dir.display()))?
            }
            None => builder.tempdir()?,
        };
        let log_path = std::env::temp_dir().join("loadgen-chatd.log");
        std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_udp_port()?).into();
        // The public dev secret: allowed because every listener is on loopback.
        let mut env = vec![
            format!("CHAT_LIMITS__CONNECTIONS_PER_MINUTE_PER_IP={}", limits.connections_per_minute_per_ip),
            format!("CHAT_LIMITS__CONNECTIONS_PER_MINUTE_PER_USER={}", crate::scenario::RAISED_CONNECTIONS_PER_MINUTE),
            format!("CHAT_AUTH__HS256_SECRET={}", chat_server::config::PUBLIC_DEV_SECRET),
            format!("CHAT_LIMITS__CONVERSATIONS_PER_HOUR={}", crate::scenario::RAISED_CONVERSATIONS_PER_HOUR),
        ];
        if let Some(m) = limits.messages_per_minute {
            env.push(format!("CHAT_LIMITS__MESSAGES_PER_MINUTE={m}"));
        }
        if let Some(n) = limits.uploads_per_hour {
            env.push(format!("CHAT_BLOBS__UPLOADS_PER_HOUR={n}"));
        }
        let mut launch = Launch {
            chatd: chatd.to_path_buf(),
            addr,
            shards,
            data_dir: data.path().to_path_buf(),
            // Any free port: a fixed web port would collide with another chatd.
            web_listen: "127.0.0.1:0".parse()?,
            env: env.clone(),
            log_path: log_path.clone(),
        };
        let (child, banner) = launch.run()?;
        // A restart binds the same web port again (clients come back to the same address).
        if let Some(w) = banner.web {
            launch.web_listen = w;
        }
        let target = Target {
            nodes: vec![Node { addr, cert_hash: banner.hash.clone() }],
            token_secret: chat_server::config::PUBLIC_DEV_SECRET.to_string(),
        };
        let info = ServerInfo {
            mode: "spawned",
            addr: addr.to_string(),
            shards: Some(shards),
            env,
            log: Some(log_path.display().to_string()),
            data_dir: Some(data.path().display().to_string()),
        };
        Ok(Self {
            child: Mutex::new(child),
            launch,
            killed: Mutex::new(Usage::default()),
            _data: data,
            target,
            web: banner.web,
            info,
        })
    }

    /// Sends SIGKILL to the running chatd and reaps it (no flush, no
    /// goodbye: a crash). Its CPU seconds are kept for the totals.
    pub fn kill9(&self) -> anyhow::Result<()> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let u = usage(child.id()).unwrap_or_default();
        // std's `Child::kill` is SIGKILL on Unix.
        child.kill().context("cannot SIGKILL chatd")?;
        child.wait().context("cannot reap the killed chatd")?;
        let mut k = self.killed.lock().unwrap_or_else(|e| e.into_inner());
        k.cpu_seconds += u.cpu_seconds;
        k.peak_rss_bytes = k.peak_rss_bytes.max(u.peak_rss_bytes);
        Ok(())
    }

    /// Starts chatd again on the same data directory, UDP port and web port;
    /// returns once it listens. A port the kernel does not hand back at
    /// once (the web port's TCP) is tried again a few times.
    pub fn restart(&self) -> anyhow::Result<()> {
        let mut last = None;
        for attempt in 0..RESTART_ATTEMPTS {
            match self.launch.run() {
                Ok((child, banner)) => {
                    if banner.hash != self.target.nodes[0].cert_hash {
                        bail!("the restarted chatd has another certificate ({}): clients pin the first", banner.hash);
                    }
                    *self.child.lock().unwrap_or_else(|e| e.into_inner()) = child;
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %format!("{e:#}"), "chatd restart failed; trying again");
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no restart attempted")))
            .with_context(|| format!("chatd did not restart on {} in {RESTART_ATTEMPTS} attempts", self.launch.addr))
    }

    /// CPU and memory so far.
    /// Processes killed by [`Spawned::kill9`] count in: CPU seconds added,
    /// peak RSS the largest.
    pub fn usage(&self) -> Usage {
        let mut u = usage(self.pid()).unwrap_or_default();
        let k = *self.killed.lock().unwrap_or_else(|e| e.into_inner());
        u.cpu_seconds += k.cpu_seconds;
        u.peak_rss_bytes = u.peak_rss_bytes.max(k.peak_rss_bytes);
        u
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// SIGTERM, wait (killed after a timeout); the usage just before.
    pub fn stop(self) -> Usage {
        let u = self.usage();
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let pid = child.id().to_string();
        let termed = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
        if !termed {
            let _ = child.kill();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("chatd did not stop within {STOP_TIMEOUT:?}; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        u
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Never leave a server behind (error paths): no-op once it exited.
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS, VmHWM).
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(Usage {
        cpu_seconds: (utime + stime) / CLK_TCK,
        rss_bytes: kb("VmRSS:") * 1024,
        peak_rss_bytes: kb("VmHWM:") * 1024,
    })
}

/// A cluster this process started for `cluster` when no `--server` is given:
/// a `redis-server` of its own and `nodes` chatd nodes in this process, on one
/// shared store: an embedded store handle (what `chat_server::start_with_store`
/// allows) or a fresh keyspace on ScyllaDB/Cassandra (`--store scylla`,
/// dropped at the end). Real nodes: their own QUIC endpoints, shards and
/// Redis connections, so every conversation whose members sit on different
/// nodes crosses Redis. Server and load share this process, so the report has
/// no separate server CPU figure. `--disrupt` kills a node or restarts Redis.
pub struct LocalCluster {
    nodes: std::sync::Mutex<Vec<Option<chat_server::ServerHandle>>>,
    store: std::sync::Arc<chat_server::store::Store>,
    /// The keyspace to drop at the end (`--store scylla`).
    scylla: Option<chat_server::store::scylla::ScyllaSettings>,
    redis: std::sync::Mutex<chat_server::redis_server::RedisServer>,
    _data: tempfile::TempDir,
    /// The nodes, their hashes, the dev secret.
    pub target: Target,
    /// For the report.
    pub info: ServerInfo,
}

/// The store `LocalCluster` shares between its nodes.
pub enum ClusterStore {
    /// One embedded store in the cluster's temporary folder.
    Embedded,
    /// A fresh keyspace on these CQL nodes (`host:port`, comma-separated).
    Scylla(String),
}

/// How long the nodes of `LocalCluster` wait between heartbeats, and how
/// long a silent node stays in the live set: the defaults of `[cluster]`.
fn cluster_defaults() -> (u64, u64) {
    let c = chat_server::config::ClusterConfig::default();
    (c.heartbeat_ms, c.node_ttl_ms)
}

impl LocalCluster {
    /// Starts Redis and `nodes` nodes of `shards` shards each (0: one) on `store`.
    pub async fn start(nodes: usize, shards: usize, limits: &Limits, store: ClusterStore) -> anyhow::Result<Self> {
        use chat_server::store::embedded::{EmbeddedConfig, EmbeddedStore};
        use chat_server::store::scylla::{self, ScyllaSettings, ScyllaStore};
        let redis = chat_server::redis_server::RedisServer::start()?;
        let data = tempfile::Builder::new().prefix("loadgen-cluster-").tempdir()?;
        let (store, scylla, store_info) = match store {
            ClusterStore::Embedded => {
                let s = EmbeddedStore::open(&data.path().join("store"), EmbeddedConfig::default())?;
                (chat_server::store::Store::from(s), None, "one shared embedded store".to_string())
            }
            ClusterStore::Scylla(nodes) => {
                let keyspace = format!("loadgen_{:016x}", rand::random::<u64>());
                let mut cfg = chat_server::config::ScyllaConfig {
                    nodes: nodes.split(',').map(|n| n.trim().to_string()).collect(),
                    keyspace: keyspace.clone(),
                    ..Default::default()
                };
                cfg.replication.class = "SimpleStrategy".into();
                cfg.replication.factor = 1;
                let settings = ScyllaSettings::from_config(&cfg).map_err(anyhow::Error::msg)?;
                scylla::migrate_with(&settings)
                    .await
                    .with_context(|| format!("migrating keyspace {keyspace} on {nodes}"))?;
                let s = ScyllaStore::connect(&settings).await.with_context(|| format!("connecting to {nodes}"))?;
                let info = format!("ScyllaDB/CQL at {nodes}, keyspace {keyspace} (replication 1, dropped at the end)");
                (chat_server::store::Store::from(s), Some(settings), info)
            }
        };
        let store = std::sync::Arc::new(store);
        let mut handles = Vec::with_capacity(nodes);
        // One cluster secret for all the nodes (they seal what they publish with it).
        let secret = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        let mut target = Target { nodes: Vec::new(), token_secret: chat_server::config::PUBLIC_DEV_SECRET.to_string() };
        for i in 0..nodes {
            let mut cfg = chat_server::config::Config {
                listen: "127.0.0.1:0".parse()?,
                shards: shards.max(1),
                data_dir: data.path().join(format!("node{i}")),
                node_name: format!("loadgen-node-{i}"),
                ..Default::default()
            };
            cfg.web.enabled = false;
            cfg.auth.hs256_secret = chat_server::config::PUBLIC_DEV_SECRET.to_string();
            cfg.limits.connections_per_minute_per_ip = limits.connections_per_minute_per_ip;
            cfg.limits.connections_per_minute_per_user = crate::scenario::RAISED_CONNECTIONS_PER_MINUTE;
            cfg.limits.conversations_per_hour = crate::scenario::RAISED_CONVERSATIONS_PER_HOUR;
            if let Some(n) = limits.uploads_per_hour {
                cfg.blobs.uploads_per_hour = n;
            }
            if let Some(m) = limits.messages_per_minute {
                cfg.limits.messages_per_minute = m;
            }
            cfg.cluster.redis_url = redis.url();
            cfg.cluster.node_id = format!("node-{i}");
            cfg.cluster.secret = secret.clone();
            let store = store.clone();
            let h = tokio::task::spawn_blocking(move || chat_server::start_with_store(cfg, store))
                .await?
                .with_context(|| format!("starting in-process node {i}"))?;
            target.nodes.push(Node { addr: h.addr(), cert_hash: h.cert_sha256().to_string() });
            handles.push(Some(h));
        }
        let addrs: Vec<String> = target.nodes.iter().map(|n| n.addr.to_string()).collect();
        let (beat, ttl) = cluster_defaults();
        let info = ServerInfo {
            mode: "in-process cluster",
            addr: addrs.join(","),
            shards: Some(shards.max(1)),
            env: vec![format!("redis {}", redis.url()), store_info, format!("heartbeat {beat} ms, node ttl {ttl} ms")],
            log: None,
            data_dir: None,
        };
        Ok(Self {
            nodes: std::sync::Mutex::new(handles),
            store,
            scylla,
            redis: std::sync::Mutex::new(redis),
            _data: data,
            target,
            info,
        })
    }

    /// Kills node `i` as a crash would (see `ServerHandle::kill`); it stays down. Blocks.
    pub fn kill_node(&self, i: usize) -> anyhow::Result<()> {
        let h = self.nodes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.get_mut(i).and_then(Option::take);
        h.with_context(|| format!("no live node {i}"))?.kill();
        Ok(())
    }

    /// Kills Redis and starts it again, empty, on the same port after `down`. Blocks.
    pub fn restart_redis(&self, down: std::time::Duration) -> anyhow::Result<()> {
        self.redis.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.restart_after(down)?;
        Ok(())
    }

    /// Stops every node still running, then the store; drops a ScyllaDB keyspace; stops Redis.
    pub async fn stop(self) {
        let nodes: Vec<_> = self.nodes.into_inner().map(|v| v.into_iter().flatten().collect()).unwrap_or_default();
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for h in nodes {
                h.shutdown();
            }
            store.close();
        })
        .await;
        if let Some(s) = &self.scylla
            && let Err(e) = chat_server::store::scylla::drop_keyspace(s).await
        {
            eprintln!("could not drop the test keyspace {}: {e}", s.keyspace);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_usage() {
        let u = super::usage(std::process::id()).expect("/proc is readable");
        assert!(u.rss_bytes > 0 && u.peak_rss_bytes >= u.rss_bytes);
    }
}
