//! The one typed configuration tree: defaults, then a TOML file, then
//! `CHAT_*` environment variables (nested keys joined by `__`, e.g.
//! `CHAT_LIMITS__MESSAGES_PER_MINUTE=500`), then command-line flags.
//! Unknown keys are refused, so a typo never silently falls back to a default.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

mod api;
mod audit;
mod blobs;
mod cluster;
mod encryption;
mod error;
mod messages;
mod metrics;
mod notify;
mod oidc;
mod redact;
mod retention;
mod search;
mod store;
mod tls;
mod web;

pub use api::ApiConfig;
pub use audit::AuditConfig;
pub use blobs::{BlobBackend, BlobsConfig};
pub use cluster::ClusterConfig;
pub use encryption::EncryptionConfig;
pub use error::ConfigError;
pub use messages::MessagesConfig;
pub use metrics::MetricsConfig;
pub use notify::NotifyConfig;
pub use oidc::{OidcConfig, is_loopback_http};
pub use redact::{REDACTED, redact_url};
pub use retention::{MAX_RETENTION_DAYS, RetentionConfig};
pub use search::SearchConfig;
pub use tls::TlsConfig;
pub use web::{WebConfig, check_origin};

pub use store::{
    ConsistencyLevel, ReplicationConfig, ScyllaConfig, SerialLevel, StoreBackend, StoreConfig,
    check_serial_for_datacenters,
};

/// Everything `chatd` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP address for QUIC and WebTransport (one port serves both). Default `[::]:4433`.
    pub listen: SocketAddr,
    /// Number of shards (threads); 0 means one per core. Default 0.
    pub shards: usize,
    /// Directory for the store and the dev certificate. Default `./data`.
    pub data_dir: PathBuf,
    /// This node's name, shown in `Welcome` and logs. Default: the host name or "chatd".
    pub node_name: String,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Abuse and size limits.
    pub limits: LimitsConfig,
    /// Storage backend.
    pub store: StoreConfig,
    /// Attachment storage and upload limits.
    pub blobs: BlobsConfig,
    /// Session tuning.
    pub session: SessionConfig,
    /// The web endpoint: the browser app, its configuration and WebSocket sessions.
    pub web: WebConfig,
    /// Several nodes sharing a store and Redis (see `deploy/CLUSTER.md`).
    pub cluster: ClusterConfig,
    /// The Prometheus `/metrics` endpoint (off unless `metrics.listen` is set).
    pub metrics: MetricsConfig,
    /// Edits, deletes and reactions: who may, until when, how many.
    pub messages: MessagesConfig,
    /// The offline-notification webhook (off unless `notify.webhook_url` is set).
    pub notify: NotifyConfig,
    /// Full-text search: on or off, commit interval, indexer queue.
    pub search: SearchConfig,
    /// The audit trail: chain id, signing key, checkpoint cadence.
    pub audit: AuditConfig,
    /// Retention of messages and the purge job.
    pub retention: RetentionConfig,
    /// Encryption at rest: the master key (off unless one is given).
    pub encryption: EncryptionConfig,
    /// The server API for the firm's systems (`/api/v1`) and case links.
    pub api: ApiConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "[::]:4433".parse().expect("valid default address"),
            shards: 0,
            data_dir: PathBuf::from("data"),
            node_name: std::env::var("HOSTNAME").unwrap_or_else(|_| "chatd".into()),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            store: StoreConfig::default(),
            blobs: BlobsConfig::default(),
            session: SessionConfig::default(),
            web: WebConfig::default(),
            cluster: ClusterConfig::default(),
            metrics: MetricsConfig::default(),
            messages: MessagesConfig::default(),
            notify: NotifyConfig::default(),
            search: SearchConfig::default(),
            audit: AuditConfig::default(),
            retention: RetentionConfig::default(),
            encryption: EncryptionConfig::default(),
            api: ApiConfig::default(),
        }
    }
}

