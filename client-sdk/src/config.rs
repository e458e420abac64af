//! How to reach the server, whom to trust, and how the SDK behaves.

use crate::backoff::Backoff;
use rustls::pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::time::Duration;

/// Which transport carries the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Raw QUIC with ALPN `chat/1`.
    #[default]
    Quic,
    /// WebTransport over HTTP/3, at `https://{addr}/chat`.
    WebTransport,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Accept exactly the certificates whose DER encoding has one of these SHA-256 digests.
    CertHashes(Vec<[u8; 32]>),
    /// Verify the chain against these roots (and the name against `server_name`).
    Roots(Vec<CertificateDer<'static>>),
}

impl Trust {
    /// Pins one certificate by its SHA-256 digest written in hex (colons and spaces allowed).
    pub fn cert_hash_hex(hex_digest: &str) -> Result<Self, String> {
        Ok(Self::CertHashes(vec![parse_hash(hex_digest)?]))
    }
}

/// Parses a SHA-256 digest in hex, ignoring `:` and whitespace separators.
pub fn parse_hash(hex_digest: &str) -> Result<[u8; 32], String> {
    let clean: String = hex_digest.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
    let bytes = hex::decode(&clean).map_err(|e| format!("certificate hash is not hex: {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| format!("certificate hash has {} bytes, expected 32", b.len()))
}

/// What a client needs to resume where it stopped: persist it, pass it back in
/// [`ClientConfig::resume`] after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeState {
    /// The store epoch the cursors belong to.
    pub epoch: String,
    /// Last seq surfaced per conversation.
    pub cursors: BTreeMap<u64, u64>,
}

/// Everything [`crate::Client::connect`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the server.
    pub addr: String,
    /// More `host:port`s of the same service (other nodes of a cluster). On
    /// reconnect the SDK goes through `addr` and these in turn, so the users of
    /// a node that died reach another one; cursors and the outbox carry over.
    /// The first connection ([`crate::Client::connect`]) tries `addr` only.
    /// All of them must present a certificate `trust` accepts.
    pub fallback_addrs: Vec<String>,
    /// TLS server name (raw QUIC); WebTransport uses the host of `addr`.
    pub server_name: String,
    /// Raw QUIC or WebTransport.
    pub transport: Transport,
    /// How the server certificate is checked.
    pub trust: Trust,
    /// The JWT sent in `Hello`.
    pub token: String,
    /// Where a fresh token comes from before the session's lapses (None:
    /// the session ends with `TOKEN_EXPIRED` when its token does, unless
    /// the application calls `Client::refresh_token`).
    pub token_source: Option<crate::TokenSource>,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
    /// How long a request (other than a send) waits for its reply, connection included.
    pub request_timeout: Duration,
    /// Most sends waiting for their ack.
    pub outbox_capacity: usize,
    /// A file that keeps the sends waiting for their ack across restarts of
    /// the application (None, the default: they live in memory only). The
    /// next client made with the same file sends what it holds first, with
    /// the original client message ids; one client at a time per file.
    pub outbox_file: Option<std::path::PathBuf>,
    /// Capacity of the event channel.
    pub event_buffer: usize,
    /// Persisted state to resume from on the first connection.
    pub resume: Option<ResumeState>,
    /// A quinn endpoint to open raw-QUIC connections from, shared with other
    /// clients; `None` (default): each connection binds its own UDP socket.
    /// Load generators use it to hold many connections on few sockets.
    /// WebTransport ignores it.
    pub quic_endpoint: Option<quinn::Endpoint>,
    /// Pings sent when the connection is otherwise quiet (default 1 s;
    /// `None`: none, the server's pings alone keep it open, as for a browser).
    pub keep_alive: Option<Duration>,
    /// A connection that hears nothing from the server this long is lost and
    /// the SDK reconnects (default 4 s; the lower of this and the server's
    /// `session.idle_timeout_ms` applies). A restarted server ends its
    /// predecessor's connections at once (a stateless reset).
    pub idle_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:4433".into(),
            fallback_addrs: Vec::new(),
            server_name: "localhost".into(),
            transport: Transport::Quic,
            trust: Trust::CertHashes(Vec::new()),
            token: String::new(),
            token_source: None,
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            outbox_capacity: 1024,
            outbox_file: None,
            event_buffer: 4096,
            resume: None,
            quic_endpoint: None,
            keep_alive: Some(Duration::from_secs(1)),
            idle_timeout: Duration::from_secs(4),
        }
    }
}

