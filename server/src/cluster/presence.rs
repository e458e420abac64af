//! Presence across nodes, as the bridge keeps it: this node's device count
//! per user in `chat:presence:<user>:<node>` (TTL `node_ttl_ms`, refreshed
//! every heartbeat) and published on `chat:presence`; the keys of the other
//! live nodes read on request; every count published again when the others'
//! view may be stale. Who is online for a session is the shards' business
//! ([`crate::shard::presence`]), not this file's.

use super::bridge::Bridge;
use super::keys::{PRESENCE_CHANNEL, presence_key};
use super::wire;
use crate::ids::NodeId;
use crate::shard::broker::CountsByNode;
use crate::shard::{ShardMsg, user_shard};
use chat_protocol::cluster::v1::RemotePresence;
use fred::prelude::*;
use fred::types::Expiration;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Presence publishes per pipeline when a node publishes all its counts again.
const REPUBLISH_CHUNK: usize = 512;

impl Bridge {
    /// The user's device count on this node changed: write (or delete) its
    /// key and tell the others, in the order of the changes.
    pub(super) fn set_presence(&self, client: &Client, user: Arc<str>, count: u32) {
        let key = presence_key(&user, &self.node_id);
        if count == 0 {
            self.local_presence.borrow_mut().remove(&user);
        } else {
            self.local_presence.borrow_mut().insert(user.clone(), count);
        }
        let payload = self.sealed(&wire::presence(&self.node_id, &user, count));
        let (client, ttl) = (client.clone(), self.cfg.node_ttl_ms as i64);
        tokio::task::spawn_local(async move {
            let r: Result<(), Error> = if count == 0 {
                client.del(key).await
            } else {
                client.set(key, count as i64, Some(Expiration::PX(ttl)), None, false).await
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "presence key not written");
            }
            let _: Result<(), Error> = client.publish(PRESENCE_CHANNEL, payload).await;
        });
    }

    /// Reads the devices of `users` on every other live node (one `MGET`) and
    /// answers on `reply`; nothing on a Redis error.
    pub(super) fn query_presence(&self, client: &Client, users: Vec<Arc<str>>, reply: oneshot::Sender<CountsByNode>) {
        let others: Vec<NodeId> = self.live.borrow().iter().filter(|n| **n != self.node_id).cloned().collect();
        let client = client.clone();
        tokio::task::spawn_local(async move {
            let mut out = CountsByNode::new();
            if !others.is_empty() {
                let keys: Vec<String> =
                    users.iter().flat_map(|u| others.iter().map(move |n| presence_key(u, n))).collect();
                let counts: Result<Vec<Option<i64>>, Error> = client.mget(keys).await;
                if let Ok(counts) = counts {
                    out = counts_by_node(&users, &others, counts);
                }
            }
            let _ = reply.send(out);
        });
    }

    /// Refreshes the TTL of every presence key of this node (one pipeline).
    pub(super) async fn refresh_presence_keys(&self, client: &Client) -> Result<(), Error> {
        let users = self.local_counts();
        if users.is_empty() {
            return Ok(());
        }
        let pipe = client.pipeline();
        for (u, c) in users {
            let key = presence_key(&u, &self.node_id);
            let _: () = pipe.set(key, c as i64, Some(Expiration::PX(self.cfg.node_ttl_ms as i64)), None, false).await?;
        }
        let _: Vec<Value> = pipe.all().await?;
        Ok(())
    }

    /// Publishes every local device count again (pipelined, in bounded
    /// chunks): after a node joined the live set or this subscriber lost
    /// pub/sub, the others' view of this node's users may be stale.
    pub(super) fn republish_presence(&self, client: &Client) {
        let users = self.local_counts();
        if users.is_empty() {
            return;
        }
        let (client, from, seal) = (client.clone(), self.node_id.clone(), self.seal.clone());
        tokio::task::spawn_local(async move {
            for chunk in users.chunks(REPUBLISH_CHUNK) {
                let pipe = client.pipeline();
                for (u, c) in chunk {
                    let payload = seal.seal(&wire::presence(&from, u, *c), super::seal::now_ms());
                    let _: Result<(), Error> = pipe.publish(PRESENCE_CHANNEL, payload).await;
                }
                if let Err(e) = pipe.all::<Vec<Value>>().await {
                    tracing::debug!(error = %e, "presence not published again");
                    return;
                }
            }
        });
    }

    /// Another node's count of one user: to the user's shard (best-effort:
    /// the periodic resync corrects a count lost at a full mailbox).
    pub(super) fn remote_presence(&self, from: NodeId, p: RemotePresence) {
        let user: Arc<str> = Arc::from(p.user.as_str());
        let shard = user_shard(&user, self.mesh.len());
        let _ = self.mesh.try_send(shard, ShardMsg::RemotePresence { user, node: from, count: p.count });
    }

    /// The keys this node holds (deleted when it leaves).
    pub(super) fn presence_keys(&self) -> Vec<String> {
        self.local_presence.borrow().keys().map(|u| presence_key(u, &self.node_id)).collect()
    }

    fn local_counts(&self) -> Vec<(Arc<str>, u32)> {
        self.local_presence.borrow().iter().map(|(u, c)| (u.clone(), *c)).collect()
    }
}

/// The non-zero counts of an `MGET` of `users` × `others` (user-major), by user.
fn counts_by_node(users: &[Arc<str>], others: &[NodeId], counts: Vec<Option<i64>>) -> CountsByNode {
    let mut out = CountsByNode::new();
    for (i, c) in counts.into_iter().enumerate() {
        let n = u32::try_from(c.unwrap_or(0)).unwrap_or(0);
        if n > 0 {
            let node = others[i % others.len()].clone();
            out.entry(users[i / others.len()].clone()).or_default().push((node, n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_user_major_and_nonsense_is_zero() {
        let users: Vec<Arc<str>> = vec![Arc::from("u1"), Arc::from("u2")];
        let others: Vec<NodeId> = vec![Arc::from("b"), Arc::from("c")];
        let out = counts_by_node(&users, &others, vec![Some(2), None, Some(-1), Some(1 << 40)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[&users[0]], vec![(others[0].clone(), 2)]);
    }
}
