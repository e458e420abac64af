//! A node: starting and stopping a server. It binds one UDP port shared by
//! all shards (`SO_REUSEPORT`) and likewise one TCP port for the web endpoint,
//! starts one thread per shard ([`runtime`]), whose mailbox the [`router`]
//! serves, and wires the mesh, the store, the verifier and (in a cluster) the
//! Redis bridge, and the local [`control`] socket. The library takes a
//! [`Config`] and returns a [`ServerHandle`]; it reads no flags or
//! environment of its own, so tests can start as many servers as they like on
//! port 0. This is the top layer: it imports every other, and nothing imports
//! it.

pub mod control;
mod router;
mod runtime;

use crate::audit::{Audit, AuditEvent, EventKind};
use crate::auth::Verifier;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::metrics::serve::{MetricsServer, Sampler};
use crate::metrics::{Metrics, Sample};
use crate::search::indexer::Search;
use crate::search::tantivy::TantivyIndex;
use crate::shard::broker::Broker;
use crate::shard::{Mesh, Shared};
use crate::store::{MessageStore, Store};
use crate::transport::admission::{ConnLimiter, Origins};
use crate::{tls, web};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::sync::watch;

/// Capacity of each shard's mailbox.
const MAILBOX: usize = 16 * 1024;

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    web_addr: Option<SocketAddr>,
    web_scheme: &'static str,
    cert_sha256: String,
    dev_cert: bool,
    epoch: String,
    shutdown: watch::Sender<bool>,
    kill: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    store: Arc<Store>,
    /// Whether the store was opened here (and is closed on shutdown).
    owns_store: bool,
    cluster: Option<Arc<Cluster>>,
    /// The `/metrics` endpoint, when `metrics.listen` is set.
    metrics: Option<MetricsServer>,
    /// The search indexer, stopped (and its index writer released) last.
    search: Option<Arc<Search>>,
    /// The audit trail's writer, closed after the shards and before the store.
    audit: Arc<Audit>,
    /// The way to shard 0's retention job (a pass on request).
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    purge: tokio::sync::mpsc::Sender<crate::retention::job::PurgeRequest>,
    /// `data_dir/control.sock` (`chatd backup`, `chatd gdpr export`), when it could be bound.
    control: Option<control::ControlSocket>,
}

impl ServerHandle {
    /// The store this node runs on (for tools and tests that seed it, e.g. the user directory).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The bound address of the `/metrics` endpoint (None: `metrics.listen` unset).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// The bound UDP address (both transports).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound TCP address of the web endpoint (None when `web.enabled` is false).
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// The web app's URL (`http://127.0.0.1:8080/`), if the web endpoint is on.
    pub fn web_url(&self) -> Option<String> {
        self.web_addr.map(|a| format!("{}://{a}/", self.web_scheme))
    }

    /// SHA-256 of the certificate (hex), for clients that pin it.
    pub fn cert_sha256(&self) -> &str {
        &self.cert_sha256
    }

    /// Whether the certificate is the self-signed dev one.
    pub fn dev_cert(&self) -> bool {
        self.dev_cert
    }

    /// The store's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Cluster: messages from Redis this node dropped for not being sealed
    /// with the cluster secret (None on a single node).
    pub fn cluster_rejected(&self) -> Option<u64> {
        self.cluster.as_ref().map(|c| c.rejected())
    }

    /// Cluster: fan-outs this node received from other nodes' owners (None on a single node).
    pub fn cluster_fanouts_received(&self) -> Option<u64> {
        self.cluster.as_ref().map(|c| c.fanouts_received())
    }

