//! A transcript as data (sans-IO): a conversation's participants and
//! entries in their latest state, each stamped in the firm's time zone,
//! edits and deletions marked, attachments listed with their SHA-256, and
//! the export's header (when, by whom, the audit chain's head). The PDF and
//! the JSON are both made from it, so they say the same thing.

use chat_protocol::v1::{self, ConversationKind, MemberRole, MessageKind, Role, message_body::Content};
use jiff::tz::TimeZone;
use serde::Serialize;

/// Who asked for the export, when, and the audit trail's head then.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Header {
    /// When, in the firm's time zone.
    pub exported_at: String,
    /// Who (a user or service account id, or `chatd`).
    pub exported_by: String,
    /// The time zone of every time shown.
    pub time_zone: String,
    /// The audit chain of the node that made it.
    pub audit_chain: String,
    /// Its last entry's seq when the export began.
    pub audit_head_seq: u64,
    /// That entry's hash (hex).
    pub audit_head_hash: String,
}

/// A participant with their roles.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Participant {
    /// User id.
    pub user_id: String,
    /// Display name (the id when unknown).
    pub name: String,
    /// Their role in the firm (`advocate`, `client`, `admin`, `service`).
    pub role: &'static str,
    /// Their role in the conversation (`admin`, `moderator`, `member`).
    pub conversation_role: &'static str,
}

/// A file listed with a message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileLine {
    /// Attachment id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
    /// SHA-256, hex.
    pub sha256: String,
}

/// One message in its latest state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Its seq.
    pub seq: u64,
    /// When it was stored, in the firm's time zone.
    pub time: String,
    /// Sender id.
    pub sender_id: String,
    /// Sender's display name.
    pub sender_name: String,
    /// A system message (posted by an integration).
    pub system: bool,
    /// The text (None: deleted, or end-to-end encrypted).
    pub text: Option<String>,
    /// End-to-end encrypted: the server cannot show it.
    pub encrypted: bool,
    /// When it was last edited (None: never).
    pub edited_at: Option<String>,
    /// Who deleted it (None: not deleted).
    pub deleted_by: Option<String>,
    /// The seq it answers (0: none).
    pub reply_to: u64,
    /// Its files.
    pub files: Vec<FileLine>,
}

/// One conversation's transcript.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Transcript {
    /// Conversation id.
    pub conversation_id: u64,
    /// Title.
    pub title: String,
    /// Kind (`private`, `group`, `case`, `support`).
    pub kind: &'static str,
    /// Case id (empty: none).
    pub case_id: String,
    /// Created, in the firm's time zone.
    pub created_at: String,
    /// Archived (None: active).
    pub archived_at: Option<String>,
    /// Messages up to this seq were removed by retention (0: none).
    pub purged_through: u64,
    /// Members now.
    pub participants: Vec<Participant>,
    /// The messages, by seq.
    pub entries: Vec<Entry>,
}

/// `ms` (since the Unix epoch) as `YYYY-MM-DD HH:MM:SS ZONE` in `tz`.
pub fn stamp(ms: u64, tz: &TimeZone) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)) else {
        return format!("{ms} ms");
    };
    ts.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// The name of a firm role.
pub fn role_name(role: i32) -> &'static str {
    match Role::try_from(role) {
        Ok(Role::Advocate) => "advocate",
        Ok(Role::Client) => "client",
        Ok(Role::Admin) => "admin",
        Ok(Role::Service) => "service",
        _ => "unknown",
    }
}

/// The name of a conversation role.
pub fn member_role_name(role: i32) -> &'static str {
    match MemberRole::try_from(role) {
        Ok(MemberRole::Admin) => "admin",
        Ok(MemberRole::Moderator) => "moderator",
        Ok(MemberRole::Member) => "member",
        _ => "unknown",
    }
}

/// The name of a conversation kind.
pub fn kind_name(kind: i32) -> &'static str {
    match ConversationKind::try_from(kind) {
        Ok(ConversationKind::Private) => "private",
        Ok(ConversationKind::Group) => "group",
        Ok(ConversationKind::Case) => "case",
        Ok(ConversationKind::Support) => "support",
        _ => "unknown",
    }
}

/// The entry of a stored message (None: an event, shown on its target).
pub fn entry(m: &v1::Message, name: impl Fn(&str) -> String, tz: &TimeZone) -> Option<Entry> {
    let system = m.kind == MessageKind::System as i32;
    if m.kind != MessageKind::User as i32 && !system {
        return None;
    }
    let (text, encrypted) = match m.body.as_ref().and_then(|b| b.content.as_ref()) {
        _ if m.deleted => (None, false),
        Some(Content::Text(t)) => (Some(t.clone()), false),
        Some(Content::Ciphertext(_)) => (None, true),
        None => (Some(String::new()), false),
    };
    let files = m
        .attachments
        .iter()
        .map(|a| FileLine {
            id: a.attachment_id.clone(),
            name: a.name.clone(),
            size: a.size,
            media_type: a.media_type.clone(),
            sha256: a.sha256.clone(),
        })
        .collect();
    Some(Entry {
        seq: m.seq,
        time: stamp(m.server_time_ms, tz),
        sender_id: m.sender_id.clone(),
        sender_name: name(&m.sender_id),
        system,
        text,
        encrypted,
        edited_at: (m.edited_at_ms != 0).then(|| stamp(m.edited_at_ms, tz)),
        deleted_by: m.deleted.then(|| if m.deleted_by.is_empty() { m.sender_id.clone() } else { m.deleted_by.clone() }),
        reply_to: m.reply_to,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, kind: MessageKind, text: &str) -> v1::Message {
        v1::Message {
            seq,
            kind: kind as i32,
            sender_id: "ann".into(),
            server_time_ms: 1_715_680_800_000,
            body: Some(v1::MessageBody { content: Some(Content::Text(text.into())) }),
            ..Default::default()
        }
    }

    #[test]
    fn times_are_in_the_firms_zone() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(stamp(1_715_680_800_000, &berlin), "2024-05-14 12:00:00 CEST");
        assert_eq!(stamp(1_705_233_600_000, &berlin), "2024-01-14 13:00:00 CET", "winter time");
        assert_eq!(stamp(1_715_680_800_000, &TimeZone::UTC), "2024-05-14 10:00:00 UTC");
    }

    #[test]
    fn entries_mark_edits_deletions_and_files_and_skip_events() {
        let tz = TimeZone::UTC;
        let name = |id: &str| format!("{id} name");
        let mut m = msg(3, MessageKind::User, "draft");
        m.edited_at_ms = 1_715_680_860_000;
        m.attachments.push(v1::Attachment {
            name: "brief.pdf".into(),
            size: 9,
            sha256: "ab".repeat(32),
            ..Default::default()
        });
        let e = entry(&m, name, &tz).unwrap();
        assert_eq!((e.text.as_deref(), e.edited_at.as_deref()), (Some("draft"), Some("2024-05-14 10:01:00 UTC")));
        assert_eq!((e.sender_name.as_str(), e.files[0].sha256.len()), ("ann name", 64));
        let mut d = msg(4, MessageKind::User, "gone");
        d.deleted = true;
        d.deleted_by = "mo".into();
        let e = entry(&d, name, &tz).unwrap();
        assert_eq!((e.text, e.deleted_by.as_deref()), (None, Some("mo")), "a deleted message shows no text");
        assert!(entry(&msg(5, MessageKind::Edit, "x"), name, &tz).is_none(), "events are marked on their targets");
        assert!(entry(&msg(6, MessageKind::System, "hearing"), name, &tz).unwrap().system);
    }
}
