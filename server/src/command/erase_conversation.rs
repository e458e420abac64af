//! `EraseConversation` (system admins only), run at the conversation's
//! owner (here, or forwarded to its node like every owner command). Refused
//! while a legal hold covers the conversation (on it, its case or a
//! member). Otherwise, in this order:
//! - the owner archives it for good (members see it archived; an unarchive
//!   is refused from then on, see `membership::admin`);
//! - the purge job's `purge_all` removes every message with its kept
//!   versions, search entries and attachment records (the files follow with
//!   the job's sweep);
//! - the store destroys its data key (crypto-shredding), so what is left of
//!   its content anywhere in the store (deleted rows not yet compacted away)
//!   can never be opened.
//!
//! The purge goes first because it reads the attachment ids from the
//! sealed content. Audited once done, with counts. Every step is
//! idempotent, so erasing again finishes an interrupted erasure.

use super::request::{err, store_err};
use crate::audit::{AuditEvent, EventKind};
use crate::ids::Caller;
use crate::retention::erase::check_reason;
use crate::retention::rules::Holds;
use crate::shard::{AdminOp, ShardCtx};
use crate::store::MessageStore;
use crate::store::retention::RetentionStore;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, reply};
use serde_json::json;

/// `EraseConversation` at the owner: see the module docs.
pub async fn at_owner(ctx: &ShardCtx, caller: Caller, e: v1::EraseConversation) -> Result<reply::Result, WireError> {
    if caller.role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "only system admins erase conversations"));
    }
    check_reason(&e.reason)?;
    let (store, conv) = (&ctx.shared.store, e.conversation_id);
    let Some(c) = store.get_conversation(conv).await.map_err(store_err)? else {
        return Err(err(ErrorCode::NotFound, format!("no conversation {conv}")));
    };
    let members = store.members(conv).await.map_err(store_err)?;
    let holds = Holds::new(&store.holds().await.map_err(store_err)?);
    if let Some((scope, target)) = holds.holder(conv, &c.case_id, members.iter().map(|m| m.user_id.as_str())) {
        let scope = scope.name();
        return Err(err(
            ErrorCode::UnderLegalHold,
            format!("a legal hold on {scope} {target} covers conversation {conv}: release it before erasing"),
        ));
    }
    super::membership::admin(ctx, caller.clone(), conv, AdminOp::Erase).await?;
    let (messages, attachments) = crate::retention::job::purge_all(ctx, conv).await.map_err(|e| {
        tracing::warn!(conversation_id = conv, error = %e, "erasure: purge failed; erase again to finish");
        err(ErrorCode::Unavailable, format!("the erasure stopped midway ({e}); erase again to finish it"))
    })?;
    let key_destroyed = store.shred_conversation(conv).await.map_err(store_err)?;
    let details = json!({
        "reason": e.reason,
        "messages": messages,
        "attachments": attachments,
        "key_destroyed": key_destroyed,
    });
    let ev = AuditEvent::new(EventKind::ConversationErased, &*caller.user).conversation(conv).details(details);
    super::audit::record(ctx, ev).await;
    Ok(reply::Result::ConversationErased(v1::ConversationErased {
        conversation_id: conv,
        messages,
        attachments,
        key_destroyed,
    }))
}
