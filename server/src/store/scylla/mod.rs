//! The ScyllaDB backend (also runs on Apache Cassandra 4+): the same
//! [`MessageStore`] contract as the embedded store, on a cluster that several
//! `chatd` nodes share.
//!
//! It owns one keyspace (`store.scylla.keyspace`, default `chat`), made by
//! `chatd migrate` ([`migrate`]) and checked at open; messages live in
//! `(conversation_id, bucket)` partitions of [`BUCKET_SIZE`] seqs, and every
//! append is a lightweight transaction per partition, the fence between nodes
//! that race on one conversation. The driver runs on a small runtime of the
//! store's own, so any shard can await a call. It does not own the
//! configuration's checks (`crate::config`), nor sequencing (the owner's).
//! Design, failure cases and the schema: `deploy/CLUSTER.md`, "The ScyllaDB store".
//!
//! This file holds [`ScyllaStore`] and its [`MessageStore`] impl, which hands
//! each call to the parts: `settings` (driver settings from the checked
//! configuration), `schema` (DDL, versions, `migrate`, the start-up check),
//! `statements` (prepared statements and the binder), `rows` (row <-> record
//! mapping), `append` (conditional batches, fencing, unknown outcomes),
//! `reads` (history and client-id lookups), `records` (conversations,
//! members, watermarks, users), `lists` (activity, users' lists and the
//! support queue, paged) and `templates` (the `TemplateStore` impl).

mod append;
mod attachments;
mod audit;
mod data_keys;
mod key_packages;
mod lists;
mod reads;
mod records;
mod retention;
mod rows;
mod schema;
mod service_accounts;
mod settings;
mod statements;
mod templates;
#[cfg(test)]
mod tests;
mod versions;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use tokio::sync::Semaphore;

pub use append::{BUCKET_SIZE, bucket_of, partitions, run_limit, seq_span};
pub use reads::{bucket_bounds, seq_bounds};
pub use rows::{seq_from_db, seq_to_db};
pub use schema::{
    SCHEMA_VERSION, check_schema_version, drop_keyspace, effective_tablets, keyspace_ddl, migrate, migrate_with,
    schema_ddl,
};
pub use settings::{
    ScyllaSettings, check_serial_for_datacenters, parse_consistency, parse_serial_consistency, replicated_datacenters,
    replication_cql,
};
pub use statements::{CqlError, STATEMENTS, applied};

use super::{
    ConversationRecord, Created, ListKey, MemberRecord, MessageStore, MessageVersion, NewMessage, Range, StoreError,
    StoreResult, UserRecord,
};
use records::WATERMARK_ROUNDS;
use statements::Statements;

/// Concurrent statements of one call (`get_users`, idempotency reads and writes).
const FAN_OUT: usize = 32;

/// The connection, the statements and the settings; shared by the calls.
struct Inner {
    session: Session,
    st: Statements,
    settings: ScyllaSettings,
    /// `(conversation, bucket)` pairs known to be in `message_buckets` (a cache:
    /// a listing is never removed, so a remembered one is always there).
    listed: Mutex<HashSet<(u64, u64)>>,
}

/// The ScyllaDB [`MessageStore`]: see the module docs.
pub struct ScyllaStore {
    inner: Arc<Inner>,
    epoch: String,
    handle: tokio::runtime::Handle,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    slots: Arc<Semaphore>,
    closed: AtomicBool,
    /// Where appends are recorded, once the node says (see `Store::set_metrics`).
    metrics: std::sync::OnceLock<crate::metrics::StoreMetrics>,
}

/// The small runtime the driver runs on (its own threads, so any shard can await a call).
pub fn driver_runtime(s: &ScyllaSettings) -> StoreResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.driver_threads)
        .thread_name("scylla-driver")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })
}

/// A session to the cluster with the configured consistency, timeouts and credentials.
pub async fn connect(s: &ScyllaSettings) -> StoreResult<Session> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &s.local_dc {
        policy = policy.prefer_datacenter(dc.clone());
    }
    let profile = ExecutionProfile::builder()
        .consistency(s.consistency)
        .serial_consistency(Some(s.serial_consistency))
        .request_timeout(Some(s.request_timeout))
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&s.nodes)
        // Plain writes carry this process's monotonic clock, so one owner's
        // successive writes to a row apply in order whichever node coordinates.
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .connection_timeout(s.connect_timeout)
        .default_execution_profile_handle(profile.into_handle());
    if let Some((user, password)) = &s.credentials {
        builder = builder.user(user, password);
    }
    builder.build().await.map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })
}

