//! The user directory and session control, as commands: people search
//! (everyone), provisioning (`PutUser`), disable, enable and revoke (admins
//! only), the check that a conversation names only users of the directory
//! ([`require_known`]), the directory at sign-in ([`sign_in`]) and the
//! closing of a user's live sessions on every shard and node
//! ([`close_sessions`]). The rules are [`rules`]'s; every admin action goes
//! through [`audit_admin`].

pub mod rules;

use super::request::{Requester, err, store_err};
use crate::audit::{Audit, AuditEvent, EventKind};
use crate::auth::Identity;
use crate::ids::Caller;
use crate::shard::{ShardCtx, ShardMsg, UserEvent};
use crate::store::{MessageStore, Store, StoreError, UserRecord};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, reply};
use std::sync::Arc;

/// Default and largest search page.
const SEARCH_PAGE: (u32, u32) = (20, 50);
/// Directory entries read from the store at once while searching.
const SCAN_CHUNK: usize = 200;
/// Directory entries looked at per search request at most.
const SCAN_MAX: usize = 2_000;

/// The one place every admin action on users is recorded on the audit
/// trail (`admin.action`, the action named in its details): who did what
/// to whom, and why.
pub async fn audit_admin(audit: &Audit, actor: &str, action: &'static str, target: &str, reason: &str) {
    let ev = AuditEvent::new(EventKind::AdminAction, actor).target(target);
    let _ = audit.record(ev.details(serde_json::json!({"action": action, "reason": reason}))).await;
}

/// The directory at sign-in: the user as the session sees them (created
/// from the token's claims if new), or `USER_DISABLED`.
pub async fn sign_in(store: &Store, audit: &Audit, ident: &Identity) -> Result<UserRecord, WireError> {
    let existing = store.get_users(std::slice::from_ref(&ident.user_id)).await.map_err(store_err)?.pop();
    let new = existing.is_none();
    let s = rules::sign_in(existing, ident)?;
    if s.write {
        store.upsert_user(&s.user).await.map_err(store_err)?;
        if new {
            let ev = AuditEvent::new(EventKind::UserCreated, &*s.user.id).target(&*s.user.id);
            let _ = audit.record(ev.details(serde_json::json!({"role": s.user.role}))).await;
        }
    }
    Ok(s.user)
}

/// Refuses (`UNKNOWN_USER`, naming them) ids that are not in the directory.
pub async fn require_known(store: &Store, ids: &[String]) -> Result<(), WireError> {
    if ids.is_empty() {
        return Ok(());
    }
    let found = store.get_users(ids).await.map_err(store_err)?;
    let unknown = rules::unknown_ids(ids, &found);
    if unknown.is_empty() { Ok(()) } else { Err(rules::unknown_users_error(&unknown)) }
}

/// People matching a query, one page (see `chat.v1.SearchUsers`).
pub async fn search(req: &Requester, q: v1::SearchUsers) -> Result<reply::Result, WireError> {
    let words = rules::query_words(&q.query)?;
    let limit = match q.limit {
        0 => SEARCH_PAGE.0,
        n if n > SEARCH_PAGE.1 => {
            return Err(err(ErrorCode::InvalidArgument, format!("limit: at most {}", SEARCH_PAGE.1)));
        }
        n => n,
    } as usize;
    let mut after = rules::cursor(&q.page)?;
    let mut found: Vec<(u8, UserRecord)> = Vec::with_capacity(limit);
    let mut scanned = 0;
    let mut exhausted = false;
    'scan: while found.len() < limit && scanned < SCAN_MAX {
        let want = SCAN_CHUNK.min(SCAN_MAX - scanned);
        let page = req.store().users_page(after.clone(), want).await.map_err(store_err)?;
        let short = page.len() < want;
        let n = page.len();
        for (i, u) in page.into_iter().enumerate() {
            scanned += 1;
            after = Some(u.id.clone());
            if let Some(rank) = rules::rank(&words, &u) {
                found.push((rank, u));
                if found.len() == limit {
                    // The end only if this was the directory's last user.
                    exhausted = short && i + 1 == n;
                    break 'scan;
                }
            }
        }
        if short {
            exhausted = true;
            break;
        }
    }
    rules::order(&mut found);
    let next = match (&after, exhausted) {
        (Some(last), false) => rules::next_cursor(last),
        _ => String::new(),
    };
    let users = found.iter().map(|(_, u)| rules::to_wire(u)).collect();
    Ok(reply::Result::Users(v1::UserList { users, next }))
}

