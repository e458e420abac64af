//! The `[web]` section: the browser app's endpoint (address, origins, the
//! per-address connection bound) and what an origin is.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The web endpoint (TCP): the browser app, `/config.json`, `/healthz` and
/// WebSocket sessions at `/ws`. Plain HTTP only on a loopback address with the
/// dev certificate; with `tls.cert` it serves HTTPS with that certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve it at all. Default true.
    pub enabled: bool,
    /// TCP address. Default `127.0.0.1:8080` (port 0: any free port).
    pub listen: SocketAddr,
    /// Extra browser origins (`https://app.firm.example`) allowed to open
    /// WebSocket and WebTransport sessions. The app's own origins are always
    /// allowed: `http(s)://localhost:<port>`, `127.0.0.1`, `[::1]` at the web
    /// port, and `public_url`. Default none.
    pub allowed_origins: Vec<String>,
    /// The public address of the web app in production
    /// (`https://chat.firm.example`), allowed as an origin. Default empty.
    pub public_url: String,
    /// HTTP connections (not yet upgraded to WebSocket) one address may hold
    /// open at once per shard (IPv6 counted by /64); more are closed at
    /// accept, so one address cannot starve the endpoint. Default 64.
    pub max_connections_per_ip: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            allowed_origins: Vec::new(),
            public_url: String::new(),
            max_connections_per_ip: 64,
        }
    }
}

/// Checks that `s` is an origin: `http(s)://host[:port]`, nothing after.
pub fn check_origin(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} is not an origin: it must start with https:// or http://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("{s:?} is not an origin: scheme://host[:port], no path, no trailing slash"));
    }
    Ok(())
}
