//! Membership: this node's claim on its id, the heartbeat that keeps it in
//! `chat:nodes`, and the live set read back and handed to every shard (who
//! owns what follows from it, in [`crate::shard::placement`]). It does not
//! decide ownership, and the heartbeat never waits on a shard.

use super::bridge::{Bridge, publish};
use super::keys::{ClusterError, FANOUT_CHANNEL, NODES_KEY, node_id_key};
use super::wire;
use crate::ids::{LiveSet, NodeId};
use crate::shard::ShardMsg;
use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

fn unix_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

impl Bridge {
    /// Claims this node id for this incarnation (`SET NX` with a TTL the
    /// heartbeat refreshes). A claim held by someone else is waited out for
    /// `node_ttl_ms` and a beat (a crashed predecessor's expires); a live
    /// node keeps refreshing its own, and this one refuses to start.
    pub(super) async fn claim_node_id(&self, client: &Client) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.cfg.node_ttl_ms.saturating_add(self.cfg.heartbeat_ms.max(100)));
        loop {
            if self.refresh_claim(client).await.map_err(|e| self.redis_error(e))? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::DuplicateNodeId(self.node_id.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(self.cfg.heartbeat_ms.clamp(10, 500))).await;
        }
    }

    /// Takes or refreshes this node's claim on its id; false if another incarnation holds it.
    async fn refresh_claim(&self, client: &Client) -> Result<bool, Error> {
        let key = node_id_key(&self.node_id);
        if self.claim_if_free(client, &key).await? {
            return Ok(true);
        }
        let held: Option<String> = client.get(&key).await?;
        if held.as_deref() == Some(self.incarnation.as_str()) {
            let ttl = Expiration::PX(self.cfg.node_ttl_ms as i64);
            let _: () = client.set(&key, self.incarnation.as_str(), Some(ttl), Some(SetOptions::XX), false).await?;
            return Ok(true);
        }
        // Expired between the two reads: one more try.
        Ok(held.is_none() && self.claim_if_free(client, &key).await?)
    }

    /// `SET key <incarnation> NX PX node_ttl_ms`: whether it was free (and is ours now).
    async fn claim_if_free(&self, client: &Client, key: &str) -> Result<bool, Error> {
        let ttl = Expiration::PX(self.cfg.node_ttl_ms as i64);
        let set: Option<String> =
            client.set(key, self.incarnation.as_str(), Some(ttl), Some(SetOptions::NX), false).await?;
        Ok(set.is_some())
    }

    /// Runs a heartbeat now unless one is running.
    pub(super) fn heartbeat_now(self: &Rc<Self>, client: &Client) {
        if !self.heartbeat_running.replace(true) {
            let (me, client) = (self.clone(), client.clone());
            tokio::task::spawn_local(async move {
                if let Err(e) = me.heartbeat(&client).await {
                    tracing::warn!(error = %e, "cluster heartbeat failed (Redis unreachable?)");
                }
                me.heartbeat_running.set(false);
            });
        }
    }

    /// One heartbeat: announce this node, read the live set (pushing it to
    /// the shards when it changed), refresh this node's presence keys.
    pub(super) async fn heartbeat(&self, client: &Client) -> Result<(), Error> {
        if !self.refresh_claim(client).await? {
            tracing::error!(node = %self.node_id, "another node took this node id (two nodes share one cluster.node_id?)");
        }
        let live = self.read_live_set(client).await?;
        if *live != **self.live.borrow() {
            self.live_set_changed(client, live.clone());
        }
        self.hand_live(&live);
        self.refresh_presence_keys(client).await?;
        self.counters.last_beat_ms.store(unix_ms(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// `ZADD` this node with now, drop members older than `node_ttl_ms`, read the rest.
    async fn read_live_set(&self, client: &Client) -> Result<LiveSet, Error> {
        let now = unix_ms();
        let oldest = now.saturating_sub(self.cfg.node_ttl_ms) as f64;
        let _: () = client.zadd(NODES_KEY, None, None, false, false, (now as f64, self.node_id.to_string())).await?;
        let _: () = client.zremrangebyscore(NODES_KEY, f64::NEG_INFINITY, oldest).await?;
        let members: Vec<String> = client.zrangebyscore(NODES_KEY, oldest, f64::INFINITY, false, None).await?;
        let mut set: BTreeSet<NodeId> = members.iter().map(|m| Arc::from(m.as_str())).collect();
        set.insert(self.node_id.clone());
        Ok(set.into_iter().collect::<Vec<_>>().into())
    }

    fn live_set_changed(&self, client: &Client, live: LiveSet) {
        tracing::info!(nodes = ?live, "live nodes changed");
        let gained = live.iter().any(|n| !self.live.borrow().contains(n));
        let failed = self.pending.fail_gone(&live);
        self.searches.fail_gone_with(&live, |to| Err(format!("node {to} left the cluster during the search")));
        if failed > 0 {
            tracing::info!(requests = failed, "requests forwarded to nodes that left answered for retry");
        }
        *self.live.borrow_mut() = live.clone();
        // Owners may have moved: every owner hears again what this node needs,
        // and targets nothing until it heard every node's list for this live set.
        self.wanted.borrow_mut().set_live(live);
        self.send_lists(client);
        if gained {
            // A node that joined or came back knows nothing of our users,
            // and what we held of its users was dropped: everyone
            // (this node too) publishes its counts again.
            self.republish_due.set(true);
            publish(client, FANOUT_CHANNEL.to_string(), self.sealed(&wire::republish_request(&self.node_id)));
        }
    }

    /// Hands the live set to every shard that does not have it yet. A shard
    /// must not miss a change of owners, but the heartbeat never waits on
    /// one: a full mailbox gets it at the next beat.
    pub(super) fn hand_live(&self, live: &LiveSet) {
        for (shard, sent) in self.live_sent.borrow_mut().iter_mut().enumerate() {
            if sent.as_ref() != Some(live) {
                match self.mesh.try_send(shard, ShardMsg::Live(live.clone())) {
                    Ok(()) => *sent = Some(live.clone()),
                    Err(_) => tracing::warn!(shard, "live set not handed to a full shard mailbox; next beat"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cluster::bridge::Bridge;
    use crate::ids::{LiveSet, NodeId};
    use crate::shard::{Mesh, ShardMsg};
    use std::sync::Arc;

    #[test]
    fn the_live_set_waits_for_room_without_blocking() {
        let (mesh, mut rx) = Mesh::new(2, 1);
        let b = Bridge::for_tests(mesh.clone());
        mesh.try_send(1, ShardMsg::Live(Arc::from(Vec::new()))).unwrap();
        let live: LiveSet = ["node-0", "node-1"].map(NodeId::from).to_vec().into();
        b.hand_live(&live);
        assert!(matches!(rx[0].try_recv(), Ok(ShardMsg::Live(l)) if l == live));
        rx[1].try_recv().unwrap();
        assert!(rx[1].try_recv().is_err(), "shard 1 was full: not yet");
        b.hand_live(&live);
        assert!(rx[0].try_recv().is_err(), "shard 0 has it: not twice");
        assert!(matches!(rx[1].try_recv(), Ok(ShardMsg::Live(l)) if l == live));
    }
}
