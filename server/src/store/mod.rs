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
//! - each conversation's data key, wrapped by the master key, when content
//!   is encrypted at rest ([`data_keys`], [`at_rest`]);
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

pub mod at_rest;
pub mod attachments;
pub mod audit;
pub mod conformance;
pub mod data_keys;
pub mod embedded;
mod error;
pub mod key_packages;
mod records;
pub mod retention;
pub mod scylla;
pub mod service_accounts;
pub mod templates;
pub mod walk;

use bytes::Bytes;

pub use error::{StoreError, StoreResult};
pub use records::*;

use crate::config::{Config, StoreBackend};

/// The backend a [`Store`] runs on, chosen by `store.backend`.
pub enum Backend {
    /// The local fjall database under `data_dir/store`.
    Embedded(embedded::EmbeddedStore),
    /// A ScyllaDB or Cassandra cluster.
    Scylla(scylla::ScyllaStore),
}

/// The store the server runs on: a [`Backend`], and the encryption at rest
/// of message content over it when a master key is configured ([`at_rest`]).
pub struct Store {
    backend: Backend,
    at_rest: Option<at_rest::AtRest>,
}

/// Runs `$body` with `$s` bound to whichever store `$backend` (a [`Backend`]) is.
macro_rules! on_backend {
    ($backend:expr, $s:ident => $body:expr) => {
        match $backend {
            $crate::store::Backend::Embedded($s) => $body,
            $crate::store::Backend::Scylla($s) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Runs `$body` with `$s` bound to whichever backend `$store` (a [`Store`]) runs on.
macro_rules! delegate {
    ($store:expr, $s:ident => $body:expr) => {
        $crate::store::on_backend!(&$store.backend, $s => $body)
    };
}
pub(crate) use delegate;

impl From<embedded::EmbeddedStore> for Store {
    fn from(s: embedded::EmbeddedStore) -> Self {
        Store::from_backend(Backend::Embedded(s))
    }
}

impl From<scylla::ScyllaStore> for Store {
    fn from(s: scylla::ScyllaStore) -> Self {
        Store::from_backend(Backend::Scylla(s))
    }
}

impl Store {
    /// Over `backend`, encryption at rest off (see [`Store::encrypt_with`]).
    pub fn from_backend(backend: Backend) -> Self {
        Store { backend, at_rest: None }
    }

    /// The backend, without the store's encryption.
    pub fn into_backend(self) -> Backend {
        self.backend
    }

    /// Opens the configured backend: the embedded store in `data_dir/store`, or
    /// a connection to the ScyllaDB cluster (whose schema must have been made
    /// by `chatd migrate`). Blocking: call it outside an async context.
    pub fn open(cfg: &Config) -> StoreResult<Self> {
        match cfg.store.backend {
            StoreBackend::Scylla => {
                let settings = scylla::ScyllaSettings::from_config(&cfg.store.scylla).map_err(|e| {
                    StoreError::Open { path: "scylla".into(), source: format!("store.scylla: {e}").into() }
                })?;
                Store::from(scylla::ScyllaStore::open(&settings)?).encrypted(&cfg.encryption)
            }
            StoreBackend::Embedded => {
                let ecfg = embedded::EmbeddedConfig { fsync: cfg.store.fsync, ..embedded::EmbeddedConfig::default() };
                Store::from(embedded::EmbeddedStore::open(&cfg.data_dir.join("store"), ecfg)?)
                    .encrypted(&cfg.encryption)
            }
        }
    }

    /// The backend's name, as in `store.backend`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Embedded(_) => StoreBackend::Embedded.name(),
            Backend::Scylla(_) => StoreBackend::Scylla.name(),
        }
    }

    /// The backend it runs on (what it stores is sealed when encryption is on).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Records commits and fencing into `m` from now on (the first call wins:
    /// nodes sharing one store handle in tests record into the first's).
    pub fn set_metrics(&self, m: crate::metrics::StoreMetrics) {
        delegate!(self, s => s.set_metrics(m))
    }

    /// Write requests waiting for the embedded store's writer (None: ScyllaDB, which has no queue of its own).
    pub fn queue_depth(&self) -> Option<usize> {
        match &self.backend {
            Backend::Embedded(s) => Some(s.queue_depth()),
            Backend::Scylla(_) => None,
        }
    }

    /// Turns on encryption at rest as `cfg` says, after checking that its
    /// master key opens the store's keys (off: that the store holds no
    /// encrypted content). Blocking: call it outside an async context.
    fn encrypted(mut self, cfg: &crate::config::EncryptionConfig) -> StoreResult<Self> {
        let at_rest = at_rest::AtRest::from_config(cfg)?;
        let backend = &self.backend;
        let check = async {
            match &at_rest {
                Some(a) => a.check(backend).await,
                None => at_rest::refuse_if_encrypted(backend).await,
            }
        };
        block_on_own_thread(check)?;
        self.at_rest = at_rest;
        Ok(self)
    }

    /// The key that seals attachments at rest (None: encryption is off).
    /// Blocking: call it outside an async context (as the node's start does).
    pub fn blob_key_blocking(&self) -> StoreResult<Option<std::sync::Arc<ring::aead::LessSafeKey>>> {
        match &self.at_rest {
            None => Ok(None),
            Some(a) => block_on_own_thread(a.blob_key(&self.backend)).map(Some),
        }
    }

    /// Turns on encryption at rest with `at_rest`, after its check (the
    /// async form, for a store opened by hand).
    pub async fn encrypt_with(&mut self, at_rest: at_rest::AtRest) -> StoreResult<()> {
        at_rest.check(&self.backend).await?;
        self.at_rest = Some(at_rest);
        Ok(())
    }

    /// `chatd keys rotate`: makes `new` the master key and re-wraps every
    /// data key under it while the store serves.
    pub async fn rotate_master_key(
        &self,
        new: std::sync::Arc<dyn at_rest::master::KeyWrap>,
    ) -> StoreResult<at_rest::Rotated> {
        let a = self.at_rest.as_ref().ok_or(at_rest::AtRestError::Off)?;
        a.rotate(&self.backend, new).await
    }

    /// Destroys a conversation's data key (crypto-shredding): its sealed
    /// content can never be read again, and no new content is taken for it.
    /// Whether a key was destroyed (false: none was ever made, or it was
    /// destroyed before; the conversation is marked all the same).
    pub async fn shred_conversation(&self, conversation_id: u64) -> StoreResult<bool> {
        let destroyed = at_rest::destroy_key(&self.backend, conversation_id).await?;
        if let Some(a) = &self.at_rest {
            a.evict(conversation_id);
        }
        Ok(destroyed)
    }

    /// Whether the conversation was shredded ([`Store::shred_conversation`]).
    pub async fn is_shredded(&self, conversation_id: u64) -> StoreResult<bool> {
        Ok(data_keys::DataKeyStore::data_key(&self.backend, conversation_id)
            .await?
            .is_some_and(|w| w == at_rest::DESTROYED))
    }

    /// Stops taking writes and finishes (embedded: commits) what is queued.
    pub fn close(&self) {
        delegate!(self, s => s.close())
    }
}

/// Runs `fut` to completion on a thread of its own with a small runtime (the
/// caller may be inside a runtime, where blocking on one is not allowed).
fn block_on_own_thread<T: Send>(fut: impl std::future::Future<Output = StoreResult<T>> + Send) -> StoreResult<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            rt.map_err(|e| StoreError::Backend { op: "block_on", source: e.into() })?.block_on(fut)
        })
        .join()
        .unwrap_or(Err(StoreError::Closed))
    })
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

    async fn append(&self, mut msgs: Vec<NewMessage>) -> StoreResult<()> {
        if let Some(a) = &self.at_rest {
            a.seal_append(&self.backend, &mut msgs).await?;
        }
        let (n, started) = (msgs.len(), std::time::Instant::now());
        let r = delegate!(self, s => s.append(msgs).await);
        let metrics = delegate!(self, s => s.metrics());
        if let Some(m) = metrics {
            match &r {
                Err(StoreError::SeqTaken { .. }) => m.fencing.increment(1),
                // The embedded writer records its group commits itself.
                Ok(()) if matches!(self.backend, Backend::Scylla(_)) => m.commit(n, started.elapsed()),
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
        let mut rows = delegate!(self, s => s.read_range(conversation_id, range).await)?;
        if let Some(a) = &self.at_rest {
            a.open_rows(&self.backend, conversation_id, &mut rows).await?;
        }
        Ok(rows)
    }

    async fn message_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<Vec<MessageVersion>> {
        let mut versions = delegate!(self, s => s.message_versions(conversation_id, seq).await)?;
        if let Some(a) = &self.at_rest {
            a.open_versions(&self.backend, conversation_id, &mut versions).await?;
        }
        Ok(versions)
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

impl data_keys::DataKeyStore for Backend {
    async fn data_key(&self, conversation_id: u64) -> StoreResult<Option<Vec<u8>>> {
        on_backend!(self, s => s.data_key(conversation_id).await)
    }

    async fn insert_data_key(&self, conversation_id: u64, wrapped: &[u8]) -> StoreResult<Vec<u8>> {
        on_backend!(self, s => s.insert_data_key(conversation_id, wrapped).await)
    }

    async fn replace_data_key(&self, conversation_id: u64, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        on_backend!(self, s => s.replace_data_key(conversation_id, old, new).await)
    }

    async fn delete_data_key(&self, conversation_id: u64) -> StoreResult<bool> {
        on_backend!(self, s => s.delete_data_key(conversation_id).await)
    }

    async fn data_keys_page(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        on_backend!(self, s => s.data_keys_page(after, limit).await)
    }
}
