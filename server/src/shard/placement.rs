//! Where things live: the shard that owns a conversation or a user's
//! bookkeeping, and (in a cluster) the node that owns a conversation. Pure
//! functions of ids, so every shard and every node computes the same answer.

use crate::ids::{ConvId, NodeId};

/// The shard that owns a conversation (its sequencer).
pub fn home_shard(conv: ConvId, shards: usize) -> usize {
    // Ids are random or hashed already; a multiplicative mix spreads sequential test ids too.
    (conv.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shards.max(1)
}

/// The shard that keeps a user's presence count and message rate.
pub fn user_shard(user: &str, shards: usize) -> usize {
    (fnv1a(user) >> 32) as usize % shards.max(1)
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of a string: the same on every build and platform.
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The rendezvous weight of a node for a conversation.
pub fn weight(conv: ConvId, node: &str) -> u64 {
    mix64(fnv1a(node) ^ mix64(conv))
}

/// The owner node of a conversation among `live`: the highest weight (ties,
/// which need a 64-bit collision, go to the greater id). None if `live` is empty.
/// When a node leaves, only the conversations it owned move; when one joins,
/// only those it now wins move to it.
pub fn owner_node(conv: ConvId, live: &[NodeId]) -> Option<&NodeId> {
    live.iter().max_by(|a, b| weight(conv, a).cmp(&weight(conv, b)).then_with(|| a.cmp(b)))
}

/// Whether `conv`'s owner under `before` is gone from `after`: its last
/// commits may never have been fanned out (it died between storing and
/// publishing), so sessions here check the store (see `Fanout::Nudge`).
pub fn owner_lost(conv: ConvId, before: &[NodeId], after: &[NodeId]) -> bool {
    owner_node(conv, before).is_some_and(|o| !after.contains(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn nodes(n: usize) -> Vec<NodeId> {
        (0..n).map(|i| NodeId::from(format!("node-{i}").as_str())).collect()
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let mut hits = [0usize; 4];
        for conv in 1..=4000u64 {
            let s = home_shard(conv, 4);
            assert_eq!(s, home_shard(conv, 4));
            hits[s] += 1;
        }
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
        assert_eq!(home_shard(12345, 1), 0);
        assert!(user_shard("alice", 3) < 3);
    }

    #[test]
    fn rendezvous_is_stable() {
        let live = nodes(3);
        let mut shuffled = live.clone();
        shuffled.reverse();
        for conv in 1..1000u64 {
            assert_eq!(owner_node(conv, &live), owner_node(conv, &live));
            assert_eq!(owner_node(conv, &live), owner_node(conv, &shuffled), "order of the live set does not matter");
        }
        assert!(owner_node(1, &[]).is_none());
    }

    #[test]
    fn rendezvous_spreads() {
        let live = nodes(3);
        let mut hits: HashMap<NodeId, usize> = HashMap::new();
        for conv in 1..=6000u64 {
            *hits.entry(owner_node(conv, &live).unwrap().clone()).or_default() += 1;
        }
        assert_eq!(hits.len(), 3);
        assert!(hits.values().all(|&h| (1700..=2300).contains(&h)), "{hits:?}");
        // Random 53-bit ids too.
        let mut hits: HashMap<NodeId, usize> = HashMap::new();
        for _ in 0..6000 {
            let conv = rand::random::<u64>() & ((1 << 53) - 1);
            *hits.entry(owner_node(conv, &live).unwrap().clone()).or_default() += 1;
        }
        assert!(hits.values().all(|&h| (1700..=2300).contains(&h)), "{hits:?}");
    }

    #[test]
    fn rendezvous_moves_only_what_the_leaver_owned() {
        let live = nodes(4);
        let without: Vec<NodeId> = live.iter().filter(|n| &***n != "node-2").cloned().collect();
        let mut moved = 0;
        for conv in 1..=4000u64 {
            let before = owner_node(conv, &live).unwrap();
            let after = owner_node(conv, &without).unwrap();
            if &**before == "node-2" {
                moved += 1;
            } else {
                assert_eq!(before, after, "conversation {conv} moved though its owner stayed");
            }
        }
        assert!((800..=1200).contains(&moved), "{moved}");
        // And a joiner takes only what it wins.
        for conv in 1..=4000u64 {
            let after = owner_node(conv, &live).unwrap();
            if &**after != "node-2" {
                assert_eq!(owner_node(conv, &without).unwrap(), after);
            }
        }
    }

    #[test]
    fn only_conversations_of_a_node_that_left_lost_their_owner() {
        let all = nodes(3);
        let (gone, rest) = (&all[1], vec![all[0].clone(), all[2].clone()]);
        let mut lost = 0;
        for conv in 1..=300u64 {
            let was = owner_node(conv, &all).unwrap();
            assert_eq!(owner_lost(conv, &all, &rest), was == gone, "conv {conv}");
            lost += usize::from(owner_lost(conv, &all, &rest));
            // A node joining takes owners from nobody lost; a first live set has no owner before it.
            assert!(!owner_lost(conv, &rest, &all));
            assert!(!owner_lost(conv, &[], &all));
        }
        assert!((60..=140).contains(&lost), "{lost}");
    }
}