impl ScyllaStore {
    /// Connects, checks the schema version, prepares every statement and reads
    /// the epoch. Blocking: call it outside an async context (as `chatd serve`
    /// does); async callers use [`ScyllaStore::connect`].
    pub fn open(s: &ScyllaSettings) -> StoreResult<Self> {
        let rt = driver_runtime(s)?;
        let inner = block_on(&rt, Inner::open(s.clone()));
        Self::assemble(rt, inner)
    }

    /// [`ScyllaStore::open`] from any async context.
    pub async fn connect(s: &ScyllaSettings) -> StoreResult<Self> {
        let rt = driver_runtime(s)?;
        let inner = match rt.spawn(Inner::open(s.clone())).await {
            Ok(inner) => inner,
            Err(e) => Err(StoreError::Open { path: s.target(), source: Box::new(e) }),
        };
        Self::assemble(rt, inner)
    }

    fn assemble(rt: tokio::runtime::Runtime, inner: StoreResult<(Inner, String)>) -> StoreResult<Self> {
        let (inner, epoch) = match inner {
            Ok(v) => v,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        Ok(Self {
            slots: Arc::new(Semaphore::new(inner.settings.max_in_flight)),
            inner: Arc::new(inner),
            epoch,
            handle: rt.handle().clone(),
            runtime: Mutex::new(Some(rt)),
            closed: AtomicBool::new(false),
            metrics: std::sync::OnceLock::new(),
        })
    }

    /// The keyspace in use.
    pub fn keyspace(&self) -> &str {
        &self.inner.settings.keyspace
    }

    /// Records appends and fencing into `m` from now on (the first call wins).
    pub fn set_metrics(&self, m: crate::metrics::StoreMetrics) {
        let _ = self.metrics.set(m);
    }

    /// Where appends are recorded (None: not yet said).
    pub fn metrics(&self) -> Option<&crate::metrics::StoreMetrics> {
        self.metrics.get()
    }

    /// Stops taking writes and waits (up to the request timeout and a second)
    /// for the calls in flight. Reads keep working until the store is dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let all = self.inner.settings.max_in_flight;
        let deadline = std::time::Instant::now() + self.inner.settings.request_timeout + Duration::from_secs(1);
        while self.slots.available_permits() < all && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs `f` on the driver's runtime and brings its result back.
    async fn call<T, Fut>(&self, op: &'static str, write: bool, f: impl FnOnce(Arc<Inner>) -> Fut) -> StoreResult<T>
    where
        T: Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        if write && self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let fut = f(self.inner.clone());
        let task = self.handle.spawn(async move {
            let out = fut.await;
            drop(slot);
            out
        });
        match task.await {
            Ok(out) => out,
            Err(e) if e.is_cancelled() => Err(StoreError::Closed),
            Err(e) => Err(StoreError::Backend { op, source: Box::new(e) }),
        }
    }
}

impl Drop for ScyllaStore {
    fn drop(&mut self) {
        let rt = self.runtime.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rt) = rt {
            // Not a blocking shutdown: the store may be dropped in async code.
            rt.shutdown_background();
        }
    }
}