/// How tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 shared secret (at least 16 bytes). Default: empty, which means a
    /// random secret made for this data directory (`data_dir/auth/dev-hs256.secret`,
    /// mode 0600) that `chatd serve` and `chatd token` share. Ignored when
    /// `public_key` is set. [`PUBLIC_DEV_SECRET`] is refused unless every
    /// listener is on loopback.
    pub hs256_secret: String,
    /// PEM public key for RS256 or EdDSA tokens (production).
    pub public_key: Option<PathBuf>,
    /// Algorithm of `public_key`: "RS256" or "EdDSA". Default "RS256".
    pub public_key_alg: String,
    /// Required `iss` claim: required with `public_key` (tokens of another
    /// issuer are refused); optional with an HS256 secret.
    pub issuer: Option<String>,
    /// Required `aud` claim: required with `public_key` (a token the identity
    /// provider made for another application is refused); optional with HS256.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`, seconds. Default 30.
    pub leeway_secs: u64,
    /// Longest a token may still be valid when presented (`exp` minus now),
    /// seconds; longer-lived tokens are refused. Default 604800 (7 days).
    pub max_token_lifetime_secs: u64,
    /// Sign-in with the firm's OpenID Connect provider (`[auth.oidc]`).
    pub oidc: OidcConfig,
}

/// A public HS256 secret (it is in the source), for tests and load runs on
/// loopback only: a server whose listeners are not all on loopback refuses to
/// start with it, since anyone could sign an admin token with it.
pub const PUBLIC_DEV_SECRET: &str = "chatd-dev-secret-change-me";

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            hs256_secret: String::new(),
            public_key: None,
            public_key_alg: "RS256".into(),
            issuer: None,
            audience: None,
            leeway_secs: 30,
            max_token_lifetime_secs: 7 * 24 * 3600,
            oidc: OidcConfig::default(),
        }
    }
}

/// Limits; each, when hit, is answered with an error naming it and when to retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Messages per minute per user. Default 100.
    pub messages_per_minute: u32,
    /// New connections per minute per IP address (IPv6 by /64), counted
    /// before TLS. Default 60: an office behind one public address opens
    /// many; the per-user rate below is the tight one.
    pub connections_per_minute_per_ip: u32,
    /// New connections per minute per user (counted once the token is
    /// verified, at the user's home shard; in a cluster across nodes). Default 5.
    pub connections_per_minute_per_user: u32,
    /// Longest message text in bytes. Default 10240.
    pub max_text_bytes: usize,
    /// Longest client frame in bytes. Default 65536.
    pub max_frame_bytes: usize,
    /// Most members of one conversation. Default 10000.
    pub max_members: usize,
    /// Typing indicator auto-stop, milliseconds. Default 3000.
    pub typing_timeout_ms: u64,
    /// Most concurrent connections per shard (beyond: refused). Default 100000.
    pub max_connections_per_shard: usize,
    /// Bad frames tolerated per connection per minute before it is closed. Default 20.
    pub bad_frames_per_minute: u32,
    /// Connections one user may hold on one node at once (devices, browser
    /// tabs); more are refused (each pins memory). Default 20.
    pub max_connections_per_user: u32,
    /// Conversations (of any kind, support requests included) one user may
    /// create per hour, counted at the user's home shard. Default 30.
    pub conversations_per_hour: u32,
    /// Typing changes per minute per connection (the app sends one every 2 s
    /// while typing). Default 120.
    pub typing_per_minute: u32,
    /// Conversations named by receipts (`MarkRead`, each cursor of
    /// `MarkDelivered`) per minute per connection. Default 6000.
    pub receipt_ids_per_minute: u32,
    /// Users asked about by `GetPresence` per minute per connection. Default 6000.
    pub presence_ids_per_minute: u32,
    /// Personal templates one user may keep. Default 200.
    pub templates_per_user: usize,
    /// Firm-wide templates (managed by admins). Default 500.
    pub firm_templates: usize,
    /// Longest template name (the word after `/`), in bytes. Default 64.
    pub template_name_bytes: usize,
    /// E2E KeyPackage claims (each names up to 50 users) one user may make
    /// per hour, counted at the user's home shard: every claim uses up other
    /// people's KeyPackages. Default 120.
    pub key_claims_per_hour: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            messages_per_minute: 100,
            connections_per_minute_per_ip: 60,
            connections_per_minute_per_user: 5,
            max_text_bytes: chat_protocol::limits::DEFAULT_MAX_TEXT_BYTES,
            max_frame_bytes: 64 * 1024,
            max_members: 10_000,
            typing_timeout_ms: 3_000,
            max_connections_per_shard: 100_000,
            bad_frames_per_minute: 20,
            max_connections_per_user: 20,
            conversations_per_hour: 30,
            typing_per_minute: 120,
            receipt_ids_per_minute: 6000,
            presence_ids_per_minute: 6000,
            templates_per_user: 200,
            firm_templates: 500,
            template_name_bytes: 64,
            key_claims_per_hour: 120,
        }
    }
}

