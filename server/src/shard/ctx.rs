//! A shard's context: what every shard shares ([`Shared`]: configuration,
//! store, mesh, token verifier, the broker to other nodes, admission) and what
//! only its own thread touches ([`ShardState`]: its sessions, the actors of
//! the conversations homed on it, the presence of the users homed on it, the
//! live set). Per-shard state is `Rc`/`RefCell`, never shared across threads.

use crate::auth::Verifier;
use crate::config::{Config, LimitsConfig};
use crate::ids::{ConvId, LiveSet, NodeId};
use crate::metrics::Metrics;
use crate::shard::broker::{Broker, RateKey};
use crate::shard::mesh::Mesh;
use crate::shard::msg::{ConvMsg, PresenceMsg, ShardMsg, UserRate};
use crate::shard::placement::{owner_node, user_shard};
use crate::shard::presence::PresenceTable;
use crate::shard::sessions::LocalSessions;
use crate::shard::upload_rate::UploadRate;
use crate::shard::window::ClusterWindows;
use crate::store::Store;
use crate::transport::admission::{ConnLimiter, Origins, rate_key};
use chat_protocol::WireError;
use chat_protocol::v1::ErrorCode;
use governor::{Quota, RateLimiter, clock::Clock};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Messages per minute per user, counted at the user's home shard.
pub type KeyedLimiter<K> =
    RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, governor::clock::DefaultClock>;

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
    pub broker: Option<Arc<dyn Broker>>,
    /// New connections per IP.
    pub conn_limiter: ConnLimiter,
    /// Browser origins allowed to open sessions.
    pub origins: Origins,
    /// The next session id.
    pub session_ids: AtomicU64,
    /// When the dev certificate in use expires (None: a configured certificate).
    pub dev_cert_expires: Option<std::time::SystemTime>,
    /// SHA-256 (hex) of the certificate new connections get (renewed at run time).
    pub cert_sha256: std::sync::RwLock<String>,
    /// The node's metric handles (atomics; no-ops when metrics are off).
    pub metrics: Arc<Metrics>,
    /// When (unix ms) the store last answered the health probe (see `crate::health`).
    pub store_last_ok_ms: AtomicU64,
    /// Where attachments' bytes live (`[blobs]`).
    pub blobs: Arc<crate::blob::Blobs>,
    /// The node's budget of file transfer bytes per second (`blobs.transfer_bytes_per_sec`).
    pub transfer_pace: crate::blob::pace::Pace,
    /// The offline-notification webhook (None: off).
    pub notifier: Option<crate::notify::Notifier>,
    /// The service accounts' event webhooks.
    pub hooks: crate::notify::hooks::Hooks,
    /// The full-text index and its indexer (None: `search.enabled = false`).
    pub search: Option<Arc<crate::search::indexer::Search>>,
    /// The node's audit trail (`Audit::record`).
    pub audit: Arc<crate::audit::Audit>,
    /// The node's one slot for an export: a GDPR export (`crate::command::gdpr_export`) or a transcript (`crate::api`).
    pub exports: Arc<tokio::sync::Semaphore>,
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

    /// None if `ip` may open a connection now, else how long to wait: this
    /// node's count first, then (cluster) all nodes' as last learned.
    pub fn connection_refused_for(&self, ip: IpAddr) -> Option<Duration> {
        self.conn_limiter
            .refused_for(ip)
            .or_else(|| self.broker.as_ref().and_then(|b| b.connection_refused_for(rate_key(ip))))
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
    /// Rates of the users homed on this shard.
    pub user_limits: UserLimits,
}

/// What the home shard counts per user (see [`UserRate`]).
pub struct UserLimits {
    messages: KeyedLimiter<Arc<str>>,
    /// Cluster: the messages of the users homed here across all nodes.
    cluster_messages: Option<RefCell<ClusterWindows<Arc<str>>>>,
    conversations: KeyedLimiter<Arc<str>>,
    key_claims: KeyedLimiter<Arc<str>>,
    connections: KeyedLimiter<Arc<str>>,
    /// Cluster: the new connections of the users homed here across all nodes.
    cluster_connections: Option<RefCell<ClusterWindows<Arc<str>>>>,
    /// Uploads, in a sliding hour (a sans-IO rule fed the wall clock).
    uploads: RefCell<UploadRate>,
    /// Service accounts' API requests (per node).
    api: KeyedLimiter<Arc<str>>,
    /// The configured rates, for the refusals.
    per_minute: u32,
    api_per_minute: u32,
    per_hour: u32,
    key_claims_per_hour: u32,
    connections_per_minute: u32,
    uploads_per_hour: u32,
}

