//! Conversations as the caller sees them: create (the id and role policy of
//! each kind), list (filtered, most recently active first, paged in the
//! store), get one, and the support queue for staff (paged in the store).
//! Reads go straight to the store; a new conversation is announced to its
//! members through its owner.

use super::membership;
use super::request::{Requester, answered, err, store_err};
use crate::audit::{AuditEvent, EventKind};
use crate::conversation::{no_access, summary};
use crate::ids::ConvId;
use crate::shard::Ask;
use crate::shard::{AdminOp, UserRate};
use crate::store::{ConversationRecord, Created, ListKey, MemberRecord, MessageStore};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ConversationKind, ErrorCode, MemberRole, Role, reply};

/// Default and largest conversation-list page.
const LIST_PAGE: (u32, u32) = (50, 500);
/// List entries looked at per request at most (filters may skip many).
const LIST_SCAN: usize = 1_000;
/// Default and largest support-queue page: one answer stays far below the
/// frame limit clients accept, however many wait.
const SUPPORT_QUEUE_PAGE: (u32, u32) = (50, 100);

/// A conversation the caller may read: a member, or staff on a support one.
pub async fn readable(req: &Requester, conv: ConvId) -> Result<(ConversationRecord, Option<MemberRecord>), WireError> {
    let not_found = || no_access(conv);
    let rec = req.store().get_conversation(conv).await.map_err(store_err)?.ok_or_else(not_found)?;
    let me = req.store().member(conv, &req.caller.user).await.map_err(store_err)?;
    let staff = req.caller.role == Role::Admin && rec.kind == ConversationKind::Support as i32;
    if me.is_none() && !staff {
        return Err(no_access(conv));
    }
    Ok((rec, me))
}

/// A conversation as the caller sees it (`head`: its last seq, if known).
pub async fn summary_of(
    req: &Requester,
    rec: &ConversationRecord,
    me: Option<&MemberRecord>,
    head: Option<u64>,
) -> Result<v1::ConversationSummary, WireError> {
    let members = req.store().members(rec.id).await.map_err(store_err)?;
    let last = match head {
        Some(h) => h,
        None => req.store().last_seq(rec.id).await.map_err(store_err)?,
    };
    let mut s = summary(req.store(), rec, members.len(), last, me).await;
    super::retention::show_hold(req.store(), &mut s, members.iter().map(|m| m.user_id.as_str())).await?;
    Ok(s)
}

/// Creates a conversation, counted against the user's
/// `limits.conversations_per_hour` (an existing private pair counts too: the
/// limit is on asking).
pub async fn create(req: &Requester, c: v1::CreateConversation) -> Result<reply::Result, WireError> {
    let me = req.caller.user.to_string();
    let now = chat_protocol::unix_ms(std::time::SystemTime::now());
    let (mut rec, members) = plan(&req.ctx.shared.limits, &me, req.caller.role, c, now)?;
    // A conversation keeps the retention it was made with until its admins change it.
    rec.retention_days = req.ctx.shared.cfg.retention.default_days;
    let others: Vec<String> = members.iter().filter(|m| m.user_id != me).map(|m| m.user_id.clone()).collect();
    super::users::require_known(req.store(), &others).await?;
    // Every new conversation costs store space and an owner: counted per
    // user (a service account's calls are counted by the server API).
    if req.caller.role != Role::Service {
        req.ctx.check_user_rate(UserRate::Conversations, &req.caller.user).await?;
    }
    let id = rec.id;
    match req.store().create_conversation(&rec, &members).await.map_err(store_err)? {
        Created::New => {
            let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
            let details = serde_json::json!({"kind": rec.kind, "title": rec.title, "case_id": rec.case_id, "members": ids, "e2e": rec.e2e});
            let ev = AuditEvent::new(EventKind::ConversationCreated, &*me).conversation(id).details(details);
            super::audit::record(&req.ctx, ev).await;
            announce_created(req, id).await
        }
        Created::Existing(existing) => {
            let pair_ok = existing.kind == ConversationKind::Private as i32
                && req.store().member(id, &me).await.map_err(store_err)?.is_some();
            if !pair_ok {
                return Err(err(ErrorCode::Conflict, "conversation id collision; try again"));
            }
            let (rec, mine) = readable(req, id).await?;
            let s = summary_of(req, &rec, mine.as_ref(), None).await?;
            Ok(reply::Result::Conversation(v1::ConversationOk { summary: Some(s), existing: true }))
        }
    }
}

