//! Commands run at a conversation's owner on this node, for a local session
//! or for one on another node: each is validated by its family's parser, then
//! asked of the owner's actor through the mesh (`request::ask`). Requests forwarded
//! by other nodes arrive at [`serve_forwarded`].

use super::request::err;
use super::{change, erase_conversation, membership, message, receipts, typing};
use crate::ids::Caller;
use crate::shard::{AdminOp, Ask, Change, Forwarded, ShardCtx};
use chat_protocol::WireError;
use chat_protocol::v1::{ErrorCode, command, reply};
use std::rc::Rc;

/// Runs a command at this node's owner of its conversation. `origin` is the
/// sending session; the caller comes from a verified token (here or at the
/// origin node).
pub async fn execute(
    ctx: &ShardCtx,
    caller: Caller,
    origin: u64,
    body: command::Body,
) -> Result<reply::Result, WireError> {
    use command::Body as B;
    match body {
        B::SendMessage(m) => message::at_owner(ctx, caller, origin, message::parse(ctx, m)?).await,
        B::SetTyping(t) => typing::at_owner(ctx, &caller, typing::parse(&t)?, t.typing).await,
        B::MarkRead(m) => receipts::mark_read(ctx, caller, m).await,
        B::MarkDelivered(m) => receipts::delivered_at_owner(ctx, caller, m).await,
        B::GetMembers(g) => membership::members(ctx, caller, g.conversation_id).await,
        B::EraseConversation(e) => erase_conversation::at_owner(ctx, caller, e).await,
        body @ (B::EditMessage(_) | B::DeleteMessage(_) | B::React(_)) => match change::parse(ctx, body)? {
            Some(c) => change::at_owner(ctx, caller, origin, c).await,
            None => Err(err(ErrorCode::UnknownCommand, "not a change of a message")),
        },
        body => match membership::parse(ctx, body)? {
            Some((conv, op)) => membership::admin(ctx, caller, conv, op).await,
            None => Err(err(ErrorCode::UnknownCommand, "not a command for a conversation's owner")),
        },
    }
}

/// Cluster: runs a request another node forwarded here and answers it.
pub async fn serve_forwarded(ctx: Rc<ShardCtx>, req: Forwarded) {
    let Some(broker) = ctx.shared.broker.clone() else { return };
    let result = match req.ask {
        Ask::Created => membership::admin(&ctx, req.caller, req.conv, AdminOp::Created).await,
        Ask::Command(body) => execute(&ctx, req.caller, req.origin, body).await,
        Ask::Erase(d) => change::at_owner(&ctx, req.caller, req.origin, Change::Erase(d)).await,
    };
    let r = result.unwrap_or_else(|e| reply::Result::Error(e.to_proto()));
    broker.reply(req.from, req.req_id, r);
}
