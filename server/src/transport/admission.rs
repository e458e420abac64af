//! Admission: who may connect, before any session exists. Binding one port
//! for all shards (`SO_REUSEPORT`), the browser-origin policy that WebSocket
//! and WebTransport sessions obey, and the per-IP connection rate with its
//! refusal budget. It does not own sessions or the web endpoint.

use crate::config::WebConfig;
use anyhow::Context;
use governor::{Quota, RateLimiter, clock::Clock};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

/// Rate-limited connections being answered at once per shard; more are refused outright.
pub const MAX_REFUSALS_IN_FLIGHT: usize = 32;

type KeyedLimiter<K> = RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, governor::clock::DefaultClock>;

/// New connections per minute per IP address (connection path only, never the message path).
pub struct ConnLimiter {
    limiter: KeyedLimiter<IpAddr>,
}

impl ConnLimiter {
    /// `per_minute` new connections per minute per address.
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("non-zero"));
        Self { limiter: RateLimiter::keyed(quota) }
    }

    /// None if `ip` may open a connection now, else how long to wait.
    pub fn refused_for(&self, ip: IpAddr) -> Option<Duration> {
        self.limiter.check_key(&ip).err().map(|nu| nu.wait_time_from(governor::clock::DefaultClock::default().now()))
    }

    /// Forgets addresses that have not connected lately.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

/// Browser origins allowed to open sessions (WebSocket and WebTransport).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    allowed: HashSet<String>,
}

impl Origins {
    /// The app's own origins (`http(s)://localhost|127.0.0.1|[::1]:<web_port>`,
    /// `public_url`) and `allowed_origins`.
    pub fn new(cfg: &WebConfig, web_port: Option<u16>) -> Self {
        let mut allowed = HashSet::new();
        if let Some(port) = web_port {
            for scheme in ["http", "https"] {
                for host in ["localhost", "127.0.0.1", "[::1]"] {
                    allowed.insert(format!("{scheme}://{host}:{port}"));
                }
            }
        }
        let public = cfg.public_url.trim_end_matches('/');
        if !public.is_empty() {
            allowed.insert(public.to_ascii_lowercase());
        }
        allowed.extend(cfg.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()));
        Self { allowed }
    }

    /// Whether a browser at `origin` (an `Origin` header) may open a session.
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed.contains(&origin.to_ascii_lowercase())
    }
}

/// Binds `n` sockets of one type to one address with `SO_REUSEPORT`, one per
/// shard (port 0: the first picks the port, the rest join it); `[::]` is
/// dual-stack. `prepare` sets each socket up before it is bound.
pub fn bind_reuseport(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_the_apps_own_and_the_configured_ones() {
        let cfg = WebConfig {
            allowed_origins: vec!["https://App.Firm.example".into()],
            public_url: "https://chat.firm.example/".into(),
            ..WebConfig::default()
        };
        let o = Origins::new(&cfg, Some(8080));
        for ok in [
            "http://localhost:8080",
            "https://127.0.0.1:8080",
            "http://[::1]:8080",
            "https://chat.firm.example",
            "https://app.firm.example",
            "HTTP://LOCALHOST:8080",
        ] {
            assert!(o.allows(ok), "{ok}");
        }
        for no in ["http://localhost:8081", "https://evil.example", "null", "", "https://chat.firm.example.evil"] {
            assert!(!o.allows(no), "{no}");
        }
        assert!(!Origins::new(&WebConfig::default(), None).allows("http://localhost:8080"));
    }
}