    /// This node's audit trail (its chain id and signing key).
    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// Cluster: this node's id (None on a single node).
    pub fn node_id(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| &**c.node_id())
    }

    /// For tests: runs one retention pass on this node now, as if the time
    /// were `now_ms` (the job's clock is the caller's), and says what it did.
    #[cfg(feature = "test-support")]
    pub async fn purge_expired(&self, now_ms: u64) -> crate::retention::job::PassReport {
        let (reply, done) = tokio::sync::oneshot::channel();
        let req = crate::retention::job::PurgeRequest { now_ms, reply };
        self.purge.send(req).await.expect("retention job running");
        done.await.expect("retention pass answered")
    }

    /// Stops: sessions are told (`Goodbye`, SHUTTING_DOWN) and closed, shards
    /// finish what they hold, a cluster node leaves the live set and removes its
    /// presence keys, the store flushes (unless it was handed in by
    /// [`start_with_store`]: its owner closes it). Blocks until done.
    pub fn shutdown(self) {
        if let Some(c) = self.control {
            c.stop();
        }
        let _ = self.shutdown.send(true);
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(m) = self.metrics {
            m.join();
        }
        if let Some(c) = &self.cluster {
            c.stop();
        }
        if let Some(s) = &self.search {
            s.stop();
        }
        self.audit.close();
        if self.owns_store {
            self.store.close();
        }
    }

    /// For tests of failure: stops the node as abruptly as an in-process node
    /// can, like a crash. No `Goodbye`, no leaving the live set, no presence
    /// cleanup (its Redis keys expire by themselves), conversation actors and
    /// sessions dropped mid-flight (an append already handed to the store may
    /// still land, unacknowledged). Connections are closed at once (code 0)
    /// rather than left to time out, so clients notice without waiting for
    /// the idle timeout. The store is not flushed or closed. Blocks until the
    /// node's threads are gone.
    pub fn kill(self) {
        if let Some(c) = &self.cluster {
            c.kill();
        }
        let _ = self.kill.send(true);
        if let Some(c) = self.control {
            c.stop();
        }
        for t in self.threads {
            let _ = t.join();
        }
        // The shards are gone: only the metrics endpoint still watches this.
        let _ = self.shutdown.send(true);
        if let Some(m) = self.metrics {
            m.join();
        }
        // A real crash releases the index's lock with the process; this one
        // releases it too, so that the node can start again in-process.
        if let Some(s) = &self.search {
            s.stop();
        }
        // Likewise its chain: one writer at a time (what was queued is written).
        self.audit.close();
    }
}

/// Starts a server on the store `cfg` names. A cluster configuration
/// (`cluster.redis_url`) on the embedded store is refused: each node would
/// have its own copy of the conversations.
pub fn start(mut cfg: Config) -> anyhow::Result<ServerHandle> {
    let shared_store = cfg.store.backend.is_shared();
    prepare(&mut cfg, shared_store)?;
    let store = Arc::new(Store::open(&cfg)?);
    start_inner(cfg, store, true)
}

/// Starts a server on a store the caller opened. With `cluster.redis_url`
/// set, the caller guarantees that every node of the cluster gets the same
/// store (the same handle, or one database they all reach): this entry does
/// not refuse the embedded store, so tests can run several in-process nodes
/// on one embedded store handle. The store is not closed by
/// [`ServerHandle::shutdown`]; its owner closes it.
pub fn start_with_store(mut cfg: Config, store: Arc<Store>) -> anyhow::Result<ServerHandle> {
    prepare(&mut cfg, true)?;
    start_inner(cfg, store, false)
}

/// The `config.start` audit event: this binary's version and the
/// configuration in force, secrets redacted.
fn config_event(cfg: &Config) -> AuditEvent {
    let config = serde_json::to_value(cfg.redacted()).unwrap_or(serde_json::Value::Null);
    AuditEvent::new(EventKind::ConfigAtStart, "chatd").details(serde_json::json!({
        "node": cfg.node_name,
        "version": env!("CARGO_PKG_VERSION"),
        "config": config,
    }))
}

/// What both entries check and set up before anything starts: the cluster
/// and auth rules (a library caller may not have run `Config::check`), the
/// data directory `0700` (made so, or tightened with a warning), and the
/// data directory's dev secret when no key is configured.
fn prepare(cfg: &mut Config, shared_store: bool) -> anyhow::Result<()> {
    cfg.cluster.check(shared_store)?;
    cfg.check_auth()?;
    let dir = &cfg.data_dir;
    if crate::files::private_dir(dir).with_context(|| format!("data directory {}", dir.display()))? {
        tracing::warn!(dir = %dir.display(), "the data directory was open to other users; it is now 0700");
    }
    crate::auth::resolve_dev_secret(cfg)?;
    Ok(())
}

