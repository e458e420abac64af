//! Service accounts as stored: the [`ServiceAccountRecord`] of a
//! server-to-server client (the firm's case-management system), its
//! [`Scope`]s, and the [`ServiceAccountStore`] contract every backend
//! implements (embedded: the `service_accounts` keyspace; ScyllaDB: the
//! `service_accounts` table), with [`Store`] choosing the configured one.
//! Writes are compare-and-set on `updated_at_ms`, so a revocation is never
//! undone by a concurrent rotation. The secret is kept only as its SHA-256.
//! It does not own credentials' format or checks (that is `crate::api`).

use super::{Store, StoreResult};

/// What a service account may do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// List case conversations, read their history, export them.
    Read,
    /// Create case conversations, keep their members, archive them, post system messages.
    Write,
    /// Provision and deactivate users.
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// Its name (`read`, `write`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// The scope called `name`.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What an event webhook is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum HookKind {
    /// A message (a person's or a system message) was stored.
    #[serde(rename = "message.posted")]
    MessagePosted,
    /// Someone was added to a conversation.
    #[serde(rename = "member.added")]
    MemberAdded,
    /// Someone was removed from (or left) a conversation.
    #[serde(rename = "member.removed")]
    MemberRemoved,
    /// A conversation was archived.
    #[serde(rename = "conversation.archived")]
    ConversationArchived,
    /// A file was uploaded into a conversation.
    #[serde(rename = "attachment.uploaded")]
    AttachmentUploaded,
}

impl HookKind {
    /// Every kind.
    pub const ALL: [HookKind; 5] = [
        HookKind::MessagePosted,
        HookKind::MemberAdded,
        HookKind::MemberRemoved,
        HookKind::ConversationArchived,
        HookKind::AttachmentUploaded,
    ];

    /// Its name in payloads and subscriptions.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::MessagePosted => "message.posted",
            HookKind::MemberAdded => "member.added",
            HookKind::MemberRemoved => "member.removed",
            HookKind::ConversationArchived => "conversation.archived",
            HookKind::AttachmentUploaded => "attachment.uploaded",
        }
    }
}

/// An event webhook of a service account: where its events go, signed with
/// `secret` (HMAC-SHA256, as offline notifications are).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Webhook {
    /// Server-made id (16 hex), unique within the account.
    pub id: String,
    /// The receiver (`http://` or `https://`).
    pub url: String,
    /// The events it is told of.
    pub events: Vec<HookKind>,
    /// Only conversations of these cases (empty: every conversation of the account).
    pub case_ids: Vec<String>,
    /// Whether a posted message's text goes along.
    pub include_content: bool,
    /// The signing key (hex), shown once at creation.
    pub secret: String,
    /// Creation, ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// A service account. Its user id in conversations is `svc:<id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceAccountRecord {
    /// Short name chosen at creation (`[a-z0-9-]`, 1-32 bytes).
    pub id: String,
    /// What the apps show as the sender of its messages.
    pub display_name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of its secret.
    pub secret_sha256: String,
    /// Creation, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Who created it.
    pub created_by: String,
    /// Revocation, ms since the Unix epoch (0: active).
    pub revoked_at_ms: u64,
    /// Who revoked it.
    pub revoked_by: String,
    /// Last write, ms since the Unix epoch (the compare-and-set token).
    pub updated_at_ms: u64,
    /// Its event webhooks.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

impl ServiceAccountRecord {
    /// Whether it may still call the API.
    pub fn active(&self) -> bool {
        self.revoked_at_ms == 0
    }
}

/// Storage of service accounts. Every write is durable on return.
#[allow(async_fn_in_trait)]
pub trait ServiceAccountStore: Send + Sync + 'static {
    /// Every service account (revoked ones included), by id.
    async fn service_accounts(&self) -> StoreResult<Vec<ServiceAccountRecord>>;

    /// One service account.
    async fn get_service_account(&self, id: &str) -> StoreResult<Option<ServiceAccountRecord>>;

    /// Writes `rec` if the stored one matches `expected`: None, when none
    /// with its id exists (create); `Some(t)`, when one exists with
    /// `updated_at_ms == t` (update). Returns whether it wrote.
    async fn put_service_account(&self, rec: &ServiceAccountRecord, expected: Option<u64>) -> StoreResult<bool>;
}

impl ServiceAccountStore for Store {
    async fn service_accounts(&self) -> StoreResult<Vec<ServiceAccountRecord>> {
        super::delegate!(self, s => s.service_accounts().await)
    }

    async fn get_service_account(&self, id: &str) -> StoreResult<Option<ServiceAccountRecord>> {
        super::delegate!(self, s => s.get_service_account(id).await)
    }

    async fn put_service_account(&self, rec: &ServiceAccountRecord, expected: Option<u64>) -> StoreResult<bool> {
        super::delegate!(self, s => s.put_service_account(rec, expected).await)
    }
}
