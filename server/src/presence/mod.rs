//! Presence as a service: who of a user's contacts is online, and telling
//! the right sessions when someone comes or goes. The counts live at each
//! user's home shard (`crate::shard::presence::PresenceTable`); this module
//! asks them over the mesh, adds the devices other nodes report (through the
//! broker), announces flips, and in a cluster re-reads the presence keys so a
//! lost "offline" is corrected.

use crate::ids::{ConvId, NodeId};
use crate::shard::{ConvMsg, Fanout, PresenceMsg, ShardCtx, ShardMsg, user_shard};
use crate::store::{ConversationRecord, MemberRecord, MessageStore, Store};
use chat_protocol::v1::ConversationKind;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Whether a member's presence may be shown to the other members of a
/// conversation. Anyone can open a private conversation with anyone (its id
/// follows from the pair), so there the other person counts only once they
/// accepted it: read or wrote in it (their creator always has). Groups, cases
/// and support conversations are made by staff and advocates, who add their
/// members: there everyone counts.
pub fn accepted(rec: &ConversationRecord, m: &MemberRecord) -> bool {
    rec.kind != ConversationKind::Private as i32 || rec.created_by == m.user_id || m.read_seq > 0
}

/// The conversations through which `user`'s presence may be shown.
pub async fn accepted_conversations(store: &Store, user: &str) -> Vec<ConvId> {
    use futures_util::StreamExt;
    /// Conversations looked at at once.
    const AT_ONCE: usize = 16;
    let Ok(convs) = store.user_conversations(user).await else { return Vec::new() };
    futures_util::stream::iter(convs)
        .map(|conv| async move {
            let (rec, m) = futures_util::join!(store.get_conversation(conv), store.member(conv, user));
            match (rec, m) {
                (Ok(Some(rec)), Ok(Some(m))) if accepted(&rec, &m) => Some(conv),
                _ => None,
            }
        })
        .buffer_unordered(AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await
}

/// The members of `conv` whose presence its other members may see.
pub async fn visible_members(store: &Store, conv: ConvId) -> Vec<Arc<str>> {
    let (Ok(Some(rec)), Ok(members)) = (store.get_conversation(conv).await, store.members(conv).await) else {
        return Vec::new();
    };
    members.iter().filter(|m| accepted(&rec, m)).map(|m| Arc::from(m.user_id.as_str())).collect()
}

/// Presence of users, asking each user's home shard.
pub async fn query(ctx: &ShardCtx, users: Vec<Arc<str>>) -> Vec<(Arc<str>, u32, u64)> {
    let mesh = &ctx.shared.mesh;
    let mut by_shard: HashMap<usize, Vec<Arc<str>>> = HashMap::new();
    for u in users {
        by_shard.entry(user_shard(&u, mesh.len())).or_default().push(u);
    }
    let mut out = Vec::new();
    for (shard, users) in by_shard {
        let (tx, rx) = oneshot::channel();
        if mesh.send(shard, ShardMsg::Presence(PresenceMsg::Query(users, tx))).await.is_ok()
            && let Ok(v) = rx.await
        {
            out.extend(v);
        }
    }
    if let Some(cluster) = &ctx.shared.broker {
        // Devices on other nodes, from their presence keys (the authority:
        // pub/sub may have lost a change).
        let remote = cluster.remote_presence(out.iter().map(|(u, _, _)| u.clone()).collect()).await;
        for (u, devices, version) in &mut out {
            if let Some(n) = remote.get(u) {
                *devices += n;
                // A user seen online only through the keys still needs a version above 0.
                *version = (*version).max(1);
            }
        }
    }
    out
}

/// Cluster: a user's presence flipped (all nodes counted): tell this node's
/// sessions of every conversation of the user. Each node does this for
/// itself, so nothing goes through the owners.
pub fn fanout(ctx: &Rc<ShardCtx>, user: Arc<str>, online: bool, version: u64) {
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        let convs = accepted_conversations(&ctx.shared.store, &user).await;
        let mesh = &ctx.shared.mesh;
        for conv in convs {
            for shard in 0..mesh.len() {
                let f = Fanout::Presence { user: user.clone(), online, version };
                let _ = mesh.try_send(shard, ShardMsg::Remote(conv, f));
            }
        }
    });
}

