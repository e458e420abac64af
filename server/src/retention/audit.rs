//! The audit events of retention, built in one place: legal holds set and
//! released ([`hold`]), the purge counts per conversation ([`purged`];
//! counts, never content) and of the blob sweep ([`swept`]). A conversation's retention change is audited
//! with the other admin operations at its owner (`command::audit`).

use crate::audit::{AuditEvent, EventKind};
use crate::store::retention::HoldScope;
use serde_json::json;

/// A legal hold set (`reason` given) or released (`None`) by `actor`; the
/// conversation or user it covers is the event's, so the trail's filters
/// find it.
pub fn hold(actor: &str, scope: HoldScope, target: &str, reason: Option<&str>) -> AuditEvent {
    let kind = if reason.is_some() { EventKind::LegalHoldSet } else { EventKind::LegalHoldReleased };
    let mut ev = AuditEvent::new(kind, actor);
    match scope {
        HoldScope::Conversation => ev = ev.conversation(target.parse().unwrap_or(0)),
        HoldScope::User => ev = ev.target(target),
        HoldScope::Case => {}
    }
    let mut details = json!({"scope": scope.name(), "target": target});
    if let Some(reason) = reason {
        details["reason"] = reason.into();
    }
    ev.details(details)
}

/// The purge job removed `messages` (and `attachments`) of a conversation
/// up to its new mark `through`.
pub fn purged(conversation_id: u64, through: u64, messages: u64, attachments: u64) -> AuditEvent {
    AuditEvent::new(EventKind::RetentionPurged, "chatd")
        .conversation(conversation_id)
        .details(json!({"through": through, "messages": messages, "attachments": attachments}))
}

/// The blob sweep removed `blobs` attachment files no record named any more.
pub fn swept(blobs: u64) -> AuditEvent {
    AuditEvent::new(EventKind::RetentionPurged, "chatd").details(json!({"orphaned_files": blobs}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_names_what_it_covers() {
        let ev = hold("ada", HoldScope::Conversation, "42", Some("litigation"));
        assert_eq!((ev.kind, ev.conversation_id, ev.target_user.as_str()), (EventKind::LegalHoldSet, 42, ""));
        assert_eq!(ev.details, json!({"scope": "conversation", "target": "42", "reason": "litigation"}));
        let ev = hold("ada", HoldScope::User, "bob", None);
        assert_eq!((ev.kind, ev.conversation_id, ev.target_user.as_str()), (EventKind::LegalHoldReleased, 0, "bob"));
        assert_eq!(ev.details, json!({"scope": "user", "target": "bob"}));
    }
}
