//! The server API's JSON: the views of conversations, members, messages and
//! users it answers with, and the request bodies it accepts (unknown fields
//! refused, like the configuration). Ids are strings (a 64-bit id does not
//! fit a JavaScript number); times are ms since the Unix epoch.

use chat_protocol::v1::{self, MessageKind, Role, message_body};
use serde::Deserialize;
use serde_json::{Value, json};

/// `POST /users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionUser {
    /// The user's id (as their tokens carry it).
    pub id: String,
    /// The name the apps show.
    pub display_name: String,
    /// `advocate`, `client` or `admin`.
    pub role: String,
}

/// `POST /users/{id}/deactivate` and `/reactivate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why (kept in the audit trail).
    pub reason: String,
}

/// `POST /cases/{case_id}/conversations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCase {
    /// The conversation's title; within a case it names the conversation
    /// (a second create with the same title answers the first).
    pub title: String,
    /// The case team (user ids).
    #[serde(default)]
    pub members: Vec<String>,
}

/// `PUT /cases/{case_id}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMembers {
    /// The whole case team (user ids).
    pub members: Vec<String>,
}

/// `POST /conversations/{id}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The caller's id of this message (1-64 printable ASCII bytes): a retry
    /// with the same id answers the first post.
    pub client_msg_id: String,
    /// The text.
    pub text: String,
}

/// `POST /webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// The receiver (`http://` or `https://`).
    pub url: String,
    /// The events it is told of.
    pub events: Vec<crate::store::service_accounts::HookKind>,
    /// Only these cases (empty: every conversation of the account).
    #[serde(default)]
    pub case_ids: Vec<String>,
    /// Whether a posted message's text goes along. Default false.
    #[serde(default)]
    pub include_content: bool,
}

pub use crate::transcript::model::{kind_name, member_role_name as member_role, role_name};

/// The role called `name` (people's roles only).
pub fn parse_role(name: &str) -> Option<Role> {
    [Role::Advocate, Role::Client, Role::Admin].into_iter().find(|r| role_name(*r as i32) == name)
}

/// A conversation (from a summary).
pub fn conversation(s: &v1::ConversationSummary) -> Value {
    let c = s.conversation.clone().unwrap_or_default();
    json!({
        "id": c.id.to_string(),
        "kind": kind_name(c.kind),
        "title": c.title,
        "case_id": c.case_id,
        "created_by": c.created_by,
        "created_at_ms": c.created_at_ms,
        "archived": c.archived_at_ms != 0,
        "archived_at_ms": c.archived_at_ms,
        "last_seq": c.last_seq,
        "member_count": c.member_count,
        "retention_days": c.retention_days,
        "legal_hold": c.legal_hold,
        "e2e": c.e2e,
    })
}

/// A conversation's members.
pub fn members(m: &[v1::Member]) -> Value {
    m.iter()
        .map(|m| {
            json!({
                "user_id": m.user_id,
                "display_name": m.display_name,
                "role": member_role(m.role),
                "user_role": role_name(m.user_role),
                "joined_at_ms": m.joined_at_ms,
                "read_seq": m.read_seq,
            })
        })
        .collect()
}

fn message_kind(kind: i32) -> &'static str {
    match MessageKind::try_from(kind) {
        Ok(MessageKind::User) => "user",
        Ok(MessageKind::System) => "system",
        Ok(MessageKind::Edit) => "edit",
        Ok(MessageKind::Delete) => "delete",
        Ok(MessageKind::Reaction) => "reaction",
        _ => "unspecified",
    }
}

/// An attachment's metadata.
pub fn attachment(a: &v1::Attachment) -> Value {
    json!({"id": a.attachment_id, "name": a.name, "size": a.size, "media_type": a.media_type, "sha256": a.sha256})
}

/// A message in its latest state (text null when end-to-end encrypted or deleted).
pub fn message(m: &v1::Message) -> Value {
    let (text, encrypted) = match m.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(message_body::Content::Text(t)) => (Value::from(t.as_str()), false),
        Some(message_body::Content::Ciphertext(_)) => (Value::Null, true),
        None => (Value::Null, false),
    };
    json!({
        "seq": m.seq,
        "kind": message_kind(m.kind),
        "sender_id": m.sender_id,
        "server_time_ms": m.server_time_ms,
        "text": text,
        "encrypted": encrypted,
        "reply_to": m.reply_to,
        "edited_at_ms": m.edited_at_ms,
        "deleted": m.deleted,
        "deleted_by": m.deleted_by,
        "target_seq": m.target_seq,
        "reactions": m.reactions.iter().map(|r| json!({"emoji": r.emoji, "user_ids": r.user_ids})).collect::<Vec<_>>(),
        "attachments": m.attachments.iter().map(attachment).collect::<Vec<_>>(),
    })
}

/// A user of the directory.
pub fn user(u: &v1::DirectoryUser) -> Value {
    json!({"id": u.id, "display_name": u.display_name, "role": role_name(u.role), "disabled": u.disabled})
}
