//! The embedded backend: one local [redb] database file, `chat.redb`, in a
//! directory of its own.
//!
//! Writes go through one dedicated writer thread fed by a bounded queue. The
//! writer takes one request, drains whatever else is already queued (up to
//! [`EmbeddedConfig::max_batch`]), applies them all in one write transaction
//! and commits once (group commit), then answers every request. Each request
//! checks its preconditions before it writes anything, so one that fails (a
//! taken seq, say) fails alone and the rest of its batch commits. Should the
//! batch's transaction itself fail, every request is retried in a transaction
//! of its own so that a bad one cannot sink the others.
//!
//! Reads run inline in a read transaction: redb is MVCC, so they never wait for
//! the writer.
//!
//! Tables (keys are ordered tuples, so ranges are B-tree scans):
//! - `messages`: `(conversation, seq) -> encoded Message`;
//! - `idempotency`: `(conversation, sender, client_msg_id) -> seq`, only for a
//!   non-empty client message id; the first seq stored for a key is kept;
//! - `conversations`: `id -> JSON ConversationRecord`;
//! - `members`: `(conversation, user) -> JSON MemberRecord`;
//! - `user_convs`: `(user, conversation) -> ()`, the reverse index;
//! - `support_queue`: `(created_at_ms, conversation) -> ()`, exactly the
//!   conversations whose `support_state` is WAITING;
//! - `users`: `id -> JSON UserRecord`;
//! - `meta`: `name -> value` (the epoch and the layout version).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use chat_protocol::v1::SupportState;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::{
    ConversationRecord, Created, Direction, MemberRecord, MessageStore, NewMessage, Range, StoreError, StoreResult,
    UserRecord,
};

/// The database file's name inside the store directory.
pub const FILE_NAME: &str = "chat.redb";

/// The layout version written to `meta` on creation.
const LAYOUT_VERSION: &str = "1";

const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
const IDEMPOTENCY: TableDefinition<(u64, &str, &str), u64> = TableDefinition::new("idempotency");
const CONVERSATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("conversations");
const MEMBERS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("members");
const USER_CONVS: TableDefinition<(&str, u64), ()> = TableDefinition::new("user_convs");
const SUPPORT_QUEUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("support_queue");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// How many non-durable commits may follow one another when `fsync` is off
/// before one is made durable (this bounds both the loss window and the file
/// growth of pages redb cannot free until a durable commit).
const NON_DURABLE_RUN: u64 = 64;

/// Embedded store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Fsync every commit (the default). `false` is for benchmarks only: an
    /// acknowledged write may be lost on a crash (commits are synced only every
    /// 64th batch and on close), which breaks the durability invariant.
    pub fsync: bool,
    /// Most write requests applied in one transaction (at least 1).
    pub max_batch: usize,
    /// Capacity of the writer's queue (at least 1); a full queue makes writers wait.
    pub queue: usize,
}

impl Default for EmbeddedConfig {
    /// Durable commits, batches of up to 4,096 requests, a queue of 8,192.
    fn default() -> Self {
        Self { fsync: true, max_batch: 4096, queue: 8192 }
    }
}

/// Writer counters, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbeddedStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Write requests answered (successfully or not).
    pub requests: u64,
}

/// The embedded [`MessageStore`]: see the module docs.
pub struct EmbeddedStore {
    db: Arc<Database>,
    dir: PathBuf,
    epoch: String,
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared with the writer thread.
#[derive(Default)]
struct Shared {
    closed: AtomicBool,
    commits: AtomicU64,
    requests: AtomicU64,
}

/// A write, as queued for the writer.
enum Op {
    Append(Vec<NewMessage>),
    CreateConversation(ConversationRecord, Vec<MemberRecord>),
    UpdateConversation(ConversationRecord),
    PutMember(MemberRecord),
    RemoveMember { conversation_id: u64, user_id: String },
    AdvanceWatermarks { conversation_id: u64, user_id: String, delivered: u64, read: u64 },
    UpsertUser(UserRecord),
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Append(_) => "append",
            Op::CreateConversation(..) => "create_conversation",
            Op::UpdateConversation(_) => "update_conversation",
            Op::PutMember(_) => "put_member",
            Op::RemoveMember { .. } => "remove_member",
            Op::AdvanceWatermarks { .. } => "advance_watermarks",
            Op::UpsertUser(_) => "upsert_user",
        }
    }
}

