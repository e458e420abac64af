//! The router of a shard's mailbox: every [`ShardMsg`] goes to the one place
//! that handles it — a conversation's owner, the subscribed sessions, the
//! user's sessions, the presence table, (cluster) the owner-side executor
//! of a forwarded request, or the command an operator tool asked for.

use crate::command;
use crate::conversation;
use crate::ids::{ConvId, LiveSet, NodeId};
use crate::presence;
use crate::shard::broker::overloaded;
use crate::shard::{
    ConvMsg, Fanout, LocalCommand, PresenceMsg, ShardCtx, ShardMsg, UserEvent, home_shard, owner_lost, owner_node,
};
use chat_protocol::v1::reply;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Cluster: forwarded requests one shard serves at once; past it the origin
/// gets the retryable "owner node is overloaded".
const MAX_FORWARDED_PER_SHARD: usize = 1024;

/// The shard's mailbox: routes mesh messages to actors, sessions and presence.
pub(super) async fn mailbox(ctx: Rc<ShardCtx>, mut rx: mpsc::Receiver<ShardMsg>) {
    // Cluster: forwarded requests being served on this shard, at most this many.
    let forwarded = Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDED_PER_SHARD));
    while let Some(msg) = rx.recv().await {
        match msg {
            ShardMsg::Conv(conv, m) => to_owner(&ctx, conv, m).await,
            ShardMsg::Fanout(conv, f) => fanout(&ctx, conv, &f),
            ShardMsg::User(user, ev) => user_event(&ctx, &user, &ev),
            ShardMsg::Remote(conv, f) => {
                for s in ctx.state.sessions.borrow().of_conv(conv) {
                    s.deliver(conv, &f);
                }
            }
            ShardMsg::Live(live) => on_live(&ctx, live),
            ShardMsg::ForgetNode(node) => {
                let flips = ctx.state.presence.borrow_mut().forget_node(&node);
                for (user, online, version) in flips {
                    presence::fanout(&ctx, user, online, version);
                }
            }
            ShardMsg::RemotePresence { user, node, count } => remote_presence(&ctx, user, node, count),
            ShardMsg::RateTotal { user, kind, window, others } => ctx.user_limits.learn(kind, &user, window, others),
            ShardMsg::Forwarded(req) => match forwarded.clone().try_acquire_owned() {
                Ok(permit) => {
                    let ctx = ctx.clone();
                    tokio::task::spawn_local(async move {
                        command::owner::serve_forwarded(ctx, *req).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    if let Some(c) = &ctx.shared.broker {
                        c.reply(req.from, req.req_id, reply::Result::Error(overloaded().to_proto()));
                    }
                }
            },
            ShardMsg::Local(run) => {
                let ctx = ctx.clone();
                tokio::task::spawn_local(async move {
                    let LocalCommand { caller, body, reply } = *run;
                    let req = command::Requester { ctx, caller, session: 0 };
                    let _ = reply.send(command::execute(&req, &RefCell::default(), body).await);
                });
            }
            ShardMsg::Tls(cfg) => {
                if let Some(ep) = ctx.state.endpoint.borrow().as_ref() {
                    ep.set_server_config(Some(*cfg));
                }
            }
            ShardMsg::Presence(p) => presence_msg(&ctx, p),
        }
    }
}

/// To the actor of a conversation homed here (started on first use); an
/// actor that stopped (unknown conversation, or idle) is replaced once.
async fn to_owner(ctx: &Rc<ShardCtx>, conv: ConvId, mut m: ConvMsg) {
    for _ in 0..2 {
        let tx =
            ctx.state.actors.borrow_mut().entry(conv).or_insert_with(|| conversation::spawn(ctx.clone(), conv)).clone();
        match tx.send(m).await {
            Ok(()) => break,
            Err(back) => {
                ctx.state.actors.borrow_mut().remove(&conv);
                m = back.0;
            }
        }
    }
}

/// From a local owner to the sessions here that subscribe to `conv`.
fn fanout(ctx: &ShardCtx, conv: ConvId, f: &Fanout) {
    let sessions = ctx.state.sessions.borrow();
    let subscribed = sessions.of_conv(conv);
    // In a cluster owners send to every shard (sessions attach
    // without telling the owner), so there is nothing to detach.
    if subscribed.is_empty() && ctx.shared.broker.is_none() {
        // Nobody here any more: tell the owner (lazily, so this
        // Detach is ordered before any later Attach from this shard).
        let _ = ctx.shared.mesh.try_send(
            home_shard(conv, ctx.shared.mesh.len()),
            ShardMsg::Conv(conv, ConvMsg::Detach { shard: ctx.state.id }),
        );
    }
    for s in subscribed {
        s.deliver(conv, f);
    }
}

/// To every session of `user` here; a removal is revoked at once, before
/// anything still queued for the session is written.
fn user_event(ctx: &ShardCtx, user: &str, ev: &UserEvent) {
    let targets: Vec<_> = ctx.state.sessions.borrow().of_user(user).to_vec();
    for s in targets {
        match ev {
            UserEvent::Removed(conv, _) => {
                s.revoked.borrow_mut().insert(*conv);
                if ctx.state.sessions.borrow_mut().unsubscribe(*conv, s.id) {
                    ctx.released(*conv);
                }
            }
            UserEvent::Added(conv, _, _) => {
                s.revoked.borrow_mut().remove(conv);
            }
            UserEvent::Close(code, reason) => {
                s.close(*code, reason.clone());
                continue;
            }
        }
        s.deliver_user(ev);
    }
}

/// Cluster: a user's device count on another node, at the user's home shard.
fn remote_presence(ctx: &Rc<ShardCtx>, user: Arc<str>, node: NodeId, count: u32) {
    let known = ctx.state.presence.borrow().knows_remote(&user, &node);
    let flip = ctx.state.presence.borrow_mut().set_remote(user.clone(), node, count);
    if let Some((online, version)) = flip {
        presence::fanout(ctx, user, online, version);
    } else if count == 0 && !known {
        // We never heard this user come online there (we started
        // later, or pub/sub lost it): ask the presence keys.
        tokio::task::spawn_local(presence::recheck(ctx.clone(), user));
    }
}

/// Per-user bookkeeping at the user's home shard: devices and message rate.
fn presence_msg(ctx: &ShardCtx, p: PresenceMsg) {
    let mut table = ctx.state.presence.borrow_mut();
    match p {
        PresenceMsg::Connected(u, reply) => {
            let change = table.connect(u.clone());
            if let Some(c) = &ctx.shared.broker {
                c.presence(u, change.devices);
            }
            let _ = reply.send(change);
        }
        PresenceMsg::Disconnected(u, reply) => {
            let change = table.disconnect(&u);
            if let Some(c) = &ctx.shared.broker {
                c.presence(u, change.devices);
            }
            let _ = reply.send(change);
        }
        PresenceMsg::RateCheck(user, kind, reply) => {
            drop(reply.send(ctx.user_limits.check(kind, &user, ctx.shared.broker.as_deref())))
        }
        PresenceMsg::Query(users, reply) => {
            let out = users
                .into_iter()
                .map(|u| {
                    let (d, v) = table.get(&u);
                    (u, d, v)
                })
                .collect();
            let _ = reply.send(out);
        }
    }
}

/// The live nodes changed: actors of conversations now owned elsewhere stop
/// (they finish what they hold; the store's seq fence settles any overlap),
/// and users whose devices were on nodes that left go offline.
fn on_live(ctx: &Rc<ShardCtx>, live: LiveSet) {
    let before = std::mem::replace(&mut *ctx.state.live.borrow_mut(), live.clone());
    let Some(broker) = &ctx.shared.broker else { return };
    let me = broker.node_id();
    ctx.state.actors.borrow_mut().retain(|conv, _| owner_node(*conv, &live).is_none_or(|owner| owner == me));
    // An owner that left may have stored commits it never fanned out (and
    // nobody nudges a conversation nobody touches again): sessions here of
    // its conversations read whatever is stored past what they sent.
    let sessions = ctx.state.sessions.borrow();
    let check = Fanout::Nudge { head: u64::MAX };
    for conv in sessions.convs().filter(|&c| owner_lost(c, &before, &live)) {
        for s in sessions.of_conv(conv) {
            s.deliver(conv, &check);
        }
    }
    drop(sessions);
    let flips = ctx.state.presence.borrow_mut().drop_nodes(&live);
    for (user, online, version) in flips {
        presence::fanout(ctx, user, online, version);
    }
}
