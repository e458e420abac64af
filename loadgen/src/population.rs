//! Users, their connections and their conversations: tokens minted with the
//! server's secret, clients connected through the SDK (raw QUIC on a small pool
//! of shared endpoints; WebTransport one endpoint per connection), then the
//! plan's conversations created and announced to every member.

use crate::scenario::{Kind, Plan};
use crate::server::Target;
use anyhow::{Context, bail};
use chat_client::{Backoff, Client, ClientConfig, Events, Transport, Trust, parse_hash, v1};
use futures_util::StreamExt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Connections per shared client UDP socket. The server's shards share one
/// port through `SO_REUSEPORT`, which spreads connections by their 4-tuple:
/// every connection behind one socket lands on the same shard. Small pools
/// keep the spread even (32 per socket: 32 sockets for 1,000 users) while the
/// socket count stays far below the descriptor limit.
const PER_ENDPOINT: usize = 32;
/// Receive and send buffer of each shared client socket. The kernel's default
/// (208 KiB) holds ~100 small datagrams: 32 connections behind one socket
/// overflowed it whenever the loadgen fell a few ms behind, and the dropped
/// datagrams (5% of all at 5,000 msg/s) cost QUIC retransmissions and
/// congestion-window cuts on the server: latency that was the loadgen's doing.
/// 4 MiB is the usual `net.core.rmem_max`; the kernel caps a larger request.
const SOCKET_BUFFER: usize = 4 << 20;
/// Handshakes in flight at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Creations in flight at once.
const CREATE_CONCURRENCY: usize = 32;
/// Attempts per connection before the run fails.
const CONNECT_ATTEMPTS: u32 = 5;
/// Token lifetime: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// How clients connect.
#[derive(Clone)]
pub struct Connector {
    target: Target,
    transport: Transport,
    endpoints: Vec<quinn::Endpoint>,
    prefix: String,
}

/// One user's current client; replaced when it reconnects.
pub struct Slot(RwLock<Client>);

impl Slot {
    /// A handle to the current client.
    pub fn get(&self) -> Client {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new client in place.
    pub fn set(&self, c: Client) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = c;
    }
}

impl Connector {
    /// Endpoints for `users` raw-QUIC connections; user ids start with `prefix`.
    pub fn new(target: Target, transport: Transport, users: usize, prefix: String) -> anyhow::Result<Self> {
        let mut c = Self { target, transport, endpoints: Vec::new(), prefix };
        if transport == Transport::Quic {
            for _ in 0..users.div_ceil(PER_ENDPOINT).max(1) {
                let ep = c.new_endpoint()?;
                c.endpoints.push(ep);
            }
        }
        Ok(c)
    }

    /// A client endpoint of its own (a UDP socket on loopback, the target's address family).
    fn new_endpoint(&self) -> anyhow::Result<quinn::Endpoint> {
        let v6 = self.target.nodes.first().is_some_and(|n| n.addr.is_ipv6());
        let bind: std::net::SocketAddr = if v6 { "[::1]:0".parse()? } else { "127.0.0.1:0".parse()? };
        client_endpoint(bind).context("cannot bind a client UDP socket")
    }

    /// The SDK configuration of another connection of user `u` (another
    /// device) on a UDP socket of its own: its traffic shares no socket
    /// with the chat clients'.
    pub fn own_socket_config(&self, u: usize) -> anyhow::Result<ClientConfig> {
        let cfg = self.config(u)?;
        match self.transport {
            Transport::Quic => Ok(cfg.quic_endpoint(self.new_endpoint()?)),
            // WebTransport connections have a socket each already.
            _ => Ok(cfg),
        }
    }

    /// The node user `u` connects to (its index in the target's nodes).
    pub fn node_of(&self, u: usize) -> usize {
        self.target.node_of(u)
    }

    /// How many nodes the users are spread over.
    pub fn nodes(&self) -> usize {
        self.target.nodes.len()
    }

    /// The id of user `u`.
    pub fn user_id(&self, u: usize) -> String {
        format!("{}u{u}", self.prefix)
    }

    /// A token for user `u` (an advocate), signed with the server's secret.
    pub fn token(&self, u: usize) -> String {
        chat_server::auth::mint_hs256(
            &self.target.token_secret,
            &self.user_id(u),
            &format!("Load user {u}"),
            "advocate",
            TOKEN_TTL,
        )
    }

