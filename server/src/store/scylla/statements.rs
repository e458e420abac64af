//! Statements: every CQL statement the store runs, prepared once at open
//! ([`STATEMENTS`]), and the binder that runs them (`exec`, `rows`, `one`,
//! `batch`) with the consistency they need, turning each failure into a
//! [`CqlError`] that names the statement, the consistency and the node. It
//! does not decide what to run; the parts of the store do.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::observability::history::{AttemptId, HistoryListener, RequestId, SpeculativeId};
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::bound::BoundStatement;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};

use super::settings::ScyllaSettings;
use super::{Inner, StoreError, StoreResult};

/// Rows fetched per page by every multi-row read.
const PAGE_SIZE: i32 = 1000;

/// A statement that failed: which, at what consistency, on which node, why.
#[derive(Debug, thiserror::Error)]
#[error("statement {statement} at consistency {consistency}{}: {source}", node_suffix(.node))]
pub struct CqlError {
    /// The statement's name (see [`STATEMENTS`]).
    pub statement: &'static str,
    /// The consistency it ran at (and the serial consistency of a transaction).
    pub consistency: String,
    /// The node that answered (or failed to) last, when known.
    pub node: Option<SocketAddr>,
    /// The driver's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn node_suffix(node: &Option<SocketAddr>) -> String {
    node.map(|n| format!(" on node {n}")).unwrap_or_else(|| " (no node reached)".into())
}

/// An outcome the driver cannot tell (the store reads back to settle it).
#[derive(Debug, thiserror::Error)]
#[error("{0}; the outcome could not be settled: {1}")]
pub(super) struct Unsettled(pub(super) StoreError, pub(super) StoreError);

/// Records the node of the latest attempt of one request.
#[derive(Debug, Default)]
struct LastNode(Mutex<Option<SocketAddr>>);

