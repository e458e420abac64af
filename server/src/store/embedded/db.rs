//! The database: its keyspaces ([`Ks`], fjall's tables), the open handles
//! ([`Db`]), and the conversions of fjall failures and JSON values. It does not decide what is
//! written (the writer does) or read (the store's reads do).

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, Slice};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{StoreError, StoreResult};

/// The keyspaces (fjall's tables), in [`Ks`] order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Ks {
    Messages,
    Idempotency,
    Conversations,
    Members,
    UserConvs,
    SupportQueue,
    Users,
    Meta,
    Activity,
    UserActivity,
    Versions,
    Templates,
    Attachments,
    Audit,
    Retention,
    LegalHolds,
    DataKeys,
    ServiceAccounts,
    KeyPackages,
}

impl Ks {
    pub(super) const ALL: [Ks; 19] = [
        Ks::Messages,
        Ks::Idempotency,
        Ks::Conversations,
        Ks::Members,
        Ks::UserConvs,
        Ks::SupportQueue,
        Ks::Users,
        Ks::Meta,
        Ks::Activity,
        Ks::UserActivity,
        Ks::Versions,
        Ks::Templates,
        Ks::Attachments,
        Ks::Audit,
        Ks::Retention,
        Ks::LegalHolds,
        Ks::DataKeys,
        Ks::ServiceAccounts,
        Ks::KeyPackages,
    ];

    /// The keyspace's name, also the table named in [`StoreError::Corrupt`].
    pub(super) fn name(self) -> &'static str {
        match self {
            Ks::Messages => "messages",
            Ks::Idempotency => "idempotency",
            Ks::Conversations => "conversations",
            Ks::Members => "members",
            Ks::UserConvs => "user_convs",
            Ks::SupportQueue => "support_queue",
            Ks::Users => "users",
            Ks::Meta => "meta",
            Ks::Activity => "activity",
            Ks::UserActivity => "user_activity",
            Ks::Versions => "message_versions",
            Ks::Templates => "templates",
            Ks::Attachments => "attachments",
            Ks::Audit => "audit",
            Ks::Retention => "retention",
            Ks::LegalHolds => "legal_holds",
            Ks::DataKeys => "data_keys",
            Ks::ServiceAccounts => "service_accounts",
            Ks::KeyPackages => "key_packages",
        }
    }

    /// The keyspace named `name` (see [`Ks::name`]).
    pub(super) fn by_name(name: &str) -> Option<Ks> {
        Ks::ALL.iter().copied().find(|ks| ks.name() == name)
    }

    pub(super) fn from_tag(tag: u8) -> Option<Ks> {
        Ks::ALL.get(usize::from(tag)).copied()
    }
}

/// A keyspace's memtable at most before fjall flushes it to a table on disk.
/// fjall's default is 64 MiB per keyspace, with no total: chatd's RSS grew
/// ~1.3 KB per message to ~480 MiB before the memtables flushed, which hid
/// every other memory bound (the `hoard` runs in bench/RESULTS.md); at 8 MiB
/// the keyspaces hold 8 MiB each at most, and the writer's CPU per message did
/// not change (`spec`, 5,000 msg/s). fjall keeps a keyspace's size from its
/// creation: a store made before this change keeps 64 MiB.
const MEMTABLE: u64 = 8 << 20;

/// The open database and a handle on each keyspace.
pub(super) struct Db {
    pub(super) db: Database,
    messages: Keyspace,
    idempotency: Keyspace,
    conversations: Keyspace,
    members: Keyspace,
    user_convs: Keyspace,
    support_queue: Keyspace,
    users: Keyspace,
    meta: Keyspace,
    activity: Keyspace,
    user_activity: Keyspace,
    versions: Keyspace,
    templates: Keyspace,
    attachments: Keyspace,
    audit: Keyspace,
    retention: Keyspace,
    legal_holds: Keyspace,
    data_keys: Keyspace,
    service_accounts: Keyspace,
    key_packages: Keyspace,
}

impl Db {
    pub(super) fn open(path: &Path) -> fjall::Result<Self> {
        let db = Database::builder(path).open()?;
        let open = |ks: Ks| db.keyspace(ks.name(), || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE));
        Ok(Self {
            messages: open(Ks::Messages)?,
            idempotency: open(Ks::Idempotency)?,
            conversations: open(Ks::Conversations)?,
            members: open(Ks::Members)?,
            user_convs: open(Ks::UserConvs)?,
            support_queue: open(Ks::SupportQueue)?,
            users: open(Ks::Users)?,
            meta: open(Ks::Meta)?,
            activity: open(Ks::Activity)?,
            user_activity: open(Ks::UserActivity)?,
            versions: open(Ks::Versions)?,
            // Made empty when an older store is opened: nothing to upgrade.
            templates: open(Ks::Templates)?,
            // Likewise made empty in an older store.
            attachments: open(Ks::Attachments)?,
            // Likewise.
            audit: open(Ks::Audit)?,
            // Likewise (retention and legal holds).
            retention: open(Ks::Retention)?,
            legal_holds: open(Ks::LegalHolds)?,
            // Likewise (encryption at rest).
            data_keys: open(Ks::DataKeys)?,
            // Likewise (the API's service accounts).
            service_accounts: open(Ks::ServiceAccounts)?,
            // Likewise (the E2E KeyPackage directory).
            key_packages: open(Ks::KeyPackages)?,
            db,
        })
    }

    pub(super) fn ks(&self, ks: Ks) -> &Keyspace {
        match ks {
            Ks::Messages => &self.messages,
            Ks::Idempotency => &self.idempotency,
            Ks::Conversations => &self.conversations,
            Ks::Members => &self.members,
            Ks::UserConvs => &self.user_convs,
            Ks::SupportQueue => &self.support_queue,
            Ks::Users => &self.users,
            Ks::Meta => &self.meta,
            Ks::Activity => &self.activity,
            Ks::UserActivity => &self.user_activity,
            Ks::Versions => &self.versions,
            Ks::Templates => &self.templates,
            Ks::Attachments => &self.attachments,
            Ks::Audit => &self.audit,
            Ks::Retention => &self.retention,
            Ks::LegalHolds => &self.legal_holds,
            Ks::DataKeys => &self.data_keys,
            Ks::ServiceAccounts => &self.service_accounts,
            Ks::KeyPackages => &self.key_packages,
        }
    }
}

/// A fjall failure as a [`StoreError::Backend`] of operation `op`.
pub(super) fn backend(op: &'static str) -> impl FnOnce(fjall::Error) -> StoreError {
    move |e| StoreError::Backend { op, source: Box::new(e) }
}

/// A stored big-endian `u64` value (a purge mark); absent or malformed: 0.
pub(super) fn mark_of(value: Option<Slice>) -> u64 {
    value.and_then(|v| <[u8; 8]>::try_from(&*v).ok()).map_or(0, u64::from_be_bytes)
}

pub(super) fn decode<T: DeserializeOwned>(ks: Ks, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { table: ks.name(), detail: e.to_string() })
}

pub(super) fn encode<T: Serialize>(op: &'static str, value: &T) -> StoreResult<Slice> {
    serde_json::to_vec(value).map(Slice::from).map_err(|e| StoreError::Backend { op, source: Box::new(e) })
}