    /// The SDK configuration of user `u`.
    pub fn config(&self, u: usize) -> anyhow::Result<ClientConfig> {
        let token = self.token(u);
        let home = self.target.node_of(u);
        let node = self.target.nodes.get(home).context("no server to connect to")?;
        // Every node's certificate, and the other nodes to fall back on in
        // turn (a cluster's clients move when their node is lost).
        let hashes = self.target.nodes.iter().map(|n| parse_hash(&n.cert_hash)).collect::<Result<Vec<_>, _>>();
        let trust = Trust::CertHashes(hashes.map_err(anyhow::Error::msg)?);
        let n = self.target.nodes.len();
        let others: Vec<String> = (1..n).map(|k| self.target.nodes[(home + k) % n].addr.to_string()).collect();
        let mut cfg = ClientConfig::new(node.addr.to_string(), token, trust)
            .with_fallback_addrs(others)
            .transport(self.transport)
            .backoff(Backoff { initial: Duration::from_millis(50), max: Duration::from_secs(2), multiplier: 2.0 })
            .request_timeout(Duration::from_secs(30))
            .event_buffer(1024);
        if let Some(ep) = self.endpoints.get(u % self.endpoints.len().max(1)) {
            cfg = cfg.quic_endpoint(ep.clone());
        }
        Ok(cfg)
    }

    /// Connects with `cfg`, retrying a few times (a loaded server may time a handshake out).
    pub async fn connect(&self, cfg: ClientConfig) -> anyhow::Result<(Client, Events)> {
        let mut last = None;
        for attempt in 0..CONNECT_ATTEMPTS {
            match Client::connect(cfg.clone()).await {
                Ok(ce) => return Ok(ce),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        bail!("cannot connect after {CONNECT_ATTEMPTS} attempts: {}", last.map(|e| e.to_string()).unwrap_or_default())
    }

    /// Connects every user; `on_progress` after each. In user order.
    pub async fn connect_all(
        &self,
        users: usize,
        on_progress: impl Fn(),
    ) -> anyhow::Result<(Vec<Arc<Slot>>, Vec<Events>)> {
        let mut done: Vec<Option<(Client, Events)>> = (0..users).map(|_| None).collect();
        let mut attempts = futures_util::stream::iter(0..users)
            .map(|u| async move {
                let cfg = self.config(u)?;
                let r = self.connect(cfg).await.with_context(|| format!("user {u}"));
                anyhow::Ok((u, r?))
            })
            .buffer_unordered(CONNECT_CONCURRENCY);
        while let Some(r) = attempts.next().await {
            let (u, ce) = r?;
            done[u] = Some(ce);
            on_progress();
        }
        let (slots, events) = done
            .into_iter()
            .map(|ce| ce.expect("every user connected"))
            .map(|(c, e)| (Arc::new(Slot(RwLock::new(c))), e))
            .unzip();
        Ok((slots, events))
    }
}

/// Creates the plan's conversations (each by its first member; `e2e`: end-to-end
/// encrypted, their groups made by `crate::e2e::start_groups`); their ids in plan order.
pub async fn create_conversations(
    plan: &Plan,
    slots: &[Arc<Slot>],
    connector: &Connector,
    e2e: bool,
    on_progress: impl Fn(),
) -> anyhow::Result<Vec<u64>> {
    let mut ids = vec![0u64; plan.convs.len()];
    let mut creates = futures_util::stream::iter(plan.convs.iter().enumerate())
        .map(|(i, c)| async move {
            let creator = slots[c.members[0]].get();
            let others: Vec<String> = c.members[1..].iter().map(|&u| connector.user_id(u)).collect();
            let (kind, title) = match c.kind {
                Kind::Private => (v1::ConversationKind::Private, String::new()),
                Kind::Group => (v1::ConversationKind::Group, format!("load group {i}")),
            };
            // A retryable refusal (a busy owner node in a cluster) is retried a few times.
            let mut attempt = 0;
            let ok = loop {
                let created = match e2e {
                    false => creator.create_conversation(kind, title.clone(), "", others.clone()).await,
                    true => creator.create_e2e_conversation(kind, title.clone(), "", others.clone()).await,
                };
                match created {
                    Err(e)
                        if attempt < CONNECT_ATTEMPTS
                            && e.wire().is_some_and(|w| w.class() == chat_client::ErrorClass::Temporary) =>
                    {
                        attempt += 1;
                        let wait = e.wire().and_then(|w| w.retry_after).unwrap_or(Duration::from_millis(200));
                        tokio::time::sleep(wait).await;
                    }
                    r => {
                        break r.with_context(|| format!("creating conversation {i} ({} members)", c.members.len()))?;
                    }
                }
            };
            let id = ok.summary.and_then(|s| s.conversation).map(|c| c.id).context("creation reply without an id")?;
            anyhow::Ok((i, id))
        })
        .buffer_unordered(CREATE_CONCURRENCY);
    while let Some(r) = creates.next().await {
        let (i, id) = r?;
        ids[i] = id;
        on_progress();
    }
    Ok(ids)
}

/// A client endpoint on a socket with [`SOCKET_BUFFER`]-sized buffers.
fn client_endpoint(bind: std::net::SocketAddr) -> anyhow::Result<quinn::Endpoint> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(bind), socket2::Type::DGRAM, None)?;
    socket.set_recv_buffer_size(SOCKET_BUFFER)?;
    socket.set_send_buffer_size(SOCKET_BUFFER)?;
    socket.bind(&bind.into())?;
    let runtime = quinn::default_runtime().context("no async runtime for quinn")?;
    Ok(quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket.into(), runtime)?)
}
