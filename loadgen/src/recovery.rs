//! Catch-up after a disruption (`crash`, `storm`), sans-IO: from the acks the
//! senders saw, the members' timed logs and the disruption's times, how long
//! each client took to be reconnected and caught up, and the verdict's part
//! of it.
//!
//! **Caught up**, precisely: let `T` be the reference instant — for `crash`
//! the moment the restarted chatd printed that it listens, for `storm` the
//! moment every client was told to drop. A member's *owed set* is every
//! `(conversation, seq)` of its conversations whose stored-ack its sender's
//! SDK surfaced before `T` (for `crash` that is: acknowledged by the killed
//! process). The member is caught up at
//! `max(first Connected at or after T, latest first delivery of its owed set)`,
//! and its catch-up time is that minus `T` (0 when everything owed had come
//! before `T` and it was already connected again). A member that never
//! connected again after `T`, or lacks any owed message at the end, never
//! caught up.

use crate::checker::MemberLog;
use serde::Serialize;

/// p99 catch-up a `crash` or `storm` run must stay under, µs.
pub const P99_CATCH_UP_TARGET_US: u64 = 3_000_000;

/// When the disruption happened, µs since the run's start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    /// SIGKILL sent (`crash`), or every client told to drop (`storm`).
    pub disrupted_us: u64,
    /// The reference `T` of catch-up: the restarted server listening
    /// (`crash`), the drop (`storm`).
    pub reference_us: u64,
}

/// Catch-up time of each member, µs after `reference_us` (`None`: never).
///
/// Conversation `c` has id `ids[c]`, acked seqs `acked[c]` whose acks
/// arrived at `ack_us[c]` (same order) and members `members[c]`; `logs[u]`
/// is user `u`'s timed log.
pub fn catch_up_us(
    reference_us: u64,
    ids: &[u64],
    acked: &[Vec<u64>],
    ack_us: &[Vec<u64>],
    members: &[Vec<usize>],
    logs: &[MemberLog],
) -> Vec<Option<u64>> {
    // Latest delivery of the owed set so far, per member; None once one is missing.
    let mut latest: Vec<Option<u64>> =
        logs.iter().map(|l| l.connected_us.iter().copied().find(|&t| t >= reference_us)).collect();
    for (c, seqs) in acked.iter().enumerate() {
        let owed: Vec<u64> =
            seqs.iter().zip(&ack_us[c]).filter(|&(_, &at)| at < reference_us).map(|(&s, _)| s).collect();
        for &u in &members[c] {
            let Some(so_far) = latest[u] else { continue };
            latest[u] = owed
                .iter()
                .try_fold(so_far, |m, &s| logs[u].delivered_at(ids[c], s).map(|t| m.max(t)))
                .map(|m| m.max(so_far));
        }
    }
    latest.into_iter().map(|t| t.map(|t| t.saturating_sub(reference_us))).collect()
}

/// Time from `reference_us` to each member's first `Connected` at or after it (`None`: never).
pub fn reconnect_us(reference_us: u64, logs: &[MemberLog]) -> Vec<Option<u64>> {
    logs.iter().map(|l| l.connected_us.iter().copied().find(|&t| t >= reference_us).map(|t| t - reference_us)).collect()
}

/// Time from `from_us` to each member's first `Disconnected` at or after it
/// (its SDK noticed the loss; `None`: never).
pub fn noticed_us(from_us: u64, logs: &[MemberLog]) -> Vec<Option<u64>> {
    logs.iter().map(|l| l.disconnected_us.iter().copied().find(|&t| t >= from_us).map(|t| t - from_us)).collect()
}

/// Catch-up over clients, ms; `None` where the rank falls on a client that never caught up.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CatchUp {
    /// Clients counted.
    pub clients: usize,
    /// Clients that never caught up.
    pub never: usize,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// The slowest, ms (None if one never caught up).
    pub max_ms: Option<f64>,
}

