//! The web endpoint (TCP, HTTP/1.1): the browser app embedded at compile time
//! from `client-sdk/web/dist/` (`/`, `/app.js`, `/app.css`, the web app
//! manifest and its icons, and the service worker `/sw.js` at the root scope), what the app
//! needs to connect (`/config.json`), liveness and readiness (`/livez`,
//! `/healthz`, answered by [`crate::health`]), the server API (`/api/v1`,
//! answered by [`crate::api`]) and
//! WebSocket sessions (`/ws`) for browsers without WebTransport.
//!
//! It owns: the per-shard TCP listeners (one port, `SO_REUSEPORT`, each shard
//! accepting on its own runtime, so a WebSocket session runs on the shard that
//! accepted it), HTTP serving and its security headers, the WebSocket upgrade,
//! and the browser-origin check of WebSocket upgrades (the policy,
//! `crate::transport::admission::Origins`, WebTransport obeys too). It does
//! not own sessions (that is [`crate::session`]) nor the
//! WebSocket framing of sessions (that is [`crate::transport`]).
//!
//! Plain HTTP is served only with the dev certificate on a loopback address
//! (the configuration refuses anything else); with a configured certificate it
//! is HTTPS with that certificate (TLS 1.3, ALPN `http/1.1`).

use crate::metrics::Refusal;
use crate::shard::ShardCtx;
use crate::tls::Identity;
use crate::transport::WsConn;
use crate::transport::admission::{MAX_REFUSALS_IN_FLIGHT, rate_key};
use anyhow::Context;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The app's files by path: content type and bytes (`client-sdk/web/dist/`).
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("../../client-sdk/web/dist/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("../../client-sdk/web/dist/app.js")),
    ("/app.css", "text/css; charset=utf-8", include_bytes!("../../client-sdk/web/dist/app.css")),
    ("/sw.js", "text/javascript; charset=utf-8", include_bytes!("../../client-sdk/web/dist/sw.js")),
    (
        "/manifest.webmanifest",
        "application/manifest+json",
        include_bytes!("../../client-sdk/web/dist/manifest.webmanifest"),
    ),
    ("/icon-192.png", "image/png", include_bytes!("../../client-sdk/web/dist/icon-192.png")),
    ("/icon-512.png", "image/png", include_bytes!("../../client-sdk/web/dist/icon-512.png")),
    ("/icon-maskable.png", "image/png", include_bytes!("../../client-sdk/web/dist/icon-maskable.png")),
];

/// The Content-Security-Policy of every response, but for `connect-src`,
/// which names exactly the server's own WebSocket and WebTransport origins
/// (see [`Web::csp`]). `img-src blob:` lets the app show attachment
/// thumbnails it downloaded (bytes from the server, never markup);
/// `manifest-src` and `worker-src` let it install as an app (its manifest and
/// its service worker, both from this server).
pub const CSP_BASE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                            manifest-src 'self'; worker-src 'self'; \
                            base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// HTTP connections (not yet upgraded) open at once per shard; more are dropped at accept.
const MAX_HTTP_CONNECTIONS: usize = 1024;
/// The longest an HTTP (keep-alive) connection lives; a WebSocket leaves it at the upgrade.
const HTTP_CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// Largest request head (hyper needs at least 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A WebSocket message may exceed the largest frame (a 1 MiB `Hello`) by this
/// much, so an oversize frame gets the frame decoder's precise error rather
/// than a closed socket.
const WS_MESSAGE_SLACK: usize = 64 * 1024;

/// What every shard's web endpoint shares.
pub struct WebShared {
    /// The bound TCP address (None: the web endpoint is off).
    pub addr: Option<SocketAddr>,
    /// HTTPS with the configured certificate; None: plain HTTP (dev, loopback).
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The UDP port of QUIC and WebTransport.
    quic_port: u16,
}

