//! The effects of OpenID Connect sign-in: a thread of its own fetches the
//! provider's discovery document at start, then its keys (JWKS) at start,
//! every `jwks_refresh_secs`, and when a token names an unknown `kid`
//! (rate-limited by [`RefetchGate`]). Sessions read the cached key set and,
//! for an unknown `kid`, wait briefly for one fetch; nothing here runs on a shard.

use super::identity::Identity;
use super::oidc::{KeySet, RefetchGate, Refusal, check, unknown_kid_error};
use crate::config::OidcConfig;
use bytes::Bytes;
use chat_protocol::WireError;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// One fetch may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A token with an unknown `kid` waits at most this long for fresh keys.
const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(3);

/// What the provider's discovery document says (the parts used).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// The issuer (must equal the configured one).
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where the browser exchanges the code and refreshes.
    pub token_endpoint: String,
    /// Where the browser signs out at the provider, if it offers that.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// The key set.
    pub jwks_uri: String,
}

/// The provider's cached keys and the way to ask for fresh ones.
pub struct OidcKeys {
    cfg: OidcConfig,
    discovery: Discovery,
    set: Arc<RwLock<Arc<KeySet>>>,
    wake: mpsc::Sender<()>,
    rounds: watch::Receiver<u64>,
}

impl std::fmt::Debug for OidcKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcKeys").field("issuer", &self.cfg.issuer).finish()
    }
}

impl OidcKeys {
    /// Fetches the discovery document and the keys (waiting for both), and
    /// starts the thread that keeps the keys fresh.
    pub fn start(cfg: &OidcConfig) -> Result<Self, String> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (wake, wake_rx) = mpsc::channel(1);
        let (rounds_tx, rounds) = watch::channel(0u64);
        let set = Arc::new(RwLock::new(Arc::new(KeySet::default())));
        let (c, s) = (cfg.clone(), set.clone());
        std::thread::Builder::new()
            .name("chatd-oidc".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                rt.block_on(async move {
                    let first = first_fetch(&c).await;
                    let jwks_uri = match first {
                        Ok((d, keys)) => {
                            *s.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                            let uri = d.jwks_uri.clone();
                            let _ = ready_tx.send(Ok(d));
                            uri
                        }
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    refresh_loop(&c, &jwks_uri, &s, wake_rx, rounds_tx).await;
                });
            })
            .map_err(|e| e.to_string())?;
        let discovery = ready_rx
            .recv_timeout(FETCH_TIMEOUT * 3)
            .map_err(|_| format!("the identity provider {} did not answer in time", cfg.issuer))??;
        Ok(Self { cfg: cfg.clone(), discovery, set, wake, rounds })
    }

    /// What the provider's discovery document said.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// Verifies a provider's token; an unknown `kid` waits for one fetch of the keys.
    pub async fn verify(&self, token: &str, leeway: u64, max_lifetime: u64) -> Result<Identity, WireError> {
        let mut rounds = self.rounds.clone();
        rounds.borrow_and_update();
        match self.check(token, leeway, max_lifetime) {
            Ok(id) => return Ok(id),
            Err(Refusal::Refused(e)) => return Err(e),
            Err(Refusal::UnknownKid(_)) => {}
        }
        let _ = self.wake.try_send(());
        let _ = tokio::time::timeout(UNKNOWN_KID_WAIT, rounds.changed()).await;
        match self.check(token, leeway, max_lifetime) {
            Ok(id) => Ok(id),
            Err(Refusal::Refused(e)) => Err(e),
            Err(Refusal::UnknownKid(kid)) => Err(unknown_kid_error(&kid)),
        }
    }

    fn check(&self, token: &str, leeway: u64, max_lifetime: u64) -> Result<Identity, Refusal> {
        let keys = self.set.read().unwrap_or_else(|p| p.into_inner()).clone();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        check(&keys, &self.cfg, token, leeway, max_lifetime, now)
    }
}

async fn first_fetch(cfg: &OidcConfig) -> Result<(Discovery, KeySet), String> {
    let url = format!("{}/.well-known/openid-configuration", cfg.issuer.trim_end_matches('/'));
    let body = get(&url).await.map_err(|e| format!("discovery document {url}: {e}"))?;
    let d: Discovery =
        serde_json::from_slice(&body).map_err(|e| format!("discovery document {url} is not usable: {e}"))?;
    if d.issuer != cfg.issuer {
        return Err(format!("the discovery document names issuer {:?}, not {:?}", d.issuer, cfg.issuer));
    }
    let keys = fetch_keys(&d.jwks_uri).await?;
    tracing::info!(issuer = %cfg.issuer, kids = ?keys.kids(), "identity provider keys loaded");
    Ok((d, keys))
}

async fn fetch_keys(jwks_uri: &str) -> Result<KeySet, String> {
    let body = get(jwks_uri).await.map_err(|e| format!("JWKS {jwks_uri}: {e}"))?;
    KeySet::from_jwks(&body).map_err(|e| format!("JWKS {jwks_uri}: {e}"))
}

async fn refresh_loop(
    cfg: &OidcConfig,
    jwks_uri: &str,
    set: &RwLock<Arc<KeySet>>,
    mut wake: mpsc::Receiver<()>,
    rounds: watch::Sender<u64>,
) {
    let mut gate = RefetchGate::default();
    let period = Duration::from_secs(cfg.jwks_refresh_secs);
    loop {
        let asked = tokio::select! {
            w = wake.recv() => match w { Some(()) => true, None => return },
            () = tokio::time::sleep(period) => false,
        };
        if !asked || gate.allow(Instant::now()) {
            match fetch_keys(jwks_uri).await {
                Ok(keys) => {
                    tracing::info!(kids = ?keys.kids(), "identity provider keys fetched again");
                    *set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                }
                Err(e) => tracing::warn!(error = %e, "identity provider keys not refreshed; the cached ones stay"),
            }
        }
        rounds.send_modify(|r| *r += 1);
    }
}

/// GETs `url` (https, or http to loopback): the body of a 200 answer.
async fn get(url: &str) -> Result<Bytes, String> {
    tokio::time::timeout(FETCH_TIMEOUT, get_inner(url)).await.map_err(|_| "timed out".to_string())?
}

async fn get_inner(url: &str) -> Result<Bytes, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if crate::config::is_loopback_http(url) => false,
        _ => return Err("must be https:// (plain http:// only on loopback)".into()),
    };
    let host = uri.host().ok_or("no host")?.trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_else(|| host.clone());
    // Origin-form (`/path?query`), as servers expect from a client that is not a proxy.
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::get(target)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, concat!("chatd/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    if !https {
        return send(TokioIo::new(tcp), req).await;
    }
    let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
    let stream = crate::tls::client_connector().connect(name, tcp).await.map_err(|e| e.to_string())?;
    send(TokioIo::new(stream), req).await
}

async fn send<I>(io: I, req: hyper::Request<Empty<Bytes>>) -> Result<Bytes, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_DOCUMENT_BYTES).collect().await;
    conn.abort();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(body.map_err(|e| format!("body: {e}"))?.to_bytes())
}