/// What a write produced.
enum Done {
    Unit,
    Created(Created),
}

type Reply = oneshot::Sender<StoreResult<Done>>;

/// A message on the writer's queue.
enum Request {
    Write(Op, Reply),
    /// Wakes the writer so that it notices `closed`.
    Wake,
}

/// A redb failure as a [`StoreError::Backend`] of operation `op`.
fn backend<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend { op, source: Box::new(e.into()) }
}

fn open_error<E: std::error::Error + Send + Sync + 'static>(path: &Path) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Open { path: path.display().to_string(), source: Box::new(e) }
}

fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { table, detail: e.to_string() })
}

fn encode<T: Serialize>(op: &'static str, value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend { op, source: Box::new(e) })
}

type MessageEntry<'a> =
    Result<(redb::AccessGuard<'a, (u64, u64)>, redb::AccessGuard<'a, &'static [u8]>), redb::StorageError>;

/// A `messages` range entry as `(seq, encoded)`.
fn message_entry(entry: MessageEntry<'_>) -> StoreResult<(u64, Bytes)> {
    entry.map(|(k, v)| (k.value().1, Bytes::copy_from_slice(v.value()))).map_err(backend("read_range"))
}

fn is_waiting(conv: &ConversationRecord) -> bool {
    conv.support_state == SupportState::Waiting as i32
}

impl EmbeddedStore {
    /// Opens the store in `dir` (created if missing), making the database and
    /// its epoch on first use, and starts the writer thread.
    pub fn open(dir: &Path, cfg: EmbeddedConfig) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(open_error(dir))?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder().create(&path).map_err(open_error(&path))?;
        let epoch =
            init(&db).map_err(|e| StoreError::Open { path: path.display().to_string(), source: Box::new(e) })?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let writer = Writer {
            db: Arc::clone(&db),
            rx,
            shared: Arc::clone(&shared),
            fsync: cfg.fsync,
            max_batch: cfg.max_batch.max(1),
            non_durable: 0,
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(open_error(&path))?;
        Ok(Self { db, dir: dir.to_owned(), epoch, tx, shared, writer: Mutex::new(Some(handle)) })
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

    fn read(&self, op: &'static str) -> StoreResult<redb::ReadTransaction> {
        self.db.begin_read().map_err(backend(op))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates the tables if missing and reads or makes the epoch.
fn init(db: &Database) -> Result<String, redb::Error> {
    let txn = db.begin_write()?;
    let epoch = {
        txn.open_table(MESSAGES)?;
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(CONVERSATIONS)?;
        txn.open_table(MEMBERS)?;
        txn.open_table(USER_CONVS)?;
        txn.open_table(SUPPORT_QUEUE)?;
        txn.open_table(USERS)?;
        let mut meta = txn.open_table(META)?;
        let version = meta.get("layout")?.map(|v| v.value().to_owned());
        match version.as_deref() {
            None => {
                meta.insert("layout", LAYOUT_VERSION)?;
            }
            Some(LAYOUT_VERSION) => {}
            Some(other) => {
                return Err(redb::Error::Corrupted(format!("store layout version {other} is not {LAYOUT_VERSION}")));
            }
        }
        let existing = meta.get("epoch")?.map(|v| v.value().to_owned());
        match existing {
            Some(epoch) if !epoch.is_empty() => epoch,
            Some(_) => return Err(redb::Error::Corrupted("empty epoch in meta".into())),
            None => {
                let epoch = format!("{:032x}", rand::random::<u128>());
                meta.insert("epoch", epoch.as_str())?;
                epoch
            }
        }
    };
    txn.commit()?;
    Ok(epoch)
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    rx: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    fsync: bool,
    max_batch: usize,
    /// Non-durable commits since the last durable one (fsync off).
    non_durable: u64,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<(Op, Reply)> = Vec::with_capacity(self.max_batch.min(1024));
        while let Some(first) = self.rx.blocking_recv() {
            if let Request::Write(op, reply) = first {
                batch.push((op, reply));
            }
            self.drain_into(&mut batch);
            self.commit_batch(&mut batch);
            if self.shared.closed.load(Ordering::Acquire) {
                break;
            }
        }
        // Take nothing new, but apply everything already queued.
        self.rx.close();
        loop {
            self.drain_into(&mut batch);
            if batch.is_empty() {
                break;
            }
            self.commit_batch(&mut batch);
        }
        if !self.fsync && self.non_durable > 0 {
            // Make the non-durable tail durable before the database closes.
            let synced =
                self.db.begin_write().map_err(redb::Error::from).and_then(|txn| txn.commit().map_err(Into::into));
            if let Err(e) = synced {
                tracing::error!(error = %e, "store: final durable commit failed");
            }
        }
    }

    /// Moves queued writes into `batch` until it is full or the queue is empty.
    fn drain_into(&mut self, batch: &mut Vec<(Op, Reply)>) {
        while batch.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(Request::Write(op, reply)) => batch.push((op, reply)),
                Ok(Request::Wake) => {}
                Err(_) => break,
            }
        }
    }

    /// Applies and commits `batch` (emptying it), answering every request.
    fn commit_batch(&mut self, batch: &mut Vec<(Op, Reply)>) {
        if batch.is_empty() {
            return;
        }
        let name = if batch.len() == 1 { batch[0].0.name() } else { "write_batch" };
        let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
        let results = match self.apply(name, &ops) {
            Ok(results) => results,
            Err(e) if batch.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "store: batch failed, retrying its writes one by one");
                ops.iter().map(|op| self.apply(op.name(), &[*op]).and_then(|mut r| r.remove(0))).collect()
            }
        };
        self.shared.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for ((_, reply), result) in batch.drain(..).zip(results) {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(result);
        }
    }

    /// Applies `ops` in one transaction and commits it. The outer error fails
    /// the whole transaction; the inner results are each op's own outcome.
    fn apply(&mut self, name: &'static str, ops: &[&Op]) -> StoreResult<Vec<StoreResult<Done>>> {
        let mut txn = self.db.begin_write().map_err(backend(name))?;
        let durable = self.fsync || self.non_durable + 1 >= NON_DURABLE_RUN;
        let durability = if durable { Durability::Immediate } else { Durability::None };
        txn.set_durability(durability).map_err(backend(name))?;
        let results = {
            let mut tables = Tables::open(&txn).map_err(backend(name))?;
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                match tables.apply(op) {
                    Ok(result) => results.push(result),
                    Err(e) => {
                        // The transaction may hold part of this op: drop it all.
                        drop(tables);
                        let _ = txn.abort();
                        return Err(StoreError::Backend { op: name, source: Box::new(e) });
                    }
                }
            }
            results
        };
        txn.commit().map_err(backend(name))?;
        self.non_durable = if durable { 0 } else { self.non_durable + 1 };
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        Ok(results)
    }
}