impl CatchUp {
    /// Nearest-rank percentiles; a client that never caught up ranks last.
    pub fn of(times: &[Option<u64>]) -> Self {
        let mut v: Vec<u64> = times.iter().map(|t| t.unwrap_or(u64::MAX)).collect();
        v.sort_unstable();
        let at = |q: f64| -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            (v[i] != u64::MAX).then(|| v[i] as f64 / 1000.0)
        };
        Self {
            clients: v.len(),
            never: times.iter().filter(|t| t.is_none()).count(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// What a `crash` or `storm` run reports about the disruption.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    /// "crash" or "storm".
    pub kind: &'static str,
    /// The kill (crash) or the drop (storm), s after the run's start.
    pub disrupted_at_s: f64,
    /// crash: kill to the new process listening, s.
    pub down_s: Option<f64>,
    /// Reconnected and caught up, from the reference instant (see the module doc).
    pub catch_up: CatchUp,
    /// Reconnected only (the handshake done), from the same instant.
    pub reconnected: CatchUp,
    /// The SDK noticed the loss (`Disconnected`), from the kill or the drop.
    pub noticed: CatchUp,
    /// Deliveries owed at the reference instant (acked before it, x members).
    pub owed_deliveries: u64,
    /// crash: sends handed to the SDK while the server was down.
    pub outage_sends: u64,
    /// crash: how many of those were acknowledged by the end.
    pub outage_acked: u64,
}

impl Recovery {
    /// Why the run fails because of the disruption; latency only unless `correctness_only`.
    pub fn reasons(&self, correctness_only: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.catch_up.never > 0 {
            out.push(format!("{} clients never caught up after the {}", self.catch_up.never, self.kind));
        }
        if self.outage_acked < self.outage_sends {
            out.push(format!(
                "{} of {} sends made while the server was down never acknowledged",
                self.outage_sends - self.outage_acked,
                self.outage_sends
            ));
        }
        if !correctness_only
            && let Some(p99) = self.catch_up.p99_ms
            && p99 > P99_CATCH_UP_TARGET_US as f64 / 1000.0
        {
            out.push(format!("p99 catch-up {p99:.0} ms > {} ms", P99_CATCH_UP_TARGET_US / 1000));
        }
        out
    }

    /// The table's lines.
    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.0}"));
        let c = &self.catch_up;
        let mut s = format!(
            "{}: at {:.1} s{}; {} clients; owed at the time {}\n  \
             noticed the loss (ms after the {}) p50 {} p99 {} max {}\n  \
             from the restart or drop: reconnected (ms) p50 {} p99 {} max {}; reconnected and caught up (ms) p50 {} p99 {} max {}; never {}\n",
            self.kind,
            self.disrupted_at_s,
            self.down_s.map(|d| format!(", down {d:.2} s until the new chatd listened")).unwrap_or_default(),
            c.clients,
            self.owed_deliveries,
            if self.kind == "crash" { "kill" } else { "drop" },
            ms(self.noticed.p50_ms),
            ms(self.noticed.p99_ms),
            ms(self.noticed.max_ms),
            ms(self.reconnected.p50_ms),
            ms(self.reconnected.p99_ms),
            ms(self.reconnected.max_ms),
            ms(c.p50_ms),
            ms(c.p99_ms),
            ms(c.max_ms),
            c.never,
        );
        if self.kind == "crash" {
            s.push_str(&format!(
                "sends while the server was down: {}, acknowledged by the end: {}\n",
                self.outage_sends, self.outage_acked
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(connected: &[u64], deliveries: &[(u64, u64)]) -> MemberLog {
        let mut l = MemberLog::timed();
        l.connected_us = connected.to_vec();
        for &(seq, at) in deliveries {
            l.deliver_at(7, seq, at);
        }
        l
    }

    #[test]
    fn catch_up_is_the_later_of_reconnect_and_the_last_owed_delivery() {
        // Conversation 7: seqs 1-3 acked before T = 1,000, seq 4 after (not owed).
        let acked = vec![vec![1, 2, 3, 4]];
        let ack_us = vec![vec![100, 200, 900, 1_500]];
        let members = vec![vec![0, 1, 2, 3]];
        let logs = vec![
            // Had everything before the crash, reconnected at 1,300.
            log(&[0, 1_300], &[(1, 110), (2, 210), (3, 950), (4, 1_600)]),
            // Seq 3 came with the replay after reconnecting at 1,200.
            log(&[0, 1_200], &[(1, 110), (2, 210), (3, 2_000), (4, 2_100)]),
            // Never connected after T.
            log(&[0], &[(1, 110), (2, 210), (3, 950)]),
            // Reconnected, but seq 2 never came.
            log(&[0, 1_100], &[(1, 110), (3, 1_150)]),
        ];
        let t = catch_up_us(1_000, &[7], &acked, &ack_us, &members, &logs);
        assert_eq!(t, vec![Some(300), Some(1_000), None, None]);
    }

    #[test]
    fn only_the_members_conversations_are_owed() {
        let acked = vec![vec![1], vec![1]];
        let ack_us = vec![vec![10], vec![10]];
        let members = vec![vec![0], vec![1]];
        let mut a = log(&[500], &[]);
        a.deliver_at(70, 1, 20);
        let mut b = log(&[600], &[]);
        b.deliver_at(80, 1, 700);
        let t = catch_up_us(400, &[70, 80], &acked, &ack_us, &members, &[a, b]);
        assert_eq!(t, vec![Some(100), Some(300)]);
    }

    #[test]
    fn percentiles_rank_never_last() {
        let times: Vec<Option<u64>> = (1..=100).map(|i| Some(i * 1_000)).collect();
        let c = CatchUp::of(&times);
        assert_eq!((c.p50_ms, c.p99_ms, c.max_ms, c.never), (Some(50.0), Some(99.0), Some(100.0), 0));
        let mut times = times;
        times[0] = None;
        let c = CatchUp::of(&times);
        assert_eq!((c.p99_ms, c.max_ms, c.never), (Some(100.0), None, 1));
    }

    #[test]
    fn verdict() {
        let mut r = Recovery {
            kind: "crash",
            catch_up: CatchUp {
                clients: 10,
                never: 0,
                p50_ms: Some(800.0),
                p99_ms: Some(3_500.0),
                max_ms: Some(3_600.0),
            },
            outage_sends: 5,
            outage_acked: 5,
            ..Default::default()
        };
        assert_eq!(r.reasons(false).len(), 1, "p99 over 3 s");
        assert!(r.reasons(true).is_empty(), "correctness only: latency is not judged");
        r.outage_acked = 4;
        assert_eq!(r.reasons(true), vec!["1 of 5 sends made while the server was down never acknowledged"]);
    }
}
