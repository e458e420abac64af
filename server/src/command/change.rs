//! `EditMessage`, `DeleteMessage` and `React`: validated once ([`parse`]),
//! counted against the sender's message rate, and handed to the
//! conversation's owner, which checks them against the message they name
//! and appends their event. Answered with `SendMessageOk` (the event's seq)
//! once durable; edits and deletes are audited then.

use super::request::{ask, require_conversation};
use crate::ids::Caller;
use crate::shard::{Change, ConvMsg, ShardCtx, UserRate};
use chat_protocol::WireError;
use chat_protocol::limits::{check_client_msg_id, check_emoji};
use chat_protocol::v1::{ErrorCode, command, reply};

/// The change a command asks for, validated (None: not one of these commands).
pub fn parse(ctx: &ShardCtx, body: command::Body) -> Result<Option<Change>, WireError> {
    let change = match body {
        command::Body::EditMessage(e) => {
            ctx.shared.limits.check_body(e.body.as_ref()).map_err(|e| e.to_wire())?;
            Change::Edit(e)
        }
        command::Body::DeleteMessage(d) => Change::Delete(d),
        command::Body::React(r) => {
            check_emoji(&r.emoji).map_err(|e| e.to_wire())?;
            Change::React(r)
        }
        _ => return Ok(None),
    };
    check_client_msg_id(change.client_msg_id()).map_err(|e| e.to_wire())?;
    require_conversation(change.conversation_id())?;
    if change.target_seq() == 0 {
        return Err(WireError::new(ErrorCode::InvalidArgument, "seq (the message to change) is required"));
    }
    Ok(Some(change))
}

/// At the owner on this node (from a local session or forwarded): counted
/// against the caller's message rate, then handed to the owner.
pub async fn at_owner(ctx: &ShardCtx, caller: Caller, origin: u64, change: Change) -> Result<reply::Result, WireError> {
    ctx.check_user_rate(UserRate::Messages, &caller.user).await?;
    let conv = change.conversation_id();
    let audited = (!matches!(change, Change::React(_))).then(|| (caller.clone(), change.clone()));
    let change = Box::new(change);
    let ok = ask(ctx, conv, |reply| ConvMsg::Change { caller, origin, change, reply }).await?;
    if let Some(ev) = audited.and_then(|(caller, change)| super::audit::change_event(&caller, &change, &ok)) {
        super::audit::record(ctx, ev).await;
    }
    Ok(reply::Result::SendMessage(ok))
}