impl UserLimits {
    /// Limits from the configuration; `clustered`: messages also counted across nodes.
    pub fn new(limits: &LimitsConfig, uploads_per_hour: u32, api_per_minute: u32, clustered: bool) -> Self {
        let n = |v: u32| NonZeroU32::new(v.max(1)).expect("non-zero");
        Self {
            messages: RateLimiter::keyed(Quota::per_minute(n(limits.messages_per_minute))),
            cluster_messages: clustered.then(|| RefCell::new(ClusterWindows::new(limits.messages_per_minute))),
            conversations: RateLimiter::keyed(Quota::per_hour(n(limits.conversations_per_hour))),
            key_claims: RateLimiter::keyed(Quota::per_hour(n(limits.key_claims_per_hour))),
            key_claims_per_hour: limits.key_claims_per_hour,
            connections: RateLimiter::keyed(Quota::per_minute(n(limits.connections_per_minute_per_user))),
            cluster_connections: clustered
                .then(|| RefCell::new(ClusterWindows::new(limits.connections_per_minute_per_user))),
            per_minute: limits.messages_per_minute,
            per_hour: limits.conversations_per_hour,
            connections_per_minute: limits.connections_per_minute_per_user,
            uploads: RefCell::new(UploadRate::new(uploads_per_hour)),
            uploads_per_hour,
            api: RateLimiter::keyed(Quota::per_minute(n(api_per_minute))),
            api_per_minute,
        }
    }

    /// Counts one action of `user`: the precise refusal past the limit. In
    /// a cluster a message or connection is counted on this node first, then
    /// against what all nodes counted (as last learned: no wait on Redis),
    /// and handed to `broker` for the others to learn.
    pub fn check(&self, kind: UserRate, user: &Arc<str>, broker: Option<&dyn Broker>) -> Result<(), WireError> {
        let (limiter, code, limit, what) = match kind {
            UserRate::Uploads => return self.check_upload(user),
            UserRate::Messages => (
                &self.messages,
                ErrorCode::RateLimited,
                "messages_per_minute",
                format!("more than {} messages per minute", self.per_minute),
            ),
            UserRate::Conversations => (
                &self.conversations,
                ErrorCode::RateLimited,
                "conversations_per_hour",
                format!("more than {} new conversations per hour", self.per_hour),
            ),
            UserRate::KeyClaims => (
                &self.key_claims,
                ErrorCode::RateLimited,
                "key_claims_per_hour",
                format!("more than {} KeyPackage claims per hour", self.key_claims_per_hour),
            ),
            UserRate::Connections => (
                &self.connections,
                ErrorCode::ConnectionRateLimited,
                "connections_per_minute_per_user",
                format!("more than {} new connections per minute for this user", self.connections_per_minute),
            ),
            UserRate::Api => (
                &self.api,
                ErrorCode::RateLimited,
                "requests_per_minute",
                format!("more than {} API requests per minute for this service account", self.api_per_minute),
            ),
        };
        let refuse =
            |wait: Duration| WireError::limited(code, limit, what.clone(), Some(wait.max(Duration::from_millis(1))));
        limiter
            .check_key(user)
            .map_err(|nu| refuse(nu.wait_time_from(governor::clock::DefaultClock::default().now())))?;
        if let (Some(cluster), Some(broker)) = (self.cluster(kind), broker) {
            let window = cluster.borrow_mut().admit(user, unix_now_ms()).map_err(refuse)?;
            let key = match kind {
                UserRate::Messages => RateKey::Messages(user.clone()),
                _ => RateKey::UserConnections(user.clone()),
            };
            broker.rate_add(key, window);
        }
        Ok(())
    }

    /// Counts one upload of `user` (per node: uploads are rare and large, a
    /// cluster-wide count would add a Redis round trip for little).
    fn check_upload(&self, user: &Arc<str>) -> Result<(), WireError> {
        self.uploads.borrow_mut().admit(user, unix_now_ms()).map_err(|wait| {
            WireError::limited(
                ErrorCode::UploadRateExceeded,
                "uploads_per_hour",
                format!("more than {} uploads per hour", self.uploads_per_hour),
                Some(wait),
            )
        })
    }

