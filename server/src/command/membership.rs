//! Membership commands, answered by the conversation's owner: join (staff
//! picks up a support conversation), leave, add and remove members, set a
//! member's role, archive, set the retention, and the member list. [`parse`]
//! validates them once; the owner applies its rules (`crate::conversation`).
//! Each operation that succeeded is audited here, at the owner.

use super::request::{ask, err, store_err};
use crate::ids::{Caller, ConvId};
use crate::notify::hooks::HookEvent;
use crate::shard::{AdminOp, ConvMsg, ShardCtx};
use crate::store::MessageStore;
use crate::store::service_accounts::HookKind;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, MemberRole, command, reply};

/// Validates a membership command: its conversation and operation, or None
/// if `body` is not one.
pub fn parse(ctx: &ShardCtx, body: command::Body) -> Result<Option<(ConvId, AdminOp)>, WireError> {
    use command::Body as B;
    Ok(Some(match body {
        B::JoinConversation(j) => (j.conversation_id, AdminOp::Join),
        B::LeaveConversation(l) => (l.conversation_id, AdminOp::Leave),
        B::AddMembers(a) => {
            if a.user_ids.is_empty() || a.user_ids.len() > ctx.shared.limits.max_ids_per_request {
                return Err(err(ErrorCode::InvalidArgument, "user_ids: between 1 and 1000 ids"));
            }
            for u in &a.user_ids {
                chat_protocol::limits::check_user_id(u).map_err(|e| e.to_wire())?;
            }
            (a.conversation_id, AdminOp::Add(a.user_ids))
        }
        B::RemoveMember(r) => (r.conversation_id, AdminOp::Remove(r.user_id)),
        B::SetMemberRole(r) => {
            let role =
                MemberRole::try_from(r.role).map_err(|_| err(ErrorCode::InvalidArgument, "unknown member role"))?;
            (r.conversation_id, AdminOp::SetRole(r.user_id, role))
        }
        B::ArchiveConversation(a) => (a.conversation_id, AdminOp::Archive(!a.unarchive)),
        B::SetRetention(r) => {
            (r.conversation_id, AdminOp::SetRetention(super::retention::parse_days(r.retention_days)?))
        }
        _ => return Ok(None),
    }))
}

/// Runs a membership operation at the owner on this node; the answer is the
/// conversation as the caller now sees it.
pub async fn admin(ctx: &ShardCtx, caller: Caller, conv: ConvId, op: AdminOp) -> Result<reply::Result, WireError> {
    let events = super::audit::membership_events(&caller, conv, &op);
    // An erased conversation stays archived, so no message is ever written
    // under its destroyed key (`super::erase_conversation`). Membership
    // changes write no message: its members may still leave it.
    if matches!(op, AdminOp::Archive(false)) && ctx.shared.store.is_shredded(conv).await.map_err(store_err)? {
        return Err(err(ErrorCode::Archived, format!("conversation {conv} was erased; it stays archived")));
    }
    let retention = matches!(op, AdminOp::SetRetention(_));
    let hooks = hook_events(&caller, conv, &op);
    let mut s = ask(ctx, conv, |reply| ConvMsg::Admin { caller, op, reply }).await?;
    for ev in events {
        super::audit::record(ctx, ev).await;
    }
    // Service accounts are only ever in case conversations; those among
    // the members are matched off the shard.
    if s.conversation.as_ref().is_some_and(|c| c.kind == v1::ConversationKind::Case as i32) {
        for ev in hooks {
            ctx.shared.hooks.emit(ev);
        }
    }
    if retention {
        // The answer shows the holds too, as a read of the conversation does.
        let members = ctx.shared.store.members(conv).await.map_err(store_err)?;
        super::retention::show_hold(&ctx.shared.store, &mut s, members.iter().map(|m| m.user_id.as_str())).await?;
    }
    Ok(reply::Result::Conversation(v1::ConversationOk { summary: Some(s), existing: false }))
}

/// What the webhooks of service accounts are told of a membership
/// operation once it succeeded: who joined or left, an archive.
fn hook_events(caller: &Caller, conv: ConvId, op: &AdminOp) -> Vec<HookEvent> {
    let at_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let ev = |kind, details| HookEvent { conversation_id: conv, kind, actor: caller.user.to_string(), at_ms, details };
    let member = |kind, user: &str, via: &str| ev(kind, serde_json::json!({"user_id": user, "via": via}));
    match op {
        AdminOp::Join => vec![member(HookKind::MemberAdded, &caller.user, "join")],
        AdminOp::Leave => vec![member(HookKind::MemberRemoved, &caller.user, "leave")],
        // Each once, however often the request names them.
        AdminOp::Add(users) => users
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|u| member(HookKind::MemberAdded, u, "added"))
            .collect(),
        AdminOp::Remove(u) => vec![member(HookKind::MemberRemoved, u, "removed")],
        AdminOp::Archive(true) => vec![ev(HookKind::ConversationArchived, serde_json::json!({}))],
        _ => Vec::new(),
    }
}

/// The members with their watermarks, from the owner on this node.
pub async fn members(ctx: &ShardCtx, caller: Caller, conv: ConvId) -> Result<reply::Result, WireError> {
    let members = ask(ctx, conv, |reply| ConvMsg::Members { caller, reply }).await?;
    Ok(reply::Result::Members(v1::Members { conversation_id: conv, members }))
}