impl ClientConfig {
    /// A configuration for `addr` with `token` and the given trust; defaults elsewhere.
    pub fn new(addr: impl Into<String>, token: impl Into<String>, trust: Trust) -> Self {
        Self { addr: addr.into(), token: token.into(), trust, ..Self::default() }
    }

    /// Sets the server address (`host:port`).
    pub fn addr(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Sets the other addresses tried in turn on reconnect (see [`Self::fallback_addrs`]).
    pub fn with_fallback_addrs<I: IntoIterator<Item = S>, S: Into<String>>(mut self, addrs: I) -> Self {
        self.fallback_addrs = addrs.into_iter().map(Into::into).collect();
        self
    }

    /// The address of reconnection attempt `n` (0: `addr`), rotating through the fallbacks.
    pub fn addr_for_attempt(&self, n: usize) -> &str {
        let i = n % (1 + self.fallback_addrs.len());
        if i == 0 { &self.addr } else { &self.fallback_addrs[i - 1] }
    }

    /// Sets the TLS server name.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// Sets the transport.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets how the server certificate is checked.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Sets where fresh tokens come from (see [`ClientConfig::token_source`]).
    pub fn token_source(mut self, source: crate::TokenSource) -> Self {
        self.token_source = Some(source);
        self
    }

    /// Sets the token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Sets the reconnection backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the outbox capacity.
    pub fn outbox_capacity(mut self, capacity: usize) -> Self {
        self.outbox_capacity = capacity.max(1);
        self
    }

    /// Keeps unacked sends in `path` across restarts (see [`Self::outbox_file`]).
    pub fn outbox_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.outbox_file = Some(path.into());
        self
    }

    /// Sets the event channel capacity.
    pub fn event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity.max(1);
        self
    }

    /// Resumes from persisted state on the first connection.
    pub fn resume(mut self, state: Option<ResumeState>) -> Self {
        self.resume = state;
        self
    }

    /// Opens raw-QUIC connections from this (shared) client endpoint instead
    /// of binding a UDP socket per connection. Closing a connection then does
    /// not wait for the endpoint to become idle.
    pub fn quic_endpoint(mut self, endpoint: quinn::Endpoint) -> Self {
        self.quic_endpoint = Some(endpoint);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hashes_in_plain_and_dotted_hex() {
        let plain = "ab".repeat(32);
        assert_eq!(parse_hash(&plain), Ok([0xab; 32]));
        let dotted = vec!["0f"; 32].join(":");
        assert_eq!(parse_hash(&dotted), Ok([0x0f; 32]));
        assert!(parse_hash("abcd").is_err());
        assert!(parse_hash(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn setters_chain() {
        let c = ClientConfig::new("h:1", "t", Trust::CertHashes(vec![[1; 32]]))
            .transport(Transport::WebTransport)
            .outbox_capacity(0)
            .request_timeout(Duration::from_secs(3));
        assert_eq!(c.transport, Transport::WebTransport);
        assert_eq!(c.outbox_capacity, 1);
        assert_eq!(c.request_timeout, Duration::from_secs(3));
        assert_eq!(c.server_name, "localhost");
        let c = c.with_fallback_addrs(["h:2", "h:3"]);
        let seen: Vec<&str> = (0..4).map(|n| c.addr_for_attempt(n)).collect();
        assert_eq!(seen, ["h:1", "h:2", "h:3", "h:1"]);
    }
}