/// The tables of one write transaction.
struct Tables<'t> {
    messages: redb::Table<'t, (u64, u64), &'static [u8]>,
    idempotency: redb::Table<'t, (u64, &'static str, &'static str), u64>,
    conversations: redb::Table<'t, u64, &'static [u8]>,
    members: redb::Table<'t, (u64, &'static str), &'static [u8]>,
    user_convs: redb::Table<'t, (&'static str, u64), ()>,
    support_queue: redb::Table<'t, (u64, u64), ()>,
    users: redb::Table<'t, &'static str, &'static [u8]>,
}

/// An op's result inside a transaction: the outer error is the backend's and
/// fails the transaction; the inner one is the op's alone and wrote nothing.
type Applied = Result<StoreResult<Done>, redb::Error>;

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            messages: txn.open_table(MESSAGES)?,
            idempotency: txn.open_table(IDEMPOTENCY)?,
            conversations: txn.open_table(CONVERSATIONS)?,
            members: txn.open_table(MEMBERS)?,
            user_convs: txn.open_table(USER_CONVS)?,
            support_queue: txn.open_table(SUPPORT_QUEUE)?,
            users: txn.open_table(USERS)?,
        })
    }

    fn apply(&mut self, op: &Op) -> Applied {
        match op {
            Op::Append(msgs) => self.append(msgs),
            Op::CreateConversation(conv, members) => self.create_conversation(conv, members),
            Op::UpdateConversation(conv) => self.update_conversation(conv),
            Op::PutMember(member) => {
                let value = match encode(op.name(), member) {
                    Ok(value) => value,
                    Err(e) => return Ok(Err(e)),
                };
                self.put_member(member.conversation_id, &member.user_id, &value)?;
                Ok(Ok(Done::Unit))
            }
            Op::RemoveMember { conversation_id, user_id } => {
                self.members.remove((*conversation_id, user_id.as_str()))?;
                self.user_convs.remove((user_id.as_str(), *conversation_id))?;
                Ok(Ok(Done::Unit))
            }
            Op::AdvanceWatermarks { conversation_id, user_id, delivered, read } => {
                self.advance_watermarks(*conversation_id, user_id, *delivered, *read)
            }
            Op::UpsertUser(user) => {
                let value = match encode(op.name(), user) {
                    Ok(value) => value,
                    Err(e) => return Ok(Err(e)),
                };
                self.users.insert(user.id.as_str(), value.as_slice())?;
                Ok(Ok(Done::Unit))
            }
        }
    }

    fn append(&mut self, msgs: &[NewMessage]) -> Applied {
        // Check every seq first (in the store and within the call), so that a
        // taken one writes nothing of the call.
        let mut seen = std::collections::HashSet::with_capacity(msgs.len());
        for m in msgs {
            let key = (m.conversation_id, m.seq);
            if !seen.insert(key) || self.messages.get(key)?.is_some() {
                return Ok(Err(StoreError::SeqTaken { conversation_id: m.conversation_id, seq: m.seq }));
            }
        }
        let mut senders: std::collections::HashMap<(u64, &str), u64> = std::collections::HashMap::new();
        for m in msgs {
            self.messages.insert((m.conversation_id, m.seq), m.encoded.as_ref())?;
            if !m.client_msg_id.is_empty() {
                let key = (m.conversation_id, m.sender_id.as_str(), m.client_msg_id.as_str());
                if self.idempotency.get(key)?.is_none() {
                    self.idempotency.insert(key, m.seq)?;
                }
                let top = senders.entry((m.conversation_id, m.sender_id.as_str())).or_insert(0);
                *top = (*top).max(m.seq);
            }
        }
        // Writing is reading: the sender's watermarks follow their message, in
        // the same transaction. A damaged member record does not fail the append.
        for ((conv, sender), seq) in senders {
            if let Ok(Err(e)) = self.advance_watermarks(conv, sender, seq, seq) {
                tracing::warn!(conv, error = %e, "sender watermark not moved");
            }
        }
        Ok(Ok(Done::Unit))
    }

    fn create_conversation(&mut self, conv: &ConversationRecord, members: &[MemberRecord]) -> Applied {
        const OP: &str = "create_conversation";
        if let Some(existing) = self.conversations.get(conv.id)? {
            return Ok(decode("conversations", existing.value()).map(|rec| Done::Created(Created::Existing(rec))));
        }
        // Encode everything before writing anything.
        let value = match encode(OP, conv) {
            Ok(value) => value,
            Err(e) => return Ok(Err(e)),
        };
        let mut encoded = Vec::with_capacity(members.len());
        for member in members {
            let member = MemberRecord { conversation_id: conv.id, ..member.clone() };
            match encode(OP, &member) {
                Ok(bytes) => encoded.push((member.user_id, bytes)),
                Err(e) => return Ok(Err(e)),
            }
        }
        self.conversations.insert(conv.id, value.as_slice())?;
        if is_waiting(conv) {
            self.support_queue.insert((conv.created_at_ms, conv.id), ())?;
        }
        for (user_id, bytes) in &encoded {
            self.put_member(conv.id, user_id, bytes)?;
        }
        Ok(Ok(Done::Created(Created::New)))
    }

    fn update_conversation(&mut self, conv: &ConversationRecord) -> Applied {
        let old = match self.conversations.get(conv.id)? {
            Some(old) => match decode::<ConversationRecord>("conversations", old.value()) {
                Ok(old) => Some(old),
                Err(e) => return Ok(Err(e)),
            },
            None => None,
        };
        let value = match encode("update_conversation", conv) {
            Ok(value) => value,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(old) = old {
            self.support_queue.remove((old.created_at_ms, old.id))?;
        }
        self.support_queue.remove((conv.created_at_ms, conv.id))?;
        if is_waiting(conv) {
            self.support_queue.insert((conv.created_at_ms, conv.id), ())?;
        }
        self.conversations.insert(conv.id, value.as_slice())?;
        Ok(Ok(Done::Unit))
    }

    fn put_member(&mut self, conversation_id: u64, user_id: &str, value: &[u8]) -> Result<(), redb::Error> {
        self.members.insert((conversation_id, user_id), value)?;
        self.user_convs.insert((user_id, conversation_id), ())?;
        Ok(())
    }

    fn advance_watermarks(&mut self, conversation_id: u64, user_id: &str, delivered: u64, read: u64) -> Applied {
        let Some(current) = self.members.get((conversation_id, user_id))? else {
            return Ok(Ok(Done::Unit));
        };
        let mut member: MemberRecord = match decode("members", current.value()) {
            Ok(member) => member,
            Err(e) => return Ok(Err(e)),
        };
        drop(current);
        let (d, r) = (member.delivered_seq.max(delivered), member.read_seq.max(read));
        if (d, r) == (member.delivered_seq, member.read_seq) {
            return Ok(Ok(Done::Unit));
        }
        member.delivered_seq = d;
        member.read_seq = r;
        let value = match encode("advance_watermarks", &member) {
            Ok(value) => value,
            Err(e) => return Ok(Err(e)),
        };
        self.members.insert((conversation_id, user_id), value.as_slice())?;
        Ok(Ok(Done::Unit))
    }
}