impl MessageStore for ScyllaStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn append_run_limit(&self, next_seq: u64) -> usize {
        run_limit(next_seq)
    }

    async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()> {
        self.call("append", true, |i| async move { i.append(msgs).await }).await
    }

    async fn find_client_msg(
        &self,
        conversation_id: u64,
        sender_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<Option<u64>> {
        if client_msg_id.is_empty() {
            return Ok(None);
        }
        let (sender, id) = (sender_id.to_owned(), client_msg_id.to_owned());
        self.call("find_client_msg", false, |i| async move { i.find_client_msg(conversation_id, sender, id).await })
            .await
    }

    async fn last_seq(&self, conversation_id: u64) -> StoreResult<u64> {
        self.call("last_seq", false, |i| async move { i.last_seq(conversation_id).await }).await
    }

    async fn read_range(&self, conversation_id: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>> {
        self.call("read_range", false, |i| async move { i.read_range(conversation_id, range).await }).await
    }

    async fn message_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<Vec<MessageVersion>> {
        self.call("message_versions", false, |i| async move { i.message_versions(conversation_id, seq).await }).await
    }

    async fn create_conversation(&self, conv: &ConversationRecord, members: &[MemberRecord]) -> StoreResult<Created> {
        let (conv, members) = (conv.clone(), members.to_vec());
        self.call("create_conversation", true, |i| async move { i.create_conversation(conv, members).await }).await
    }

    async fn get_conversation(&self, id: u64) -> StoreResult<Option<ConversationRecord>> {
        self.call("get_conversation", false, |i| async move { i.get_conversation(id, None).await }).await
    }

    async fn update_conversation(&self, conv: &ConversationRecord) -> StoreResult<()> {
        let conv = conv.clone();
        self.call("update_conversation", true, |i| async move { i.update_conversation(conv).await }).await
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        let member = member.clone();
        self.call("put_member", true, |i| async move { i.put_member(member).await }).await
    }

    async fn remove_member(&self, conversation_id: u64, user_id: &str) -> StoreResult<()> {
        let user = user_id.to_owned();
        self.call("remove_member", true, |i| async move { i.remove_member(conversation_id, user).await }).await
    }

    async fn members(&self, conversation_id: u64) -> StoreResult<Vec<MemberRecord>> {
        self.call("members", false, |i| async move { i.members(conversation_id).await }).await
    }

    async fn member(&self, conversation_id: u64, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        let user = user_id.to_owned();
        self.call("member", false, |i| async move { i.member(conversation_id, user).await }).await
    }

    async fn user_conversations(&self, user_id: &str) -> StoreResult<Vec<u64>> {
        let user = user_id.to_owned();
        self.call("user_conversations", false, |i| async move { i.user_conversations(user).await }).await
    }

    async fn conversation_ids(&self) -> StoreResult<Vec<u64>> {
        self.call("conversation_ids", false, |i| async move { i.conversation_ids().await }).await
    }

    async fn advance_watermarks(
        &self,
        conversation_id: u64,
        user_id: &str,
        delivered: u64,
        read: u64,
    ) -> StoreResult<()> {
        let user = user_id.to_owned();
        self.call("advance_watermarks", true, |i| async move {
            i.advance_watermarks("advance_watermarks", (conversation_id, &user), delivered, read, WATERMARK_ROUNDS)
                .await
        })
        .await
    }

    async fn touch_conversation(&self, conversation_id: u64, at_ms: u64) -> StoreResult<()> {
        self.call("touch_conversation", true, |i| async move { i.touch(conversation_id, at_ms).await }).await
    }

    async fn conversation_activity(&self, conversation_id: u64) -> StoreResult<Option<u64>> {
        self.call("conversation_activity", false, |i| async move { i.activity(conversation_id).await }).await
    }

    async fn user_conversations_page(
        &self,
        user_id: &str,
        after: Option<ListKey>,
        limit: usize,
    ) -> StoreResult<Vec<ListKey>> {
        let user = user_id.to_owned();
        self.call(
            "user_conversations_page",
            false,
            |i| async move { i.user_conversations_page(user, after, limit).await },
        )
        .await
    }

    async fn support_queue(&self, after: Option<ListKey>, limit: usize) -> StoreResult<Vec<ListKey>> {
        self.call("support_queue", false, |i| async move { i.support_queue(after, limit).await }).await
    }

    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let json =
            serde_json::to_string(user).map_err(|e| StoreError::Backend { op: "upsert_user", source: Box::new(e) })?;
        let values = (user.id.clone(), json);
        self.call("upsert_user", true, |i| async move {
            i.exec("upsert_user", &i.st.upsert_directory_user, values, None).await.map(|_| ())
        })
        .await
    }

    async fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        let ids = ids.to_vec();
        self.call("get_users", false, |i| async move { i.get_users(ids).await }).await
    }

    async fn users_page(&self, after: Option<String>, limit: usize) -> StoreResult<Vec<UserRecord>> {
        self.call("users_page", false, move |i| async move { i.users_page(after, limit).await }).await
    }
}

/// Runs `fut` to completion on `rt`, from a plain thread or (on a helper
/// thread, since a runtime cannot block inside another) from async code.
pub fn block_on<T: Send>(rt: &tokio::runtime::Runtime, fut: impl Future<Output = T> + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(fut);
    }
    std::thread::scope(|scope| match scope.spawn(|| rt.block_on(fut)).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
