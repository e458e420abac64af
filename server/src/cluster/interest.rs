//! Interest: which nodes need which conversations' fan-outs, as rules
//! without I/O (the bridge performs what they decide, `register.rs`). Two
//! tables, one per side of a fan-out:
//!
//! - [`Needs`], on every node: the conversations its shards have sessions
//!   subscribed to, whether the conversation's owner node has confirmed it
//!   sends this node their fan-outs, and, once no shard needs one any more,
//!   since when (it is given up [`LINGER`] later, so a reconnecting client
//!   does not cost a registration each time).
//! - [`Wanted`], on every node as an owner: which other nodes need each of
//!   the conversations it owns, as they said (added, removed, or their whole
//!   list), and whether it has heard every live node's whole list since its
//!   live set last changed. Until it has, it cannot know who needs what (a
//!   new owner knows nothing yet), so it sends every fan-out to every node.
//!
//! Time comes in as arguments, so the rules are tested with a clock of the
//! test's own.

use crate::ids::{ConvId, LiveSet, NodeId};
use crate::shard::placement::fnv1a;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long a node keeps receiving a conversation after its last session of it left.
pub(super) const LINGER: Duration = Duration::from_secs(10);

/// A fingerprint of a live set (sorted ids): two nodes with the same live set
/// agree on every owner. The same on every build (no `std` hasher).
pub(super) fn fingerprint(live: &[NodeId]) -> u64 {
    live.iter().fold(0x6c62_272e_07bb_0142, |h, n| (h ^ fnv1a(n)).rotate_left(17).wrapping_mul(0x100_0000_01b3))
}

/// What a node's shards need of one conversation.
#[derive(Debug, Default)]
struct Need {
    /// Shards with sessions subscribed to it.
    shards: Vec<usize>,
    /// The owner node that confirmed it sends this node the conversation's fan-outs.
    registered: Option<NodeId>,
    /// No shard needs it since then.
    idle_since: Option<Instant>,
}

/// What a shard's want of a conversation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Want {
    /// Nothing: this node owns it, or its owner already sends it here.
    Ready,
    /// Register with this owner node first (and wait for its answer).
    Register(NodeId),
}

/// The conversations this node's shards need (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Needs {
    convs: HashMap<ConvId, Need>,
}

impl Needs {
    /// `shard` has a session subscribed to `conv`, owned by `owner` (None:
    /// this node, or no live set yet).
    pub(super) fn want(&mut self, conv: ConvId, shard: usize, owner: Option<&NodeId>) -> Want {
        let need = self.convs.entry(conv).or_default();
        if !need.shards.contains(&shard) {
            need.shards.push(shard);
        }
        need.idle_since = None;
        match owner {
            Some(o) if need.registered.as_ref() != Some(o) => Want::Register(o.clone()),
            _ => Want::Ready,
        }
    }

    /// `owner` confirmed it sends this node the fan-outs of `convs`.
    pub(super) fn registered(&mut self, owner: &NodeId, convs: &[ConvId]) {
        for c in convs {
            if let Some(need) = self.convs.get_mut(c) {
                need.registered = Some(owner.clone());
            }
        }
    }

    /// `shard` has no session of `conv` left.
    pub(super) fn release(&mut self, conv: ConvId, shard: usize, now: Instant) {
        if let Some(need) = self.convs.get_mut(&conv) {
            need.shards.retain(|&s| s != shard);
            if need.shards.is_empty() && need.idle_since.is_none() {
                need.idle_since = Some(now);
            }
        }
    }

    /// Forgets what no shard needed for [`LINGER`]: what to tell each owner
    /// that confirmed it (the rest were never registered anywhere).
    pub(super) fn expire(&mut self, now: Instant) -> HashMap<NodeId, Vec<ConvId>> {
        let mut gone: HashMap<NodeId, Vec<ConvId>> = HashMap::new();
        self.convs.retain(|&conv, need| {
            let keep = need.idle_since.is_none_or(|t| now.saturating_duration_since(t) < LINGER);
            if !keep && let Some(owner) = need.registered.take() {
                gone.entry(owner).or_default().push(conv);
            }
            keep
        });
        gone
    }

