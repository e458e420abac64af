//! Correctness: every acked message is delivered exactly once to every member,
//! in the conversation's order. Each receiving client keeps a [`MemberLog`]
//! (no sharing, no lock); the senders keep the acked seqs; [`check`] adds up.
//! [`missing`] lists what was owed and never came, each marked "behind" (the
//! member has nothing later in that conversation: still catching up when the
//! run stopped waiting) or a hole (it has later ones).

use serde::Serialize;
use std::collections::HashMap;

/// What one member received in each conversation.
#[derive(Debug, Default)]
pub struct MemberLog {
    convs: HashMap<u64, ConvLog>,
    /// Whether delivery times are kept (`crash`, `storm`: catch-up times).
    timed: bool,
    /// When the member's SDK said `Connected`, µs since the run's start.
    pub connected_us: Vec<u64>,
    /// When it said `Disconnected`, µs since the run's start.
    pub disconnected_us: Vec<u64>,
    /// Same seq delivered again.
    pub duplicated: u64,
    /// A seq lower than one delivered before.
    pub reordered: u64,
}

#[derive(Debug, Default)]
struct ConvLog {
    last: u64,
    /// Bit `seq` set once `seq` was delivered.
    seen: Vec<u64>,
    /// When `seq` was first delivered, µs (timed logs only; 0: not yet).
    at: Vec<u64>,
}

impl ConvLog {
    fn has(&self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        self.seen.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    /// Sets the bit; false if it was set already.
    fn set(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        let fresh = self.seen[w] & (1 << b) == 0;
        self.seen[w] |= 1 << b;
        fresh
    }
}

impl MemberLog {
    /// A log that also keeps when each seq was first delivered.
    pub fn timed() -> Self {
        Self { timed: true, ..Self::default() }
    }

    /// Records that this member's SDK surfaced `seq` of conversation `conv`.
    #[cfg(test)]
    pub fn deliver(&mut self, conv: u64, seq: u64) {
        self.deliver_at(conv, seq, 1);
    }

    /// Records that this member's SDK surfaced `seq` of `conv` at `at_us`.
    pub fn deliver_at(&mut self, conv: u64, seq: u64, at_us: u64) {
        let timed = self.timed;
        let log = self.convs.entry(conv).or_default();
        if !log.set(seq) {
            self.duplicated += 1;
        } else {
            if seq < log.last {
                self.reordered += 1;
            }
            if timed {
                let i = seq as usize;
                if log.at.len() <= i {
                    log.at.resize(i + 1, 0);
                }
                log.at[i] = at_us.max(1);
            }
        }
        log.last = log.last.max(seq);
    }

    /// When `seq` of `conv` was first delivered (timed logs), µs.
    pub fn delivered_at(&self, conv: u64, seq: u64) -> Option<u64> {
        let t = *self.convs.get(&conv)?.at.get(seq as usize)?;
        (t > 0).then_some(t)
    }

    /// The highest seq delivered in `conv` (0: none).
    pub fn last(&self, conv: u64) -> u64 {
        self.convs.get(&conv).map_or(0, |l| l.last)
    }

    /// Whether `seq` of `conv` was delivered.
    pub fn has(&self, conv: u64, seq: u64) -> bool {
        self.convs.get(&conv).is_some_and(|l| l.has(seq))
    }
}

/// The correctness counts of a run.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Acked messages.
    pub acked: u64,
    /// Deliveries the acked messages owe (acked x members, the sender's own client included).
    pub expected_deliveries: u64,
    /// Owed deliveries that never came.
    pub lost: u64,
    /// Deliveries of a seq the member already had.
    pub duplicated: u64,
    /// Deliveries of a seq lower than one the member already had.
    pub reordered: u64,
}

impl Counts {
    /// Whether nothing was lost, repeated or reordered.
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0
    }
}

/// Adds up: conversation `c` of the plan has id `ids[c]`, acked seqs
/// `acked[c]` and member indexes `members[c]`; `logs[u]` is what user `u` received.
pub fn check(ids: &[u64], acked: &[Vec<u64>], members: &[Vec<usize>], logs: &[MemberLog]) -> Counts {
    let mut n = Counts::default();
    for (c, seqs) in acked.iter().enumerate() {
        n.acked += seqs.len() as u64;
        for &u in &members[c] {
            n.expected_deliveries += seqs.len() as u64;
            n.lost += seqs.iter().filter(|&&s| !logs[u].has(ids[c], s)).count() as u64;
        }
    }
    for l in logs {
        n.duplicated += l.duplicated;
        n.reordered += l.reordered;
    }
    n
}

