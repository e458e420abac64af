//! Starting and stopping a server: binds one UDP port shared by all shards
//! (`SO_REUSEPORT`) and likewise one TCP port for the web endpoint, starts one
//! thread per shard, and wires the mesh, the
//! store and the verifier. The library takes a [`Config`] and returns a
//! [`ServerHandle`]; it reads no flags or environment of its own, so tests can
//! start as many servers as they like on port 0.

use crate::auth::Verifier;
use crate::config::Config;
use crate::shard::{Mesh, PresenceMsg, ShardMsg, ShardState, UserEvent};
use crate::store::{MessageStore, Store};
use crate::{conversation, session, tls, transport, web};
use anyhow::Context;
use chat_protocol::WireError;
use chat_protocol::v1::ErrorCode;
use governor::{Quota, RateLimiter, clock::Clock};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

type KeyedLimiter<K> = RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, governor::clock::DefaultClock>;

/// Rate-limited connections being answered at once per shard; more are refused outright.
pub(crate) const MAX_REFUSALS_IN_FLIGHT: usize = 32;

/// Capacity of each shard's mailbox.
const MAILBOX: usize = 16 * 1024;

/// What every shard shares (immutable, or internally synchronised off the message path).
pub struct Shared {
    /// The configuration in force.
    pub cfg: Config,
    /// Protocol limits derived from it.
    pub limits: chat_protocol::Limits,
    /// The store.
    pub store: Arc<Store>,
    /// The mesh of shard mailboxes.
    pub mesh: Mesh,
    /// Token verifier.
    pub verifier: Verifier,
    /// The way to the other nodes (None: a single node).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// New connections per IP (connection path only, never the message path).
    conn_limiter: KeyedLimiter<IpAddr>,
    session_ids: AtomicU64,
    /// When the dev certificate in use expires (None: a configured certificate).
    dev_cert_expires: Option<std::time::SystemTime>,
    /// SHA-256 (hex) of the certificate new connections get (renewed at run time).
    cert_sha256: std::sync::RwLock<String>,
    /// The web endpoint and the browser-origin policy.
    pub web: web::WebShared,
}

