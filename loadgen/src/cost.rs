//! What the sending phase cost per message: the server's and this load
//! generator's CPU (from /proc) and the UDP datagrams the kernel counted
//! (`/proc/net/snmp`), so a change can be judged by its cost and not only by
//! a percentile that drifts with the machine's load.
//!
//! The UDP counters are the whole machine's: on loopback every datagram is
//! counted once out and once in (unless a full receive buffer dropped it), and
//! anything else using UDP at the same time is counted too.

use serde::Serialize;

/// The kernel's UDP counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Udp {
    /// Datagrams delivered to sockets.
    pub in_datagrams: u64,
    /// Datagrams sent.
    pub out_datagrams: u64,
    /// Datagrams dropped because a socket's receive buffer was full.
    pub rcvbuf_errors: u64,
}

impl Udp {
    /// The counters now, if this kernel exposes them.
    pub fn now() -> Option<Udp> {
        Udp::parse(&std::fs::read_to_string("/proc/net/snmp").ok()?)
    }

    /// Reads the `Udp:` header and value lines of `/proc/net/snmp`.
    fn parse(snmp: &str) -> Option<Udp> {
        let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (lines.next()?, lines.next()?);
        let field = |name: &str| {
            let i = names.split_whitespace().position(|n| n == name)?;
            values.split_whitespace().nth(i)?.parse().ok()
        };
        Some(Udp {
            in_datagrams: field("InDatagrams")?,
            out_datagrams: field("OutDatagrams")?,
            rcvbuf_errors: field("RcvbufErrors")?,
        })
    }
}

/// Where the sending phase started or ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mark {
    /// The spawned server's CPU seconds (none for a server started elsewhere).
    pub server_cpu: Option<f64>,
    /// This process's CPU seconds.
    pub loadgen_cpu: f64,
    /// The kernel's UDP counters.
    pub udp: Option<Udp>,
}

/// The sending phase's cost per acknowledged message.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Cost {
    /// Messages acknowledged in the phase.
    pub messages: u64,
    /// Server CPU µs per message (spawned server only).
    pub server_us_per_msg: Option<f64>,
    /// Load generator CPU µs per message.
    pub loadgen_us_per_msg: f64,
    /// UDP datagrams sent per message, both directions (machine-wide).
    pub datagrams_out_per_msg: Option<f64>,
    /// UDP datagrams received per message, both directions (machine-wide).
    pub datagrams_in_per_msg: Option<f64>,
    /// Datagrams dropped by full receive buffers in the phase (machine-wide).
    pub datagrams_dropped: Option<u64>,
}

impl Cost {
    /// The cost of `messages` between marks `a` and `b`.
    pub fn between(a: &Mark, b: &Mark, messages: u64) -> Cost {
        let per = |x: f64| x / messages.max(1) as f64;
        let udp = a.udp.zip(b.udp);
        Cost {
            messages,
            server_us_per_msg: a.server_cpu.zip(b.server_cpu).map(|(a, b)| per((b - a) * 1e6)),
            loadgen_us_per_msg: per((b.loadgen_cpu - a.loadgen_cpu) * 1e6),
            datagrams_out_per_msg: udp.map(|(a, b)| per(b.out_datagrams.saturating_sub(a.out_datagrams) as f64)),
            datagrams_in_per_msg: udp.map(|(a, b)| per(b.in_datagrams.saturating_sub(a.in_datagrams) as f64)),
            datagrams_dropped: udp.map(|(a, b)| b.rcvbuf_errors.saturating_sub(a.rcvbuf_errors)),
        }
    }

    /// One line for the text report.
    pub fn line(&self) -> String {
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        format!(
            "cost per message ({} acked while sending): server {} µs CPU, loadgen {:.0} µs CPU; UDP datagrams {} out / {} in (machine-wide), {} dropped by full receive buffers",
            self.messages,
            opt(self.server_us_per_msg, 0),
            self.loadgen_us_per_msg,
            opt(self.datagrams_out_per_msg, 2),
            opt(self.datagrams_in_per_msg, 2),
            self.datagrams_dropped.map_or("-".to_owned(), |d| d.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
        Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
        Udp: 59471845 391 330728 59803085 330728 0 0 0 0\n\
        UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";

    #[test]
    fn reads_the_udp_counters_by_name() {
        let udp = Udp::parse(SNMP).unwrap();
        assert_eq!(udp, Udp { in_datagrams: 59_471_845, out_datagrams: 59_803_085, rcvbuf_errors: 330_728 });
        assert_eq!(Udp::parse("Ip: Forwarding\nIp: 1\n"), None, "no Udp lines: no counters");
    }

    #[test]
    fn cost_is_per_acknowledged_message() {
        let a = Mark {
            server_cpu: Some(1.0),
            loadgen_cpu: 2.0,
            udp: Some(Udp { in_datagrams: 100, out_datagrams: 100, rcvbuf_errors: 5 }),
        };
        let b = Mark {
            server_cpu: Some(3.0),
            loadgen_cpu: 3.5,
            udp: Some(Udp { in_datagrams: 59_100, out_datagrams: 60_100, rcvbuf_errors: 1_005 }),
        };
        let c = Cost::between(&a, &b, 10_000);
        assert_eq!(c.server_us_per_msg, Some(200.0));
        assert_eq!(c.loadgen_us_per_msg, 150.0);
        assert_eq!(c.datagrams_out_per_msg, Some(6.0));
        assert_eq!(c.datagrams_in_per_msg, Some(5.9));
        assert_eq!(c.datagrams_dropped, Some(1_000));
        let remote = Cost::between(&Mark { server_cpu: None, ..a }, &b, 10_000);
        assert_eq!(remote.server_us_per_msg, None, "a server started elsewhere has no CPU figure");
        assert!(remote.line().contains("server - µs"), "{}", remote.line());
    }
}