fn start_inner(cfg: Config, store: Arc<Store>, owns_store: bool) -> anyhow::Result<ServerHandle> {
    // One crypto provider for the whole process (quinn, wtransport, later scylla and fred).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shards = cfg.shard_count();
    let identity = tls::load_identity(&cfg)?;
    let cert_sha256 = identity.sha256_hex();
    let server_config = tls::quinn_server_config(&identity, &cfg.session)?;
    let endpoint_config = tls::quinn_endpoint_config(&cfg.data_dir)?;
    let verifier = Verifier::new(&cfg.auth)?;
    let (mesh, receivers) = Mesh::new(shards, MAILBOX);
    let sockets = runtime::bind_shared(cfg.listen, shards).context("`listen` (QUIC and WebTransport)")?;
    let addr = sockets[0].local_addr()?;
    let web_listeners =
        if cfg.web.enabled { web::bind(cfg.web.listen, shards).context("`web.listen`")? } else { Vec::new() };
    let web_addr = web_listeners.first().map(|l| l.local_addr()).transpose()?;
    let web = Arc::new(web::WebShared::new(web_addr, &identity, addr.port())?);
    let web_scheme = web.scheme();
    let mut web_listeners = web_listeners.into_iter();
    let metrics = Arc::new(if cfg.metrics.listen.is_some() {
        Metrics::new(shards, store.backend_name(), cfg.cluster.enabled())
    } else {
        Metrics::noop(shards)
    });
    // Before the cluster: other nodes' searches read this node's index.
    let search = open_search(&cfg, &metrics)?.map(Arc::new);
    let cluster = if cfg.cluster.enabled() {
        let index = search.as_ref().map(|s| s.index());
        match Cluster::start(&cfg.cluster, &cfg.limits, mesh.clone(), index) {
            Ok(c) => Some(c),
            Err(e) => {
                if let Some(s) = &search {
                    s.stop();
                }
                return Err(e.into());
            }
        }
    } else {
        None
    };
    if metrics.enabled() {
        store.set_metrics(metrics.store.clone());
    }
    // Session ids travel between nodes as the origin of a message (whose
    // sender gets no echo): random high bits keep them apart.
    let first_session_id = if cluster.is_some() { (u64::from(rand::random::<u32>()) << 32) | 1 } else { 1 };
    let notifier = crate::notify::Notifier::start(&cfg.notify, metrics.notify.clone()).context("`notify`")?;
    let hooks = crate::notify::hooks::Hooks::start(&cfg.api, store.clone(), metrics.hooks.clone())
        .context("starting the webhook sender")?;
    let audit = Arc::new(Audit::start(&cfg, store.clone(), metrics.audit.clone()).context("starting the audit trail")?);
    audit.record_now(config_event(&cfg)).context("recording the configuration in the audit trail")?;
    let blob_key = store.blob_key_blocking().context("the attachments' key (encryption at rest)")?;
    let blobs = crate::blob::Blobs::open(&cfg).context("opening the blob store ([blobs])")?;
    let blobs = Arc::new(blobs.sealed_with(blob_key));
    crate::command::gdpr_export::clear_scratch(&cfg.data_dir);
    let shared = Arc::new(Shared {
        notifier,
        hooks,
        transfer_pace: crate::blob::pace::Pace::new(cfg.blobs.transfer_bytes_per_sec),
        blobs,
        limits: cfg.limits.protocol(),
        conn_limiter: ConnLimiter::new(cfg.limits.connections_per_minute_per_ip),
        origins: Origins::new(&cfg.web, web_addr.map(|a| a.port())),
        cfg,
        store: store.clone(),
        mesh,
        verifier,
        broker: cluster.clone().map(|c| c as Arc<dyn Broker>),
        session_ids: AtomicU64::new(first_session_id),
        dev_cert_expires: identity.dev_expires,
        cert_sha256: std::sync::RwLock::new(cert_sha256.clone()),
        metrics: metrics.clone(),
        store_last_ok_ms: AtomicU64::new(chat_protocol::unix_ms(std::time::SystemTime::now())),
        search: search.clone(),
        audit: audit.clone(),
        exports: Arc::new(tokio::sync::Semaphore::new(1)),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics_server = match shared.cfg.metrics.listen {
        Some(addr) => Some(
            crate::metrics::serve::serve(addr, metrics, sampler(&shared, cluster.clone()), shutdown_rx.clone())
                .with_context(|| format!("`metrics.listen` {addr}"))?,
        ),
        None => None,
    };
    let (kill_tx, kill_rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(shards);
    // Bounded: one request waits at most while a pass runs.
    let (purge, purge_rx) = tokio::sync::mpsc::channel(1);
    let mut purge_rx = Some(purge_rx);
    for (id, (socket, rx)) in sockets.into_iter().zip(receivers).enumerate() {
        let shared = shared.clone();
        let io = runtime::ShardIo {
            socket,
            web_listener: web_listeners.next(),
            web: web.clone(),
            server_config: server_config.clone(),
            endpoint_config: endpoint_config.clone(),
            rx,
            shutdown: shutdown_rx.clone(),
            kill: kill_rx.clone(),
            purge: purge_rx.take(),
        };
        let t = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(shard = id, error = %e, "cannot start runtime"),
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, runtime::shard_main(id, shared, io));
        })?;
        threads.push(t);
    }
    let control = control_socket(&shared, &audit);
    Ok(ServerHandle {
        control,
        addr,
        web_addr,
        web_scheme,
        cert_sha256,
        dev_cert: identity.dev_expires.is_some(),
        epoch: store.epoch().to_string(),
        shutdown: shutdown_tx,
        kill: kill_tx,
        threads,
        store,
        owns_store,
        cluster,
        metrics: metrics_server,
        search,
        audit,
        purge,
    })
}