impl WebShared {
    /// The shared part, for listeners bound at `addr` (None: no web endpoint).
    pub fn new(addr: Option<SocketAddr>, identity: &Identity, quic_port: u16) -> anyhow::Result<Self> {
        let tls = match (&addr, identity.dev_expires) {
            (Some(_), None) => Some(tls_acceptor(identity)?),
            // Config::check refuses this too; a library caller may not have run it.
            (Some(a), Some(_)) if !a.ip().is_loopback() => anyhow::bail!(
                "web.listen = {a} is not loopback: with the dev certificate the web endpoint is plain HTTP; \
                 configure tls.cert/tls.key or listen on loopback"
            ),
            _ => None,
        };
        Ok(Self { addr, tls, quic_port })
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// `wss` when serving TLS, else `ws`.
    fn ws_scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }
}

/// The rustls acceptor for HTTPS with the configured certificate.
fn tls_acceptor(id: &Identity) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let mut tls = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .context("web certificate")?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))
}

/// Binds `n` TCP listeners to one address with `SO_REUSEPORT` (port 0: the
/// first picks the port, the rest join it), ready for tokio.
pub fn bind(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let sockets = crate::transport::admission::bind_reuseport(addr, n, socket2::Type::STREAM, |s| {
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)
    })
    .with_context(|| format!("web listener {addr}"))?;
    sockets
        .into_iter()
        .map(|s| {
            s.listen(1024)?;
            Ok(s.into())
        })
        .collect()
}

/// One shard's web endpoint.
struct Web {
    ctx: Rc<ShardCtx>,
    /// What every shard's web endpoint shares.
    shared: Arc<WebShared>,
    /// HTTP connections open now.
    open: Cell<usize>,
    /// HTTP connections open now per address (IPv6 by /64).
    per_ip: RefCell<HashMap<IpAddr, usize>>,
    /// Most per address on this shard (`web.max_connections_per_ip`).
    per_ip_cap: usize,
    /// Rate-limited WebSocket sessions being refused now.
    refusing: Rc<Cell<usize>>,
}

/// Counts a connection (in all and for its address) while it lives.
struct Counted(Rc<Web>, IpAddr);

impl Counted {
    /// Counts a new connection from `ip`, or None past a cap.
    fn new(web: &Rc<Web>, ip: IpAddr) -> Option<Self> {
        if web.open.get() >= MAX_HTTP_CONNECTIONS {
            return None;
        }
        let key = rate_key(ip);
        let mut per_ip = web.per_ip.borrow_mut();
        let n = per_ip.entry(key).or_insert(0);
        if *n >= web.per_ip_cap {
            return None;
        }
        *n += 1;
        web.open.set(web.open.get() + 1);
        Some(Self(web.clone(), key))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        let mut per_ip = self.0.per_ip.borrow_mut();
        if let Some(n) = per_ip.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.1);
            }
        }
    }
}

/// The shard's accept loop; returns when the server stops (open connections
/// and sessions end with the shard; sessions say `Goodbye` first).
pub async fn serve(ctx: Rc<ShardCtx>, shared: Arc<WebShared>, listener: std::net::TcpListener) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!(shard = ctx.state.id, error = %e, "cannot start web listener"),
    };
    let mut shutdown = ctx.shutdown.clone();
    // Per shard: the kernel spreads one address's connections over the shards
    // by hash, so a share of the cap could refuse an office behind one NAT
    // early; a node holds at most cap × shards per address.
    let per_ip_cap = (ctx.shared.cfg.web.max_connections_per_ip as usize).max(1);
    let web = Rc::new(Web {
        ctx,
        shared,
        open: Cell::new(0),
        per_ip: RefCell::new(HashMap::new()),
        per_ip_cap,
        refusing: Rc::new(Cell::new(0)),
    });
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of descriptors, usually: let some connections end.
                    tracing::debug!(error = %e, "web accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Some(counted) = Counted::new(&web, remote.ip()) else {
            web.ctx.shared.metrics.refused(Refusal::ConnectionCap);
            tracing::debug!(%remote, "web connection refused: too many open (in all, or from this address)");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let web = counted.0.clone();
            let _ = tokio::time::timeout(HTTP_CONNECTION_LIFETIME, connection(web, tcp, remote)).await;
            drop(counted);
        });
    }
    tracing::debug!(shard = web.ctx.state.id, "web listener closed");
}

