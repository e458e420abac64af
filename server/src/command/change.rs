//! `EditMessage`, `DeleteMessage` and `React`: validated once ([`parse`]),
//! counted against the sender's message rate, and handed to the
//! conversation's owner, which checks them against the message they name
//! and appends their event. Answered with `SendMessageOk` (the event's seq)
//! once durable; edits and deletes are audited then.

use super::request::{ask, require_conversation};
use crate::ids::Caller;
use crate::shard::{Change, ConvMsg, ShardCtx, UserRate};
use crate::store::MessageStore;
use crate::store::retention::RetentionStore;
use chat_protocol::WireError;
use chat_protocol::limits::{check_client_msg_id, check_emoji};
use chat_protocol::v1::{ErrorCode, MessageKind, command, reply};

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
    let deleted = matches!(change, Change::Delete(_) | Change::Erase(_)).then(|| change.target_seq());
    let change = Box::new(change);
    let ok = ask(ctx, conv, |reply| ConvMsg::Change { caller, origin, change, reply }).await?;
    if let Some(target) = deleted {
        strip_edits(ctx, conv, target).await;
    }
    if let Some(ev) = audited.and_then(|(caller, change)| super::audit::change_event(&caller, &change, &ok)) {
        super::audit::record(ctx, ev).await;
    }
    Ok(reply::Result::SendMessage(ok))
}

/// A deleted message's EDIT events lose their text too (history would show
/// it otherwise): each one the store kept a version for is stripped of its
/// content. After the delete, so a failure leaves the delete done; logged,
/// and an erasure strips the user's EDIT events again.
async fn strip_edits(ctx: &ShardCtx, conv: u64, target: u64) {
    let store = &ctx.shared.store;
    let versions = match store.message_versions(conv, target).await {
        Ok(v) => v,
        Err(e) => return tracing::warn!(conversation_id = conv, target, error = %e, "edits of a deleted message kept"),
    };
    for v in versions.iter().filter(|v| v.kind == MessageKind::Edit as i32) {
        if let Err(e) = store.strip_message(conv, v.event_seq).await {
            tracing::warn!(conversation_id = conv, seq = v.event_seq, error = %e, "an edit of a deleted message kept");
        }
    }
}
