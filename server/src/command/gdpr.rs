//! `EraseUser` (GDPR, system admins only): performs what
//! `crate::retention::erase` decides. The user is disabled and
//! pseudonymised and their sessions closed first (so nothing new of theirs
//! arrives meanwhile, through the same path as `RevokeSessions`); then, in
//! each of their conversations no legal hold covers (those they are in, and
//! those the audit trail says they left or were removed from), every
//! message they sent becomes a tombstone through the conversation's owner
//! (here or on its node, as an erasure of theirs, so live members see it;
//! archived conversations included), its kept
//! versions are forgotten and its attachments' records removed, and so are
//! the records of files they uploaded there but never sent. What a
//! hold keeps is listed in the result; the erasure is audited with counts.
//! Every step is idempotent, so an erasure cut off midway is finished by
//! running it again.

use super::request::{Requester, answered, err, store_err};
use super::retention::scope_proto;
use super::users::{close_sessions, rules as user_rules};
use crate::audit::query::Filter;
use crate::audit::{AuditEvent, EventKind};
use crate::ids::Caller;
use crate::retention::erase::{self, Decision};
use crate::retention::rules::Holds;
use crate::shard::Change;
use crate::store::attachments::{AttachmentStore, uploads_of};
use crate::store::key_packages::KeyPackageStore;
use crate::store::retention::RetentionStore;
use crate::store::{Direction, MessageStore, Range};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, reply};
use prost::Message as _;
use serde_json::json;
use std::sync::Arc;

/// Messages read per page while walking a conversation.
const PAGE: usize = 256;
/// Attempts at one tombstone while its owner says "retry" (rate, busy).
const ATTEMPTS: u32 = 20;

/// What one conversation gave: messages erased, attachment records removed,
/// their messages there (for a kept one), tombstones that failed.
#[derive(Default)]
struct Tally {
    erased: u64,
    attachments: u64,
    theirs: u64,
    failed: u64,
}

/// `EraseUser`: see the module doc and `chat.v1.EraseUser`.
pub async fn erase_user(req: &Requester, e: v1::EraseUser) -> Result<reply::Result, WireError> {
    if req.caller.role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "only system admins erase users"));
    }
    erase::check_request(&e.user_id, &e.reason)?;
    if e.user_id == *req.caller.user {
        return Err(err(ErrorCode::InvalidArgument, "an admin cannot erase themselves"));
    }
    let store = req.store();
    let ids = [e.user_id.clone()];
    let Some(rec) = store.get_users(&ids).await.map_err(store_err)?.pop() else {
        return Err(user_rules::unknown_users_error(&ids));
    };
    let pseudo = erase::pseudonymise(&rec);
    store.upsert_user(&pseudo).await.map_err(store_err)?;
    close_sessions(&req.ctx, &e.user_id, user_rules::disabled_error()).await;
    // Their devices' KeyPackages name them: nobody adds them to a group again.
    store.forget_key_packages(&e.user_id).await.map_err(store_err)?;

    let holds = Holds::new(&store.holds().await.map_err(store_err)?);
    let as_them = Requester {
        ctx: req.ctx.clone(),
        caller: Caller { user: Arc::from(e.user_id.as_str()), role: Role::Client },
        session: 0,
    };
    let mut result =
        v1::EraseResult { user_id: e.user_id.clone(), pseudonym: pseudo.display_name, ..Default::default() };
    let mut failed = 0;
    let mut convs = store.user_conversations(&e.user_id).await.map_err(store_err)?;
    convs.extend(former_conversations(store, &e.user_id).await.map_err(store_err)?);
    convs.sort_unstable();
    convs.dedup();
    for conv in convs {
        let Some(c) = store.get_conversation(conv).await.map_err(store_err)? else { continue };
        let members = store.members(conv).await.map_err(store_err)?;
        // A hold on the user keeps their messages where they are no longer a member too.
        let members = members.iter().map(|m| m.user_id.as_str()).chain([e.user_id.as_str()]);
        let decision = erase::decide(&holds, conv, &c.case_id, members);
        let erasing = decision == Decision::Erase;
        let t = walk(&as_them, conv, erasing).await?;
        result.messages_erased += t.erased;
        result.attachments_erased += t.attachments;
        if erasing {
            result.attachments_erased += forget_uploads(store, conv, &e.user_id).await?;
        }
        failed += t.failed;
        if let Decision::Keep(scope, target) = decision {
            let scope = scope_proto(scope) as i32;
            result.kept.push(v1::ErasureKept { conversation_id: conv, scope, target, messages: t.theirs });
        }
    }
    result.messages_failed = failed;
    let kept: Vec<_> = result
        .kept
        .iter()
        .map(|k| json!({"conversation_id": k.conversation_id, "scope": k.scope, "target": k.target, "messages": k.messages}))
        .collect();
    let details = json!({
        "reason": e.reason,
        "messages_erased": result.messages_erased,
        "attachments_erased": result.attachments_erased,
        "messages_failed": failed,
        "kept": kept,
    });
    let ev = AuditEvent::new(EventKind::UserErased, &*req.caller.user).target(&e.user_id).details(details);
    super::audit::record(&req.ctx, ev).await;
    Ok(reply::Result::Erased(result))
}

