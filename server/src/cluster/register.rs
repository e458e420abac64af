//! Fan-out where members are: the bridge's effects of the interest rules
//! ([`super::interest`]). On this node's side: a shard's want of a
//! conversation owned elsewhere is registered with its owner (batched per
//! owner, answered by it) before the session reads its catch-up from the
//! store; what no shard needs any more is given up; whole lists go to every
//! live node when the live set changes and every [`LIST_EVERY`].
//! On the owner's side: what nodes say they need, and where each fan-out is
//! published. It decides nothing itself.

use super::bridge::{Bridge, publish};
use super::interest::{Targets, Want, fingerprint};
use super::keys::{FANOUT_CHANNEL, node_channel};
use super::wire::{self, InterestMsg};
use crate::ids::{ConvId, NodeId};
use crate::shard::owner_node;
use bytes::Bytes;
use chat_protocol::cluster::v1::Interest;
use chat_protocol::v1::{self, reply};
use fred::prelude::Client;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Whole lists go to every node this often (checked at heartbeats): they
/// repair whatever an owner missed (a lost registration, a restart within
/// `node_ttl_ms`) and drop what it kept too long.
pub(super) const LIST_EVERY: Duration = Duration::from_secs(10);
/// Longest a session waits for its owner to confirm a registration (at most
/// `forward_timeout_ms`). Sessions wait for theirs before their `Welcome`, so
/// an owner that died and is still in the live set must not hold every
/// reconnecting client for the whole forward timeout: after this the session
/// goes on, whole lists go at the next beat (a new owner targets nothing
/// until it has them), and the next message or nudge fills any gap.
const REGISTER_WAIT: Duration = Duration::from_secs(1);

impl Bridge {
    /// The owner of `conv` as this node sees it, unless it is this node.
    fn remote_owner(&self, conv: ConvId) -> Option<NodeId> {
        let live = self.live.borrow();
        owner_node(conv, &live).filter(|o| **o != self.node_id).cloned()
    }

    /// `shard` has a session subscribed to `conv`: `ready` is answered once
    /// the owner sends this node its fan-outs (at once if it already does,
    /// or owns it here), or gave no answer in `forward_timeout_ms`.
    pub(super) fn want(&self, conv: ConvId, shard: usize, ready: oneshot::Sender<()>) {
        let owner = self.remote_owner(conv);
        match self.needs.borrow_mut().want(conv, shard, owner.as_ref()) {
            Want::Ready => drop(ready.send(())),
            Want::Register(owner) => {
                let mut batches = self.wants.borrow_mut();
                let b = batches.entry(owner).or_default();
                if !b.convs.contains(&conv) {
                    b.convs.push(conv);
                }
                b.waiting.push(ready);
            }
        }
    }

    /// `shard` has no session of `conv` left.
    pub(super) fn release(&self, conv: ConvId, shard: usize) {
        self.needs.borrow_mut().release(conv, shard, Instant::now());
    }

    /// Sends the wants gathered so far, one request per owner; on its answer
    /// (or its timeout, after which the next beat sends whole lists) the
    /// waiting sessions go on.
    pub(super) fn flush_wants(self: &Rc<Self>, client: &Client) {
        let batches = std::mem::take(&mut *self.wants.borrow_mut());
        for (owner, b) in batches {
            let (tx, rx) = oneshot::channel();
            let req_id = self.pending.insert(owner.clone(), tx);
            let convs = b.convs;
            let add = InterestMsg::Add { req_id, convs: convs.clone() };
            publish(client, node_channel(&owner), self.sealed(&wire::encode(&self.node_id, wire::interest(add))));
            let me = self.clone();
            let timeout = Duration::from_millis(self.cfg.forward_timeout_ms).min(REGISTER_WAIT);
            tokio::task::spawn_local(async move {
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(reply::Result::Ok(_))) => me.needs.borrow_mut().registered(&owner, &convs),
                    other => {
                        tracing::warn!(owner = %owner, answer = ?other.ok(), "no answer to a registration; whole lists at the next beat");
                        me.lists_due.set(true);
                    }
                }
                for w in b.waiting {
                    let _ = w.send(());
                }
            });
        }
    }

    /// Every heartbeat: give up what lingered long enough, and send whole
    /// lists when due.
    pub(super) fn interest_beat(&self, client: &Client) {
        for (owner, convs) in self.needs.borrow_mut().expire(Instant::now()) {
            let gone = wire::interest(InterestMsg::Remove(convs));
            publish(client, node_channel(&owner), self.sealed(&wire::encode(&self.node_id, gone)));
        }
        if self.lists_due.replace(false) || self.lists_sent.get().elapsed() >= LIST_EVERY {
            self.send_lists(client);
        }
    }

    /// Sends every other live node the whole list of its conversations needed here.
    pub(super) fn send_lists(&self, client: &Client) {
        self.lists_sent.set(Instant::now());
        let live = self.live.borrow().clone();
        let fp = fingerprint(&live);
        for (node, convs) in self.needs.borrow().lists(&live, &self.node_id) {
            let list = wire::interest(InterestMsg::List { live: fp, convs });
            publish(client, node_channel(&node), self.sealed(&wire::encode(&self.node_id, list)));
        }
    }

    /// What `from` says it needs of this node's conversations; a registration
    /// is answered once recorded (every later fan-out reaches `from`).
    pub(super) fn interest(&self, client: &Client, from: &NodeId, i: Interest) {
        let m = match wire::interest_msg(i) {
            Ok(m) => m,
            Err(e) => return tracing::warn!(from = %from, error = %e, "interest message dropped"),
        };
        let mut wanted = self.wanted.borrow_mut();
        match m {
            InterestMsg::Add { req_id, convs } => {
                wanted.add(from, &convs);
                if req_id != 0 {
                    let ok = wire::reply(&self.node_id, req_id, reply::Result::Ok(v1::Empty {}));
                    publish(client, node_channel(from), self.sealed(&ok));
                }
            }
            InterestMsg::Remove(convs) => wanted.remove(from, &convs),
            InterestMsg::List { live, convs } => wanted.replace(from, Some(live), &convs),
        }
    }

    /// Publishes a fan-out of `conv` (an encoded envelope) where it is needed.
    pub(super) fn publish_fanout(&self, client: &Client, conv: ConvId, payload: &[u8]) {
        match self.wanted.borrow().targets(conv) {
            Targets::Broadcast => publish(client, FANOUT_CHANNEL.to_string(), self.sealed(payload)),
            Targets::Nodes(nodes) => {
                if nodes.is_empty() {
                    return;
                }
                let sealed: Bytes = self.sealed(payload);
                for n in nodes {
                    publish(client, node_channel(&n), sealed.clone());
                }
            }
        }
    }
}
