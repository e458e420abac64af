//! The embedded backend: one local [fjall] database (an LSM tree with a
//! sequential write-ahead journal), the folder `chat.fjall`, in a directory of
//! its own.
//!
//! Why fjall: the previous engine (redb, a copy-on-write B-tree) rewrote a
//! 4 KiB leaf per table per message on every commit (~100 MB/s of page writes
//! at 10,000 msg/s); an LSM appends each group's writes to one journal and
//! fsyncs that once, then flushes and compacts sorted tables in the background.
//! On the store benches (same 2-core machine) fjall did 64 concurrent one-message
//! appends in ~0.8 ms against redb's 2.3-3.3 ms, a 256-message batch in ~1.2 ms
//! against 2.0-3.6 ms, and backward history pages just as fast (8 us for 50).
//!
//! Writes go through one dedicated writer thread fed by a bounded queue. The
//! writer takes one request, drains whatever else is already queued (up to
//! [`EmbeddedConfig::max_batch`]), and applies them one after the other into an
//! in-memory write set that later requests of the group read through (so a
//! request sees the effects of the ones before it). Each request checks its
//! preconditions and stages its own writes apart; only a request that succeeds
//! adds them to the group's write set, so one that fails (a taken seq, or a
//! client id already stored: one point lookup per message that has one)
//! fails alone and writes nothing. The group's write set is then committed as
//! ONE atomic fjall write batch with one journal fsync (group commit), and
//! every request is answered after that.
//!
//! Reads run inline on a fjall snapshot: they see whole group commits only,
//! and only once they are durable (the batch is journaled and fsync'd before it
//! is applied to the memtables).
//!
//! Keyspaces. Integers in keys are big-endian and fixed-width, so byte order is
//! numeric order; strings in keys that something follows are prefixed with
//! their length as a big-endian `u16` (no separator byte, so any string is
//! fine); `|` below is concatenation:
//! - `messages`: `conversation(8) | seq(8)` -> the encoded Message, raw;
//! - `idempotency`: `conversation(8) | len(sender)(2) | sender | client_msg_id`
//!   -> `seq(8)`, only for a non-empty client message id, written in the
//!   commit of its message; an append whose client id is stored (or staged
//!   by an earlier request of its group) fails with `Duplicates`, so the
//!   first seq stored for a key is kept;
//! - `conversations`: `id(8)` -> JSON ConversationRecord;
//! - `members`: `conversation(8) | user` -> JSON MemberRecord (a conversation's
//!   members are the keys with its 8-byte prefix);
//! - `user_convs`: `len(user)(2) | user | conversation(8)` -> empty, the reverse
//!   index (a user's conversations are the keys with its prefix);
//! - `support_queue`: `created_at_ms(8) | conversation(8)` -> empty, exactly
//!   the conversations whose `support_state` is WAITING;
//! - `users`: `id` -> JSON UserRecord;
//! - `activity`: `conversation(8)` -> `activity_ms(8)`, the server time of its
//!   last message (its creation until then);
//! - `user_activity`: `len(user)(2) | user | activity_ms(8) | conversation(8)`
//!   -> empty, each user's list (read backwards: most recent first), moved by
//!   `touch_conversation` for every member at once;
//! - `templates`: `scope(1) | len(owner)(2) | owner | id(8)` -> JSON
//!   TemplateRecord (a new keyspace: a store made before it opens with it
//!   empty, the layout version unchanged);
//! - `attachments`: `conversation(8) | id` -> JSON AttachmentRecord (a new
//!   keyspace, made empty in an older store like `templates`);
//! - `audit`: the audit trail, append-only (keys in `audit.rs`; a new
//!   keyspace, made empty in an older store);
//! - `retention`: `conversation(8)` -> `purged_through(8)`, the highest seq
//!   the retention job removed; `legal_holds`: `scope(1) | target` -> JSON
//!   HoldRecord (new keyspaces, made empty in an older store);
//! - `service_accounts`: `id` -> JSON ServiceAccountRecord (a new keyspace,
//!   made empty in an older store);
//! - `key_packages`: `len(user)(2) | user | device | 0x00 | reference(16)` ->
//!   an MLS KeyPackage (a new keyspace, made empty in an older store);
//! - `meta`: `name` -> value (the epoch and the layout version; a `fjall-1`
//!   layout gets its activities made from the last messages on open).
//!
//! A key is at most 65,535 bytes (fjall's limit): a write whose key would be
//! longer fails with [`StoreError::Backend`].
//!
//! Files: this one holds [`EmbeddedStore`] (open, close, the queue to the
//! writer, snapshot reads); `db` the keyspaces and their handles; `layout`
//! the layout version, epoch and upgrades on open; `key` the key encodings;
//! `writer` the writer thread and group commit; `dump` the
//! snapshot read and the loading of a backup; `txn` one request applied
//! within a group (seq and client-id checks included); `templates` the
//! templates keyspace (keys, reads, conditional writes); `reads` the
//! [`MessageStore`](super::MessageStore) impl. It does not own sequencing (the
//! owner's) nor the
//! configuration (`crate::config`).

mod attachments;
mod audit;
mod data_keys;
mod db;
mod dump;
mod key;
mod key_packages;
mod layout;
mod ops;
mod reads;
mod retention;
mod service_accounts;
mod templates;
#[cfg(test)]
mod tests;
mod txn;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use fjall::{Readable, Slice, Snapshot};
use tokio::sync::{mpsc, oneshot};

