//! The database: its keyspaces ([`Ks`], fjall's tables), the open handles
//! ([`Db`]), the layout version and epoch made on first open, and the
//! conversions of fjall failures and JSON values. It does not decide what is
//! written (the writer does) or read (the store's reads do).

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Slice};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::open_error;
use crate::store::{StoreError, StoreResult};

/// The layout version written to `meta` on creation.
const LAYOUT_VERSION: &[u8] = b"fjall-1";

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
}

impl Ks {
    const ALL: [Ks; 8] = [
        Ks::Messages,
        Ks::Idempotency,
        Ks::Conversations,
        Ks::Members,
        Ks::UserConvs,
        Ks::SupportQueue,
        Ks::Users,
        Ks::Meta,
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
        }
    }

    pub(super) fn from_tag(tag: u8) -> Option<Ks> {
        Ks::ALL.get(usize::from(tag)).copied()
    }
}

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
}

impl Db {
    pub(super) fn open(path: &Path) -> fjall::Result<Self> {
        let db = Database::builder(path).open()?;
        let open = |ks: Ks| db.keyspace(ks.name(), KeyspaceCreateOptions::default);
        Ok(Self {
            messages: open(Ks::Messages)?,
            idempotency: open(Ks::Idempotency)?,
            conversations: open(Ks::Conversations)?,
            members: open(Ks::Members)?,
            user_convs: open(Ks::UserConvs)?,
            support_queue: open(Ks::SupportQueue)?,
            users: open(Ks::Users)?,
            meta: open(Ks::Meta)?,
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
        }
    }
}

/// A fjall failure as a [`StoreError::Backend`] of operation `op`.
pub(super) fn backend(op: &'static str) -> impl FnOnce(fjall::Error) -> StoreError {
    move |e| StoreError::Backend { op, source: Box::new(e) }
}

pub(super) fn decode<T: DeserializeOwned>(ks: Ks, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { table: ks.name(), detail: e.to_string() })
}

pub(super) fn encode<T: Serialize>(op: &'static str, value: &T) -> StoreResult<Slice> {
    serde_json::to_vec(value).map(Slice::from).map_err(|e| StoreError::Backend { op, source: Box::new(e) })
}

/// Checks or writes the layout version and reads or makes the epoch.
pub(super) fn init(db: &Db, path: &Path) -> StoreResult<String> {
    let meta = db.ks(Ks::Meta);
    let mut batch = db.db.batch().durability(Some(PersistMode::SyncAll));
    match meta.get("layout").map_err(open_error(path))? {
        None => batch.insert(meta, "layout", LAYOUT_VERSION),
        Some(version) if &*version == LAYOUT_VERSION => {}
        Some(other) => {
            let (other, ours) = (String::from_utf8_lossy(&other), String::from_utf8_lossy(LAYOUT_VERSION));
            return Err(open_error(path)(format!("store layout version {other} is not {ours}")));
        }
    }
    let epoch = match meta.get("epoch").map_err(open_error(path))? {
        Some(epoch) if !epoch.is_empty() => String::from_utf8(epoch.to_vec())
            .map_err(|_| StoreError::Corrupt { table: Ks::Meta.name(), detail: "epoch is not UTF-8".into() })?,
        Some(_) => return Err(StoreError::Corrupt { table: Ks::Meta.name(), detail: "empty epoch".into() }),
        None => {
            let epoch = format!("{:032x}", rand::random::<u128>());
            batch.insert(meta, "epoch", epoch.as_bytes());
            epoch
        }
    };
    batch.commit().map_err(open_error(path))?;
    Ok(epoch)
}
