//! Storage: the [`MessageStore`] contract, its records, and the backends.
//!
//! Logical layout, the same in every backend:
//! - messages keyed by `(conversation_id, seq)`, the value an encoded
//!   `chat.v1.Message` (stored once, pushed as is);
//! - idempotency records `(conversation_id, sender, client_msg_id) -> seq`;
//! - conversations by id; members by `(conversation_id, user_id)` and the
//!   reverse index by `(user_id, conversation_id)`;
//! - each conversation's activity (the server time of its last message, or
//!   its creation) and each user's conversations ordered by it, most recent
//!   first ([`ListKey`]), so that lists page in the store;
//! - the user directory: users (id, display name, role, disabled,
//!   provisioned) by id, created from a token at first sign-in or provisioned
//!   by admins, paged in id order ([`MessageStore::users_page`]);
//! - the support queue (support conversations waiting for staff), ordered by
//!   `(created_at_ms, conversation_id)`;
//! - events (edits, deletes, reactions) are messages at their own seq; the
//!   message they change is rewritten in its latest state in the same commit,
//!   and the version it replaces is kept apart ([`MessageVersion`], keyed by
//!   `(conversation_id, target_seq, event_seq)`) for the audit trail, never
//!   read by members;
//! - templates by `(scope, owner, id)` ([`templates`]);
//! - the audit trail by `(chain, seq)`, append-only ([`audit`]);
//! - each conversation's purge mark and the legal holds ([`retention`]);
//! - an epoch: a random id made when the store is created. Resume cursors are
//!   valid only within one epoch.
//!
//! Sequence numbers are assigned by the conversation's owner, never by the
//! store: `append` writes what it is given and is durable when it returns
//! (fsync'd, or replicated at the configured consistency). Backends batch
//! concurrent appends into one commit (group commit).
//!
//! Backends: [`embedded`] (the default, a local fjall LSM database) and
//! [`scylla`] (a ScyllaDB or Cassandra cluster shared by several nodes), chosen
//! by `store.backend` through [`Store`]. [`conformance`] holds the tests every
//! backend must pass.

pub mod attachments;
pub mod audit;
pub mod conformance;
pub mod embedded;
pub mod retention;
pub mod scylla;
pub mod templates;

use bytes::Bytes;

use crate::config::{Config, StoreBackend};

/// The store the server runs on, chosen by `store.backend`.
pub enum Store {
    /// The local fjall database under `data_dir/store`.
    Embedded(embedded::EmbeddedStore),
    /// A ScyllaDB or Cassandra cluster.
    Scylla(scylla::ScyllaStore),
}

/// Runs `$body` with `$s` bound to whichever backend `$store` is.
macro_rules! delegate {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            Store::Embedded($s) => $body,
            Store::Scylla($s) => $body,
        }
    };
}

impl Store {
    /// Opens the configured backend: the embedded store in `data_dir/store`, or
    /// a connection to the ScyllaDB cluster (whose schema must have been made
    /// by `chatd migrate`). Blocking: call it outside an async context.
    pub fn open(cfg: &Config) -> StoreResult<Self> {
        match cfg.store.backend {
            StoreBackend::Scylla => {
                let settings = scylla::ScyllaSettings::from_config(&cfg.store.scylla).map_err(|e| {
                    StoreError::Open { path: "scylla".into(), source: format!("store.scylla: {e}").into() }
                })?;
                Ok(Store::Scylla(scylla::ScyllaStore::open(&settings)?))
            }
            StoreBackend::Embedded => {
                let ecfg = embedded::EmbeddedConfig { fsync: cfg.store.fsync, ..embedded::EmbeddedConfig::default() };
                Ok(Store::Embedded(embedded::EmbeddedStore::open(&cfg.data_dir.join("store"), ecfg)?))
            }
        }
    }

    /// The backend's name, as in `store.backend`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Embedded(_) => StoreBackend::Embedded.name(),
            Store::Scylla(_) => StoreBackend::Scylla.name(),
        }
    }

    /// Records commits and fencing into `m` from now on (the first call wins:
    /// nodes sharing one store handle in tests record into the first's).
    pub fn set_metrics(&self, m: crate::metrics::StoreMetrics) {
        match self {
            Store::Embedded(s) => s.set_metrics(m),
            Store::Scylla(s) => s.set_metrics(m),
        }
    }

    /// Write requests waiting for the embedded store's writer (None: ScyllaDB, which has no queue of its own).
    pub fn queue_depth(&self) -> Option<usize> {
        match self {
            Store::Embedded(s) => Some(s.queue_depth()),
            Store::Scylla(_) => None,
        }
    }

    /// Stops taking writes and finishes (embedded: commits) what is queued.
    pub fn close(&self) {
        delegate!(self, s => s.close())
    }
}

