//! Scatter-gather search, sans-IO: the answers of several indexes (one per
//! node of a cluster, each holding what that node's owners committed) to the
//! same [`super::IndexQuery`] merged into one page in the global result
//! order ([`super::SortKey`], newest first), deduplicated by (conversation,
//! seq) and cut at the page's limit. Because every node answers its top
//! `limit` after the same `after` key, the merged page is exactly the page a
//! single index holding everything would give, and its last key is a cursor
//! every node continues from.

use super::{IndexHit, SortKey};
use std::collections::HashSet;

/// One index's answer: its hits in the result order, at most the limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// Hits, in the result order.
    pub hits: Vec<IndexHit>,
    /// The index has hits after the last one given that it left out (it
    /// had fewer than the limit room for): nothing past the last one given
    /// may be kept, since that index may hold hits before it.
    pub truncated: bool,
}

impl Answer {
    /// A complete answer (not truncated).
    pub fn complete(hits: Vec<IndexHit>) -> Self {
        Self { hits, truncated: false }
    }
}

/// A merged page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    /// Hits in the result order, at most the limit, each (conversation, seq) once.
    pub hits: Vec<IndexHit>,
    /// More hits may follow the last one: the page is full, or an answer was truncated.
    pub more: bool,
}

/// Merges `answers` into one page of at most `limit` hits: sorted by key
/// (largest first), one hit per (conversation, seq) (the first in the order),
/// nothing past the last hit of a truncated answer.
pub fn merge(answers: Vec<Answer>, limit: usize) -> Merged {
    // Hits past a truncated answer's last key may be missing from it.
    let frontier: Option<SortKey> =
        answers.iter().filter(|a| a.truncated).filter_map(|a| a.hits.last()).map(|h| h.key).max();
    let truncated = answers.iter().any(|a| a.truncated);
    let mut all: Vec<IndexHit> = answers.into_iter().flat_map(|a| a.hits).collect();
    // A handful of sorted lists of at most `limit` each: one sort is as good as a heap.
    all.sort_by_key(|h| std::cmp::Reverse(h.key));
    let mut seen = HashSet::with_capacity(all.len());
    let mut hits = Vec::with_capacity(limit.min(all.len()));
    for h in all {
        if hits.len() == limit || frontier.is_some_and(|f| h.key < f) {
            break;
        }
        if seen.insert((h.key.conversation_id, h.key.seq)) {
            hits.push(h);
        }
    }
    let more = hits.len() == limit || truncated;
    Merged { hits, more }
}

/// Keeps the longest prefix of `hits` whose sizes (by `size`) fit in
/// `budget` bytes, but always the first hit (so that paging moves on); the
/// answer is truncated when a hit was left out.
pub fn cap_answer(mut hits: Vec<IndexHit>, budget: usize, size: impl Fn(&IndexHit) -> usize) -> Answer {
    let mut used = 0;
    let mut keep = 0;
    for h in &hits {
        used += size(h);
        if keep > 0 && used > budget {
            break;
        }
        keep += 1;
    }
    let truncated = keep < hits.len();
    hits.truncate(keep);
    Answer { hits, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(time_ms: u64, conversation_id: u64, seq: u64) -> IndexHit {
        IndexHit {
            key: SortKey { time_ms, conversation_id, seq },
            sender_id: "s".into(),
            snippet: format!("{conversation_id}/{seq}"),
            highlights: vec![],
            encoded: vec![0; 10],
        }
    }

    fn keys(m: &Merged) -> Vec<(u64, u64, u64)> {
        m.hits.iter().map(|h| (h.key.time_ms, h.key.conversation_id, h.key.seq)).collect()
    }

    #[test]
    fn sorted_lists_merge_newest_first_and_cut_at_the_limit() {
        let a = Answer::complete(vec![hit(9, 1, 3), hit(5, 1, 2), hit(1, 1, 1)]);
        let b = Answer::complete(vec![hit(8, 2, 2), hit(5, 2, 1)]);
        let c = Answer::complete(vec![]);
        let m = merge(vec![a.clone(), b.clone(), c.clone()], 3);
        assert_eq!(keys(&m), [(9, 1, 3), (8, 2, 2), (5, 2, 1)], "a tie in time goes to the larger conversation");
        assert!(m.more, "a full page may have more");
        let m = merge(vec![a, b, c], 10);
        assert_eq!(m.hits.len(), 5);
        assert!(!m.more, "everything fit");
        assert_eq!(merge(vec![], 5), Merged::default());
    }

    #[test]
    fn a_message_indexed_on_two_nodes_comes_once() {
        let a = Answer::complete(vec![hit(9, 1, 3), hit(5, 1, 2)]);
        let b = Answer::complete(vec![hit(9, 1, 3), hit(4, 2, 1)]);
        let m = merge(vec![a, b], 10);
        assert_eq!(keys(&m), [(9, 1, 3), (5, 1, 2), (4, 2, 1)]);
        assert!(!m.more);
    }

    #[test]
    fn paging_by_the_last_key_visits_every_hit_once() {
        // Three nodes' whole indexes; each answers its top `limit` after the cursor.
        let nodes: Vec<Vec<IndexHit>> = vec![
            (0..7).map(|i| hit(100 - i * 3, 1, 7 - i)).collect(),
            (0..5).map(|i| hit(99 - i * 5, 2, 5 - i)).collect(),
            (0..4).map(|i| hit(98 - i * 2, 3, 4 - i)).collect(),
        ];
        let mut after: Option<SortKey> = None;
        let mut seen = Vec::new();
        loop {
            let answers = nodes
                .iter()
                .map(|n| {
                    Answer::complete(n.iter().filter(|h| after.is_none_or(|a| h.key < a)).take(3).cloned().collect())
                })
                .collect();
            let m = merge(answers, 3);
            seen.extend(m.hits.iter().map(|h| h.key));
            if !m.more {
                break;
            }
            after = m.hits.last().map(|h| h.key);
        }
        let mut want: Vec<SortKey> = nodes.iter().flatten().map(|h| h.key).collect();
        want.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, want);
    }

    #[test]
    fn nothing_is_kept_past_a_truncated_answer() {
        let a = Answer { hits: vec![hit(9, 1, 3), hit(6, 1, 2)], truncated: true };
        let b = Answer::complete(vec![hit(8, 2, 2), hit(6, 2, 1), hit(5, 2, 0)]);
        let m = merge(vec![a, b], 10);
        assert_eq!(keys(&m), [(9, 1, 3), (8, 2, 2), (6, 2, 1), (6, 1, 2)]);
        assert!(m.more, "the truncated node has more after (6, 1, 2)");
    }

    #[test]
    fn an_answer_is_capped_by_size_but_keeps_its_first_hit() {
        let hits = vec![hit(3, 1, 3), hit(2, 1, 2), hit(1, 1, 1)];
        let a = cap_answer(hits.clone(), 25, |h| h.encoded.len());
        assert_eq!((a.hits.len(), a.truncated), (2, true));
        let a = cap_answer(hits.clone(), 5, |h| h.encoded.len());
        assert_eq!((a.hits.len(), a.truncated), (1, true), "the first always goes");
        let a = cap_answer(hits, 30, |h| h.encoded.len());
        assert_eq!((a.hits.len(), a.truncated), (3, false));
    }
}