impl LastNode {
    fn get(&self) -> Option<SocketAddr> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HistoryListener for LastNode {
    fn log_request_start(&self) -> RequestId {
        RequestId(0)
    }
    fn log_request_success(&self, _: RequestId) {}
    fn log_request_error(&self, _: RequestId, _: &scylla::errors::RequestError) {}
    fn log_new_speculative_fiber(&self, _: RequestId) -> SpeculativeId {
        SpeculativeId(0)
    }
    fn log_attempt_start(&self, _: RequestId, _: Option<SpeculativeId>, node: SocketAddr) -> AttemptId {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(node);
        AttemptId(0)
    }
    fn log_attempt_success(&self, _: AttemptId) {}
    fn log_attempt_error(
        &self,
        _: AttemptId,
        _: &scylla::errors::RequestAttemptError,
        _: &scylla::policies::retry::RetryDecision,
    ) {
    }
}

/// A prepared statement and its name.
pub(super) struct Stmt {
    pub(super) name: &'static str,
    pub(super) ps: PreparedStatement,
    /// A lightweight transaction (`IF ...`), known from our own CQL: the
    /// server's LWT flag is a ScyllaDB extension that Cassandra does not send.
    pub(super) lwt: bool,
}

macro_rules! statements {
    ($($name:ident: $cql:literal,)+) => {
        /// Every prepared statement, prepared once at open.
        pub(super) struct Statements {
            $(pub(super) $name: Stmt,)+
        }

        /// Every statement's name and CQL (`{ks}` stands for the keyspace).
        pub const STATEMENTS: &[(&str, &str)] = &[$((stringify!($name), $cql),)+];

        impl Statements {
            pub(super) async fn prepare(session: &Session, s: &ScyllaSettings) -> StoreResult<Self> {
                Ok(Self { $($name: prepare(session, s, stringify!($name), $cql).await?,)+ })
            }
        }
    };
}

statements! {
    insert_message: "INSERT INTO {ks}.messages (conversation_id, bucket, seq, body, sender_id, client_msg_id, writer) \
        VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    select_seqs_between: "SELECT seq, writer FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        AND seq >= ? AND seq <= ?",
    select_message_sender: "SELECT sender_id, client_msg_id FROM {ks}.messages WHERE conversation_id = ? \
        AND bucket = ? AND seq = ?",
    update_message_body: "UPDATE {ks}.messages SET body = ? WHERE conversation_id = ? AND bucket = ? AND seq = ? \
        IF EXISTS",
    insert_version: "INSERT INTO {ks}.message_versions (conversation_id, target_seq, event_seq, changed_by, \
        changed_at_ms, kind, prior, writer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    select_versions: "SELECT event_seq, changed_by, changed_at_ms, kind, prior, writer FROM {ks}.message_versions \
        WHERE conversation_id = ? AND target_seq = ? ORDER BY event_seq ASC",
    insert_bucket: "INSERT INTO {ks}.message_buckets (conversation_id, bucket) VALUES (?, ?)",
    select_buckets_desc: "SELECT bucket FROM {ks}.message_buckets WHERE conversation_id = ? ORDER BY bucket DESC",
    select_buckets_between_asc: "SELECT bucket FROM {ks}.message_buckets WHERE conversation_id = ? \
        AND bucket >= ? AND bucket <= ? ORDER BY bucket ASC",
    select_buckets_between_desc: "SELECT bucket FROM {ks}.message_buckets WHERE conversation_id = ? \
        AND bucket >= ? AND bucket <= ? ORDER BY bucket DESC",
    select_last_seq: "SELECT seq FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        ORDER BY seq DESC LIMIT 1",
    select_messages_asc: "SELECT seq, body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        AND seq >= ? AND seq <= ? ORDER BY seq ASC LIMIT ?",
    select_messages_desc: "SELECT seq, body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT ?",
    insert_idempotency: "INSERT INTO {ks}.idempotency (conversation_id, sender_id, client_msg_id, seq) \
        VALUES (?, ?, ?, ?)",
    select_idempotency_in: "SELECT client_msg_id, seq FROM {ks}.idempotency WHERE conversation_id = ? \
        AND sender_id = ? AND client_msg_id IN ?",
    insert_conversation_if_absent: "INSERT INTO {ks}.conversations (id, kind, title, case_id, created_by, \
        created_at_ms, archived_at_ms, support_state, e2e, retention_days, legal_hold) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    update_conversation_if_exists: "UPDATE {ks}.conversations SET kind = ?, title = ?, case_id = ?, \
        created_by = ?, created_at_ms = ?, archived_at_ms = ?, support_state = ?, e2e = ?, retention_days = ?, \
        legal_hold = ? WHERE id = ? IF EXISTS",
    select_conversation: "SELECT id, kind, title, case_id, created_by, created_at_ms, archived_at_ms, \
        support_state, e2e, retention_days, legal_hold FROM {ks}.conversations WHERE id = ?",
    insert_member_if_absent: "INSERT INTO {ks}.members_by_conversation (conversation_id, user_id, role, \
        joined_at_ms, delivered_seq, read_seq) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    update_member_if_exists: "UPDATE {ks}.members_by_conversation SET role = ?, joined_at_ms = ?, \
        delivered_seq = ?, read_seq = ? WHERE conversation_id = ? AND user_id = ? IF EXISTS",
    insert_user_conversation: "INSERT INTO {ks}.conversations_by_user (user_id, conversation_id) VALUES (?, ?)",
    delete_member_if_exists: "DELETE FROM {ks}.members_by_conversation WHERE conversation_id = ? AND user_id = ? \
        IF EXISTS",
    delete_user_conversation: "DELETE FROM {ks}.conversations_by_user WHERE user_id = ? AND conversation_id = ?",
    select_members: "SELECT user_id, role, joined_at_ms, delivered_seq, read_seq \
        FROM {ks}.members_by_conversation WHERE conversation_id = ?",
    select_member: "SELECT user_id, role, joined_at_ms, delivered_seq, read_seq \
        FROM {ks}.members_by_conversation WHERE conversation_id = ? AND user_id = ?",
    select_user_conversations: "SELECT conversation_id FROM {ks}.conversations_by_user WHERE user_id = ?",
    select_watermarks: "SELECT delivered_seq, read_seq FROM {ks}.members_by_conversation \
        WHERE conversation_id = ? AND user_id = ?",
    advance_both: "UPDATE {ks}.members_by_conversation SET delivered_seq = ?, read_seq = ? \
        WHERE conversation_id = ? AND user_id = ? IF delivered_seq < ? AND read_seq < ?",
    advance_delivered: "UPDATE {ks}.members_by_conversation SET delivered_seq = ? \
        WHERE conversation_id = ? AND user_id = ? IF delivered_seq < ?",
    advance_read: "UPDATE {ks}.members_by_conversation SET read_seq = ? \
        WHERE conversation_id = ? AND user_id = ? IF read_seq < ?",
    insert_queue: "INSERT INTO {ks}.support_queue (queue, created_at_ms, conversation_id) VALUES (?, ?, ?)",
    delete_queue: "DELETE FROM {ks}.support_queue WHERE queue = ? AND created_at_ms = ? AND conversation_id = ?",
    select_queue_first: "SELECT created_at_ms, conversation_id FROM {ks}.support_queue WHERE queue = ? LIMIT ?",
    select_queue_after: "SELECT created_at_ms, conversation_id FROM {ks}.support_queue WHERE queue = ? \
        AND (created_at_ms, conversation_id) > (?, ?) LIMIT ?",
    insert_activity: "INSERT INTO {ks}.conversation_activity (conversation_id, activity_ms) VALUES (?, ?)",
    select_activity: "SELECT activity_ms FROM {ks}.conversation_activity WHERE conversation_id = ?",
    insert_listed: "INSERT INTO {ks}.conversations_by_activity (user_id, activity_ms, conversation_id) \
        VALUES (?, ?, ?)",
    delete_listed: "DELETE FROM {ks}.conversations_by_activity WHERE user_id = ? AND activity_ms = ? \
        AND conversation_id = ?",
    select_listed_first: "SELECT activity_ms, conversation_id FROM {ks}.conversations_by_activity \
        WHERE user_id = ? LIMIT ?",
    select_listed_below: "SELECT activity_ms, conversation_id FROM {ks}.conversations_by_activity \
        WHERE user_id = ? AND (activity_ms, conversation_id) < (?, ?) LIMIT ?",
    select_user_conversation: "SELECT conversation_id FROM {ks}.conversations_by_user \
        WHERE user_id = ? AND conversation_id = ?",
    select_user: "SELECT id, display_name, role FROM {ks}.users WHERE id = ?",
    upsert_directory_user: "INSERT INTO {ks}.user_directory (id, record) VALUES (?, ?)",
    select_directory_user: "SELECT record FROM {ks}.user_directory WHERE id = ?",
    select_directory_first: "SELECT record FROM {ks}.user_directory LIMIT ?",
    select_directory_after: "SELECT record FROM {ks}.user_directory WHERE token(id) > token(?) LIMIT ?",
    select_meta: "SELECT value FROM {ks}.meta WHERE name = ?",
    insert_meta_if_absent: "INSERT INTO {ks}.meta (name, value) VALUES (?, ?) IF NOT EXISTS",
    insert_attachment: "INSERT INTO {ks}.attachments (conversation_id, id, record) VALUES (?, ?, ?)",
    select_attachment: "SELECT record FROM {ks}.attachments WHERE conversation_id = ? AND id = ?",
    select_attachments_after: "SELECT record FROM {ks}.attachments WHERE conversation_id = ? AND id > ? \
        ORDER BY id ASC LIMIT ?",
    select_attachments_first: "SELECT record FROM {ks}.attachments LIMIT ?",
    select_attachments_token_after: "SELECT record FROM {ks}.attachments \
        WHERE token(conversation_id) > token(?) LIMIT ?",
    upsert_audit_chain: "INSERT INTO {ks}.audit_chains (chain, last_bucket) VALUES (?, ?)",
    select_audit_chain: "SELECT last_bucket FROM {ks}.audit_chains WHERE chain = ?",
    select_audit_chains: "SELECT chain FROM {ks}.audit_chains",
    insert_audit_entry: "INSERT INTO {ks}.audit_entries (chain, bucket, seq, record) VALUES (?, ?, ?, ?)",
    select_audit_entries: "SELECT record FROM {ks}.audit_entries WHERE chain = ? AND bucket = ? AND seq > ? \
        ORDER BY seq ASC LIMIT ?",
    select_audit_last: "SELECT record FROM {ks}.audit_entries WHERE chain = ? AND bucket = ? \
        ORDER BY seq DESC LIMIT 1",
    insert_audit_checkpoint: "INSERT INTO {ks}.audit_checkpoints (chain, seq, record) VALUES (?, ?, ?)",
    select_audit_checkpoints: "SELECT record FROM {ks}.audit_checkpoints WHERE chain = ? ORDER BY seq ASC",
    delete_attachment: "DELETE FROM {ks}.attachments WHERE conversation_id = ? AND id = ?",
    select_purged: "SELECT purged_through FROM {ks}.retention WHERE conversation_id = ?",
    upsert_purged: "UPDATE {ks}.retention SET purged_through = ? WHERE conversation_id = ?",
    delete_message_if_exists: "DELETE FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq = ? \
        IF EXISTS",
    delete_versions_of: "DELETE FROM {ks}.message_versions WHERE conversation_id = ? AND target_seq = ?",
    delete_idempotency: "DELETE FROM {ks}.idempotency WHERE conversation_id = ? AND sender_id = ? \
        AND client_msg_id = ?",
    insert_hold: "INSERT INTO {ks}.legal_holds (scope, target, record) VALUES (?, ?, ?)",
    delete_hold_if_exists: "DELETE FROM {ks}.legal_holds WHERE scope = ? AND target = ? IF EXISTS",
    select_holds_of_scope: "SELECT record FROM {ks}.legal_holds WHERE scope = ?",
    insert_template_if_absent: "INSERT INTO {ks}.templates (scope, owner, id, name, body, updated_at_ms, \
        updated_by) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    update_template_if_unchanged: "UPDATE {ks}.templates SET name = ?, body = ?, updated_at_ms = ?, \
        updated_by = ? WHERE scope = ? AND owner = ? AND id = ? IF updated_at_ms = ?",
    delete_template_if_exists: "DELETE FROM {ks}.templates WHERE scope = ? AND owner = ? AND id = ? IF EXISTS",
    select_templates: "SELECT id, scope, owner, name, body, updated_at_ms, updated_by FROM {ks}.templates \
        WHERE scope = ? AND owner = ?",
    select_template: "SELECT id, scope, owner, name, body, updated_at_ms, updated_by FROM {ks}.templates \
        WHERE scope = ? AND owner = ? AND id = ?",
    select_data_key: "SELECT wrapped FROM {ks}.data_keys WHERE conversation_id = ?",
    insert_data_key_if_absent: "INSERT INTO {ks}.data_keys (conversation_id, wrapped) VALUES (?, ?) IF NOT EXISTS",
    update_data_key_if_unchanged: "UPDATE {ks}.data_keys SET wrapped = ? WHERE conversation_id = ? IF wrapped = ?",
    delete_data_key_if_exists: "DELETE FROM {ks}.data_keys WHERE conversation_id = ? IF EXISTS",
    select_data_keys_first: "SELECT conversation_id, wrapped FROM {ks}.data_keys LIMIT ?",
    select_data_keys_after: "SELECT conversation_id, wrapped FROM {ks}.data_keys \
        WHERE token(conversation_id) > token(?) LIMIT ?",
    select_service_accounts: "SELECT record FROM {ks}.service_accounts",
    select_service_account: "SELECT record FROM {ks}.service_accounts WHERE id = ?",
    insert_service_account_if_absent: "INSERT INTO {ks}.service_accounts (id, updated_at_ms, record) \
        VALUES (?, ?, ?) IF NOT EXISTS",
    update_service_account_if_unchanged: "UPDATE {ks}.service_accounts SET updated_at_ms = ?, record = ? \
        WHERE id = ? IF updated_at_ms = ?",
    select_key_packages: "SELECT device_id, ref, package FROM {ks}.key_packages WHERE user_id = ?",
    select_key_package_refs: "SELECT ref FROM {ks}.key_packages WHERE user_id = ? AND device_id = ?",
    insert_key_package: "INSERT INTO {ks}.key_packages (user_id, device_id, ref, package) VALUES (?, ?, ?, ?)",
    delete_key_packages_of_user: "DELETE FROM {ks}.key_packages WHERE user_id = ?",
    delete_key_package_if_exists: "DELETE FROM {ks}.key_packages WHERE user_id = ? AND device_id = ? AND ref = ? \
        IF EXISTS",
}

/// Whether a statement of ours is a lightweight transaction.
pub(super) fn is_transaction(cql: &str) -> bool {
    cql.contains(" IF ")
}

pub(super) async fn prepare(session: &Session, s: &ScyllaSettings, name: &'static str, cql: &str) -> StoreResult<Stmt> {
    let cql = cql.replace("{ks}", &s.keyspace);
    let lwt = is_transaction(&cql);
    let mut ps = session.prepare(cql).await.map_err(|e| StoreError::Schema {
        keyspace: s.keyspace.clone(),
        detail: format!("cannot prepare statement {name} (is the schema there? run `chatd migrate`): {e}"),
    })?;
    ps.set_page_size(PAGE_SIZE);
    // Reads and plain upserts may be retried and sped up; a transaction may not
    // (a retried IF NOT EXISTS of our own write would come back "not applied").
    ps.set_is_idempotent(!lwt);
    Ok(Stmt { name, ps, lwt })
}

/// The `[applied]` column of a lightweight transaction's result.
pub fn applied(result: QueryResult) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let rows = result.into_rows_result()?;
    let (i, _) = rows.column_specs().get_by_name("[applied]").ok_or("no [applied] column in the result")?;
    let first = rows.rows::<Row>()?.next().ok_or("empty result")??;
    match first.columns.get(i) {
        Some(Some(CqlValue::Boolean(b))) => Ok(*b),
        other => Err(format!("[applied] is {other:?}").into()),
    }
}