impl MessageStore for EmbeddedStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        self.submit_unit(Op::Append(msgs)).await
    }

    async fn find_client_msg(
        &self,
        conversation_id: u64,
        sender_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<Option<u64>> {
        const OP: &str = "find_client_msg";
        if client_msg_id.is_empty() {
            return Ok(None);
        }
        let table = self.read(OP)?.open_table(IDEMPOTENCY).map_err(backend(OP))?;
        let seq = table.get((conversation_id, sender_id, client_msg_id)).map_err(backend(OP))?;
        Ok(seq.map(|v| v.value()))
    }

    async fn last_seq(&self, conversation_id: u64) -> StoreResult<u64> {
        const OP: &str = "last_seq";
        let table = self.read(OP)?.open_table(MESSAGES).map_err(backend(OP))?;
        let last = table.range((conversation_id, 0)..=(conversation_id, u64::MAX)).map_err(backend(OP))?.next_back();
        match last {
            None => Ok(0),
            Some(entry) => Ok(entry.map_err(backend(OP))?.0.value().1),
        }
    }

    async fn read_range(&self, conversation_id: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>> {
        const OP: &str = "read_range";
        let Some(lo) = range.after.checked_add(1) else {
            return Ok(Vec::new());
        };
        if range.limit == 0 || lo >= range.before {
            return Ok(Vec::new());
        }
        let table = self.read(OP)?.open_table(MESSAGES).map_err(backend(OP))?;
        let iter = table.range((conversation_id, lo)..(conversation_id, range.before)).map_err(backend(OP))?;
        match range.direction {
            Direction::Forward => iter.take(range.limit).map(message_entry).collect(),
            Direction::Backward => {
                let mut out = iter.rev().take(range.limit).map(message_entry).collect::<StoreResult<Vec<_>>>()?;
                out.reverse();
                Ok(out)
            }
        }
    }

    async fn create_conversation(&self, conv: &ConversationRecord, members: &[MemberRecord]) -> StoreResult<Created> {
        match self.submit(Op::CreateConversation(conv.clone(), members.to_vec())).await? {
            Done::Created(created) => Ok(created),
            Done::Unit => Ok(Created::New),
        }
    }

    async fn get_conversation(&self, id: u64) -> StoreResult<Option<ConversationRecord>> {
        const OP: &str = "get_conversation";
        let table = self.read(OP)?.open_table(CONVERSATIONS).map_err(backend(OP))?;
        let value = table.get(id).map_err(backend(OP))?;
        value.map(|v| decode("conversations", v.value())).transpose()
    }

    async fn update_conversation(&self, conv: &ConversationRecord) -> StoreResult<()> {
        self.submit_unit(Op::UpdateConversation(conv.clone())).await
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        self.submit_unit(Op::PutMember(member.clone())).await
    }

    async fn remove_member(&self, conversation_id: u64, user_id: &str) -> StoreResult<()> {
        self.submit_unit(Op::RemoveMember { conversation_id, user_id: user_id.to_owned() }).await
    }

    async fn members(&self, conversation_id: u64) -> StoreResult<Vec<MemberRecord>> {
        const OP: &str = "members";
        let table = self.read(OP)?.open_table(MEMBERS).map_err(backend(OP))?;
        let mut out = Vec::new();
        for entry in table.range((conversation_id, "")..).map_err(backend(OP))? {
            let (key, value) = entry.map_err(backend(OP))?;
            if key.value().0 != conversation_id {
                break;
            }
            out.push(decode("members", value.value())?);
        }
        Ok(out)
    }

    async fn member(&self, conversation_id: u64, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        const OP: &str = "member";
        let table = self.read(OP)?.open_table(MEMBERS).map_err(backend(OP))?;
        let value = table.get((conversation_id, user_id)).map_err(backend(OP))?;
        value.map(|v| decode("members", v.value())).transpose()
    }

    async fn user_conversations(&self, user_id: &str) -> StoreResult<Vec<u64>> {
        const OP: &str = "user_conversations";
        let table = self.read(OP)?.open_table(USER_CONVS).map_err(backend(OP))?;
        table
            .range((user_id, 0)..=(user_id, u64::MAX))
            .map_err(backend(OP))?
            .map(|entry| entry.map(|(key, _)| key.value().1).map_err(backend(OP)))
            .collect()
    }

    async fn advance_watermarks(
        &self,
        conversation_id: u64,
        user_id: &str,
        delivered: u64,
        read: u64,
    ) -> StoreResult<()> {
        if delivered == 0 && read == 0 {
            return Ok(());
        }
        self.submit_unit(Op::AdvanceWatermarks { conversation_id, user_id: user_id.to_owned(), delivered, read }).await
    }

    async fn support_queue(&self) -> StoreResult<Vec<u64>> {
        const OP: &str = "support_queue";
        let table = self.read(OP)?.open_table(SUPPORT_QUEUE).map_err(backend(OP))?;
        table
            .iter()
            .map_err(backend(OP))?
            .map(|entry| entry.map(|(key, _)| key.value().1).map_err(backend(OP)))
            .collect()
    }

    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.submit_unit(Op::UpsertUser(user.clone())).await
    }

    async fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        const OP: &str = "get_users";
        let table = self.read(OP)?.open_table(USERS).map_err(backend(OP))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(value) = table.get(id.as_str()).map_err(backend(OP))? {
                out.push(decode("users", value.value())?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(conv: u64, seq: u64) -> NewMessage {
        NewMessage {
            conversation_id: conv,
            seq,
            sender_id: "u".into(),
            client_msg_id: format!("c{seq}"),
            encoded: Bytes::from(format!("{conv}/{seq}")),
        }
    }

    fn open(dir: &Path) -> EmbeddedStore {
        EmbeddedStore::open(dir, EmbeddedConfig::default()).expect("open")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_group_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open(dir.path()));
        let before = store.stats();
        let tasks: Vec<_> = (0..1_000u64)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.append(vec![message(i % 50, i / 50 + 1)]).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("append");
        }
        let stats = store.stats();
        let (commits, requests) = (stats.commits - before.commits, stats.requests - before.requests);
        assert_eq!(requests, 1_000);
        assert!(commits < 200, "{commits} commits for 1,000 concurrent appends");
        for conv in 0..50 {
            assert_eq!(store.last_seq(conv).await.expect("last_seq"), 20);
        }
    }

    #[tokio::test]
    async fn a_failing_request_fails_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store.append(vec![message(1, 1)]).await.expect("append");
        // Queued together from one task, so they usually meet in one batch;
        // the outcome must be the same either way.
        let (a, b, c) = tokio::join!(
            store.append(vec![message(1, 2)]),
            store.append(vec![message(1, 3), message(1, 1)]),
            store.append(vec![message(1, 4)]),
        );
        a.expect("a");
        assert!(matches!(b, Err(StoreError::SeqTaken { conversation_id: 1, seq: 1 })), "{b:?}");
        c.expect("c");
        let seqs: Vec<u64> = store
            .read_range(1, Range { after: 0, before: u64::MAX, limit: 10, direction: Direction::Forward })
            .await
            .expect("read")
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(seqs, [1, 2, 4]);
    }

    #[tokio::test]
    async fn close_flushes_then_refuses_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store.append(vec![message(1, 1)]).await.expect("append");
        store.close();
        assert!(matches!(store.append(vec![message(1, 2)]).await, Err(StoreError::Closed)));
        assert!(matches!(
            store.upsert_user(&UserRecord { id: "u".into(), display_name: String::new(), role: 0 }).await,
            Err(StoreError::Closed)
        ));
        // Reads still work; close is idempotent.
        assert_eq!(store.last_seq(1).await.expect("last_seq"), 1);
        store.close();
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.last_seq(1).await.expect("last_seq"), 1);
    }

    #[tokio::test]
    async fn close_applies_writes_already_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open(dir.path()));
        let writers: Vec<_> = (1..=100u64).map(|seq| store.append(vec![message(7, seq)])).collect();
        let all = futures_util::future::join_all(writers);
        // Get them queued, then close while they are in flight.
        let closer = async {
            tokio::task::yield_now().await;
            store.close();
        };
        let (results, ()) = tokio::join!(all, closer);
        let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        for r in &results {
            assert!(matches!(r, Ok(()) | Err(StoreError::Closed)), "{r:?}");
        }
        // Every acknowledged write is there, and nothing else.
        let stored = store
            .read_range(7, Range { after: 0, before: u64::MAX, limit: 1_000, direction: Direction::Forward })
            .await
            .expect("read");
        assert_eq!(stored.len() as u64, ok);
        assert!(ok > 0, "the queued writes were flushed");
    }

    #[tokio::test]
    async fn epoch_is_hex_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let epoch = open(dir.path()).epoch().to_owned();
        assert_eq!(epoch.len(), 32);
        assert!(epoch.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(dir.path().join(FILE_NAME).exists());
        assert_eq!(open(dir.path()).epoch(), epoch);
    }

    #[tokio::test]
    async fn corrupt_record_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let txn = store.db.begin_write().expect("begin");
        {
            let mut members = txn.open_table(MEMBERS).expect("members");
            members.insert((5, "x"), b"not json".as_slice()).expect("insert");
            let mut convs = txn.open_table(CONVERSATIONS).expect("conversations");
            convs.insert(5, b"\xff".as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
        assert!(matches!(store.member(5, "x").await, Err(StoreError::Corrupt { table: "members", .. })));
        assert!(matches!(store.members(5).await, Err(StoreError::Corrupt { .. })));
        assert!(matches!(store.get_conversation(5).await, Err(StoreError::Corrupt { .. })));
        // A write that must read the bad record fails alone; the writer lives on.
        assert!(matches!(store.advance_watermarks(5, "x", 1, 1).await, Err(StoreError::Corrupt { .. })));
        store.append(vec![message(5, 1)]).await.expect("append after a failure");
    }

    #[tokio::test]
    async fn fsync_off_still_persists_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = EmbeddedConfig { fsync: false, max_batch: 2, queue: 1 };
        let store = EmbeddedStore::open(dir.path(), cfg.clone()).expect("open");
        for seq in 1..=10 {
            store.append(vec![message(3, seq)]).await.expect("append");
        }
        drop(store);
        let store = EmbeddedStore::open(dir.path(), cfg).expect("reopen");
        assert_eq!(store.last_seq(3).await.expect("last_seq"), 10);
    }
}