/// `chatd migrate`: makes or upgrades the configured backend's schema and says
/// what it did, one line each. Blocking: call it outside an async context.
pub fn migrate(cfg: &Config) -> StoreResult<Vec<String>> {
    match cfg.store.backend {
        StoreBackend::Scylla => scylla::migrate(&cfg.store.scylla),
        StoreBackend::Embedded => Ok(vec![format!(
            "store.backend = {:?}: nothing to migrate (the embedded store lays itself out when opened)",
            StoreBackend::Embedded.name()
        )]),
    }
}

impl MessageStore for Store {
    fn epoch(&self) -> &str {
        delegate!(self, s => s.epoch())
    }

    async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()> {
        let (n, started) = (msgs.len(), std::time::Instant::now());
        let r = delegate!(self, s => s.append(msgs).await);
        let metrics = match self {
            Store::Embedded(s) => s.metrics(),
            Store::Scylla(s) => s.metrics(),
        };
        if let Some(m) = metrics {
            match &r {
                Err(StoreError::SeqTaken { .. }) => m.fencing.increment(1),
                // The embedded writer records its group commits itself.
                Ok(()) if matches!(self, Store::Scylla(_)) => m.commit(n, started.elapsed()),
                _ => {}
            }
        }
        r
    }

    fn append_run_limit(&self, next_seq: u64) -> usize {
        delegate!(self, s => s.append_run_limit(next_seq))
    }

    async fn find_client_msg(
        &self,
        conversation_id: u64,
        sender_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<Option<u64>> {
        delegate!(self, s => s.find_client_msg(conversation_id, sender_id, client_msg_id).await)
    }

    async fn last_seq(&self, conversation_id: u64) -> StoreResult<u64> {
        delegate!(self, s => s.last_seq(conversation_id).await)
    }

    async fn read_range(&self, conversation_id: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>> {
        delegate!(self, s => s.read_range(conversation_id, range).await)
    }

    async fn message_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<Vec<MessageVersion>> {
        delegate!(self, s => s.message_versions(conversation_id, seq).await)
    }

    async fn create_conversation(&self, conv: &ConversationRecord, members: &[MemberRecord]) -> StoreResult<Created> {
        delegate!(self, s => s.create_conversation(conv, members).await)
    }

    async fn get_conversation(&self, id: u64) -> StoreResult<Option<ConversationRecord>> {
        delegate!(self, s => s.get_conversation(id).await)
    }

    async fn update_conversation(&self, conv: &ConversationRecord) -> StoreResult<()> {
        delegate!(self, s => s.update_conversation(conv).await)
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        delegate!(self, s => s.put_member(member).await)
    }

    async fn remove_member(&self, conversation_id: u64, user_id: &str) -> StoreResult<()> {
        delegate!(self, s => s.remove_member(conversation_id, user_id).await)
    }

    async fn members(&self, conversation_id: u64) -> StoreResult<Vec<MemberRecord>> {
        delegate!(self, s => s.members(conversation_id).await)
    }

    async fn member(&self, conversation_id: u64, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        delegate!(self, s => s.member(conversation_id, user_id).await)
    }

    async fn user_conversations(&self, user_id: &str) -> StoreResult<Vec<u64>> {
        delegate!(self, s => s.user_conversations(user_id).await)
    }

    async fn conversation_ids(&self) -> StoreResult<Vec<u64>> {
        delegate!(self, s => s.conversation_ids().await)
    }

    async fn advance_watermarks(
        &self,
        conversation_id: u64,
        user_id: &str,
        delivered: u64,
        read: u64,
    ) -> StoreResult<()> {
        delegate!(self, s => s.advance_watermarks(conversation_id, user_id, delivered, read).await)
    }

    async fn touch_conversation(&self, conversation_id: u64, at_ms: u64) -> StoreResult<()> {
        delegate!(self, s => s.touch_conversation(conversation_id, at_ms).await)
    }

    async fn conversation_activity(&self, conversation_id: u64) -> StoreResult<Option<u64>> {
        delegate!(self, s => s.conversation_activity(conversation_id).await)
    }

    async fn user_conversations_page(
        &self,
        user_id: &str,
        after: Option<ListKey>,
        limit: usize,
    ) -> StoreResult<Vec<ListKey>> {
        delegate!(self, s => s.user_conversations_page(user_id, after, limit).await)
    }

    async fn support_queue(&self, after: Option<ListKey>, limit: usize) -> StoreResult<Vec<ListKey>> {
        delegate!(self, s => s.support_queue(after, limit).await)
    }

    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        delegate!(self, s => s.upsert_user(user).await)
    }

    async fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        delegate!(self, s => s.get_users(ids).await)
    }