/// Cluster: users this shard holds online on another node read again from
/// the presence keys, every [`crate::shard::broker::Broker::presence_resync_every`]
/// (staggered), so a lost "count 0" keeps nobody online for longer.
pub async fn resync(ctx: Rc<ShardCtx>) {
    /// Users per presence-key read.
    const CHUNK: usize = 512;
    let Some(cluster) = ctx.shared.broker.clone() else { return };
    let every = cluster.presence_resync_every().max(Duration::from_millis(100));
    let first = every.mul_f64(0.5 + rand::random::<f64>() / 2.0);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = ctx.state.presence.borrow().remote_users();
        for chunk in held.chunks(CHUNK) {
            let users: Vec<Arc<str>> = chunk.iter().map(|(u, _)| u.clone()).collect();
            let now = cluster.remote_presence_by_node(users).await;
            let live = ctx.state.live.borrow().clone();
            for (user, nodes) in chunk {
                let counts = now.get(user).map_or(&[][..], |v| v.as_slice());
                // What the keys say, and zero where they say nothing (a live
                // node's key that expired or was deleted).
                let mut updates: Vec<(NodeId, u32)> = counts.to_vec();
                for (n, _) in nodes {
                    if live.contains(n) && !counts.iter().any(|(m, _)| m == n) {
                        updates.push((n.clone(), 0));
                    }
                }
                for (node, count) in updates {
                    // A report that arrived while the keys were read is fresher.
                    let held = nodes.iter().find(|(n, _)| *n == node).map_or(0, |(_, c)| *c);
                    if ctx.state.presence.borrow().remote_count(user, &node) != held {
                        continue;
                    }
                    let flip = ctx.state.presence.borrow_mut().set_remote(user.clone(), node, count);
                    if let Some((online, version)) = flip {
                        fanout(&ctx, user.clone(), online, version);
                    }
                }
            }
        }
    }
}

/// Cluster: a node reported a user offline whom this node never saw online
/// there. If the presence keys show no device on any other node (and none is
/// here), announce offline: sessions that learned "online" from a snapshot
/// must not keep it. Runs on the user's home shard.
pub async fn recheck(ctx: Rc<ShardCtx>, user: Arc<str>) {
    let Some(cluster) = ctx.shared.broker.clone() else { return };
    let remote = cluster.remote_presence(vec![user.clone()]).await;
    if remote.get(&user).copied().unwrap_or(0) > 0 {
        return;
    }
    let version = ctx.state.presence.borrow_mut().confirm_offline(user.clone());
    if let Some(version) = version {
        fanout(&ctx, user, false, version);
    }
}

/// Registers this device with the user's home shard, and on a flip tells
/// every conversation of the user. The user's devices on this node now, or
/// None if the home shard could not count this one.
pub async fn announce(ctx: &Rc<ShardCtx>, user: &Arc<str>, connected: bool) -> Option<u32> {
    let mesh = &ctx.shared.mesh;
    let (tx, rx) = oneshot::channel();
    let user = user.clone();
    let msg =
        if connected { PresenceMsg::Connected(user.clone(), tx) } else { PresenceMsg::Disconnected(user.clone(), tx) };
    if mesh.send(user_shard(&user, mesh.len()), ShardMsg::Presence(msg)).await.is_err() {
        return None;
    }
    let Ok(change) = rx.await else { return None };
    let devices = Some(change.devices);
    if !change.flipped {
        return devices;
    }
    if ctx.shared.broker.is_some() {
        // Every node announces flips to its own sessions (see `fanout`).
        fanout(ctx, user, connected, change.version);
        return devices;
    }
    // The count is settled; telling the user's conversations (store reads)
    // does not hold up the session that connected or left.
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        for conv in accepted_conversations(&ctx.shared.store, &user).await {
            let msg = ConvMsg::Presence { user: user.clone(), online: connected, version: change.version };
            let _ = ctx.shared.mesh.to_owner(conv, msg).await;
        }
    });
    devices
}
