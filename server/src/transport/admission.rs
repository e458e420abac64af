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

    /// None if `ip` may open a connection now, else how long to wait. IPv6
    /// addresses count by their /64 (one subscriber's network), IPv4-mapped
    /// IPv6 addresses as the IPv4 address.
    pub fn refused_for(&self, ip: IpAddr) -> Option<Duration> {
        let key = rate_key(ip);
        self.limiter.check_key(&key).err().map(|nu| nu.wait_time_from(governor::clock::DefaultClock::default().now()))
    }

    /// Forgets addresses that have not connected lately.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

/// The address a connection rate is counted under: an IPv6 host has a /64
/// of its own (2^64 addresses to rotate through), so IPv6 counts by /64.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
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
///
/// `SO_REUSEPORT` would also let a second process of the same user bind the
/// port and take half of its traffic, silently; so a named port is first
/// bound once without it, which fails if anyone holds it
/// ([`PortTaken`]), then released for the shards.
pub fn bind_reuseport(
    addr: SocketAddr,
    n: usize,
    ty: socket2::Type,
    prepare: impl Fn(&socket2::Socket) -> std::io::Result<()>,
) -> anyhow::Result<Vec<socket2::Socket>> {
    use socket2::{Domain, Socket};
    if addr.port() != 0 {
        let probe = Socket::new(Domain::for_address(addr), ty, None)?;
        if addr.is_ipv6() {
            probe.set_only_v6(false)?;
        }
        if ty == socket2::Type::STREAM {
            // Past connections in TIME_WAIT do not hold the port; a listener does.
            probe.set_reuse_address(true)?;
        }
        if let Err(e) = probe.bind(&addr.into()) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                return Err(PortTaken { addr, udp: ty == socket2::Type::DGRAM }.into());
            }
            return Err(anyhow::Error::new(e).context(format!("bind {addr}")));
        }
    }
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

/// Another process holds a port this server was configured to listen on.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} port {} on {} is already in use by another process (another chatd?): stop it, or give this one another address",
    if *.udp { "UDP" } else { "TCP" }, .addr.port(), .addr.ip()
)]
pub struct PortTaken {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The UDP port (QUIC, WebTransport) rather than the TCP one (web).
    pub udp: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(rate_key(a), rate_key(b));
        assert_ne!(rate_key(a), rate_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(rate_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        // One /64 rotating addresses gets the same budget as one address.
        let limiter = ConnLimiter::new(3);
        let refused = (0..10u128)
            .filter(|i| {
                let ip = IpAddr::V6(
                    (u128::from_be_bytes([0x20, 1, 0xd, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]) + i).into(),
                );
                limiter.refused_for(ip).is_some()
            })
            .count();
        assert_eq!(refused, 7, "3 per minute for the whole /64");
    }

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
