//! Conversations as the caller sees them: create (the id and role policy of
//! each kind), list (filtered, most recently active first, paged), get one,
//! and the support queue for staff. Reads go straight to the store; a new
//! conversation is announced to its members through its owner.

use super::membership;
use super::request::{Requester, err, store_err};
use crate::conversation::{no_access, summary};
use crate::ids::ConvId;
use crate::shard::{AdminOp, UserRate};
use crate::store::{ConversationRecord, Created, MemberRecord, MessageStore};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ConversationKind, ErrorCode, MemberRole, Role, reply};

/// Default and largest conversation-list page.
const LIST_PAGE: (u32, u32) = (50, 500);
/// Support requests shown to staff at once (the store's queue order): one
/// answer stays far below the frame limit clients accept, however many wait.
const SUPPORT_QUEUE_PAGE: usize = 100;

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
    let count = req.store().members(rec.id).await.map_err(store_err)?.len();
    let last = match head {
        Some(h) => h,
        None => req.store().last_seq(rec.id).await.map_err(store_err)?,
    };
    Ok(summary(req.store(), rec, count, last, me).await)
}

/// Creates a conversation, counted against the user's
/// `limits.conversations_per_hour` (an existing private pair counts too: the
/// limit is on asking).
pub async fn create(req: &Requester, c: v1::CreateConversation) -> Result<reply::Result, WireError> {
    let me = req.caller.user.to_string();
    let now = chat_protocol::unix_ms(std::time::SystemTime::now());
    let (rec, members) = plan(&req.ctx.shared.limits, &me, req.caller.role, c, now)?;
    // Every new conversation costs store space and an owner: counted per user.
    req.ctx.check_user_rate(UserRate::Conversations, &req.caller.user).await?;
    let id = rec.id;
    match req.store().create_conversation(&rec, &members).await.map_err(store_err)? {
        Created::New => announce_created(req, id).await,
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
    let id = kind_id(kind, me, role, &others, &c.case_id)?;
    let rec = ConversationRecord {
        id,
        kind: kind as i32,
        title: c.title,
        case_id: if kind == ConversationKind::Case { c.case_id } else { String::new() },
        created_by: me.to_string(),
        created_at_ms: now,
        archived_at_ms: 0,
        support_state: if kind == ConversationKind::Support { v1::SupportState::Waiting as i32 } else { 0 },
        e2e: false,
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
) -> Result<ConvId, WireError> {
    let forbidden = |why: &str| Err(err(ErrorCode::Forbidden, why.to_string()));
    match kind {
        ConversationKind::Private => {
            if others.len() != 1 {
                return Err(err(ErrorCode::InvalidArgument, "a private conversation has exactly one other member"));
            }
            Ok(private_id(me, &others[0]))
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
        return match broker.forward(owner, conv, &req.caller, req.session, None, true).await.await {
            reply::Result::Error(e) => {
                Err(WireError::new(ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unavailable), e.message))
            }
            r => Ok(r),
        };
    }
    membership::admin(&req.ctx, req.caller.clone(), conv, AdminOp::Created).await
}

/// One conversation as the caller sees it.
pub async fn get(req: &Requester, conv: ConvId) -> Result<reply::Result, WireError> {
    let (rec, me) = readable(req, conv).await?;
    let s = summary_of(req, &rec, me.as_ref(), None).await?;
    Ok(reply::Result::Conversation(v1::ConversationOk { summary: Some(s), existing: false }))
}

/// Support conversations waiting for staff (admins only), at most
/// [`SUPPORT_QUEUE_PAGE`] of them (`next` is non-empty when more wait).
pub async fn support_queue(req: &Requester) -> Result<reply::Result, WireError> {
    if req.caller.role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "only staff (admins) see the support queue"));
    }
    let ids = req.store().support_queue().await.map_err(store_err)?;
    let more = ids.len() > SUPPORT_QUEUE_PAGE;
    let mut out = Vec::new();
    for id in ids.into_iter().take(SUPPORT_QUEUE_PAGE) {
        if let Ok((rec, _)) = readable(req, id).await {
            out.push(summary_of(req, &rec, None, None).await?);
        }
    }
    // More are waiting: staff see the first page and pick those up first.
    let next = if more { "more".to_string() } else { String::new() };
    Ok(reply::Result::Conversations(v1::ConversationList { conversations: out, next }))
}

/// The caller's conversations, filtered, most recently active first, one page.
///
/// Not yet paged in the store: every summary of the user's conversations is
/// built, sorted, then cut to the page (bounded by the user's conversations
/// and by two large answers at a time per connection). Paging needs an
/// activity-ordered index per user in both backends (issue 10, still open).
pub async fn list(req: &Requester, l: v1::ListConversations) -> Result<reply::Result, WireError> {
    let ids = req.store().user_conversations(&req.caller.user).await.map_err(store_err)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(rec) = req.store().get_conversation(id).await.map_err(store_err)? else { continue };
        if (!l.case_id.is_empty() && rec.case_id != l.case_id)
            || (l.kind != 0 && rec.kind != l.kind)
            || (!l.include_archived && rec.archived_at_ms != 0)
        {
            continue;
        }
        let me = req.store().member(id, &req.caller.user).await.map_err(store_err)?;
        out.push(summary_of(req, &rec, me.as_ref(), None).await?);
    }
    // Most recently active first.
    let activity = |s: &v1::ConversationSummary| {
        s.last_message.as_ref().map_or(s.conversation.as_ref().map_or(0, |c| c.created_at_ms), |m| m.server_time_ms)
    };
    out.sort_by_key(|s| std::cmp::Reverse(activity(s)));
    let limit = if l.limit == 0 { LIST_PAGE.0 } else { l.limit.min(LIST_PAGE.1) } as usize;
    let offset: usize = if l.page.is_empty() {
        0
    } else {
        l.page.parse().map_err(|_| err(ErrorCode::InvalidArgument, "bad page cursor"))?
    };
    let page: Vec<_> = out.iter().skip(offset).take(limit).cloned().collect();
    let end = offset.saturating_add(limit);
    let next = if end < out.len() { end.to_string() } else { String::new() };
    Ok(reply::Result::Conversations(v1::ConversationList { conversations: page, next }))
}

/// A private conversation's id: derived from the pair, so there is one per pair.
pub fn private_id(a: &str, b: &str) -> u64 {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"chat/private/");
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