/// The control socket for `chatd backup` and `chatd gdpr export` and
/// `erase`, on either store (a backup refuses ScyllaDB with its reason).
/// Not binding it is logged, not fatal: serving matters more.
fn control_socket(shared: &Shared, audit: &Arc<Audit>) -> Option<control::ControlSocket> {
    let with = control::Served {
        store: shared.store.clone(),
        blobs: shared.blobs.clone(),
        audit: audit.clone(),
        mesh: shared.mesh.clone(),
        api: shared.cfg.api.clone(),
    };
    match control::ControlSocket::start(&shared.cfg.data_dir, with) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: `chatd backup` and `chatd gdpr` cannot reach this server");
            None
        }
    }
}

/// The node's search index under `data_dir/search` and its indexer thread
/// (None when `search.enabled` is off).
fn open_search(cfg: &Config, metrics: &Metrics) -> anyhow::Result<Option<Search>> {
    if !cfg.search.enabled {
        return Ok(None);
    }
    let dir = search_dir(cfg);
    let index = TantivyIndex::open(&dir).with_context(|| format!("search index {}", dir.display()))?;
    let every = std::time::Duration::from_millis(cfg.search.commit_interval_ms);
    let search = Search::start(Arc::new(index), every, cfg.search.queue_bound, metrics.search_dropped.clone())
        .context("search indexer thread")?;
    Ok(Some(search))
}

/// Where a node keeps its search index.
pub fn search_dir(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir.join("search")
}

/// What a scrape reads: queue depths, the cluster's counters and Redis health.
fn sampler(shared: &Arc<Shared>, cluster: Option<Arc<Cluster>>) -> Sampler {
    let (mesh, store) = (shared.mesh.clone(), shared.store.clone());
    Arc::new(move || Sample {
        mailboxes: mesh.depths(),
        store_queue: store.queue_depth(),
        bridge_queue: cluster.as_ref().map(|c| c.queue_depth()),
        cluster: cluster.as_ref().map(|c| c.counts()),
        redis: cluster.as_ref().map(|c| c.redis_health()),
    })
}