impl Shared {
    /// A process-unique session id.
    pub fn next_session_id(&self) -> u64 {
        self.session_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The hash of the dev certificate new connections get now (browsers pin
    /// it); None with a configured certificate.
    pub fn dev_cert_sha256(&self) -> Option<String> {
        self.dev_cert_expires?;
        Some(self.cert_sha256.read().map(|h| h.clone()).unwrap_or_else(|p| p.into_inner().clone()))
    }

    /// None if `ip` may open a connection now, else how long to wait.
    pub(crate) fn connection_refused_for(&self, ip: IpAddr) -> Option<Duration> {
        self.conn_limiter
            .check_key(&ip)
            .err()
            .map(|nu| nu.wait_time_from(governor::clock::DefaultClock::default().now()))
    }
}

/// One shard's context: the shared part plus what only this thread touches.
pub struct ShardCtx {
    /// Shared by all shards.
    pub shared: Arc<Shared>,
    /// This shard's state.
    pub state: ShardState,
    /// Flips to true when the server stops.
    pub shutdown: watch::Receiver<bool>,
    /// Messages per minute of the users homed on this shard.
    msg_limiter: KeyedLimiter<Arc<str>>,
}

impl ShardCtx {
    /// Cluster: the node that owns `conv`, if it is not this one. None on a
    /// single node, when this node owns it, or before the live set is known.
    pub fn remote_owner(&self, conv: crate::shard::ConvId) -> Option<crate::cluster::NodeId> {
        if conv == 0 {
            return None;
        }
        let cluster = self.shared.cluster.as_ref()?;
        let live = self.state.live.borrow();
        let owner = crate::cluster::owner(conv, &live)?;
        (owner != cluster.node_id()).then(|| owner.clone())
    }

    /// Counts one message against the user's rate. The count lives at the
    /// user's home shard, so the limit holds per user whichever shards their
    /// devices landed on: a local check there, one mailbox round trip elsewhere.
    pub async fn check_message_rate(&self, user: &Arc<str>) -> Result<(), WireError> {
        let home = crate::shard::user_shard(user, self.shared.mesh.len());
        if home == self.state.id {
            return self.count_message(user);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let msg = ShardMsg::Presence(PresenceMsg::RateCheck(user.clone(), tx));
        self.shared
            .mesh
            .send(home, msg)
            .await
            .map_err(|_| WireError::new(ErrorCode::Unavailable, "shard unavailable"))?;
        rx.await.map_err(|_| WireError::new(ErrorCode::Unavailable, "shard unavailable"))?
    }

    /// The home shard's count of a user's messages.
    fn count_message(&self, user: &Arc<str>) -> Result<(), WireError> {
        self.msg_limiter.check_key(user).map_err(|nu| {
            let wait = nu.wait_time_from(governor::clock::DefaultClock::default().now());
            WireError::limited(
                ErrorCode::RateLimited,
                "messages_per_minute",
                format!("more than {} messages per minute", self.shared.cfg.limits.messages_per_minute),
                Some(wait.max(Duration::from_millis(1))),
            )
        })
    }
}

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
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl ServerHandle {
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

    /// Cluster: this node's id (None on a single node).
    pub fn node_id(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| &**c.node_id())
    }

    /// Stops: sessions are told (`Goodbye`, SHUTTING_DOWN) and closed, shards
    /// finish what they hold, a cluster node leaves the live set and removes its
    /// presence keys, the store flushes (unless it was handed in by
    /// [`start_with_store`]: its owner closes it). Blocks until done.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(c) = &self.cluster {
            c.stop();
        }
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
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts a server on the store `cfg` names. A cluster configuration
/// (`cluster.redis_url`) on the embedded store is refused: each node would
/// have its own copy of the conversations.
pub fn start(mut cfg: Config) -> anyhow::Result<ServerHandle> {
    cfg.cluster.check(cfg.store.backend.is_shared())?;
    cfg.check_auth()?;
    crate::auth::resolve_dev_secret(&mut cfg)?;
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
    cfg.cluster.check(true)?;
    cfg.check_auth()?;
    crate::auth::resolve_dev_secret(&mut cfg)?;
    start_inner(cfg, store, false)
}

fn start_inner(cfg: Config, store: Arc<Store>, owns_store: bool) -> anyhow::Result<ServerHandle> {
    // One crypto provider for the whole process (quinn, wtransport, later scylla and fred).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shards = cfg.shard_count();
    let identity = tls::load_identity(&cfg)?;
    let cert_sha256 = identity.sha256_hex();
    let server_config = tls::quinn_server_config(&identity, &cfg.session)?;
    let verifier = Verifier::new(&cfg.auth)?;
    let (mesh, receivers) = Mesh::new(shards, MAILBOX);
    let sockets = bind_shared(cfg.listen, shards)?;
    let addr = sockets[0].local_addr()?;
    let web_listeners = if cfg.web.enabled { web::bind(cfg.web.listen, shards)? } else { Vec::new() };
    let web_addr = web_listeners.first().map(|l| l.local_addr()).transpose()?;
    let web = web::WebShared::new(&cfg, web_addr, &identity, addr.port())?;
    let web_scheme = web.scheme();
    let mut web_listeners = web_listeners.into_iter();
    let per_min = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("non-zero"));
    let cluster =
        if cfg.cluster.enabled() { Some(crate::cluster::Cluster::start(&cfg.cluster, mesh.clone())?) } else { None };
    // Session ids travel between nodes as the origin of a message (whose
    // sender gets no echo): random high bits keep them apart.
    let first_session_id = if cluster.is_some() { (u64::from(rand::random::<u32>()) << 32) | 1 } else { 1 };
    let shared = Arc::new(Shared {
        limits: cfg.limits.protocol(),
        conn_limiter: RateLimiter::keyed(per_min(cfg.limits.connections_per_minute_per_ip)),
        cfg,
        store: store.clone(),
        mesh,
        verifier,
        cluster: cluster.clone(),
        session_ids: AtomicU64::new(first_session_id),
        dev_cert_expires: identity.dev_expires,
        cert_sha256: std::sync::RwLock::new(cert_sha256.clone()),
        web,
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (kill_tx, kill_rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(shards);
    for (id, (socket, rx)) in sockets.into_iter().zip(receivers).enumerate() {
        let shared = shared.clone();
        let io = ShardIo {
            socket,
            web_listener: web_listeners.next(),
            server_config: server_config.clone(),
            rx,
            shutdown: shutdown_rx.clone(),
            kill: kill_rx.clone(),
        };
        let t = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(shard = id, error = %e, "cannot start runtime"),
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, shard_main(id, shared, io));
        })?;
        threads.push(t);
    }
    Ok(ServerHandle {
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
    })
}

/// Binds `n` sockets of one type to one address with `SO_REUSEPORT`, one per
/// shard (port 0: the first picks the port, the rest join it); `[::]` is
/// dual-stack. `prepare` sets each socket up before it is bound.
pub(crate) fn bind_reuseport(
    addr: SocketAddr,
    n: usize,
    ty: socket2::Type,
    prepare: impl Fn(&socket2::Socket) -> std::io::Result<()>,
) -> anyhow::Result<Vec<socket2::Socket>> {
    use socket2::{Domain, Socket};
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let s = Socket::new(Domain::for_address(addr), ty, None)?;
        if addr.is_ipv6() {
            s.set_only_v6(false)?;
        }
        s.set_reuse_port(true)?;
        prepare(&s)?;
        s.bind(&addr.into()).with_context(|| format!("bind {addr}"))?;
        addr = s.local_addr()?.as_socket().context("bound socket without an IP address")?;
        out.push(s);
    }
    Ok(out)
}

