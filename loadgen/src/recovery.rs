//! Catch-up after a disruption (`crash`, `storm`, `cluster --disrupt`),
//! sans-IO: from the acks the senders saw, the members' timed logs and the
//! disruption's times, how long each client took to be reconnected and caught
//! up, and the verdict's part of it.
//!
//! **Caught up**, precisely: let `T` be the reference instant — for `crash`
//! the moment the restarted chatd printed that it listens, for `storm` the
//! moment every client was told to drop, for a cluster's node loss the kill,
//! for a Redis restart the moment Redis listens again. A member's *owed set*
//! is every `(conversation, seq)` of its conversations whose stored-ack its
//! sender's SDK surfaced before `T` (for `crash` that is: acknowledged by the
//! killed process). A member whose connection the disruption took (every
//! client in `crash` and `storm`, the lost node's in a node loss) is caught up at
//! `max(first Connected at or after T, latest first delivery of its owed set)`;
//! one that kept its connection (a surviving node's clients, every client
//! through a Redis restart), at `max(T, latest first delivery of its owed set)`.
//! Its catch-up time is that minus `T` (0 when everything owed had come
//! before `T` and it was connected). A member that lost its connection and
//! never connected again after `T`, or lacks any owed message at the end,
//! never caught up.

use crate::checker::MemberLog;
use crate::scenario::Disruption;
use serde::Serialize;

/// p99 catch-up a `crash` or `storm` run must stay under, µs.
pub const P99_CATCH_UP_TARGET_US: u64 = 3_000_000;

/// When the disruption happened, µs since the run's start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    /// SIGKILL sent (`crash`, node loss, Redis restart), or every client told to drop (`storm`).
    pub disrupted_us: u64,
    /// The reference `T` of catch-up: the restarted server or Redis
    /// listening (`crash`, Redis restart), the drop (`storm`), the kill (node loss).
    pub reference_us: u64,
}