/// The policy of a new conversation (pure): who may create which kind, its
/// id (derived from the pair for a private one, so there is one per pair;
/// random otherwise), its record and its first members with their roles.
pub fn plan(
    limits: &chat_protocol::Limits,
    me: &str,
    role: Role,
    c: v1::CreateConversation,
    now: u64,
) -> Result<(ConversationRecord, Vec<MemberRecord>), WireError> {
    let kind = ConversationKind::try_from(c.kind).unwrap_or(ConversationKind::Unspecified);
    limits.check_title(&c.title).map_err(|e| e.to_wire())?;
    let mut others: Vec<String> = c.members.iter().filter(|u| **u != me).cloned().collect();
    others.sort();
    others.dedup();
    for u in &others {
        chat_protocol::limits::check_user_id(u).map_err(|e| e.to_wire())?;
    }
    if others.len() + 1 > limits.max_members {
        return Err(WireError::limited(
            ErrorCode::TooManyMembers,
            "max_members",
            format!("at most {} members", limits.max_members),
            None,
        ));
    }
    if c.e2e && kind == ConversationKind::Support {
        return Err(err(
            ErrorCode::InvalidArgument,
            "a support conversation cannot be end-to-end encrypted: staff join it later, unknown to its group",
        ));
    }
    let id = kind_id(kind, me, role, &others, &c.case_id, c.e2e)?;
    let rec = ConversationRecord {
        id,
        kind: kind as i32,
        title: c.title,
        case_id: if kind == ConversationKind::Case { c.case_id } else { String::new() },
        created_by: me.to_string(),
        created_at_ms: now,
        archived_at_ms: 0,
        support_state: if kind == ConversationKind::Support { v1::SupportState::Waiting as i32 } else { 0 },
        e2e: c.e2e,
        retention_days: 0,
        legal_hold: false,
    };
    let creator_role = if kind == ConversationKind::Private || kind == ConversationKind::Support {
        MemberRole::Member
    } else {
        MemberRole::Admin
    };
    let member = |u: &str, r: MemberRole| MemberRecord {
        conversation_id: id,
        user_id: u.to_string(),
        role: r as i32,
        joined_at_ms: now,
        delivered_seq: 0,
        read_seq: 0,
    };
    let mut members = vec![member(me, creator_role)];
    members.extend(others.iter().map(|u| member(u, MemberRole::Member)));
    Ok((rec, members))
}

/// Who may create a conversation of `kind`, and its id.
fn kind_id(
    kind: ConversationKind,
    me: &str,
    role: Role,
    others: &[String],
    case_id: &str,
    e2e: bool,
) -> Result<ConvId, WireError> {
    let forbidden = |why: &str| Err(err(ErrorCode::Forbidden, why.to_string()));
    match kind {
        ConversationKind::Private => {
            if others.len() != 1 {
                return Err(err(ErrorCode::InvalidArgument, "a private conversation has exactly one other member"));
            }
            Ok(private_id(me, &others[0], e2e))
        }
        ConversationKind::Group if role == Role::Client => {
            forbidden("clients cannot create group conversations; ask your advocate")
        }
        ConversationKind::Case if role == Role::Client => {
            forbidden("clients cannot create case conversations; ask your advocate")
        }
        ConversationKind::Group => Ok(random_id()),
        ConversationKind::Case => {
            chat_protocol::limits::check_case_id(case_id).map_err(|e| e.to_wire())?;
            Ok(random_id())
        }
        ConversationKind::Support if !others.is_empty() => {
            Err(err(ErrorCode::InvalidArgument, "a support conversation starts with its opener only; staff join it"))
        }
        ConversationKind::Support => Ok(random_id()),
        ConversationKind::Unspecified => Err(err(ErrorCode::InvalidArgument, "conversation kind is required")),
    }
}

/// Announces a new conversation to its members through its owner, here or on its node.
async fn announce_created(req: &Requester, conv: ConvId) -> Result<reply::Result, WireError> {
    if let Some(owner) = req.ctx.remote_owner(conv)
        && let Some(broker) = &req.ctx.shared.broker
    {
        return answered(broker.forward(owner, conv, &req.caller, req.session, Ask::Created, true).await.await);
    }
    membership::admin(&req.ctx, req.caller.clone(), conv, AdminOp::Created).await
}

/// One conversation as the caller sees it.
pub async fn get(req: &Requester, conv: ConvId) -> Result<reply::Result, WireError> {
    let (rec, me) = readable(req, conv).await?;
    let s = summary_of(req, &rec, me.as_ref(), None).await?;
    Ok(reply::Result::Conversation(v1::ConversationOk { summary: Some(s), existing: false }))
}

/// Support conversations waiting for staff (admins only), oldest first, one
/// page of at most `limit` (default and cap [`SUPPORT_QUEUE_PAGE`]), read
/// from the store's queue order.
pub async fn support_queue(req: &Requester, q: v1::ListSupportQueue) -> Result<reply::Result, WireError> {
    if req.caller.role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "only staff (admins) see the support queue"));
    }
    let limit = if q.limit == 0 { SUPPORT_QUEUE_PAGE.0 } else { q.limit.min(SUPPORT_QUEUE_PAGE.1) } as usize;
    let after = cursor(&q.page)?;
    let keys = req.store().support_queue(after, limit).await.map_err(store_err)?;
    let mut out = Vec::with_capacity(keys.len());
    for &(_, id) in &keys {
        // Taken meanwhile (or gone): no longer waiting, not shown.
        if let Ok((rec, _)) = readable(req, id).await {
            out.push(summary_of(req, &rec, None, None).await?);
        }
    }
    let next = if keys.len() == limit { keys.last().map(next_cursor).unwrap_or_default() } else { String::new() };
    Ok(reply::Result::Conversations(v1::ConversationList { conversations: out, next }))
}

