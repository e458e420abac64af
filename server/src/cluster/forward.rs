//! Forwarded requests: a command for a conversation another node owns goes
//! to that node's channel with a request id; its answer comes back on ours
//! and is matched to the waiting caller, or the caller gets a retryable
//! `TIMEOUT`. This file sends requests, takes requests forwarded here to the
//! conversation's home shard and matches answers (the pending map, its ids
//! and timeouts are [`super::pending`]'s). It does not execute commands (the
//! owner's shard does) nor encode envelopes ([`super::wire`]).

use super::bridge::{Bridge, publish};
use super::keys::node_channel;
use super::wire;
use crate::ids::NodeId;
use crate::shard::broker::overloaded;
use crate::shard::{ShardMsg, home_shard};
use chat_protocol::cluster::v1::envelope::Body;
use chat_protocol::cluster::v1::{Forward, ForwardReply};
use chat_protocol::v1::reply;
use fred::prelude::Client;
use tokio::sync::oneshot;

impl Bridge {
    /// Sends a shard's request to `owner`, waiting for its answer on `reply` if any.
    pub(super) fn send_forward(
        &self,
        client: &Client,
        owner: &NodeId,
        mut fwd: Forward,
        reply: Option<oneshot::Sender<reply::Result>>,
    ) {
        if let Some(reply) = reply {
            fwd.req_id = self.pending.insert(owner.clone(), reply);
        }
        let payload = self.sealed(&wire::encode(&self.node_id, Body::Forward(fwd)));
        publish(client, node_channel(owner), payload);
    }

    /// A request `from` forwarded here: to the conversation's home shard, or,
    /// when its mailbox is full, answered at once with a retryable "overloaded".
    pub(super) fn forwarded(&self, client: &Client, from: NodeId, f: Forward) {
        let req_id = f.req_id;
        let req = match wire::forwarded(from.clone(), f) {
            Ok(req) => req,
            Err(e) => return tracing::warn!(from = %from, error = %e, "forwarded command dropped"),
        };
        let shard = home_shard(req.conv, self.mesh.len());
        if self.mesh.try_send(shard, ShardMsg::Forwarded(Box::new(req))).is_err() && req_id != 0 {
            let result = reply::Result::Error(overloaded().to_proto());
            publish(client, node_channel(&from), self.sealed(&wire::reply(&self.node_id, req_id, result)));
        }
    }

    /// The owner's answer to a request of ours: to whoever still waits for it.
    pub(super) fn answered(&self, from: &NodeId, r: ForwardReply) {
        let Some(tx) = self.pending.take(r.req_id) else { return };
        match wire::reply_result(r) {
            Ok(result) => drop(tx.send(result)),
            Err(e) => tracing::warn!(from = %from, error = %e, "forwarded reply dropped"),
        }
    }
}