/// Catch-up time of each member, µs after `t.reference_us` (`None`: never).
///
/// Conversation `c` has id `ids[c]`, acked seqs `acked[c]` whose acks
/// arrived at `ack_us[c]` (same order) and members `members[c]`; `logs[u]`
/// is user `u`'s timed log; `affected[u]` whether the disruption took its connection.
pub fn catch_up_us(
    t: Times,
    ids: &[u64],
    acked: &[Vec<u64>],
    ack_us: &[Vec<u64>],
    members: &[Vec<usize>],
    logs: &[MemberLog],
    affected: &[bool],
) -> Vec<Option<u64>> {
    let reference_us = t.reference_us;
    // Latest delivery of the owed set so far, per member; None once one is missing.
    let mut latest: Vec<Option<u64>> = logs
        .iter()
        .zip(affected)
        .map(|(l, &a)| if a { first_connected(reference_us, l) } else { Some(reference_us) })
        .collect();
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

/// Deliveries owed at `reference_us`: acked before it, times the conversation's members.
pub fn owed_deliveries(reference_us: u64, ack_us: &[Vec<u64>], members: &[Vec<usize>]) -> u64 {
    ack_us
        .iter()
        .zip(members)
        .map(|(at, m)| at.iter().filter(|&&a| a < reference_us).count() as u64 * m.len() as u64)
        .sum()
}

fn first_connected(reference_us: u64, l: &MemberLog) -> Option<u64> {
    l.connected_us.iter().copied().find(|&c| c >= reference_us)
}

/// For each member whose connection the disruption took (`affected`): the
/// time from `t.reference_us` to its first `Connected` at or after it
/// (`None`: never). Others are left out.
pub fn reconnect_us(t: Times, logs: &[MemberLog], affected: &[bool]) -> Vec<Option<u64>> {
    logs.iter()
        .zip(affected)
        .filter(|&(_, &a)| a)
        .map(|(l, _)| first_connected(t.reference_us, l).map(|c| c - t.reference_us))
        .collect()
}

/// For each member whose connection the disruption took (`affected`): the
/// time from `t.disrupted_us` to its first `Disconnected` at or after it
/// (its SDK noticed the loss; `None`: never). Others are left out.
pub fn noticed_us(t: Times, logs: &[MemberLog], affected: &[bool]) -> Vec<Option<u64>> {
    logs.iter()
        .zip(affected)
        .filter(|&(_, &a)| a)
        .map(|(l, _)| l.disconnected_us.iter().copied().find(|&d| d >= t.disrupted_us).map(|d| d - t.disrupted_us))
        .collect()
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

/// What a run with a disruption reports about it.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// What happened.
    pub disruption: Disruption,
    /// The kill or the drop, s after the run's start.
    pub disrupted_at_s: f64,
    /// crash, Redis restart: kill to the new process listening, s.
    pub down_s: Option<f64>,
    /// Reconnected and caught up, from the reference instant (see the module doc).
    pub catch_up: CatchUp,
    /// Reconnected only (the handshake done), from the same instant.
    pub reconnected: CatchUp,
    /// The SDK noticed the loss (`Disconnected`), from the kill or the drop;
    /// over the clients whose connection it took.
    pub noticed: CatchUp,
    /// Deliveries owed at the reference instant (acked before it, x members).
    pub owed_deliveries: u64,
    /// Sends handed to the SDK while the server was down (crash) or its
    /// client's node was gone and the client not yet moved (node loss).
    pub outage_sends: u64,
    /// How many of those were acknowledged by the end.
    pub outage_acked: u64,
    /// The slowest acknowledgement of a send made after the disruption, ms:
    /// how long the cluster kept a conversation's writes waiting.
    pub slowest_ack_after_ms: Option<f64>,
}

impl Recovery {
    /// Why the run fails because of the disruption; latency only unless `correctness_only`.
    pub fn reasons(&self, correctness_only: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.catch_up.never > 0 {
            out.push(format!("{} clients never caught up after the {}", self.catch_up.never, self.disruption.name()));
        }
        if self.outage_acked < self.outage_sends {
            out.push(format!(
                "{} of {} sends made during the outage never acknowledged",
                self.outage_sends - self.outage_acked,
                self.outage_sends
            ));
        }
        if !correctness_only
            && self.disruption.judged_on_catch_up()
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
            "{}: at {:.1} s{}; {} clients; owed at the time {}\n",
            self.disruption.name(),
            self.disrupted_at_s,
            self.down_s.map(|d| format!(", down {d:.2} s until the new process listened")).unwrap_or_default(),
            c.clients,
            self.owed_deliveries,
        );
        let (n, r) = (&self.noticed, &self.reconnected);
        if n.clients == 0 {
            s.push_str("  no client lost its connection\n");
        } else {
            s.push_str(&format!(
                "  {} clients lost their connection: noticed (ms after the {}) p50 {} p99 {} max {}; \
                 reconnected (ms after the reference instant) p50 {} p99 {} max {}\n",
                n.clients,
                self.disruption.name(),
                ms(n.p50_ms),
                ms(n.p99_ms),
                ms(n.max_ms),
                ms(r.p50_ms),
                ms(r.p99_ms),
                ms(r.max_ms),
            ));
        }
        s.push_str(&format!(
            "  caught up (ms after the reference instant) p50 {} p99 {} max {}; never {}\n",
            ms(c.p50_ms),
            ms(c.p99_ms),
            ms(c.max_ms),
            c.never
        ));
        if self.outage_sends > 0 {
            s.push_str(&format!(
                "  sends during the outage: {}, acknowledged by the end: {}\n",
                self.outage_sends, self.outage_acked
            ));
        }
        if let Some(a) = self.slowest_ack_after_ms {
            s.push_str(&format!("  slowest ack of a send made after the {}: {a:.0} ms\n", self.disruption.name()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member that lost its connection at 350 µs (after every test's disruption).
    fn log(connected: &[u64], deliveries: &[(u64, u64)]) -> MemberLog {
        let mut l = MemberLog::timed();
        l.connected_us = connected.to_vec();
        l.disconnected_us = vec![350];
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
        let t = catch_up_us(
            Times { disrupted_us: 300, reference_us: 1_000 },
            &[7],
            &acked,
            &ack_us,
            &members,
            &logs,
            &[true; 4],
        );
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
        let t = catch_up_us(
            Times { disrupted_us: 300, reference_us: 400 },
            &[70, 80],
            &acked,
            &ack_us,
            &members,
            &[a, b],
            &[true; 2],
        );
        assert_eq!(t, vec![Some(100), Some(300)]);
    }

    #[test]
    fn a_member_that_kept_its_connection_is_caught_up_by_its_owed_deliveries() {
        // A surviving node's client: connected once before the fault, never lost it.
        let acked = vec![vec![1, 2]];
        let ack_us = vec![vec![100, 900]];
        let members = vec![vec![0, 1]];
        let kept = |last: u64| {
            let mut l = log(&[0], &[(1, 110), (2, last)]);
            l.disconnected_us.clear();
            l
        };
        let t = Times { disrupted_us: 1_000, reference_us: 1_000 };
        assert_eq!(
            catch_up_us(t, &[7], &acked, &ack_us, &members, &[kept(1_400), kept(950)], &[false, false]),
            vec![Some(400), Some(0)]
        );
        // Only the clients the fault disconnected count for noticing and reconnecting.
        let mut moved = log(&[0, 1_250], &[(1, 110), (2, 1_300)]);
        moved.disconnected_us = vec![1_050];
        let logs = [kept(1_400), moved];
        assert_eq!(noticed_us(t, &logs, &[false, true]), vec![Some(50)]);
        assert_eq!(reconnect_us(t, &logs, &[false, true]), vec![Some(250)]);
        assert_eq!(owed_deliveries(1_000, &ack_us, &members), 4);
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
            disruption: Disruption::Kill { down: std::time::Duration::from_secs(1) },
            disrupted_at_s: 8.0,
            down_s: Some(1.1),
            catch_up: CatchUp {
                clients: 10,
                never: 0,
                p50_ms: Some(800.0),
                p99_ms: Some(3_500.0),
                max_ms: Some(3_600.0),
            },
            reconnected: CatchUp::default(),
            noticed: CatchUp::default(),
            owed_deliveries: 0,
            outage_sends: 5,
            outage_acked: 5,
            slowest_ack_after_ms: None,
        };
        assert_eq!(r.reasons(false).len(), 1, "p99 over 3 s");
        assert!(r.reasons(true).is_empty(), "correctness only: latency is not judged");
        // A cluster's node loss is measured against no bar: moving its
        // conversations takes the node TTL by design.
        r.disruption = Disruption::NodeLoss { node: 0 };
        assert!(r.reasons(false).is_empty(), "node loss: latency is not judged");
        r.outage_acked = 4;
        assert_eq!(r.reasons(true), vec!["1 of 5 sends made during the outage never acknowledged"]);
    }
}
