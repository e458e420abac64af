//! `SendMessage`: validated once ([`parse`]), counted against the sender's
//! rate at the session, then handed to the conversation's owner in the
//! order the connection sent it — through the mesh here, or forwarded to the
//! owner node. The answer comes once the message is durable.

use super::request::{Requester, ask, err, require_conversation, shard_unavailable};
use crate::ids::Caller;
use crate::shard::{ConvMsg, ShardCtx, UserRate};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, command, reply};
use futures_util::future::LocalBoxFuture;
use std::cell::Cell;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Validates a send: its client message id, its body, its conversation.
pub fn parse(ctx: &ShardCtx, m: v1::SendMessage) -> Result<v1::SendMessage, WireError> {
    chat_protocol::limits::check_client_msg_id(&m.client_msg_id).map_err(|e| e.to_wire())?;
    ctx.shared.limits.check_body(m.body.as_ref()).map_err(|e| e.to_wire())?;
    require_conversation(m.conversation_id)?;
    Ok(m)
}

/// The answer to wait for: handed to the owner (here or on its node) in the
/// order of the call, so one connection's messages keep their order.
pub type Pending = LocalBoxFuture<'static, Result<reply::Result, WireError>>;

/// From a session: validates, counts the message against the sender's rate
/// (after a refusal every send of this connection is refused until
/// `blocked_until`, so no later message overtakes the refused one), and
/// hands it to the owner. Returns what to await for the answer.
pub async fn from_session(
    req: &Requester,
    blocked_until: &Cell<Option<Instant>>,
    m: v1::SendMessage,
) -> Result<Pending, WireError> {
    let m = parse(&req.ctx, m)?;
    let now = Instant::now();
    if let Some(until) = blocked_until.get().filter(|&u| u > now) {
        return Err(WireError::limited(
            ErrorCode::RateLimited,
            "messages_per_minute",
            format!("more than {} messages per minute", req.ctx.shared.cfg.limits.messages_per_minute),
            Some(until - now),
        ));
    }
    if let Err(e) = req.ctx.check_user_rate(UserRate::Messages, &req.caller.user).await {
        blocked_until.set(e.retry_after.map(|d| now + d));
        return Err(e);
    }
    hand_over(req, m).await
}

/// Hands a validated send ([`parse`]) to the owner, here or on its node,
/// uncounted (a session counts it first; the server API counts its calls).
/// Returns what to await for the answer.
pub async fn hand_over(req: &Requester, m: v1::SendMessage) -> Result<Pending, WireError> {
    if let Some(remote) = req.remote(m.conversation_id) {
        // A lost request comes back as a retryable TIMEOUT; the SDK sends it
        // again. Sends made meanwhile may overtake it (see deploy/CLUSTER.md).
        let answer = remote.forward(command::Body::SendMessage(m), true).await;
        return Ok(Box::pin(async move { Ok(answer.await) }));
    }
    let rx = hand_to_owner(&req.ctx, req.caller.clone(), req.session, m).await?;
    Ok(Box::pin(async move { answer(rx).await }))
}

/// At the owner on this node (a forwarded send, validated by its caller).
pub async fn at_owner(
    ctx: &ShardCtx,
    caller: Caller,
    origin: u64,
    m: v1::SendMessage,
) -> Result<reply::Result, WireError> {
    let conv = m.conversation_id;
    let attachments = attachments_of(ctx, &caller, &m).await?;
    let ok = ask(ctx, conv, |reply| ConvMsg::Send { caller, origin, msg: Box::new(m), attachments, reply }).await?;
    Ok(reply::Result::SendMessage(ok))
}

type Answer = oneshot::Receiver<Result<v1::SendMessageOk, WireError>>;

async fn hand_to_owner(ctx: &ShardCtx, caller: Caller, origin: u64, m: v1::SendMessage) -> Result<Answer, WireError> {
    let conv = m.conversation_id;
    let attachments = attachments_of(ctx, &caller, &m).await?;
    let (tx, rx) = oneshot::channel();
    let msg = ConvMsg::Send { caller, origin, msg: Box::new(m), attachments, reply: tx };
    ctx.shared.mesh.to_owner(conv, msg).await.map_err(|_| shard_unavailable())?;
    Ok(rx)
}

/// The attachments the message names, resolved where the owner is (no
/// store read for a message without any).
async fn attachments_of(
    ctx: &ShardCtx,
    caller: &Caller,
    m: &v1::SendMessage,
) -> Result<Vec<v1::Attachment>, WireError> {
    if m.attachment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let within = ctx.shared.cfg.blobs.send_within_secs;
    super::attachments::resolve(&ctx.shared.store, m.conversation_id, &caller.user, &m.attachment_ids, within).await
}

async fn answer(rx: Answer) -> Result<reply::Result, WireError> {
    match rx.await {
        Ok(Ok(ok)) => Ok(reply::Result::SendMessage(ok)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(err(ErrorCode::Unavailable, "conversation owner went away; retry")),
    }
}