    async fn users_page(&self, after: Option<String>, limit: usize) -> StoreResult<Vec<UserRecord>> {
        delegate!(self, s => s.users_page(after, limit).await)
    }
}

/// A store failure, precise enough to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open store at {path}: {source}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read or write failed in the backend.
    #[error("store {op} failed: {source}")]
    Backend {
        /// The operation ("append", "read_range"...).
        op: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value does not decode (corruption or a newer format).
    #[error("corrupt record in {table}: {detail}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The backend's schema is missing, older or newer than this binary's
    /// (the detail says which, and what to run).
    #[error("store schema in keyspace {keyspace}: {detail}")]
    Schema {
        /// Which keyspace.
        keyspace: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// An append would overwrite an existing `(conversation, seq)`.
    #[error("seq {seq} of conversation {conversation_id} is already stored")]
    SeqTaken {
        /// The conversation.
        conversation_id: u64,
        /// The seq.
        seq: u64,
    },
    /// Some messages of an append are already stored under their client
    /// message ids (retries the owner's memory no longer knew): nothing of the
    /// call was written. Each pair is (the seq the call gave the message, the
    /// seq it is stored at); the owner answers those as duplicates and
    /// sequences the rest again.
    #[error("{} message(s) of the append are already stored under their client ids", .0.len())]
    Duplicates(Vec<(u64, u64)>),
    /// The store is shutting down and takes no more writes.
    #[error("store is closed")]
    Closed,
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

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

/// The storage contract. Every method is durable on return when it writes.
///
/// Implementations are shared by all shards (`Send + Sync`) and must not hold
/// a lock across a commit that other shards' appends would wait on for long:
/// concurrent appends are batched into one commit.
#[allow(async_fn_in_trait)]
pub trait MessageStore: Send + Sync + 'static {
    /// The store's epoch (see the module docs).
    fn epoch(&self) -> &str;

    /// Appends sequenced messages and their idempotency records, durably, in
    /// one commit (an event's [`TargetWrite`] too: the target's latest state
    /// replaced, the version it replaces kept), and moves each sender's delivered and read watermarks up to
    /// their message (writing is reading; only for messages with a client
    /// message id, i.e. users' messages; a backend may do this best-effort,
    /// after the messages, and not fail a stored append over it).
    ///
    /// Writes nothing of the call and fails with:
    /// - [`StoreError::SeqTaken`] if any `(conversation, seq)` exists (or is
    ///   given twice); a backend with an
    ///   [`append_run_limit`](Self::append_run_limit) promises "nothing" only
    ///   for a call of one conversation within the limit. This answer comes
    ///   first: the owner's fencing path then looks client ids up itself
    ///   ([`find_client_msg`](Self::find_client_msg));
    /// - else [`StoreError::Duplicates`] if any message's `(conversation,
    ///   sender, client_msg_id)` is already stored (as `find_client_msg`
    ///   answers it: the stored seq holds that sender's message), naming every
    ///   such message, in call order, with the seq it is stored at. So the
    ///   owner may sequence a send at once, without a lookup first, and answer
    ///   those as duplicates. A failing call fails alone: the other calls a
    ///   backend commits with it are written.
    ///
    /// Client ids repeated within one call are not checked against each other.
    async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()>;

    /// The most messages of one conversation, starting at `next_seq`, that one
    /// [`append`](Self::append) may carry (at least 1). An owner cuts its batch
    /// there and commits the rest next, so that a call is never split by the
    /// backend (ScyllaDB: a call stays within one partition, where it is
    /// all-or-nothing). Default: no limit.
    fn append_run_limit(&self, next_seq: u64) -> usize {
        let _ = next_seq;
        usize::MAX
    }

    /// The seq stored for `(conversation, sender, client_msg_id)`, if any:
    /// only a seq whose stored message is that one (a record written for an
    /// append that then failed is not an answer).
    async fn find_client_msg(
        &self,
        conversation_id: u64,
        sender_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<Option<u64>>;

    /// The highest stored seq of a conversation (0 if none).
    async fn last_seq(&self, conversation_id: u64) -> StoreResult<u64>;

    /// Encoded messages in a range, ascending by seq.
    async fn read_range(&self, conversation_id: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>>;

    /// Every earlier version of the message at `seq`, oldest first (empty:
    /// never changed). For the audit trail; members never see these.
    async fn message_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<Vec<MessageVersion>>;

    /// Creates a conversation with its first members, unless one with this id
    /// exists (then nothing is written and the existing one is returned).
    async fn create_conversation(&self, conv: &ConversationRecord, members: &[MemberRecord]) -> StoreResult<Created>;

    /// A conversation's metadata.
    async fn get_conversation(&self, id: u64) -> StoreResult<Option<ConversationRecord>>;

    /// Replaces a conversation's metadata (archive, support state, settings);
    /// keeps the support queue in step with `support_state`.
    async fn update_conversation(&self, conv: &ConversationRecord) -> StoreResult<()>;

    /// Adds or replaces a membership (both indexes). A new member's list shows
    /// the conversation at its current activity; a replaced one keeps its place.
    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()>;

    /// Removes a membership (both indexes and the member's list). Removing an
    /// absent one is not an error.
    async fn remove_member(&self, conversation_id: u64, user_id: &str) -> StoreResult<()>;

    /// A conversation's members.
    async fn members(&self, conversation_id: u64) -> StoreResult<Vec<MemberRecord>>;

    /// One membership.
    async fn member(&self, conversation_id: u64, user_id: &str) -> StoreResult<Option<MemberRecord>>;

    /// The ids of the conversations a user belongs to.
    async fn user_conversations(&self, user_id: &str) -> StoreResult<Vec<u64>>;

    /// The ids of every conversation, in no particular order (a full scan,
    /// for maintenance such as `chatd reindex`; never on a request's path).
    async fn conversation_ids(&self) -> StoreResult<Vec<u64>>;

    /// Moves a member's delivered and read watermarks forward (never back;
    /// a value of 0 leaves that watermark as it is). No-op if not a member.
    async fn advance_watermarks(
        &self,
        conversation_id: u64,
        user_id: &str,
        delivered: u64,
        read: u64,
    ) -> StoreResult<()>;

    /// Moves a conversation's activity up to `at_ms` (never back; an unknown
    /// conversation is not an error), and every member's list with it.
    ///
    /// Callers do not run it concurrently with membership writes of the same
    /// conversation (its owner serializes them); a backend without atomic
    /// multi-partition writes may leave, if it fails midway, list entries above
    /// the conversation's activity: readers skip those
    /// ([`conversation_activity`](Self::conversation_activity) tells); an entry
    /// below it is a conversation that moved up while the list was read, and
    /// is shown (or, left by a failed delete, shown twice).
    async fn touch_conversation(&self, conversation_id: u64, at_ms: u64) -> StoreResult<()>;

    /// A conversation's activity (None: no such conversation).
    async fn conversation_activity(&self, conversation_id: u64) -> StoreResult<Option<u64>>;

    /// A page of a user's conversations, most recently active first: at most
    /// `limit` [`ListKey`]s strictly below `after` (None: from the top).
    async fn user_conversations_page(
        &self,
        user_id: &str,
        after: Option<ListKey>,
        limit: usize,
    ) -> StoreResult<Vec<ListKey>>;

    /// Support conversations waiting for staff, oldest first: at most `limit`
    /// `(created_at_ms, conversation_id)` strictly above `after`.
    async fn support_queue(&self, after: Option<ListKey>, limit: usize) -> StoreResult<Vec<ListKey>>;

    /// Creates or replaces a user of the directory.
    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()>;

    /// Users by id (unknown ids are skipped).
    async fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>>;

    /// A page of the directory: at most `limit` users after the one with id
    /// `after` (None: from the start), in an order of the backend's that is
    /// the same on every call (embedded: by id; ScyllaDB: by the id's token).
    async fn users_page(&self, after: Option<String>, limit: usize) -> StoreResult<Vec<UserRecord>>;
}