use super::{StoreError, StoreResult};
use db::{Db, Ks, backend};
pub use dump::{BackupView, Loader};
use layout::init;
use ops::{Done, Op, Request, Shared};
use writer::Writer;

/// The database folder's name inside the store directory.
pub const DB_NAME: &str = "chat.fjall";

/// The file the previous (redb) backend kept in the store directory; its data
/// is not read by this one, so opening refuses a directory that holds only it.
const REDB_FILE_NAME: &str = "chat.redb";

/// Embedded store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Fsync every group commit (the default). `false` is for benchmarks only:
    /// an acknowledged write reaches the OS but may be lost on a power loss or
    /// OS crash until the store is closed, which breaks the durability invariant.
    pub fsync: bool,
    /// Most write requests applied in one group commit (at least 1).
    pub max_batch: usize,
    /// Capacity of the writer's queue (at least 1); a full queue makes writers wait.
    pub queue: usize,
    /// For tests of owners on a partitioned backend: when set (above 0), seqs
    /// come in runs of this many, as in ScyllaDB's buckets;
    /// [`MessageStore::append_run_limit`](super::MessageStore::append_run_limit) says how many are left in the run of
    /// the next seq, and an append whose seqs span two runs is refused with a
    /// [`StoreError::Backend`] error. Default: none (no limit, nothing refused).
    pub append_run: Option<u64>,
}

impl Default for EmbeddedConfig {
    /// Durable commits, batches of up to 4,096 requests, a queue of 8,192.
    fn default() -> Self {
        Self { fsync: true, max_batch: 4096, queue: 8192, append_run: None }
    }
}

/// Writer counters, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbeddedStats {
    /// Group commits made (one journal write and, with fsync on, one fsync each).
    pub commits: u64,
    /// Write requests answered (successfully or not).
    pub requests: u64,
}

/// The embedded [`MessageStore`](super::MessageStore): see the module docs.
pub struct EmbeddedStore {
    db: Arc<Db>,
    dir: PathBuf,
    epoch: String,
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// [`EmbeddedConfig::append_run`], when above 0.
    append_run: Option<u64>,
}

fn open_error<E: Into<Box<dyn std::error::Error + Send + Sync>>>(path: &Path) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Open { path: path.display().to_string(), source: e.into() }
}

impl EmbeddedStore {
    /// Opens the store in `dir` (created if missing), making the database and
    /// its epoch on first use, and starts the writer thread.
    pub fn open(dir: &Path, cfg: EmbeddedConfig) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(open_error(dir))?;
        let path = dir.join(DB_NAME);
        if !path.exists() && dir.join(REDB_FILE_NAME).exists() {
            return Err(open_error(dir)(format!(
                "the directory holds a store of the previous (redb) format, {REDB_FILE_NAME}, which this version \
                 does not read; move it away to start an empty store in {DB_NAME}"
            )));
        }
        let db = Db::open(&path).map_err(open_error(&path))?;
        let epoch = init(&db, &path)?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let writer = Writer::new(Arc::clone(&db), rx, Arc::clone(&shared), cfg.fsync);
        let max_batch = cfg.max_batch.max(1);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(max_batch))
            .map_err(open_error(&path))?;
        let append_run = cfg.append_run.filter(|&run| run > 0);
        Ok(Self { db, dir: dir.to_owned(), epoch, tx, shared, writer: Mutex::new(Some(handle)), append_run })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writer counters so far.
    pub fn stats(&self) -> EmbeddedStats {
        EmbeddedStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            requests: self.shared.requests.load(Ordering::Relaxed),
        }
    }

    /// Requests waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Where commits are recorded (None: not yet said).
    pub fn metrics(&self) -> Option<&crate::metrics::StoreMetrics> {
        self.shared.metrics.get()
    }

    /// Records group commits into `m` from now on (the first call wins).
    pub fn set_metrics(&self, m: crate::metrics::StoreMetrics) {
        let _ = self.shared.metrics.set(m);
    }

    /// Stops taking writes, commits every write already queued, and stops the
    /// writer thread. Blocks until that is done; later writes fail with
    /// [`StoreError::Closed`]. Reads keep working. Idempotent; also run on drop.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // If the queue is full the writer is busy and will see `closed` after
        // its batch; otherwise this wakes it.
        let _ = self.tx.try_send(Request::Wake);
        let handle = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }

    async fn submit(&self, op: Op) -> StoreResult<Done> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.tx.send(Request::Write(op, reply)).await.map_err(|_| StoreError::Closed)?;
        // A dropped reply means the writer is gone without applying it.
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn submit_unit(&self, op: Op) -> StoreResult<()> {
        self.submit(op).await.map(|_| ())
    }

    /// A consistent view of every group commit so far.
    fn snapshot(&self) -> Snapshot {
        self.db.db.snapshot()
    }

    fn get(&self, op: &'static str, ks: Ks, key: &[u8]) -> StoreResult<Option<Slice>> {
        self.snapshot().get(self.db.ks(ks), key).map_err(backend(op))
    }

    /// The keys (and values, with `values`) of `ks` that start with `prefix`, ascending.
    fn scan_prefix(&self, op: &'static str, ks: Ks, prefix: &[u8]) -> StoreResult<Vec<(Slice, Slice)>> {
        self.snapshot().prefix(self.db.ks(ks), prefix).map(|guard| guard.into_inner().map_err(backend(op))).collect()
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.close();
    }
}
