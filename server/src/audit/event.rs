//! What can be audited: the [`EventKind`]s (their stored names are the
//! contract readers filter by) and the [`AuditEvent`] a producer hands to
//! `Audit::record`. Plain sends are never events.

use serde_json::Value;

/// The kinds of audited events. Add new ones at the end; the name is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A session was opened (details: session, transport, remote).
    SessionOpened,
    /// A connection was refused (details: code and reason).
    SessionRefused,
    /// A conversation was created (details: kind, title, members).
    ConversationCreated,
    /// A conversation was archived.
    ConversationArchived,
    /// A conversation was taken out of the archive.
    ConversationUnarchived,
    /// A member was added (or joined a support conversation).
    MemberAdded,
    /// A member was removed by someone else.
    MemberRemoved,
    /// A member left.
    MemberLeft,
    /// A member's role changed (details: the new role).
    MemberRoleChanged,
    /// A message was edited (details: its seq and the event's, which key the earlier version).
    MessageEdited,
    /// A message was deleted (details as for an edit).
    MessageDeleted,
    /// A file was uploaded (details: attachment id, name, size, sha256).
    AttachmentUploaded,
    /// A file was downloaded (details: attachment id, offset, length).
    AttachmentDownloaded,
    /// The audit trail was exported (details: format, filters, count).
    AuditExported,
    /// A user's data was exported (GDPR).
    UserExported,
    /// A user's data was erased (GDPR).
    UserErased,
    /// A legal hold was set.
    LegalHoldSet,
    /// A legal hold was released.
    LegalHoldReleased,
    /// Expired messages were purged (counts, never content).
    RetentionPurged,
    /// Another administrative action (details say which).
    AdminAction,
    /// The node started with this configuration (secrets redacted).
    ConfigAtStart,
    /// A conversation's retention was set (details: days; 0 keeps forever).
    RetentionSet,
    /// A user entered the directory at their first sign-in (details: role).
    UserCreated,
    /// A whole conversation was erased (details: reason, counts, whether its key was destroyed).
    ConversationErased,
    /// A service account called the server API (details: method, path, status, error code).
    ApiCall,
    /// A service account was created (details: scopes).
    ServiceAccountCreated,
    /// A service account's secret was replaced.
    ServiceAccountRotated,
    /// A service account was revoked.
    ServiceAccountRevoked,
    /// A transcript was exported (details: format, conversations, messages, the document's SHA-256).
    TranscriptExported,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 29] = [
        EventKind::SessionOpened,
        EventKind::SessionRefused,
        EventKind::ConversationCreated,
        EventKind::ConversationArchived,
        EventKind::ConversationUnarchived,
        EventKind::MemberAdded,
        EventKind::MemberRemoved,
        EventKind::MemberLeft,
        EventKind::MemberRoleChanged,
        EventKind::MessageEdited,
        EventKind::MessageDeleted,
        EventKind::AttachmentUploaded,
        EventKind::AttachmentDownloaded,
        EventKind::AuditExported,
        EventKind::UserExported,
        EventKind::UserErased,
        EventKind::LegalHoldSet,
        EventKind::LegalHoldReleased,
        EventKind::RetentionPurged,
        EventKind::AdminAction,
        EventKind::ConfigAtStart,
        EventKind::RetentionSet,
        EventKind::UserCreated,
        EventKind::ConversationErased,
        EventKind::ApiCall,
        EventKind::ServiceAccountCreated,
        EventKind::ServiceAccountRotated,
        EventKind::ServiceAccountRevoked,
        EventKind::TranscriptExported,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionOpened => "session.opened",
            EventKind::SessionRefused => "session.refused",
            EventKind::ConversationCreated => "conversation.created",
            EventKind::ConversationArchived => "conversation.archived",
            EventKind::ConversationUnarchived => "conversation.unarchived",
            EventKind::MemberAdded => "member.added",
            EventKind::MemberRemoved => "member.removed",
            EventKind::MemberLeft => "member.left",
            EventKind::MemberRoleChanged => "member.role_changed",
            EventKind::MessageEdited => "message.edited",
            EventKind::MessageDeleted => "message.deleted",
            EventKind::AttachmentUploaded => "attachment.uploaded",
            EventKind::AttachmentDownloaded => "attachment.downloaded",
            EventKind::AuditExported => "audit.exported",
            EventKind::UserExported => "gdpr.exported",
            EventKind::UserErased => "gdpr.erased",
            EventKind::LegalHoldSet => "legal_hold.set",
            EventKind::LegalHoldReleased => "legal_hold.released",
            EventKind::RetentionPurged => "retention.purged",
            EventKind::AdminAction => "admin.action",
            EventKind::ConfigAtStart => "config.start",
            EventKind::RetentionSet => "retention.set",
            EventKind::UserCreated => "user.created",
            EventKind::ConversationErased => "conversation.erased",
            EventKind::ApiCall => "api.call",
            EventKind::ServiceAccountCreated => "service_account.created",
            EventKind::ServiceAccountRotated => "service_account.rotated",
            EventKind::ServiceAccountRevoked => "service_account.revoked",
            EventKind::TranscriptExported => "transcript.exported",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One event to record: what, by whom, about which conversation and user,
/// and details (a JSON object; never message content).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// What happened.
    pub kind: EventKind,
    /// Who did it (a user id; `chatd` for the server; empty if unknown).
    pub actor: String,
    /// The conversation (0: none).
    pub conversation_id: u64,
    /// The user it was done to (empty: none).
    pub target_user: String,
    /// Details, a JSON object.
    pub details: Value,
}

impl AuditEvent {
    /// An event of `kind` by `actor` with no conversation, target or details.
    pub fn new(kind: EventKind, actor: impl Into<String>) -> Self {
        Self {
            kind,
            actor: actor.into(),
            conversation_id: 0,
            target_user: String::new(),
            details: Value::Object(Default::default()),
        }
    }

    /// With the conversation it concerns.
    pub fn conversation(mut self, id: u64) -> Self {
        self.conversation_id = id;
        self
    }

    /// With the user it was done to.
    pub fn target(mut self, user: impl Into<String>) -> Self {
        self.target_user = user.into();
        self
    }

    /// With details (a JSON object).
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_web_apps_filter_offers_every_kind() {
        let screen = include_str!("../../../client-sdk/web/app/components/AuditScreen.tsx");
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert!(screen.contains(&format!("\"{}\"", kind.as_str())), "the audit screen lacks {}", kind.as_str());
        }
    }
}