/// An owed delivery that never came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    /// Plan index of the conversation.
    pub ci: usize,
    /// Its server id.
    pub conv: u64,
    /// The acked seq.
    pub seq: u64,
    /// The member (user index) that lacks it.
    pub member: usize,
    /// The member has nothing later in the conversation: it was still
    /// catching up (or stuck) rather than skipping a message.
    pub behind: bool,
}

/// Every owed delivery that never came (same inputs as [`check`]).
pub fn missing(ids: &[u64], acked: &[Vec<u64>], members: &[Vec<usize>], logs: &[MemberLog]) -> Vec<Missing> {
    let mut out = Vec::new();
    for (ci, seqs) in acked.iter().enumerate() {
        for &member in &members[ci] {
            let log = &logs[member];
            let last = log.last(ids[ci]);
            for &seq in seqs.iter().filter(|&&s| !log.has(ids[ci], s)) {
                out.push(Missing { ci, conv: ids[ci], seq, member, behind: seq > last });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(deliveries: &[&[u64]]) -> Counts {
        // One conversation (plan index 0, id 7) with one member per slice, seqs 1..=5 acked.
        let acked = vec![(1..=5).collect::<Vec<u64>>()];
        let members = vec![(0..deliveries.len()).collect::<Vec<usize>>()];
        let logs: Vec<MemberLog> = deliveries
            .iter()
            .map(|d| {
                let mut l = MemberLog::default();
                for &s in *d {
                    l.deliver(7, s);
                }
                l
            })
            .collect();
        check(&[7], &acked, &members, &logs)
    }

    #[test]
    fn clean_run_passes() {
        let n = run(&[&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5]]);
        assert_eq!(n, Counts { acked: 5, expected_deliveries: 10, lost: 0, duplicated: 0, reordered: 0 });
        assert!(n.ok());
    }

    #[test]
    fn counts_lost() {
        let n = run(&[&[1, 2, 3, 4, 5], &[1, 2, 4]]);
        assert_eq!((n.lost, n.duplicated, n.reordered), (2, 0, 0));
        assert!(!n.ok());
    }

    #[test]
    fn counts_duplicated() {
        let n = run(&[&[1, 2, 3, 3, 4, 5, 5], &[1, 2, 3, 4, 5]]);
        assert_eq!((n.lost, n.duplicated, n.reordered), (0, 2, 0));
        assert!(!n.ok());
    }

    #[test]
    fn counts_reordered() {
        let n = run(&[&[1, 3, 2, 4, 5], &[1, 2, 3, 4, 5]]);
        assert_eq!((n.lost, n.duplicated, n.reordered), (0, 0, 1));
        assert!(!n.ok());
    }

    #[test]
    fn unacked_deliveries_are_not_owed_but_still_checked() {
        // Seq 6 was delivered but never acked (its sender dropped): not lost, not an error.
        let n = run(&[&[1, 2, 3, 4, 5, 6], &[1, 2, 3, 4, 5]]);
        assert!(n.ok());
        let n = run(&[&[1, 2, 3, 4, 5, 6, 6], &[1, 2, 3, 4, 5]]);
        assert_eq!(n.duplicated, 1);
    }

    #[test]
    fn missing_tells_behind_from_holes() {
        let acked = vec![(1..=5).collect::<Vec<u64>>()];
        let members = vec![vec![0, 1]];
        let mut a = MemberLog::default();
        for s in [1, 2, 4, 5] {
            a.deliver(7, s);
        }
        let mut b = MemberLog::default();
        for s in [1, 2, 3] {
            b.deliver(7, s);
        }
        let m = missing(&[7], &acked, &members, &[a, b]);
        let got: Vec<(usize, u64, bool)> = m.iter().map(|m| (m.member, m.seq, m.behind)).collect();
        assert_eq!(got, vec![(0, 3, false), (1, 4, true), (1, 5, true)]);
    }

    #[test]
    fn timed_logs_keep_the_first_delivery() {
        let mut l = MemberLog::timed();
        l.deliver_at(7, 2, 500);
        l.deliver_at(7, 2, 900);
        assert_eq!((l.delivered_at(7, 2), l.delivered_at(7, 1), l.duplicated), (Some(500), None, 1));
        let mut u = MemberLog::default();
        u.deliver_at(7, 2, 500);
        assert_eq!(u.delivered_at(7, 2), None, "untimed logs keep no times");
    }

    #[test]
    fn conversations_are_independent() {
        let acked = vec![vec![1, 2], vec![1, 2]];
        let members = vec![vec![0], vec![0]];
        let mut l = MemberLog::default();
        for (c, s) in [(10, 1), (20, 1), (20, 2), (10, 2)] {
            l.deliver(c, s);
        }
        assert!(check(&[10, 20], &acked, &members, &[l]).ok());
    }
}