    /// The whole list for each live node but `me`: the conversations it owns
    /// among those needed here (empty lists too: an owner waits for every node's).
    pub(super) fn lists(&self, live: &[NodeId], me: &NodeId) -> HashMap<NodeId, Vec<ConvId>> {
        let mut out: HashMap<NodeId, Vec<ConvId>> =
            live.iter().filter(|n| *n != me).map(|n| (n.clone(), Vec::new())).collect();
        for &conv in self.convs.keys() {
            if let Some(owner) = crate::shard::owner_node(conv, live)
                && let Some(list) = out.get_mut(owner)
            {
                list.push(conv);
            }
        }
        out
    }

    /// How many conversations are needed here (or lingering).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.convs.len()
    }
}

/// Where an owner sends a fan-out of one of its conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Targets {
    /// `chat:fanout`, to every node: who needs it is not known yet, or every
    /// other node does (one publish then costs less than one per node).
    Broadcast,
    /// `chat:node:<id>` of each (none: no other node needs it).
    Nodes(Vec<NodeId>),
}

/// As an owner: which other nodes need which of its conversations (see the module doc).
#[derive(Debug)]
pub(super) struct Wanted {
    me: NodeId,
    live: LiveSet,
    fingerprint: u64,
    by_conv: HashMap<ConvId, Vec<NodeId>>,
    by_node: HashMap<NodeId, HashSet<ConvId>>,
    /// The live-set fingerprint of each node's last whole list.
    lists: HashMap<NodeId, u64>,
}

impl Wanted {
    /// Knows nothing yet: broadcasts.
    pub(super) fn new(me: NodeId) -> Self {
        Self {
            me,
            live: LiveSet::from(Vec::new()),
            fingerprint: 0,
            by_conv: HashMap::new(),
            by_node: HashMap::new(),
            lists: HashMap::new(),
        }
    }

    /// The live set changed: nodes that left need nothing, and owners may
    /// have moved, so nothing is targeted until every live node's whole list
    /// for this live set came (a list sent for it already counts).
    pub(super) fn set_live(&mut self, live: LiveSet) {
        self.fingerprint = fingerprint(&live);
        let gone: Vec<NodeId> = self.by_node.keys().filter(|n| !live.contains(n)).cloned().collect();
        for n in gone {
            self.replace(&n, None, &[]);
            self.by_node.remove(&n);
        }
        self.lists.retain(|n, _| live.contains(n));
        self.live = live;
    }

    /// `from` needs `convs`.
    pub(super) fn add(&mut self, from: &NodeId, convs: &[ConvId]) {
        for &c in convs {
            if self.by_node.entry(from.clone()).or_default().insert(c) {
                self.by_conv.entry(c).or_default().push(from.clone());
            }
        }
    }

    /// `from` no longer needs `convs`.
    pub(super) fn remove(&mut self, from: &NodeId, convs: &[ConvId]) {
        let Some(mine) = self.by_node.get_mut(from) else { return };
        for c in convs {
            if mine.remove(c)
                && let Some(nodes) = self.by_conv.get_mut(c)
            {
                nodes.retain(|n| n != from);
                if nodes.is_empty() {
                    self.by_conv.remove(c);
                }
            }
        }
    }

    /// `from`'s whole list, as of the live set with fingerprint `live` (None:
    /// forget `from`, it is gone): replaces what it said before.
    pub(super) fn replace(&mut self, from: &NodeId, live: Option<u64>, convs: &[ConvId]) {
        let old: Vec<ConvId> = self.by_node.get(from).map(|s| s.iter().copied().collect()).unwrap_or_default();
        self.remove(from, &old);
        self.add(from, convs);
        match live {
            Some(fp) => drop(self.lists.insert(from.clone(), fp)),
            None => drop(self.lists.remove(from)),
        }
    }