/// The shards' UDP sockets (QUIC and WebTransport), with large buffers.
fn bind_shared(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<std::net::UdpSocket>> {
    let sockets = bind_reuseport(addr, n, socket2::Type::DGRAM, |s| {
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        Ok(())
    })?;
    Ok(sockets.into_iter().map(Into::into).collect())
}

/// What one shard thread is given: its sockets, mailbox and stop signals.
struct ShardIo {
    socket: std::net::UdpSocket,
    web_listener: Option<std::net::TcpListener>,
    server_config: quinn::ServerConfig,
    rx: mpsc::Receiver<ShardMsg>,
    shutdown: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
}

async fn shard_main(id: usize, shared: Arc<Shared>, io: ShardIo) {
    let ShardIo { socket, web_listener, server_config, rx, mut shutdown, mut kill } = io;
    let per_min = Quota::per_minute(NonZeroU32::new(shared.cfg.limits.messages_per_minute.max(1)).expect("non-zero"));
    let ctx = Rc::new(ShardCtx {
        shared: shared.clone(),
        state: ShardState::new(id),
        shutdown: shutdown.clone(),
        msg_limiter: RateLimiter::keyed(per_min),
    });
    let endpoint = match quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_config),
        socket,
        Arc::new(quinn::TokioRuntime),
    ) {
        Ok(e) => e,
        Err(e) => return tracing::error!(shard = id, error = %e, "cannot start endpoint"),
    };
    *ctx.state.endpoint.borrow_mut() = Some(endpoint.clone());
    tokio::task::spawn_local(mailbox(ctx.clone(), rx));
    if ctx.shared.cluster.is_some() {
        tokio::task::spawn_local(session::presence_resync(ctx.clone()));
    }
    if let Some(l) = web_listener {
        tokio::task::spawn_local(web::serve(ctx.clone(), l));
    }
    if id == 0 {
        tokio::task::spawn_local(renew_dev_cert(shared.clone(), shared.dev_cert_expires));
    }
    let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
    let refusing = Rc::new(std::cell::Cell::new(0usize));
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if ctx.state.sessions.borrow().count() >= shared.cfg.limits.max_connections_per_shard {
                    incoming.refuse();
                    continue;
                }
                let limited = shared.connection_refused_for(incoming.remote_address().ip());
                if limited.is_some() && refusing.get() >= MAX_REFUSALS_IN_FLIGHT {
                    // A flood: precise refusals cost a TLS handshake each, so past
                    // a few at a time the rest are turned away at the door.
                    incoming.refuse();
                    continue;
                }
                let ctx = ctx.clone();
                let refusing = refusing.clone();
                tokio::task::spawn_local(async move {
                    if limited.is_some() {
                        refusing.set(refusing.get() + 1);
                    }
                    let timeout = Duration::from_millis(ctx.shared.cfg.session.handshake_timeout_ms);
                    match tokio::time::timeout(timeout, transport::accept(incoming, &ctx.shared.web.origins)).await {
                        Ok(Ok(conn)) => session::run(ctx, conn, limited).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "connection not established"),
                        Err(_) => tracing::debug!("transport handshake timed out"),
                    }
                    if limited.is_some() {
                        refusing.set(refusing.get() - 1);
                    }
                });
            }
            _ = housekeeping.tick() => {
                ctx.msg_limiter.retain_recent();
                if id == 0 {
                    shared.conn_limiter.retain_recent();
                }
            }
            _ = shutdown.changed() => break,
            _ = kill.changed() => {
                // A crash: connections closed at once, every task (sessions,
                // actors) dropped with the runtime, nothing cleaned up.
                endpoint.close(0u32.into(), b"node killed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
        }
    }
    // Sessions see the same signal, say goodbye and close; give them a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    endpoint.close((ErrorCode::ShuttingDown as u32).into(), b"server is shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    tracing::debug!(shard = id, "stopped");
}