impl LimitsConfig {
    /// The protocol-level limits these settings imply.
    pub fn protocol(&self) -> chat_protocol::Limits {
        chat_protocol::Limits {
            max_text_bytes: self.max_text_bytes,
            max_client_frame: self.max_frame_bytes,
            max_members: self.max_members,
            ..chat_protocol::Limits::default()
        }
    }
}

/// Per-connection tuning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Time allowed from connection to `Hello`, milliseconds. Default 10000.
    pub handshake_timeout_ms: u64,
    /// Pushes queued per connection before it is paged to the store. Default 1024.
    pub outbound_queue: usize,
    /// A write blocked this long closes the connection as a slow consumer, ms. Default 30000.
    pub write_timeout_ms: u64,
    /// A connection (QUIC, WebTransport, WebSocket) that hears nothing from
    /// its peer this long is closed, ms; idle peers are pinged every quarter
    /// of it, so a device that vanished without a goodbye is offline to others
    /// within 1.25 times it. Default 4000 (offline within 5 s).
    pub idle_timeout_ms: u64,
    /// Conversations above this many members get no delivered-receipt pushes
    /// (read receipts still go out, coalesced). Default 100.
    pub receipts_max_members: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            handshake_timeout_ms: 10_000,
            outbound_queue: 1024,
            write_timeout_ms: 30_000,
            idle_timeout_ms: 4_000,
            receipts_max_members: 100,
        }
    }
}

/// `CHAT_*` variables that are not configuration keys: `CHAT_LOG` (the log
/// filter), `CHAT_LOG_FORMAT` (`text` or `json`), `CHAT_CONFIG` (the file
/// to read) and `CHAT_SCYLLA_NODES` (the test suites' CQL nodes).
const ENV_NOT_CONFIG: &[&str] = &["log", "log_format", "config", "scylla_nodes"];