    /// Where a fan-out of `conv` goes.
    pub(super) fn targets(&self, conv: ConvId) -> Targets {
        let others = self.live.iter().filter(|n| *n != &self.me);
        let known = !self.live.is_empty() && others.clone().all(|n| self.lists.get(n) == Some(&self.fingerprint));
        if !known {
            return Targets::Broadcast;
        }
        let nodes: Vec<NodeId> = self
            .by_conv
            .get(&conv)
            .map(|v| v.iter().filter(|n| self.live.contains(n) && *n != &self.me).cloned().collect())
            .unwrap_or_default();
        if nodes.len() > 1 && nodes.len() == others.count() {
            return Targets::Broadcast;
        }
        Targets::Nodes(nodes)
    }

    /// Conversations some node needs (bounded: each by the live nodes).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_conv.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn live(ids: &[&str]) -> LiveSet {
        ids.iter().map(|s| NodeId::from(*s)).collect::<Vec<_>>().into()
    }

    fn n(s: &str) -> NodeId {
        Arc::from(s)
    }

    /// An owner `a` of three live nodes that heard both others' whole lists.
    fn known_owner(b_list: &[ConvId], c_list: &[ConvId]) -> Wanted {
        let l = live(&["a", "b", "c"]);
        let mut w = Wanted::new(n("a"));
        w.set_live(l.clone());
        w.replace(&n("b"), Some(fingerprint(&l)), b_list);
        w.replace(&n("c"), Some(fingerprint(&l)), c_list);
        w
    }

    #[test]
    fn an_owner_broadcasts_until_every_live_node_sent_its_whole_list() {
        let l = live(&["a", "b", "c"]);
        let mut w = Wanted::new(n("a"));
        assert_eq!(w.targets(1), Targets::Broadcast, "knows nothing yet");
        w.set_live(l.clone());
        w.add(&n("b"), &[1]);
        assert_eq!(w.targets(1), Targets::Broadcast, "c may need it");
        w.replace(&n("b"), Some(fingerprint(&l)), &[1]);
        w.replace(&n("c"), Some(fingerprint(&live(&["a", "c"]))), &[]);
        assert_eq!(w.targets(1), Targets::Broadcast, "c's list was for another live set");
        w.replace(&n("c"), Some(fingerprint(&l)), &[]);
        assert_eq!(w.targets(1), Targets::Nodes(vec![n("b")]));
        assert_eq!(w.targets(2), Targets::Nodes(vec![]), "nobody needs conversation 2: nothing sent");
    }

    #[test]
    fn a_node_needing_a_conversation_gets_it_and_stops_when_it_says_so() {
        let mut w = known_owner(&[], &[]);
        assert_eq!(w.targets(7), Targets::Nodes(vec![]));
        w.add(&n("c"), &[7]);
        w.add(&n("c"), &[7]);
        assert_eq!(w.targets(7), Targets::Nodes(vec![n("c")]), "once, however often it asks");
        w.remove(&n("c"), &[7]);
        assert_eq!(w.targets(7), Targets::Nodes(vec![]));
        assert_eq!(w.len(), 0, "nothing kept for a conversation nobody needs");
    }

    #[test]
    fn every_other_node_needing_it_is_one_broadcast() {
        let w = known_owner(&[5, 6], &[5]);
        assert_eq!(w.targets(5), Targets::Broadcast);
        assert_eq!(w.targets(6), Targets::Nodes(vec![n("b")]));
        // With one other node, its own channel costs the same and reaches no one else.
        let l = live(&["a", "b"]);
        let mut w = Wanted::new(n("a"));
        w.set_live(l.clone());
        w.replace(&n("b"), Some(fingerprint(&l)), &[5]);
        assert_eq!(w.targets(5), Targets::Nodes(vec![n("b")]));
    }

    #[test]
    fn a_whole_list_replaces_what_a_node_said_before() {
        let mut w = known_owner(&[1, 2], &[2]);
        let fp = fingerprint(&live(&["a", "b", "c"]));
        w.replace(&n("b"), Some(fp), &[3]);
        assert_eq!(w.targets(1), Targets::Nodes(vec![]));
        assert_eq!(w.targets(2), Targets::Nodes(vec![n("c")]));
        assert_eq!(w.targets(3), Targets::Nodes(vec![n("b")]));
    }

    #[test]
    fn a_live_set_change_broadcasts_until_the_lists_for_it_came_and_drops_nodes_gone() {
        let mut w = known_owner(&[1], &[1, 2]);
        // c leaves: its needs go, and b's list was for the old live set.
        let l2 = live(&["a", "b"]);
        w.set_live(l2.clone());
        assert_eq!(w.targets(1), Targets::Broadcast);
        w.replace(&n("b"), Some(fingerprint(&l2)), &[1]);
        assert_eq!(w.targets(2), Targets::Nodes(vec![]), "c's needs were dropped with c");
        assert_eq!(w.targets(1), Targets::Nodes(vec![n("b")]));
        // d joins; its list came before this owner saw it join: it counts.
        let l3 = live(&["a", "b", "d"]);
        w.replace(&n("d"), Some(fingerprint(&l3)), &[2]);
        w.replace(&n("b"), Some(fingerprint(&l3)), &[1]);
        w.set_live(l3);
        assert_eq!(w.targets(2), Targets::Nodes(vec![n("d")]));
    }

    #[test]
    fn a_node_registers_once_per_owner_and_again_when_the_owner_moves() {
        let mut needs = Needs::default();
        assert_eq!(needs.want(9, 0, None), Want::Ready, "owned here");
        assert_eq!(needs.want(9, 1, Some(&n("b"))), Want::Register(n("b")));
        assert_eq!(needs.want(9, 2, Some(&n("b"))), Want::Register(n("b")), "not confirmed yet: asks too");
        needs.registered(&n("b"), &[9]);
        assert_eq!(needs.want(9, 0, Some(&n("b"))), Want::Ready);
        assert_eq!(needs.want(9, 0, Some(&n("c"))), Want::Register(n("c")), "a new owner knows nothing of it");
    }

    #[test]
    fn a_conversation_no_shard_needs_is_given_up_after_the_linger() {
        let t0 = Instant::now();
        let mut needs = Needs::default();
        needs.want(4, 0, Some(&n("b")));
        needs.want(4, 1, Some(&n("b")));
        needs.want(5, 0, Some(&n("c")));
        needs.registered(&n("b"), &[4]);
        needs.release(4, 0, t0);
        assert!(needs.expire(t0 + LINGER * 2).is_empty(), "shard 1 still needs it");
        needs.release(4, 1, t0);
        needs.release(5, 0, t0);
        assert!(needs.expire(t0 + LINGER / 2).is_empty(), "lingers");
        // Needed again within the linger: kept, no new registration.
        assert_eq!(needs.want(4, 3, Some(&n("b"))), Want::Ready);
        needs.release(4, 3, t0 + LINGER / 2);
        let gone = needs.expire(t0 + LINGER);
        assert!(gone.is_empty(), "4 lingers from its last release; 5 was never confirmed: {gone:?}");
        assert_eq!(needs.len(), 1);
        let gone = needs.expire(t0 + LINGER * 2);
        assert_eq!(gone, HashMap::from([(n("b"), vec![4])]), "the owner that confirmed it is told");
        assert_eq!(needs.len(), 0);
    }

    #[test]
    fn whole_lists_go_to_every_live_node_by_owner() {
        let l = live(&["a", "b", "c"]);
        let mut needs = Needs::default();
        let convs: Vec<ConvId> = (1..=30).collect();
        for &c in &convs {
            needs.want(c, 0, None);
        }
        let lists = needs.lists(&l, &n("a"));
        assert_eq!(lists.len(), 2, "one for each other node, even if empty");
        for (node, list) in &lists {
            for c in list {
                assert_eq!(crate::shard::owner_node(*c, &l), Some(node));
            }
        }
        let listed: usize = lists.values().map(Vec::len).sum();
        let mine = convs.iter().filter(|&&c| crate::shard::owner_node(c, &l) == Some(&n("a"))).count();
        assert_eq!(listed + mine, convs.len());
        assert_eq!(fingerprint(&l), fingerprint(&live(&["a", "b", "c"])));
        assert_ne!(fingerprint(&l), fingerprint(&live(&["a", "b"])));
    }
}
