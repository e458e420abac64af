//! Backup and restore at the keyspace level: [`BackupView`] reads every
//! keyspace from one fjall snapshot (a consistent point in time across all
//! of them, taken while the writer goes on), and [`Loader`] fills a new,
//! empty database from such records and gives it a new epoch. What the
//! records are saved in (files, checksums, the manifest) is `crate::backup`'s.

use std::path::Path;
use std::sync::Arc;

use fjall::{PersistMode, Readable, Snapshot};

use super::db::{Db, Ks, backend};
use super::{DB_NAME, EmbeddedStore, open_error};
use crate::store::{StoreError, StoreResult};

/// Bytes staged in one write batch of a [`Loader`] before it is committed.
const LOAD_BATCH_BYTES: usize = 4 << 20;

/// Every keyspace as of one instant.
pub struct BackupView {
    db: Arc<Db>,
    snapshot: Snapshot,
}

impl EmbeddedStore {
    /// A consistent read view of every keyspace for a backup (the writer goes on).
    pub fn backup_view(&self) -> BackupView {
        BackupView { db: Arc::clone(&self.db), snapshot: self.snapshot() }
    }
}

impl BackupView {
    /// The names of the keyspaces, in the store's order.
    pub fn partitions(&self) -> impl Iterator<Item = &'static str> {
        Ks::ALL.iter().map(|ks| ks.name())
    }

    /// The snapshot's fjall sequence number.
    pub fn seqno(&self) -> u64 {
        self.snapshot.seqno()
    }

    /// The layout version in `meta`.
    pub fn layout(&self) -> StoreResult<String> {
        let v = self.snapshot.get(self.db.ks(Ks::Meta), "layout").map_err(backend("backup"))?;
        Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default())
    }

    /// Every record of keyspace `name`, ascending, streamed from the snapshot.
    pub fn records(&self, name: &str) -> StoreResult<impl Iterator<Item = StoreResult<(Vec<u8>, Vec<u8>)>> + '_> {
        let ks =
            Ks::by_name(name).ok_or(StoreError::Corrupt { table: "backup", detail: format!("no keyspace {name}") })?;
        Ok(self
            .snapshot
            .iter(self.db.ks(ks))
            .map(|g| g.into_inner().map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend("backup"))))
    }
}

/// A new database being filled from a backup's records.
pub struct Loader {
    db: Db,
    path: std::path::PathBuf,
    batch: fjall::OwnedWriteBatch,
    staged: usize,
}

impl Loader {
    /// Makes the database in store directory `dir`; refuses one that exists.
    pub fn create(dir: &Path) -> StoreResult<Self> {
        let path = dir.join(DB_NAME);
        if path.exists() {
            return Err(open_error(&path)("a database is already there; a restore fills an empty directory only"));
        }
        std::fs::create_dir_all(dir).map_err(open_error(dir))?;
        let db = Db::open(&path).map_err(open_error(&path))?;
        let batch = db.db.batch();
        Ok(Self { db, path, batch, staged: 0 })
    }

    /// Whether `name` is a keyspace of this version's store.
    pub fn knows(name: &str) -> bool {
        Ks::by_name(name).is_some()
    }

    /// Stages one record of keyspace `name` (committed in batches of a few MiB).
    pub fn insert(&mut self, name: &str, key: Vec<u8>, value: Vec<u8>) -> StoreResult<()> {
        let ks =
            Ks::by_name(name).ok_or(StoreError::Corrupt { table: "backup", detail: format!("no keyspace {name}") })?;
        self.staged += key.len() + value.len();
        self.batch.insert(self.db.ks(ks), key, value);
        if self.staged >= LOAD_BATCH_BYTES {
            let full = std::mem::replace(&mut self.batch, self.db.db.batch());
            full.commit().map_err(open_error(&self.path))?;
            self.staged = 0;
        }
        Ok(())
    }

    /// Commits the rest with a new epoch (clients resync: seqs after the
    /// backup may be given again) and syncs everything to disk; returns the epoch.
    pub fn finish(mut self) -> StoreResult<String> {
        let epoch = format!("{:032x}", rand::random::<u128>());
        self.batch.insert(self.db.ks(Ks::Meta), "epoch", epoch.as_bytes());
        let batch = self.batch.durability(Some(PersistMode::SyncAll));
        batch.commit().map_err(open_error(&self.path))?;
        self.db.db.persist(PersistMode::SyncAll).map_err(open_error(&self.path))?;
        Ok(epoch)
    }
}
