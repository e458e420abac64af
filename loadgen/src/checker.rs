//! Correctness: every acked message is delivered exactly once to every member,
//! in the conversation's order. Each receiving client keeps a [`MemberLog`]
//! (no sharing, no lock); the senders keep the acked seqs; [`check`] adds up.

use serde::Serialize;
use std::collections::HashMap;

/// What one member received in each conversation.
#[derive(Debug, Default)]
pub struct MemberLog {
    convs: HashMap<u64, ConvLog>,
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
    /// Records that this member's SDK surfaced `seq` of conversation `conv`.
    pub fn deliver(&mut self, conv: u64, seq: u64) {
        let log = self.convs.entry(conv).or_default();
        if !log.set(seq) {
            self.duplicated += 1;
        } else if seq < log.last {
            self.reordered += 1;
        }
        log.last = log.last.max(seq);
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