/// The conversations `user` left or was removed from, by the audit trail
/// (every node's chain: an erasure is rare, and the trail is the record).
async fn former_conversations(store: &crate::store::Store, user: &str) -> Result<Vec<u64>, crate::store::StoreError> {
    let kinds = [EventKind::MemberLeft, EventKind::MemberRemoved].map(|k| k.as_str().to_owned()).to_vec();
    let filter = Filter { user: user.to_owned(), kinds, ..Filter::default() };
    let (mut out, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = crate::audit::read::page(store, &filter, cursor, 1000, 100_000).await?;
        out.extend(page.iter().filter(|e| e.target_user == user || e.actor == user).map(|e| e.conversation_id));
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Walks one conversation's messages: counts the user's and, if
/// `erasing`, erases each (tombstone, versions, attachment records).
async fn walk(as_them: &Requester, conv: u64, erasing: bool) -> Result<Tally, WireError> {
    let store = as_them.store();
    let user = &*as_them.caller.user;
    let mut t = Tally::default();
    let mut after = store.purged_through(conv).await.map_err(store_err)?;
    loop {
        let range = Range { after, before: u64::MAX, limit: PAGE, direction: Direction::Forward };
        let page = store.read_range(conv, range).await.map_err(store_err)?;
        let full = page.len() == PAGE;
        for (seq, bytes) in page {
            after = seq;
            let Ok(m) = v1::Message::decode(bytes.as_ref()) else { continue };
            if erasing && erase::is_their_edit(&m, user) && m.body.is_some() {
                store.strip_message(conv, seq).await.map_err(store_err)?;
                continue;
            }
            if !erase::is_theirs(&m, user) {
                continue;
            }
            t.theirs += 1;
            if !erasing {
                continue;
            }
            if erase::needs_tombstone(&m) {
                match tombstone(as_them, conv, seq).await {
                    Ok(()) => t.erased += 1,
                    Err(e) => {
                        tracing::warn!(conversation_id = conv, seq, error = %e.message, "erasure: no tombstone");
                        t.failed += 1;
                        continue;
                    }
                }
            }
            store.forget_versions(conv, seq).await.map_err(store_err)?;
            for a in &m.attachments {
                if store.attachment(conv, &a.attachment_id).await.map_err(store_err)?.is_some() {
                    store.delete_attachment(conv, &a.attachment_id).await.map_err(store_err)?;
                    t.attachments += 1;
                }
            }
        }
        if !full {
            return Ok(t);
        }
    }
}

/// Removes the records of `user`'s uploads to `conv` that no message of
/// theirs named (uploaded, never sent); how many.
async fn forget_uploads(store: &crate::store::Store, conv: u64, user: &str) -> Result<u64, WireError> {
    let unsent = uploads_of(store, conv, user).await.map_err(store_err)?;
    for rec in &unsent {
        store.delete_attachment(conv, &rec.id).await.map_err(store_err)?;
    }
    Ok(unsent.len() as u64)
}

/// Deletes `seq` as its sender through the conversation's owner (here or
/// on its node), waiting out a retryable refusal (rate, busy owner).
async fn tombstone(as_them: &Requester, conv: u64, seq: u64) -> Result<(), WireError> {
    let mut attempt = 0;
    loop {
        let d = v1::DeleteMessage { conversation_id: conv, seq, client_msg_id: erase::tombstone_id(seq) };
        let answer = match as_them.remote(conv) {
            Some(remote) => answered(remote.erase(d).await.await),
            None => super::change::at_owner(&as_them.ctx, as_them.caller.clone(), 0, Change::Erase(d)).await,
        };
        match answer {
            Ok(_) => return Ok(()),
            // Deleted meanwhile (by them, a moderator, an earlier attempt).
            Err(e) if e.code == ErrorCode::MessageDeleted => return Ok(()),
            Err(e) if attempt < ATTEMPTS && e.retry_after.is_some() => {
                attempt += 1;
                tokio::time::sleep(e.retry_after.unwrap_or_default()).await;
            }
            Err(e) => return Err(e),
        }
    }
}
