//! Retention and legal hold commands: set a conversation's retention (its
//! owner applies it, see `crate::conversation::membership`), and set,
//! release and list legal holds (system admins only, straight to the
//! store). Every change is audited (`crate::retention::audit` builds the events).

use super::request::{Requester, err, store_err};
use crate::retention::audit;
use crate::retention::rules;
use crate::store::Store;
use crate::store::retention::{HoldRecord, HoldScope, RetentionStore};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, reply};

/// Longest reason a hold carries, bytes.
pub const MAX_REASON: usize = 1024;

/// The retention an admin asks for, checked (RETENTION_OUT_OF_RANGE).
pub fn parse_days(days: u32) -> Result<u32, WireError> {
    rules::check_days(days).map_err(|e| err(ErrorCode::RetentionOutOfRange, e))
}

fn only_admins(req: &Requester) -> Result<(), WireError> {
    if req.caller.role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "only system admins manage legal holds"));
    }
    Ok(())
}

/// A hold's scope and target from the wire, checked (HOLD_TARGET_INVALID).
fn parse_key(scope: i32, target: &str) -> Result<HoldScope, WireError> {
    let invalid = |m: String| err(ErrorCode::HoldTargetInvalid, m);
    let scope = match v1::HoldScope::try_from(scope) {
        Ok(v1::HoldScope::Conversation) => HoldScope::Conversation,
        Ok(v1::HoldScope::User) => HoldScope::User,
        Ok(v1::HoldScope::Case) => HoldScope::Case,
        _ => return Err(invalid("scope must be conversation, user or case".into())),
    };
    rules::check_target(scope, target).map_err(invalid)?;
    Ok(scope)
}

/// A hold's scope as the wire names it.
pub(super) fn scope_proto(scope: HoldScope) -> v1::HoldScope {
    match scope {
        HoldScope::Conversation => v1::HoldScope::Conversation,
        HoldScope::User => v1::HoldScope::User,
        HoldScope::Case => v1::HoldScope::Case,
    }
}

/// Every hold in force, as the wire shows it.
async fn list_reply(req: &Requester) -> Result<reply::Result, WireError> {
    let holds = req.store().holds().await.map_err(store_err)?;
    let holds = holds
        .into_iter()
        .map(|h| v1::LegalHold {
            scope: scope_proto(h.scope) as i32,
            target: h.target,
            reason: h.reason,
            set_by: h.set_by,
            set_at_ms: h.set_at_ms,
        })
        .collect();
    Ok(reply::Result::LegalHolds(v1::LegalHoldList { holds }))
}

/// Shows in a summary whether a legal hold covers its conversation (one
/// on it, its case or any of `members`).
pub async fn show_hold<'a>(
    store: &Store,
    s: &mut v1::ConversationSummary,
    members: impl IntoIterator<Item = &'a str>,
) -> Result<(), WireError> {
    let Some(c) = s.conversation.as_mut() else { return Ok(()) };
    let holds = store.holds().await.map_err(store_err)?;
    if !holds.is_empty() {
        c.legal_hold |= rules::Holds::new(&holds).covering(c.id, &c.case_id, members).is_some();
    }
    Ok(())
}

/// `SetLegalHold`: sets (or renews) a hold; answers with every hold.
pub async fn set_hold(req: &Requester, s: v1::SetLegalHold) -> Result<reply::Result, WireError> {
    only_admins(req)?;
    let scope = parse_key(s.scope, &s.target)?;
    if s.reason.len() > MAX_REASON {
        return Err(err(ErrorCode::HoldTargetInvalid, format!("reason: at most {MAX_REASON} bytes")));
    }
    let hold = HoldRecord {
        scope,
        target: s.target,
        reason: s.reason,
        set_by: req.caller.user.to_string(),
        set_at_ms: chat_protocol::unix_ms(std::time::SystemTime::now()),
    };
    req.store().put_hold(&hold).await.map_err(store_err)?;
    let (actor, target, reason) = (&*req.caller.user, hold.target.as_str(), hold.reason.as_str());
    super::audit::record(&req.ctx, audit::hold(actor, scope, target, Some(reason))).await;
    list_reply(req).await
}

/// `ReleaseLegalHold`: releases a hold (HOLD_NOT_FOUND if there is none).
pub async fn release_hold(req: &Requester, r: v1::ReleaseLegalHold) -> Result<reply::Result, WireError> {
    only_admins(req)?;
    let scope = parse_key(r.scope, &r.target)?;
    if !req.store().remove_hold(scope, &r.target).await.map_err(store_err)? {
        return Err(err(ErrorCode::HoldNotFound, format!("no {scope:?} legal hold on {:?}", r.target)));
    }
    super::audit::record(&req.ctx, audit::hold(&req.caller.user, scope, &r.target, None)).await;
    Ok(reply::Result::Ok(v1::Empty {}))
}

/// `ListLegalHolds`: every hold in force.
pub async fn list_holds(req: &Requester) -> Result<reply::Result, WireError> {
    only_admins(req)?;
    list_reply(req).await
}