/// Refuses a caller who is not an admin (a service account reaches these
/// only through the server API, with its admin scope).
fn require_admin(caller: &Caller, what: &str) -> Result<(), WireError> {
    if !matches!(caller.role, Role::Admin | Role::Service) {
        return Err(err(ErrorCode::Forbidden, format!("only admins may {what}")));
    }
    Ok(())
}

/// `PutUser`: provisions (or replaces) a user; keeps whether they are disabled.
pub async fn put(req: &Requester, p: v1::PutUser) -> Result<reply::Result, WireError> {
    require_admin(&req.caller, "provision users")?;
    let mut rec = rules::check_put(&p)?;
    let old = req.store().get_users(std::slice::from_ref(&rec.id)).await.map_err(store_err)?.pop();
    rec.disabled = old.is_some_and(|o| o.disabled);
    req.store().upsert_user(&rec).await.map_err(store_err)?;
    audit_admin(&req.ctx.shared.audit, &req.caller.user, "user_provisioned", &rec.id, "").await;
    Ok(reply::Result::User(rules::to_wire(&rec)))
}

/// Provisions `users` (from `chatd users import`, parsed by
/// [`rules::parse_import`]), each keeping whether it was disabled; audited as
/// done by `actor`. Returns how many were written.
pub async fn import(store: &Store, audit: &Audit, users: Vec<UserRecord>, actor: &str) -> Result<usize, StoreError> {
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let mut disabled = std::collections::HashSet::new();
    for chunk in ids.chunks(1_000) {
        disabled.extend(store.get_users(chunk).await?.into_iter().filter(|u| u.disabled).map(|u| u.id));
    }
    let n = users.len();
    for mut u in users {
        u.disabled = disabled.contains(&u.id);
        store.upsert_user(&u).await?;
        audit_admin(audit, actor, "user_provisioned", &u.id, "import").await;
    }
    Ok(n)
}

/// `DisableUser` / `EnableUser`: sets the flag; disabling closes every live
/// session of the user with `USER_DISABLED`.
pub async fn set_disabled(
    req: &Requester,
    user_id: &str,
    reason: &str,
    disabled: bool,
) -> Result<reply::Result, WireError> {
    require_admin(&req.caller, if disabled { "disable users" } else { "enable users" })?;
    rules::check_admin_target(user_id, reason)?;
    if disabled && user_id == &*req.caller.user {
        return Err(err(ErrorCode::InvalidArgument, "an admin cannot disable themselves"));
    }
    let ids = [user_id.to_string()];
    let mut rec = req
        .store()
        .get_users(&ids)
        .await
        .map_err(store_err)?
        .pop()
        .ok_or_else(|| err(ErrorCode::NotFound, format!("no user {user_id:?} in the directory")))?;
    rec.disabled = disabled;
    req.store().upsert_user(&rec).await.map_err(store_err)?;
    audit_admin(
        &req.ctx.shared.audit,
        &req.caller.user,
        if disabled { "user_disabled" } else { "user_enabled" },
        user_id,
        reason,
    )
    .await;
    if disabled {
        close_sessions(&req.ctx, user_id, rules::disabled_error()).await;
    }
    Ok(reply::Result::User(rules::to_wire(&rec)))
}

/// `RevokeSessions`: closes every live session of the user with `SESSION_REVOKED`.
pub async fn revoke(req: &Requester, r: v1::RevokeSessions) -> Result<reply::Result, WireError> {
    require_admin(&req.caller, "revoke sessions")?;
    rules::check_admin_target(&r.user_id, &r.reason)?;
    audit_admin(&req.ctx.shared.audit, &req.caller.user, "sessions_revoked", &r.user_id, &r.reason).await;
    close_sessions(&req.ctx, &r.user_id, rules::revoked_error()).await;
    Ok(reply::Result::Ok(v1::Empty {}))
}

/// Closes every live session of `user` with `e`: on each shard of this node
/// (through its mailbox) and, in a cluster, on every other node (through the
/// broker; best-effort like every publish, and a disabled user is refused
/// again at connect whatever is lost).
pub async fn close_sessions(ctx: &ShardCtx, user: &str, e: WireError) {
    let ev = UserEvent::Close(e.code, Arc::from(e.message.as_str()));
    let user: Arc<str> = Arc::from(user);
    for shard in 0..ctx.shared.mesh.len() {
        if ctx.shared.mesh.send(shard, ShardMsg::User(user.clone(), ev.clone())).await.is_err() {
            tracing::warn!(shard, user = %user, "a shard's mailbox is gone; its sessions of the user stay open");
        }
    }
    if let Some(broker) = &ctx.shared.broker {
        broker.publish_user_event(&user, &ev);
    }
}