async fn connection(web: Rc<Web>, tcp: tokio::net::TcpStream, remote: SocketAddr) {
    let handshake = Duration::from_millis(web.ctx.shared.cfg.session.handshake_timeout_ms);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(handshake).max_buf_size(MAX_HEADER_BYTES);
    let w = web.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let w = w.clone();
        async move { Ok::<_, Infallible>(w.handle(req, remote).await) }
    });
    let r = match &web.shared.tls {
        Some(acceptor) => {
            let tls = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "web TLS handshake failed"),
                Err(_) => return tracing::debug!(%remote, "web TLS handshake timed out"),
            };
            http.serve_connection(TokioIo::new(tls), svc).with_upgrades().await
        }
        None => http.serve_connection(TokioIo::new(tcp), svc).with_upgrades().await,
    };
    if let Err(e) = r {
        tracing::debug!(%remote, error = %e, "web connection ended");
    }
}

type Resp = crate::api::Resp;

/// A response with the headers every response carries.
fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    crate::api::respond_with(status, content_type, "no-cache", body)
}

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: StatusCode, msg: impl Into<String>) -> Resp {
    let mut m = msg.into();
    m.push('\n');
    respond(status, TEXT, m)
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The host of a `Host` header without its port (`[::1]:8080` → `[::1]`),
/// or None if it is not a plain host name or address.
fn host_without_port(host: &str) -> Option<&str> {
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !ok(host) {
        return None;
    }
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        return (rest.is_empty() || rest.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
            .then(|| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => Some(h),
        Some(_) => None,
        None => Some(host),
    }
}

/// `scheme://host[:port]` of an http(s) URL, for the CSP.
fn origin_of(url: &str) -> Option<String> {
    let uri: hyper::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str().filter(|s| *s == "https" || *s == "http")?;
    Some(format!("{scheme}://{}", uri.authority()?))
}

impl Web {
    async fn handle(self: &Rc<Self>, req: Request<Incoming>, remote: SocketAddr) -> Resp {
        let csp = self.csp(req.headers());
        let mut r = if req.uri().path().starts_with("/api/") {
            crate::api::serve(self.ctx.clone(), req).await
        } else {
            self.route(req, remote)
        };
        let h = r.headers_mut();
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
        if self.shared.tls.is_some() {
            // HTTPS only from here on, for a year.
            h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
        }
        r
    }

    /// The policy for a page loaded from the host the browser used: the app
    /// may connect to this server's WebSocket and WebTransport addresses on
    /// that host, and nowhere else.
    fn csp(&self, headers: &HeaderMap) -> HeaderValue {
        let fallback = self.shared.addr.map(|a| a.to_string()).unwrap_or_default();
        let host_port = match headers.get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(h)) if host_without_port(h).is_some() => h.to_string(),
            _ => fallback,
        };
        let host = host_without_port(&host_port).unwrap_or("localhost");
        let ws = self.shared.ws_scheme();
        let mut policy =
            format!("{CSP_BASE}; connect-src 'self' {ws}://{host_port} https://{host}:{}", self.shared.quic_port);
        // Sign-in with the identity provider: the app exchanges the code there.
        if let Some(origin) = self.ctx.shared.verifier.oidc().and_then(|o| origin_of(&o.discovery().token_endpoint)) {
            policy.push(' ');
            policy.push_str(&origin);
        }
        HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    }

    fn route(self: &Rc<Self>, req: Request<Incoming>, remote: SocketAddr) -> Resp {
        let path = req.uri().path();
        if path == "/ws" {
            return self.upgrade(req, remote);
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r =
                text(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not served here; GET or HEAD", req.method()));
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if let Some((_, content_type, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
            return respond(StatusCode::OK, content_type, *bytes);
        }
        match path {
            "/config.json" => self.config_json(req.headers()),
            "/livez" => text(StatusCode::OK, "ok"),
            "/healthz" => match crate::health::check(&self.ctx.shared) {
                Ok(()) => text(StatusCode::OK, "ok"),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
            },
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// Where and how the app connects, from the host the browser used.
    fn config_json(&self, headers: &HeaderMap) -> Resp {
        let shared = &self.ctx.shared;
        let fallback = self.shared.addr.map(|a| a.to_string()).unwrap_or_default();
        let host_port = match headers.get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(h)) => h.to_string(),
            Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "the Host header is not text"),
            None => fallback,
        };
        let Some(host) = host_without_port(&host_port) else {
            return text(StatusCode::BAD_REQUEST, "the Host header is not a host name or address");
        };
        let ws = self.shared.ws_scheme();
        let hashes: Vec<String> = shared.dev_cert_sha256().into_iter().collect();
        let body = serde_json::json!({
            "webtransport_url": format!("https://{host}:{}/chat", self.shared.quic_port),
            "websocket_url": format!("{ws}://{host_port}/ws"),
            "cert_hashes": hashes,
            "version": env!("CARGO_PKG_VERSION"),
            "dev_tokens": shared.verifier.dev_tokens(),
            "case_link": shared.cfg.api.case_link,
            "oidc": shared.verifier.oidc().map(|o| {
                let (c, d) = (o.config(), o.discovery());
                serde_json::json!({
                    "issuer": c.issuer,
                    "client_id": c.client_id,
                    "scopes": c.scopes,
                    "display_name": c.display_name,
                    "authorization_endpoint": d.authorization_endpoint,
                    "token_endpoint": d.token_endpoint,
                    "end_session_endpoint": d.end_session_endpoint,
                })
            }),
        });
        respond(StatusCode::OK, "application/json", body.to_string())
    }

    /// `GET /ws`: checks the upgrade, the origin, capacity and the rate, then
    /// answers 101 and runs the session on this shard once the socket is ours.
    fn upgrade(self: &Rc<Self>, mut req: Request<Incoming>, remote: SocketAddr) -> Resp {
        if req.method() != Method::GET {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "/ws takes a WebSocket upgrade (GET)");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            return r;
        }
        let h = req.headers();
        if !has_token(h, header::CONNECTION, "upgrade") || !has_token(h, header::UPGRADE, "websocket") {
            let mut r = text(StatusCode::UPGRADE_REQUIRED, "/ws takes a WebSocket upgrade");
            r.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            return r;
        }
        if h.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
            let mut r = text(StatusCode::BAD_REQUEST, "WebSocket version 13 is required");
            r.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return r;
        }
        let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
            return text(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing");
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let shared = &self.ctx.shared;
        // No Origin: not a browser (a browser always sends one on a WebSocket).
        if let Some(origin) = h.get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            if !shared.origins.allows(&origin) {
                tracing::warn!(%remote, %origin, "websocket refused: origin not allowed (see web.allowed_origins)");
                return text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "origin {origin} may not open sessions here; the server allows its own origins and web.allowed_origins"
                    ),
                );
            }
        }
        if self.ctx.state.sessions.borrow().count() >= shared.cfg.limits.max_connections_per_shard {
            shared.metrics.refused(Refusal::ConnectionCap);
            return text(StatusCode::SERVICE_UNAVAILABLE, "the server is full; try again later");
        }
        let limited = shared.connection_refused_for(remote.ip());
        if limited.is_some() && self.refusing.get() >= MAX_REFUSALS_IN_FLIGHT {
            // A flood: past a few precise refusals at a time, the rest are turned away at the door.
            shared.metrics.refused(Refusal::ConnectionRate);
            return text(StatusCode::TOO_MANY_REQUESTS, "too many new connections from this address");
        }
        // The multiplex (transfer streams) when offered; else one byte stream.
        let mux = has_token(h, header::SEC_WEBSOCKET_PROTOCOL, crate::transport::ws_mux::SUBPROTOCOL)
            .then(|| (shared.cfg.blobs.transfers_per_connection * 2).max(4));
        let on_upgrade = hyper::upgrade::on(&mut req);
        let ctx = self.ctx.clone();
        let refusing = self.refusing.clone();
        if limited.is_some() {
            refusing.set(refusing.get() + 1);
        }
        tokio::task::spawn_local(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let idle = Duration::from_millis(ctx.shared.cfg.session.idle_timeout_ms.max(3));
                    let conn = crate::transport::Conn::Ws(websocket(upgraded, &ctx, remote, idle, mux).await);
                    crate::session::run(ctx, conn, limited).await;
                }
                Err(e) => tracing::debug!(%remote, error = %e, "websocket upgrade failed"),
            }
            if limited.is_some() {
                refusing.set(refusing.get() - 1);
            }
        });
        let mut r = respond(StatusCode::SWITCHING_PROTOCOLS, TEXT, Bytes::new());
        let h = r.headers_mut();
        h.remove(header::CONTENT_TYPE);
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if mux.is_some() {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(crate::transport::ws_mux::SUBPROTOCOL));
        }
        r
    }
}

