//! Retention as stored: each conversation's purge mark (`purged_through`,
//! the highest seq the retention job removed) and the legal holds
//! ([`HoldRecord`]), with the [`RetentionStore`] contract every backend
//! implements (embedded: the `retention` and `legal_holds` keyspaces;
//! ScyllaDB: tables of the same names) and [`Store`] choosing the configured
//! one. It decides nothing about what expires (`crate::retention` does).

use super::{Store, StoreResult, delegate};

/// What a legal hold covers, as stored (the wire enum's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum HoldScope {
    /// One conversation, by id (decimal).
    Conversation,
    /// Everything a user is a member of, by user id.
    User,
    /// Every conversation of a case, by case id.
    Case,
}

impl HoldScope {
    /// The scope's name for people and the audit trail ("conversation", "user", "case").
    pub fn name(self) -> &'static str {
        match self {
            HoldScope::Conversation => "conversation",
            HoldScope::User => "user",
            HoldScope::Case => "case",
        }
    }

    /// The scope's tag in keys.
    pub fn tag(self) -> u8 {
        match self {
            HoldScope::Conversation => 1,
            HoldScope::User => 2,
            HoldScope::Case => 3,
        }
    }

    /// The scope of a key tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(HoldScope::Conversation),
            2 => Some(HoldScope::User),
            3 => Some(HoldScope::Case),
            _ => None,
        }
    }
}

/// One legal hold: while it exists, nothing under it is purged or erased.
/// `(scope, target)` is its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HoldRecord {
    /// What it covers.
    pub scope: HoldScope,
    /// The conversation id (decimal), user id or case id.
    pub target: String,
    /// Why (the matter, the order), as the admin gave it.
    pub reason: String,
    /// The admin who set it.
    pub set_by: String,
    /// When, ms since the Unix epoch.
    pub set_at_ms: u64,
}

/// Storage of purge marks and legal holds. Every write is durable on return.
#[allow(async_fn_in_trait)]
pub trait RetentionStore: Send + Sync + 'static {
    /// The highest purged seq of a conversation (0: nothing purged).
    async fn purged_through(&self, conversation_id: u64) -> StoreResult<u64>;

    /// Removes the conversation's messages at or below `through`, their kept
    /// versions and idempotency records, then moves the purge mark up to
    /// `through` (never down). Idempotent: a repeat, or one at or below the
    /// mark, removes what is left and changes nothing else. The
    /// conversation's last seq never goes down (it is at least the mark).
    async fn purge_through(&self, conversation_id: u64, through: u64) -> StoreResult<()>;

    /// Removes the kept versions of message `seq` (an erased message keeps
    /// no earlier body); none: not an error.
    async fn forget_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<()>;

    /// Removes the content of stored message `seq` (body, attachment list;
    /// sealed or not), keeping its metadata: what a deleted message's EDIT
    /// events keep. Whether the message is stored.
    async fn strip_message(&self, conversation_id: u64, seq: u64) -> StoreResult<bool>;

    /// Removes an attachment record (absent: not an error).
    async fn delete_attachment(&self, conversation_id: u64, id: &str) -> StoreResult<()>;

    /// Sets a hold (a second one of the same key replaces it).
    async fn put_hold(&self, hold: &HoldRecord) -> StoreResult<()>;

    /// Releases a hold; whether there was one.
    async fn remove_hold(&self, scope: HoldScope, target: &str) -> StoreResult<bool>;

    /// Every hold, by scope then target.
    async fn holds(&self) -> StoreResult<Vec<HoldRecord>>;
}

impl RetentionStore for Store {
    async fn purged_through(&self, conversation_id: u64) -> StoreResult<u64> {
        delegate!(self, s => s.purged_through(conversation_id).await)
    }

    async fn purge_through(&self, conversation_id: u64, through: u64) -> StoreResult<()> {
        delegate!(self, s => s.purge_through(conversation_id, through).await)
    }

    async fn forget_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<()> {
        delegate!(self, s => s.forget_versions(conversation_id, seq).await)
    }

    async fn strip_message(&self, conversation_id: u64, seq: u64) -> StoreResult<bool> {
        delegate!(self, s => s.strip_message(conversation_id, seq).await)
    }

    async fn delete_attachment(&self, conversation_id: u64, id: &str) -> StoreResult<()> {
        delegate!(self, s => s.delete_attachment(conversation_id, id).await)
    }

    async fn put_hold(&self, hold: &HoldRecord) -> StoreResult<()> {
        delegate!(self, s => s.put_hold(hold).await)
    }

    async fn remove_hold(&self, scope: HoldScope, target: &str) -> StoreResult<bool> {
        delegate!(self, s => s.remove_hold(scope, target).await)
    }

    async fn holds(&self) -> StoreResult<Vec<HoldRecord>> {
        delegate!(self, s => s.holds().await)
    }
}