impl Inner {
    /// The serial consistency, as a read consistency.
    pub(super) fn serial(&self) -> Consistency {
        match self.settings.serial_consistency {
            SerialConsistency::Serial => Consistency::Serial,
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
        }
    }

    pub(super) fn consistency_of(&self, stmt: &Stmt, consistency: Option<Consistency>) -> String {
        let c = consistency.unwrap_or(self.settings.consistency);
        if stmt.lwt { format!("{c}/{}", self.settings.serial_consistency) } else { c.to_string() }
    }

    pub(super) fn error(
        &self,
        op: &'static str,
        statement: &'static str,
        consistency: String,
        node: Option<SocketAddr>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Backend { op, source: Box::new(CqlError { statement, consistency, node, source: source.into() }) }
    }

    /// Executes one statement, unpaged (writes, single-row reads).
    pub(super) async fn exec(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<QueryResult> {
        let (bound, node) = self.bind(op, stmt, values, consistency)?;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            self.error(op, stmt.name, self.consistency_of(stmt, consistency), node.get(), e)
        };
        self.session.execute_bound_unpaged(&bound).await.map_err(|e| fail(Box::new(e)))
    }

    /// Binds `values` to `stmt` at `consistency` (None: the statement's own),
    /// with a listener that records the node that answered (for errors).
    fn bind(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<(BoundStatement, Arc<LastNode>)> {
        let node = Arc::new(LastNode::default());
        let mut bound = stmt
            .ps
            .clone()
            .bind(&values)
            .map_err(|e| self.error(op, stmt.name, self.consistency_of(stmt, consistency), None, Box::new(e)))?;
        if let Some(c) = consistency {
            bound.set_consistency(c);
        }
        bound.set_history_listener(node.clone());
        Ok((bound, node))
    }

    /// Executes a batch of `stmts` (each with its row of `values`).
    pub(super) async fn batch(
        &self,
        op: &'static str,
        name: &'static str,
        stmts: Vec<&Stmt>,
        values: Vec<Vec<CqlValue>>,
    ) -> StoreResult<QueryResult> {
        let node = Arc::new(LastNode::default());
        let mut batch = Batch::new(BatchType::Logged);
        let lwt = stmts.iter().any(|s| s.lwt);
        for s in stmts {
            batch.append_statement(s.ps.clone());
        }
        batch.set_history_listener(node.clone());
        let consistency = if lwt {
            format!("{}/{}", self.settings.consistency, self.settings.serial_consistency)
        } else {
            self.settings.consistency.to_string()
        };
        self.session.batch(&batch, values).await.map_err(|e| self.error(op, name, consistency, node.get(), e))
    }

    /// The `[applied]` flag of a transaction's result.
    pub(super) fn applied(&self, op: &'static str, stmt: &Stmt, result: QueryResult) -> StoreResult<bool> {
        applied(result).map_err(|e| self.error(op, stmt.name, self.consistency_of(stmt, None), None, e))
    }

    /// Every row of a read, fetched page by page.
    pub(super) async fn rows<R>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let (bound, node) = self.bind(op, stmt, values, consistency)?;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            self.error(op, stmt.name, self.consistency_of(stmt, consistency), node.get(), e)
        };
        let pager = self.session.execute_bound_iter(bound).await.map_err(|e| fail(Box::new(e)))?;
        let stream = pager.rows_stream::<R>().map_err(|e| fail(Box::new(e)))?;
        stream.try_collect().await.map_err(|e| fail(Box::new(e)))
    }

    /// The first row of a single-partition, single-row read.
    pub(super) async fn one<R>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<Option<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let result = self.exec(op, stmt, values, consistency).await?;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            self.error(op, stmt.name, self.consistency_of(stmt, consistency), None, e)
        };
        let rows = result.into_rows_result().map_err(|e| fail(Box::new(e)))?;
        rows.maybe_first_row::<R>().map_err(|e| fail(Box::new(e)))
    }
}