/// Socket limits: a message may hold the largest frame (a `Hello`) and some more.
fn ws_config(ctx: &ShardCtx) -> WebSocketConfig {
    let max = crate::session::HELLO_MAX_BYTES.max(ctx.shared.cfg.limits.max_frame_bytes) + WS_MESSAGE_SLACK;
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// The WebSocket over an upgraded connection, on the TCP (or TLS) stream
/// itself, taken back from hyper: so that a peer that does not read can have
/// its connection reset (see [`crate::transport::ws::Resettable`]) without a
/// second descriptor of every web connection. The bytes hyper read past the
/// request go first.
async fn websocket(
    upgraded: hyper::upgrade::Upgraded,
    ctx: &ShardCtx,
    remote: SocketAddr,
    idle: Duration,
    mux: Option<usize>,
) -> Rc<WsConn> {
    let config = Some(ws_config(ctx));
    let upgraded = match upgraded.downcast::<TokioIo<tokio::net::TcpStream>>() {
        Ok(p) => {
            let ws = WebSocketStream::from_partially_read(p.io.into_inner(), p.read_buf.to_vec(), Role::Server, config);
            return WsConn::start(ws.await, remote, idle, mux);
        }
        Err(u) => u,
    };
    let upgraded = match upgraded.downcast::<TokioIo<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>() {
        Ok(p) => {
            let ws = WebSocketStream::from_partially_read(p.io.into_inner(), p.read_buf.to_vec(), Role::Server, config);
            return WsConn::start(ws.await, remote, idle, mux);
        }
        Err(u) => u,
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, config).await;
    WsConn::start(ws, remote, idle, mux)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("localhost:8080"), Some("localhost"));
        assert_eq!(host_without_port("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_without_port("[::1]"), Some("[::1]"));
        assert_eq!(host_without_port("chat.firm.example:443"), Some("chat.firm.example"));
        assert_eq!(host_without_port("evil\"host"), None);
        assert_eq!(host_without_port("::1"), None, "a bare IPv6 address is ambiguous");
        assert_eq!(host_without_port(""), None);
    }

    #[test]
    fn the_app_installs_from_its_own_files() {
        let ty = |path: &str| ASSETS.iter().find(|(p, _, _)| *p == path).map(|(_, t, _)| *t);
        assert_eq!(ty("/sw.js"), Some("text/javascript; charset=utf-8"), "a worker needs a JavaScript type");
        assert_eq!(ty("/manifest.webmanifest"), Some("application/manifest+json"));
        for icon in ["/icon-192.png", "/icon-512.png", "/icon-maskable.png"] {
            let (_, t, bytes) = ASSETS.iter().find(|(p, _, _)| *p == icon).unwrap();
            assert_eq!((*t, &bytes[..8]), ("image/png", &b"\x89PNG\r\n\x1a\n"[..]), "{icon}");
        }
        assert!(CSP_BASE.contains("manifest-src 'self'") && CSP_BASE.contains("worker-src 'self'"));
    }
}