    /// The cluster-wide count of `kind`, if it has one here.
    fn cluster(&self, kind: UserRate) -> Option<&RefCell<ClusterWindows<Arc<str>>>> {
        match kind {
            UserRate::Messages => self.cluster_messages.as_ref(),
            UserRate::Connections => self.cluster_connections.as_ref(),
            UserRate::Conversations | UserRate::Uploads | UserRate::Api | UserRate::KeyClaims => None,
        }
    }

    /// Cluster: what the other nodes counted of `user`'s `kind` in `window`.
    pub fn learn(&self, kind: UserRate, user: &Arc<str>, window: u64, others: u64) {
        if let Some(cluster) = self.cluster(kind) {
            cluster.borrow_mut().learn(user, window, others, unix_now_ms());
        }
    }

    /// Forgets users who did nothing lately.
    pub fn retain_recent(&self) {
        self.messages.retain_recent();
        self.conversations.retain_recent();
        self.key_claims.retain_recent();
        self.connections.retain_recent();
        self.api.retain_recent();
        self.uploads.borrow_mut().retain_recent(unix_now_ms());
        for cluster in [&self.cluster_messages, &self.cluster_connections].into_iter().flatten() {
            cluster.borrow_mut().retain_recent(unix_now_ms());
        }
    }
}

/// Now, in ms since the Unix epoch (the clock of the cluster windows).
fn unix_now_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

impl ShardCtx {
    /// Cluster: the node that owns `conv`, if it is not this one. None on a
    /// single node, when this node owns it, or before the live set is known.
    pub fn remote_owner(&self, conv: ConvId) -> Option<NodeId> {
        if conv == 0 {
            return None;
        }
        let broker = self.shared.broker.as_ref()?;
        let live = self.state.live.borrow();
        let owner = owner_node(conv, &live)?;
        (owner != broker.node_id()).then(|| owner.clone())
    }

    /// Cluster: no session on this shard subscribes to `conv` any more (the
    /// node stops getting its fan-outs once no shard needs them).
    pub fn released(&self, conv: ConvId) {
        if let Some(b) = &self.shared.broker {
            b.release(conv, self.state.id);
        }
    }

    /// Counts one action against the user's rate of that kind. The count
    /// lives at the user's home shard, so the limit holds per user whichever
    /// shards their devices landed on: a local check there, one mailbox round
    /// trip elsewhere.
    pub async fn check_user_rate(&self, kind: UserRate, user: &Arc<str>) -> Result<(), WireError> {
        let home = user_shard(user, self.shared.mesh.len());
        if home == self.state.id {
            return self.user_limits.check(kind, user, self.shared.broker.as_deref());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let msg = ShardMsg::Presence(PresenceMsg::RateCheck(user.clone(), kind, tx));
        self.shared
            .mesh
            .send(home, msg)
            .await
            .map_err(|_| WireError::new(ErrorCode::Unavailable, "shard unavailable"))?;
        rx.await.map_err(|_| WireError::new(ErrorCode::Unavailable, "shard unavailable"))?
    }
}

/// Everything a shard thread owns, behind one `Rc`.
pub struct ShardState {
    /// This shard's index.
    pub id: usize,
    /// Sessions connected here.
    pub sessions: RefCell<LocalSessions>,
    /// Actors of the conversations homed here.
    pub actors: RefCell<HashMap<ConvId, mpsc::Sender<ConvMsg>>>,
    /// Presence of the users homed here.
    pub presence: RefCell<PresenceTable>,
    /// This shard's endpoint, once started.
    pub endpoint: RefCell<Option<quinn::Endpoint>>,
    /// Cluster: the live nodes as last heard from the bridge (empty: single node).
    pub live: RefCell<LiveSet>,
}

impl ShardState {
    /// Empty state for shard `id`.
    pub fn new(id: usize) -> Self {
        Self {
            id,
            sessions: RefCell::new(LocalSessions::default()),
            actors: RefCell::new(HashMap::new()),
            presence: RefCell::new(PresenceTable::default()),
            endpoint: RefCell::new(None),
            live: RefCell::new(Arc::from(Vec::new())),
        }
    }
}
