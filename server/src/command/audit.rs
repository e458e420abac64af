//! `ReadAudit`: a filtered, paged read of the audit trail for system admins
//! (anyone else gets FORBIDDEN before anything is read), and the audit
//! events a command family records once it succeeded ([`record`], with the
//! builders the families call). The trail itself is `crate::audit`.

use super::request::{Requester, err, store_err};
use crate::audit::query::{Cursor, Filter, Format, QueryError};
use crate::audit::{AuditEvent, EventKind, read};
use crate::ids::Caller;
use crate::shard::{AdminOp, Change, ShardCtx};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, reply};
use serde_json::json;

/// Entries per page when the request names none, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// Entries one request scans at most (a sparse filter pages on).
const SCAN_BUDGET: usize = 20_000;

/// Only system admins read the trail.
pub fn may_read(caller: &Caller) -> Result<(), WireError> {
    if caller.role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "only system admins read the audit trail"));
    }
    Ok(())
}

fn invalid(e: QueryError) -> WireError {
    err(ErrorCode::InvalidArgument, e.to_string())
}

/// The validated filter, page size, cursor and export format of a request.
fn parse(r: v1::ReadAudit) -> Result<(Filter, usize, Option<Cursor>, Option<Format>), WireError> {
    let filter = Filter {
        user: r.user,
        conversation_id: r.conversation_id,
        kinds: r.kinds,
        since_ms: r.since_ms,
        until_ms: r.until_ms,
    };
    filter.check().map_err(invalid)?;
    let limit = match r.limit as usize {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => return Err(err(ErrorCode::InvalidArgument, format!("limit: at most {MAX_PAGE}"))),
        n => n,
    };
    let cursor = Cursor::decode(&r.cursor).map_err(invalid)?;
    let format = (!r.export_format.is_empty()).then(|| Format::parse(&r.export_format)).transpose().map_err(invalid)?;
    Ok((filter, limit, cursor, format))
}

/// The entry as the wire carries it.
fn to_wire(e: crate::store::audit::AuditRecord) -> v1::AuditEntry {
    v1::AuditEntry {
        chain: e.chain,
        seq: e.seq,
        at_ms: e.at_ms,
        kind: e.kind,
        actor: e.actor,
        conversation_id: e.conversation_id,
        target_user: e.target_user,
        details: e.details,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

/// The filters of an export, as its audit entry names them.
pub fn filter_details(f: &Filter) -> serde_json::Value {
    serde_json::json!({
        "user": f.user,
        "conversation_id": f.conversation_id,
        "kinds": f.kinds,
        "since_ms": f.since_ms,
        "until_ms": f.until_ms,
    })
}

/// A page of the trail (see `ReadAudit` in the schema).
pub async fn read_audit(req: &Requester, r: v1::ReadAudit) -> Result<reply::Result, WireError> {
    may_read(&req.caller)?;
    let (filter, limit, cursor, format) = parse(r)?;
    if let Some(format) = format.filter(|_| cursor.is_none()) {
        let mut details = filter_details(&filter);
        details["format"] = format.name().into();
        details["via"] = "command".into();
        record(&req.ctx, AuditEvent::new(EventKind::AuditExported, &*req.caller.user).details(details)).await;
    }
    let (entries, next) = read::page(req.store(), &filter, cursor, limit, SCAN_BUDGET).await.map_err(store_err)?;
    Ok(reply::Result::Audit(v1::AuditPage {
        entries: entries.into_iter().map(to_wire).collect(),
        next: next.map(|c| c.encode()).unwrap_or_default(),
    }))
}

/// The events a membership operation records once it succeeded (none for
/// `Created`: the creation records its own).
pub fn membership_events(caller: &Caller, conv: u64, op: &AdminOp) -> Vec<AuditEvent> {
    let ev = |kind| AuditEvent::new(kind, &*caller.user).conversation(conv);
    match op {
        AdminOp::Join => vec![ev(EventKind::MemberAdded).target(&*caller.user).details(json!({"via": "join"}))],
        AdminOp::Leave => vec![ev(EventKind::MemberLeft).target(&*caller.user)],
        AdminOp::Add(users) => users.iter().map(|u| ev(EventKind::MemberAdded).target(u)).collect(),
        AdminOp::Remove(u) => vec![ev(EventKind::MemberRemoved).target(u)],
        AdminOp::SetRole(u, role) => {
            vec![ev(EventKind::MemberRoleChanged).target(u).details(json!({"role": role.as_str_name()}))]
        }
        AdminOp::Archive(true) => vec![ev(EventKind::ConversationArchived)],
        AdminOp::Archive(false) => vec![ev(EventKind::ConversationUnarchived)],
        AdminOp::SetRetention(days) => vec![ev(EventKind::RetentionSet).details(json!({"days": days}))],
        // A conversation's erasure records its own event, with counts, once done.
        AdminOp::Created | AdminOp::Erase => Vec::new(),
    }
}

/// The event an edit or delete records (None: a reaction, not audited):
/// the changed message's seq and the event's, which key the earlier version
/// the store kept (`MessageStore::message_versions`).
pub fn change_event(caller: &Caller, change: &Change, ok: &v1::SendMessageOk) -> Option<AuditEvent> {
    let kind = match change {
        Change::Edit(_) => EventKind::MessageEdited,
        Change::Delete(_) | Change::Erase(_) => EventKind::MessageDeleted,
        Change::React(_) => return None,
    };
    let details = json!({"target_seq": change.target_seq(), "event_seq": ok.seq, "duplicate": ok.duplicate});
    Some(AuditEvent::new(kind, &*caller.user).conversation(ok.conversation_id).details(details))
}

/// Records an event on this node's trail, waiting for room (never dropped;
/// a stopped writer is logged by the trail).
pub async fn record(ctx: &ShardCtx, ev: AuditEvent) {
    let _ = ctx.shared.audit.record(ev).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn only_admins_read() {
        for role in [Role::Advocate, Role::Client, Role::Unspecified] {
            let e = may_read(&Caller { user: Arc::from("u"), role }).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden, "{role:?}");
        }
        assert!(may_read(&Caller { user: Arc::from("a"), role: Role::Admin }).is_ok());
    }

    #[test]
    fn bad_requests_are_named() {
        let bad = |r: v1::ReadAudit| parse(r).unwrap_err();
        let e = bad(v1::ReadAudit { kinds: vec!["message.sent".into()], ..Default::default() });
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::InvalidArgument, "unknown audit event kind \"message.sent\"")
        );
        assert_eq!(bad(v1::ReadAudit { limit: 501, ..Default::default() }).message, "limit: at most 500");
        assert_eq!(
            bad(v1::ReadAudit { cursor: "nope".into(), ..Default::default() }).message,
            "the cursor is not one this server gave"
        );
        assert_eq!(
            bad(v1::ReadAudit { since_ms: 9, until_ms: 3, ..Default::default() }).message,
            "until_ms must be after since_ms"
        );
        assert_eq!(
            bad(v1::ReadAudit { export_format: "xml".into(), ..Default::default() }).code,
            ErrorCode::InvalidArgument
        );
        let (f, limit, cursor, format) =
            parse(v1::ReadAudit { export_format: "csv".into(), ..Default::default() }).unwrap();
        assert_eq!((f, limit, cursor, format), (Filter::default(), 100, None, Some(Format::Csv)));
    }
}
