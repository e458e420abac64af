//! The records the store keeps and the shapes of its calls: messages to
//! append (with an event's write of its target), kept versions,
//! conversations, memberships, users, read ranges and list keys. Plain data,
//! shared by every backend; it does nothing.

use bytes::Bytes;

/// A message to append: already sequenced by the conversation's owner.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Conversation.
    pub conversation_id: u64,
    /// Its seq, the conversation's previous last seq + 1.
    pub seq: u64,
    /// Sender's user id (for the idempotency record).
    pub sender_id: String,
    /// Client message id (for the idempotency record; empty for system lines).
    pub client_msg_id: String,
    /// The encoded `chat.v1.Message`.
    pub encoded: Bytes,
    /// An event's change of an earlier message, written with it (None: a
    /// plain message).
    pub target: Option<Box<TargetWrite>>,
}

/// What an event (edit, delete, reaction) does to the message it names, in
/// the same commit as the event.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetWrite {
    /// The changed message's seq (already stored, below the event's).
    pub seq: u64,
    /// Its new latest state, an encoded `chat.v1.Message`, replacing the stored one.
    pub latest: Bytes,
    /// The version it replaces, kept for the audit trail.
    pub version: MessageVersion,
}

/// One earlier version of a message: what it was before an event changed it,
/// who changed it and when. Members never read these; the audit trail does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageVersion {
    /// Conversation.
    pub conversation_id: u64,
    /// The changed message's seq.
    pub target_seq: u64,
    /// The seq of the event that changed it.
    pub event_seq: u64,
    /// Who changed it (the event's sender).
    pub changed_by: String,
    /// When, ms since the Unix epoch (the event's server time).
    pub changed_at_ms: u64,
    /// The event's `chat.v1.MessageKind` number (EDIT, DELETE, REACTION).
    pub kind: i32,
    /// The message as it was before, an encoded `chat.v1.Message`.
    pub prior: Vec<u8>,
}

/// Conversation kinds, as stored (the wire enum's numbers).
pub type Kind = i32;

/// A conversation's metadata, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationRecord {
    /// Id.
    pub id: u64,
    /// `chat.v1.ConversationKind` number.
    pub kind: Kind,
    /// Title (may be empty).
    pub title: String,
    /// Case id (kind CASE).
    pub case_id: String,
    /// Creator's user id.
    pub created_by: String,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Archive time (0: active).
    pub archived_at_ms: u64,
    /// `chat.v1.SupportState` number (kind SUPPORT).
    pub support_state: i32,
    /// End-to-end encrypted conversation (reserved).
    pub e2e: bool,
    /// Retention in days (0: the server default).
    pub retention_days: u32,
    /// Legal hold: nothing is deleted while set.
    pub legal_hold: bool,
}

/// One membership, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberRecord {
    /// Conversation.
    pub conversation_id: u64,
    /// Member's user id.
    pub user_id: String,
    /// `chat.v1.MemberRole` number.
    pub role: i32,
    /// When they joined, ms since the Unix epoch.
    pub joined_at_ms: u64,
    /// Highest seq delivered to any of their devices.
    pub delivered_seq: u64,
    /// Highest seq they have read.
    pub read_seq: u64,
}

/// A user of the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    /// Id (the token's `sub`).
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// `chat.v1.Role` number.
    pub role: i32,
    /// Disabled by an admin: refused at connect.
    #[serde(default)]
    pub disabled: bool,
    /// Provisioned by an admin: the directory's name and role win over a token's claims.
    #[serde(default)]
    pub provisioned: bool,
}

/// Which way a history read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first, from just after `after`.
    Forward,
    /// Newest first from just before `before` (the result is still returned
    /// in ascending seq order).
    Backward,
}

/// A read of a conversation's messages with `after < seq < before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Exclusive lower bound (0: from the start).
    pub after: u64,
    /// Exclusive upper bound (`u64::MAX`: to the end).
    pub before: u64,
    /// Most messages to return.
    pub limit: usize,
    /// Which end the `limit` counts from.
    pub direction: Direction,
}

/// What a create-if-absent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The conversation is new.
    New,
    /// A conversation with this id existed; nothing was written.
    Existing(ConversationRecord),
}

/// A place in an ordered list of conversations: `(time in unix ms,
/// conversation_id)` (a user's list: the activity; the support queue: the
/// creation).
pub type ListKey = (u64, u64);