impl Config {
    /// Defaults, then the TOML file (if given), then `CHAT_*` variables.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, |_| {})
    }

    /// [`Config::load`] with command-line flags applied (by `flags`) before the
    /// checks, so that a check sees what will really run.
    pub fn load_with(file: Option<&std::path::Path>, flags: impl FnOnce(&mut Config)) -> Result<Self, ConfigError> {
        use figment::providers::{Env, Format, Serialized, Toml};
        let mut fig = figment::Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig = fig.merge(Env::prefixed("CHAT_").ignore(ENV_NOT_CONFIG).split("__"));
        let mut cfg: Config = fig.extract().map_err(Box::new)?;
        flags(&mut cfg);
        cfg.check()?;
        Ok(cfg)
    }

    /// Refuses combinations that cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        // Cluster first: its refusal says what to do instead, whatever the backend.
        self.cluster.check(self.store.backend.is_shared())?;
        if self.store.backend == StoreBackend::Scylla {
            self.store.scylla.check().map_err(|e| ConfigError::Inconsistent(format!("store.scylla: {e}")))?;
        }
        self.blobs
            .check(self.store.backend.is_shared(), self.cluster.enabled())
            .map_err(|e| ConfigError::Inconsistent(format!("blobs: {e}")))?;
        self.notify.check().map_err(|e| ConfigError::Inconsistent(format!("notify: {e}")))?;
        self.api.check().map_err(|e| ConfigError::Inconsistent(format!("api: {e}")))?;
        self.audit.check().map_err(ConfigError::Inconsistent)?;
        self.encryption.check().map_err(ConfigError::Inconsistent)?;
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Inconsistent("tls.cert and tls.key go together".into()));
        }
        self.check_auth()?;
        if self.limits.max_frame_bytes < self.limits.max_text_bytes + 1024 {
            return Err(ConfigError::Inconsistent(
                "limits.max_frame_bytes must exceed max_text_bytes by at least 1024".into(),
            ));
        }
        if self.limits.messages_per_minute == 0
            || self.limits.connections_per_minute_per_ip == 0
            || self.limits.connections_per_minute_per_user == 0
            || self.limits.max_connections_per_user == 0
            || self.limits.conversations_per_hour == 0
            || self.limits.key_claims_per_hour == 0
            || self.limits.typing_per_minute == 0
            || self.limits.receipt_ids_per_minute == 0
            || self.limits.presence_ids_per_minute == 0
        {
            return Err(ConfigError::Inconsistent("rate limits must be at least 1".into()));
        }
        if self.search.commit_interval_ms == 0 || self.search.queue_bound == 0 {
            return Err(ConfigError::Inconsistent(
                "search.commit_interval_ms and search.queue_bound must be at least 1".into(),
            ));
        }
        self.retention.check()?;
        self.check_web()
    }

    /// The public dev secret only behind loopback; a cluster needs one key for all nodes.
    pub fn check_auth(&self) -> Result<(), ConfigError> {
        if self.auth.max_token_lifetime_secs == 0 || self.auth.max_token_lifetime_secs > 366 * 86_400 {
            return Err(ConfigError::Inconsistent(
                "auth.max_token_lifetime_secs must be between 1 and 31622400 (a year)".into(),
            ));
        }
        self.auth.oidc.check(self.auth.public_key.is_some())?;
        if self.auth.public_key.is_some() {
            if self.auth.issuer.as_deref().is_none_or(str::is_empty)
                || self.auth.audience.as_deref().is_none_or(str::is_empty)
            {
                return Err(ConfigError::Inconsistent(
                    "auth.public_key needs auth.issuer and auth.audience: the identity provider signs tokens for \
                     other applications too, and only those it made for this server (its `iss`, this `aud`) may \
                     open a session"
                        .into(),
                ));
            }
            return Ok(());
        }
        if self.auth.hs256_secret == PUBLIC_DEV_SECRET {
            let web_off_loopback = self.web.enabled && !self.web.listen.ip().is_loopback();
            if !self.listen.ip().is_loopback() || web_off_loopback {
                return Err(ConfigError::Inconsistent(format!(
                    "auth.hs256_secret is the public development secret, which anyone can sign an admin token \
                     with, but listen = {} / web.listen = {} are reachable from the network: remove \
                     auth.hs256_secret (a random secret is made for this data directory), set your own, \
                     or set auth.public_key",
                    self.listen, self.web.listen
                )));
            }
        }
        if !self.auth.hs256_secret.is_empty() && self.auth.hs256_secret.len() < 16 {
            return Err(ConfigError::Inconsistent("auth.hs256_secret must be at least 16 bytes".into()));
        }
        if self.auth.hs256_secret.is_empty() && !self.cluster.redis_url.is_empty() {
            return Err(ConfigError::Inconsistent(
                "a cluster needs auth.hs256_secret or auth.public_key: every node must accept the same tokens \
                 (the per-data-directory dev secret differs from node to node)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The configuration with its secrets replaced by [`REDACTED`], to show
    /// (`chatd config`) or log.
    pub fn redacted(&self) -> Self {
        let mut c = self.clone();
        if !c.auth.hs256_secret.is_empty() {
            c.auth.hs256_secret = REDACTED.into();
        }
        if c.store.scylla.password.is_some() {
            c.store.scylla.password = Some(REDACTED.into());
        }
        c.cluster.redis_url = redact_url(&c.cluster.redis_url);
        if !c.cluster.secret.is_empty() {
            c.cluster.secret = REDACTED.into();
        }
        if !c.cluster.redis_password.is_empty() {
            c.cluster.redis_password = REDACTED.into();
        }
        if !c.notify.secret.is_empty() {
            c.notify.secret = REDACTED.into();
        }
        c.notify.webhook_url = redact_url(&c.notify.webhook_url);
        if !c.encryption.master_key.is_empty() {
            c.encryption.master_key = REDACTED.into();
        }
        c
    }

    fn check_web(&self) -> Result<(), ConfigError> {
        let web = &self.web;
        if !web.enabled {
            return Ok(());
        }
        if self.tls.cert.is_none() && !web.listen.ip().is_loopback() {
            return Err(ConfigError::Inconsistent(format!(
                "web.listen = {} is not a loopback address, but without tls.cert/tls.key the web endpoint \
                 would serve plain HTTP and tokens would cross the network in clear: configure a \
                 certificate (tls.cert, tls.key) or listen on 127.0.0.1 / [::1]",
                web.listen
            )));
        }
        if web.max_connections_per_ip == 0 {
            return Err(ConfigError::Inconsistent("web.max_connections_per_ip must be at least 1".into()));
        }
        for o in &web.allowed_origins {
            check_origin(o).map_err(|e| ConfigError::Inconsistent(format!("web.allowed_origins: {e}")))?;
        }
        if !web.public_url.is_empty() {
            check_origin(web.public_url.trim_end_matches('/'))
                .map_err(|e| ConfigError::Inconsistent(format!("web.public_url: {e}")))?;
        }
        Ok(())
    }

    /// The number of shards to run.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 { self.shards } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chatd.toml");
        std::fs::write(&f, "shards = 3\n[limits]\nmessages_per_minute = 500\n").unwrap();
        let cfg = Config::load(Some(&f)).unwrap();
        assert_eq!((cfg.shards, cfg.limits.messages_per_minute), (3, 500));
        assert_eq!(cfg.limits.connections_per_minute_per_ip, 60, "untouched keys keep their defaults");
        std::fs::write(&f, "[limits]\nmesages_per_minute = 500\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("mesages_per_minute"), "a typo is reported, not ignored: {e}");
        std::fs::write(&f, "[store]\nbackend = \"cassandra\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("use \"embedded\" or \"scylla\""), "{e}");
    }

    #[test]
    fn scylla_settings_load_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chatd.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load(Some(&f))
        };
        let cfg = load("[store]\nbackend = \"scylla\"\n").unwrap();
        assert_eq!(cfg.store.scylla, ScyllaConfig::default(), "defaults are valid");
        let cfg = load(
            "[store]\nbackend = \"scylla\"\n[store.scylla]\nnodes = \"10.0.0.1:9042, 10.0.0.2:9042\"\n\
             keyspace = \"chat_prod\"\nconsistency = \"QUORUM\"\nserial_consistency = \"serial\"\n\
             local_dc = \"dc1\"\n[store.scylla.replication]\ndatacenters = { dc1 = 3, dc2 = 2 }\n",
        )
        .unwrap();
        assert_eq!(cfg.store.scylla.nodes, ["10.0.0.1:9042", "10.0.0.2:9042"], "one comma-separated string");
        assert_eq!(cfg.store.scylla.replication.datacenters.len(), 2);
        let refused = |text: &str, what: &str| {
            let e = load(&format!("[store]\nbackend = \"scylla\"\n[store.scylla]\n{text}\n")).unwrap_err().to_string();
            assert!(e.contains(what), "{text}: {e}");
        };
        refused("consistency = \"any\"", "store.scylla: consistency \"any\"");
        refused("consistency = \"lots\"", "consistency \"lots\"");
        refused("serial_consistency = \"quorum\"", "serial_consistency \"quorum\"");
        refused("nodes = []", "nodes");
        refused("nodes = [\"db1\"]", "host:port");
        refused("keyspace = \"chat-prod\"", "keyspace");
        refused("username = \"chat\"", "username and password");
        refused("request_timeout_ms = 0", "request_timeout_ms");
        refused("[store.scylla.replication]\nfactor = 0", "factor");
        refused("[store.scylla.replication]\nclass = \"LocalStrategy\"", "LocalStrategy");
        refused("[store.scylla.replication]\nclass = \"SimpleStrategy\"\ndatacenters = { dc1 = 1 }", "datacenters");
        refused("[store.scylla.replication]\ndatacenters = { dc1 = 3, dc2 = 3 }", "serial_consistency = \"serial\"");
        // The scylla section is not checked while the embedded store is in use.
        assert!(load("[store.scylla]\nconsistency = \"any\"\n").is_ok());
    }

    #[test]
    fn the_public_dev_secret_only_on_loopback() {
        let public = |listen: &str, web: &str| {
            let mut c = Config { listen: listen.parse().unwrap(), ..Config::default() };
            c.web.listen = web.parse().unwrap();
            c.auth.hs256_secret = PUBLIC_DEV_SECRET.into();
            c.check()
        };
        public("127.0.0.1:4433", "127.0.0.1:8080").unwrap();
        public("[::1]:4433", "[::1]:8080").unwrap();
        let e = public("[::]:4433", "127.0.0.1:8080").unwrap_err().to_string();
        assert!(e.contains("public development secret") && e.contains("[::]:4433"), "{e}");
        assert!(public("0.0.0.0:4433", "127.0.0.1:8080").is_err());
        // The default (no secret: one made per data directory) is fine anywhere.
        let d = Config::default();
        assert!(d.auth.hs256_secret.is_empty() && d.listen.ip().is_unspecified());
        d.check().unwrap();
        // A public key makes the secret irrelevant.
        let mut k = Config::default();
        k.auth.hs256_secret = PUBLIC_DEV_SECRET.into();
        k.auth.public_key = Some("idp.pem".into());
        // ... but only with the issuer and audience to require.
        let e = k.check().unwrap_err().to_string();
        assert!(e.contains("auth.issuer and auth.audience"), "{e}");
        k.auth.issuer = Some("https://id.firm.example".into());
        assert!(k.check().is_err(), "the audience too");
        k.auth.audience = Some("chat".into());
        k.check().unwrap();
        k.auth.max_token_lifetime_secs = 0;
        assert!(k.check().unwrap_err().to_string().contains("max_token_lifetime_secs"));
        // Too short, and a cluster without a shared key.
        let mut s = Config::default();
        s.auth.hs256_secret = "short".into();
        assert!(s.check().unwrap_err().to_string().contains("at least 16 bytes"));
        let c = Config {
            store: StoreConfig { backend: StoreBackend::Scylla, ..StoreConfig::default() },
            cluster: ClusterConfig {
                redis_url: "redis://127.0.0.1:6379".into(),
                secret: "s".repeat(32),
                ..ClusterConfig::default()
            },
            blobs: BlobsConfig { backend: BlobBackend::Scylla, ..BlobsConfig::default() },
            ..Config::default()
        };
        assert!(c.check().unwrap_err().to_string().contains("every node must accept the same tokens"));
    }

    #[test]
    fn web_section_defaults_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chatd.toml");
        let cfg = Config::default();
        assert!(cfg.web.enabled);
        assert_eq!(cfg.web.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(cfg.web.allowed_origins.is_empty() && cfg.web.public_url.is_empty());
        cfg.check().unwrap();

        std::fs::write(&f, "[web]\nlisten = \"[::1]:0\"\nallowed_origins = [\"https://app.firm.example\"]\n").unwrap();
        let cfg = Config::load(Some(&f)).unwrap();
        assert_eq!(cfg.web.listen.port(), 0);
        assert_eq!(cfg.web.allowed_origins, vec!["https://app.firm.example".to_string()]);

        // The dev certificate means plain HTTP: only on loopback.
        std::fs::write(&f, "[web]\nlisten = \"0.0.0.0:8080\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("web.listen") && e.contains("in clear"), "{e}");
        // With a real certificate it is HTTPS, so any address will do.
        std::fs::write(&f, "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[web]\nlisten = \"0.0.0.0:8080\"\n").unwrap();
        Config::load(Some(&f)).unwrap();
        // Disabled: nothing to refuse.
        std::fs::write(&f, "[web]\nenabled = false\nlisten = \"0.0.0.0:8080\"\n").unwrap();
        Config::load(Some(&f)).unwrap();

        std::fs::write(&f, "[web]\nallowed_origins = [\"https://app.firm.example/\"]\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("web.allowed_origins") && e.contains("no trailing slash"), "{e}");
        std::fs::write(&f, "[web]\npublic_url = \"chat.firm.example\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("web.public_url") && e.contains("https://"), "{e}");
        std::fs::write(&f, "[web]\npublic_url = \"https://chat.firm.example/\"\n").unwrap();
        Config::load(Some(&f)).unwrap();
        std::fs::write(&f, "[web]\nenable = true\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("enable"), "unknown web keys are refused: {e}");
    }

    #[test]
    fn cluster_on_the_embedded_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chatd.toml");
        std::fs::write(&f, "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("each node would keep its own copy"), "{e}");
        assert!(e.contains("store.backend = \"scylla\""), "the message says what to do: {e}");
        // Without Redis the embedded store is the default and fine.
        std::fs::write(&f, "[cluster]\nheartbeat_ms = 500\n").unwrap();
        assert_eq!(Config::load(Some(&f)).unwrap().cluster.heartbeat_ms, 500);
        // A shared store with nonsense timings is refused too.
        let c = ClusterConfig { redis_url: "redis://x".into(), node_ttl_ms: 100, ..ClusterConfig::default() };
        assert!(c.check(true).unwrap_err().to_string().contains("node_ttl_ms"));
        let good = ClusterConfig { redis_url: "redis://x".into(), secret: "s".repeat(32), ..ClusterConfig::default() };
        assert!(good.check(true).is_ok());
        // Without a cluster secret (or a short one) a client of Redis could forge the nodes' messages.
        for secret in ["", "too short"] {
            let c = ClusterConfig { secret: secret.into(), ..good.clone() };
            assert!(c.check(true).unwrap_err().to_string().contains("cluster.secret"), "{secret:?}");
        }
    }

    #[test]
    fn printed_config_hides_secrets() {
        let mut cfg = Config::default();
        cfg.auth.hs256_secret = "a-secret-nobody-may-see".into();
        cfg.store.scylla.password = Some("db-password-nobody-may-see".into());
        cfg.cluster.redis_url = "redis://chatd:redis-nobody-may-see@10.0.0.9:6379".into();
        cfg.cluster.secret = "cluster-secret-nobody-may-see".into();
        cfg.cluster.redis_password = "redis-password-nobody-may-see".into();
        cfg.notify.secret = "webhook-secret-nobody-may-see".into();
        cfg.notify.webhook_url = "https://hooks:token-nobody-may-see@push.example/chat".into();
        cfg.encryption.master_key = "nobody-may-see".repeat(4);
        let shown = cfg.redacted().to_toml();
        assert!(!shown.contains("nobody-may-see"), "{shown}");
        assert_eq!(shown.matches(REDACTED).count(), 8, "{shown}");
        cfg.encryption.master_key_file = Some("/etc/chatd/master.key".into());
        assert!(cfg.encryption.check().unwrap_err().contains("give one, not both"));
        assert!(shown.contains("redis://<redacted>@10.0.0.9:6379"), "{shown}");
        assert_eq!(redact_url("redis://10.0.0.9:6379"), "redis://10.0.0.9:6379");
        assert!(!Config::default().redacted().to_toml().contains(REDACTED), "nothing to hide, nothing hidden");
    }

    #[test]
    fn printed_config_reads_back() {
        let cfg = Config::default();
        let back: Config = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back, cfg);
    }
}
