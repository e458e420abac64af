//! Receipts: `MarkRead` (one conversation, answered once durable) and
//! `MarkDelivered` (many conversations in one command; a session sends them
//! coalesced, with no reply wanted). Cursors of conversations owned by other
//! nodes go to those nodes, one command per node.

use super::request::{Requester, ask, err};
use crate::ids::{Caller, ConvId, NodeId};
use crate::shard::Ask;
use crate::shard::{ConvMsg, ShardCtx};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, ReceiptKind, command, reply};
use std::collections::HashMap;
use std::sync::Arc;

/// Validates a `MarkDelivered`: its cursors, at most `max_ids_per_request` more.
pub fn parse(ctx: &ShardCtx, m: v1::MarkDelivered) -> Result<Vec<v1::Cursor>, WireError> {
    if m.more.len() > ctx.shared.limits.max_ids_per_request {
        return Err(err(ErrorCode::InvalidArgument, "too many cursors in one MarkDelivered"));
    }
    let first = (m.conversation_id != 0).then_some(v1::Cursor { conversation_id: m.conversation_id, seq: m.seq });
    Ok(first.into_iter().chain(m.more).collect())
}

/// From a session: local cursors to the owners here, the others to their
/// nodes (queued in order, no answer awaited).
pub async fn mark_delivered(req: &Requester, m: v1::MarkDelivered) -> Result<reply::Result, WireError> {
    let cursors = parse(&req.ctx, m)?;
    let mut local = Vec::new();
    let mut remote: HashMap<NodeId, Vec<v1::Cursor>> = HashMap::new();
    for c in cursors {
        match req.ctx.remote_owner(c.conversation_id) {
            Some(node) => remote.entry(node).or_default().push(c),
            None => local.push(c),
        }
    }
    if let Some(broker) = &req.ctx.shared.broker {
        for (node, cursors) in remote {
            let Some(m) = one_command(cursors) else { continue };
            let conv = m.conversation_id;
            let body = Ask::Command(command::Body::MarkDelivered(m));
            drop(broker.forward(node, conv, &req.caller, req.session, body, false).await);
        }
    }
    delivered(&req.ctx, &req.caller.user, local).await
}

/// At the owners on this node (a forwarded `MarkDelivered`).
pub async fn delivered_at_owner(
    ctx: &ShardCtx,
    caller: Caller,
    m: v1::MarkDelivered,
) -> Result<reply::Result, WireError> {
    let cursors = parse(ctx, m)?;
    delivered(ctx, &caller.user, cursors).await
}

/// `MarkRead` at the owner on this node: answered once the watermark is durable.
pub async fn mark_read(ctx: &ShardCtx, caller: Caller, m: v1::MarkRead) -> Result<reply::Result, WireError> {
    receipt(ctx, caller.user, m.conversation_id, ReceiptKind::Read, m.seq).await?;
    Ok(reply::Result::Ok(v1::Empty {}))
}

/// One command may carry many conversations; a failed one (not a member any
/// more) does not stop the others.
async fn delivered(ctx: &ShardCtx, user: &Arc<str>, cursors: Vec<v1::Cursor>) -> Result<reply::Result, WireError> {
    let mut failed = None;
    for c in cursors {
        if let Err(e) = receipt(ctx, user.clone(), c.conversation_id, ReceiptKind::Delivered, c.seq).await {
            failed = Some(e);
        }
    }
    failed.map_or(Ok(reply::Result::Ok(v1::Empty {})), Err)
}

async fn receipt(ctx: &ShardCtx, user: Arc<str>, conv: ConvId, kind: ReceiptKind, seq: u64) -> Result<(), WireError> {
    ask(ctx, conv, |reply| ConvMsg::Receipt { user, kind, seq, reply: Some(reply) }).await
}

/// One `MarkDelivered` for these cursors (None if there are none).
fn one_command(mut cursors: Vec<v1::Cursor>) -> Option<v1::MarkDelivered> {
    if cursors.is_empty() {
        return None;
    }
    let first = cursors.remove(0);
    Some(v1::MarkDelivered { conversation_id: first.conversation_id, seq: first.seq, more: cursors })
}