/// The caller's conversations, filtered, most recently active first, one
/// page: read from the store's per-user activity order, a page at a time,
/// looking at no more than [`LIST_SCAN`] of them per request (so a filter
/// that matches little answers a short page with a `next`, never a scan of
/// everything).
pub async fn list(req: &Requester, l: v1::ListConversations) -> Result<reply::Result, WireError> {
    let limit = if l.limit == 0 { LIST_PAGE.0 } else { l.limit.min(LIST_PAGE.1) } as usize;
    let mut after = cursor(&l.page)?;
    let mut out = Vec::with_capacity(limit);
    let mut scanned = 0;
    let mut exhausted = false;
    while out.len() < limit && scanned < LIST_SCAN && !exhausted {
        let want = read_size(limit - out.len(), scanned);
        let keys = req.store().user_conversations_page(&req.caller.user, after, want).await.map_err(store_err)?;
        exhausted = keys.len() < want;
        for (i, key) in keys.iter().enumerate() {
            scanned += 1;
            after = Some(*key);
            // Moved up while being read: it may show twice; once per page.
            let seen =
                out.iter().any(|s: &v1::ConversationSummary| s.conversation.as_ref().is_some_and(|c| c.id == key.1));
            if !seen && let Some(s) = listed(req, &l, *key).await? {
                out.push(s);
            }
            if out.len() == limit {
                exhausted &= i + 1 == keys.len();
                break;
            }
        }
    }
    let next = if exhausted { String::new() } else { after.as_ref().map(next_cursor).unwrap_or_default() };
    Ok(reply::Result::Conversations(v1::ConversationList { conversations: out, next }))
}

/// The summary of a list entry if the caller is still in it, the entry is
/// not one a failed touch left above the conversation's activity (see
/// `MessageStore::touch_conversation`) and it passes the filters.
async fn listed(
    req: &Requester,
    l: &v1::ListConversations,
    (at, id): ListKey,
) -> Result<Option<v1::ConversationSummary>, WireError> {
    let Some(rec) = req.store().get_conversation(id).await.map_err(store_err)? else { return Ok(None) };
    if (!l.case_id.is_empty() && rec.case_id != l.case_id)
        || (l.kind != 0 && rec.kind != l.kind)
        || (!l.include_archived && rec.archived_at_ms != 0)
        // An entry above the conversation's activity was left by a touch that
        // failed midway; one below it is this conversation moving up while
        // the list is read (its new place may be behind the cursor already),
        // so it is shown here rather than missed.
        || req.store().conversation_activity(id).await.map_err(store_err)?.is_none_or(|now| now < at)
    {
        return Ok(None);
    }
    let Some(me) = req.store().member(id, &req.caller.user).await.map_err(store_err)? else { return Ok(None) };
    Ok(Some(summary_of(req, &rec, Some(&me), None).await?))
}

/// Entries to read next: what the page still needs, at least 16 a read,
/// never past [`LIST_SCAN`] (a `clamp` panicked once fewer than 16 were left).
fn read_size(needed: usize, scanned: usize) -> usize {
    needed.max(16).min(LIST_SCAN - scanned)
}

/// A page cursor as given to the client: `"<ms>.<id>"`, opaque to it.
fn next_cursor(&(at, id): &ListKey) -> String {
    format!("{at}.{id}")
}

/// The place a client's cursor names (None: the first page).
fn cursor(page: &str) -> Result<Option<ListKey>, WireError> {
    if page.is_empty() {
        return Ok(None);
    }
    let bad = || err(ErrorCode::InvalidArgument, "bad page cursor: pass back the `next` of the previous page");
    let (at, id) = page.split_once('.').ok_or_else(bad)?;
    Ok(Some((at.parse().map_err(|_| bad())?, id.parse().map_err(|_| bad())?)))
}

/// A private conversation's id: derived from the pair, so there is one per
/// pair (and one end-to-end encrypted one).
pub fn private_id(a: &str, b: &str, e2e: bool) -> u64 {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // A pair has one plain and one end-to-end encrypted private conversation.
    ctx.update(if e2e { b"chat/private-e2e/" } else { b"chat/private/" });
    ctx.update(x.as_bytes());
    ctx.update(b"\0");
    ctx.update(y.as_bytes());
    let d = ctx.finish();
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&d.as_ref()[..8]);
    // 53 bits, so JavaScript numbers hold every id; never 0.
    (u64::from_le_bytes(b8) & ((1 << 53) - 1)).max(1)
}

/// A fresh random conversation id (53 bits, never 0).
pub fn random_id() -> u64 {
    (rand::random::<u64>() & ((1 << 53) - 1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stay_within_the_scan() {
        assert_eq!(read_size(500, 0), 500);
        assert_eq!(read_size(3, 0), 16);
        assert_eq!(read_size(10, 996), 4, "the end of the scan");
        assert_eq!(read_size(500, 600), 400);
    }
}