/// Cluster: forwarded requests one shard serves at once; past it the origin
/// gets the retryable "owner node is overloaded".
const MAX_FORWARDED_PER_SHARD: usize = 1024;

/// The shard's mailbox: routes mesh messages to actors, sessions and presence.
async fn mailbox(ctx: Rc<ShardCtx>, mut rx: mpsc::Receiver<ShardMsg>) {
    // Cluster: forwarded requests being served on this shard, at most this many.
    let forwarded = Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDED_PER_SHARD));
    while let Some(msg) = rx.recv().await {
        match msg {
            ShardMsg::Conv(conv, m) => {
                let mut m = m;
                // An actor that stopped (unknown conversation) is replaced once.
                for _ in 0..2 {
                    let tx = ctx
                        .state
                        .actors
                        .borrow_mut()
                        .entry(conv)
                        .or_insert_with(|| conversation::spawn(ctx.clone(), conv))
                        .clone();
                    match tx.send(m).await {
                        Ok(()) => break,
                        Err(back) => {
                            ctx.state.actors.borrow_mut().remove(&conv);
                            m = back.0;
                        }
                    }
                }
            }
            ShardMsg::Fanout(conv, f) => {
                let sessions = ctx.state.sessions.borrow();
                let subscribed = sessions.of_conv(conv);
                // In a cluster owners send to every shard (sessions attach
                // without telling the owner), so there is nothing to detach.
                if subscribed.is_empty() && ctx.shared.cluster.is_none() {
                    // Nobody here any more: tell the owner (lazily, so this
                    // Detach is ordered before any later Attach from this shard).
                    let _ = ctx.shared.mesh.try_send(
                        crate::shard::home_shard(conv, ctx.shared.mesh.len()),
                        ShardMsg::Conv(conv, conversation::ConvMsg::Detach { shard: ctx.state.id }),
                    );
                }
                for s in subscribed {
                    s.deliver(conv, &f);
                }
            }
            ShardMsg::User(user, ev) => {
                let targets: Vec<_> = ctx.state.sessions.borrow().of_user(&user).to_vec();
                for s in targets {
                    match &ev {
                        // Revoked at once, before anything still queued for the session is written.
                        UserEvent::Removed(conv, _) => {
                            s.revoked.borrow_mut().insert(*conv);
                            ctx.state.sessions.borrow_mut().unsubscribe(*conv, s.id);
                        }
                        UserEvent::Added(conv, _, _) => {
                            s.revoked.borrow_mut().remove(conv);
                        }
                    }
                    s.deliver_user(&ev);
                }
            }
            ShardMsg::Remote(conv, f) => {
                for s in ctx.state.sessions.borrow().of_conv(conv) {
                    s.deliver(conv, &f);
                }
            }
            ShardMsg::Live(live) => on_live(&ctx, live),
            ShardMsg::ForgetNode(node) => {
                let flips = ctx.state.presence.borrow_mut().forget_node(&node);
                for (user, online, version) in flips {
                    session::presence_fanout(&ctx, user, online, version);
                }
            }
            ShardMsg::RemotePresence { user, node, count } => {
                let known = ctx.state.presence.borrow().knows_remote(&user, &node);
                let flip = ctx.state.presence.borrow_mut().set_remote(user.clone(), node, count);
                if let Some((online, version)) = flip {
                    session::presence_fanout(&ctx, user, online, version);
                } else if count == 0 && !known {
                    // We never heard this user come online there (we started
                    // later, or pub/sub lost it): ask the presence keys.
                    tokio::task::spawn_local(session::presence_recheck(ctx.clone(), user));
                }
            }
            ShardMsg::Forwarded(req) => match forwarded.clone().try_acquire_owned() {
                Ok(permit) => {
                    let ctx = ctx.clone();
                    tokio::task::spawn_local(async move {
                        session::serve_forwarded(ctx, *req).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    if let Some(c) = &ctx.shared.cluster {
                        let e = crate::cluster::overloaded();
                        c.reply(req.from, req.req_id, chat_protocol::v1::reply::Result::Error(e.to_proto()));
                    }
                }
            },
            ShardMsg::Tls(cfg) => {
                if let Some(ep) = ctx.state.endpoint.borrow().as_ref() {
                    ep.set_server_config(Some(*cfg));
                }
            }
            ShardMsg::Presence(p) => {
                let mut table = ctx.state.presence.borrow_mut();
                match p {
                    PresenceMsg::Connected(u, reply) => {
                        let change = table.connect(u.clone());
                        if let Some(c) = &ctx.shared.cluster {
                            c.presence(u, change.devices);
                        }
                        let _ = reply.send(change);
                    }
                    PresenceMsg::Disconnected(u, reply) => {
                        let change = table.disconnect(&u);
                        if let Some(c) = &ctx.shared.cluster {
                            c.presence(u, change.devices);
                        }
                        let _ = reply.send(change);
                    }
                    PresenceMsg::RateCheck(user, reply) => drop(reply.send(ctx.count_message(&user))),
                    PresenceMsg::Query(users, reply) => {
                        let out = users
                            .into_iter()
                            .map(|u| {
                                let (d, v) = table.get(&u);
                                (u, d, v)
                            })
                            .collect();
                        let _ = reply.send(out);
                    }
                }
            }
        }
    }
}

/// The live nodes changed: actors of conversations now owned elsewhere stop
/// (they finish what they hold; the store's seq fence settles any overlap),
/// and users whose devices were on nodes that left go offline.
fn on_live(ctx: &Rc<ShardCtx>, live: crate::cluster::LiveSet) {
    *ctx.state.live.borrow_mut() = live.clone();
    let Some(cluster) = &ctx.shared.cluster else { return };
    let me = cluster.node_id();
    ctx.state.actors.borrow_mut().retain(|conv, _| crate::cluster::owner(*conv, &live).is_none_or(|owner| owner == me));
    let flips = ctx.state.presence.borrow_mut().drop_nodes(&live);
    for (user, online, version) in flips {
        session::presence_fanout(ctx, user, online, version);
    }
}

/// Renews the dev certificate before it expires (shard 0 only, so every
/// shard gets the same one). Live connections keep the old one; new
/// connections get the new one. Clients that pin by hash must learn the new
/// hash, which is logged and printed by the next `chatd serve`.
async fn renew_dev_cert(shared: Arc<Shared>, mut expires: Option<std::time::SystemTime>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(exp) = expires else { return };
        let now = std::time::SystemTime::now();
        if exp > now + tls::DEV_CERT_RENEW_BEFORE {
            continue;
        }
        let renewed = tls::load_identity(&shared.cfg).and_then(|id| {
            let cfg = tls::quinn_server_config(&id, &shared.cfg.session)?;
            Ok((id, cfg))
        });
        match renewed {
            Ok((id, cfg)) => {
                tracing::warn!(sha256 = %id.sha256_hex(), "dev certificate renewed; clients pinning the old hash must take the new one");
                expires = id.dev_expires;
                if let Ok(mut h) = shared.cert_sha256.write() {
                    *h = id.sha256_hex();
                }
                for shard in 0..shared.mesh.len() {
                    let _ = shared.mesh.send(shard, ShardMsg::Tls(Box::new(cfg.clone()))).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "dev certificate renewal failed; retrying in an hour"),
        }
    }
}
