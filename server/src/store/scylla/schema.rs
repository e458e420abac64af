//! The schema: the keyspace and table DDL of [`SCHEMA_VERSION`], `chatd
//! migrate` ([`migrate`]), and the start-up check of an opened store (the
//! keyspace exists, its replication suits the serial consistency, the
//! recorded version is this binary's) with the epoch. It does not run the
//! store's calls.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use scylla::client::session::Session;

use super::rows::id_to_db;
use super::settings::{ScyllaSettings, check_serial_for_datacenters, replicated_datacenters};
use super::statements::{CqlError, Statements};
use super::{Inner, StoreError, StoreResult, block_on, connect, driver_runtime};
use crate::config::ScyllaConfig;

/// The schema version this binary writes and runs on.
pub const SCHEMA_VERSION: i32 = 9;

/// The `schema_version` row of this store.
const COMPONENT: &str = "chat";

/// `CREATE KEYSPACE IF NOT EXISTS` with the configured replication.
pub fn keyspace_ddl(s: &ScyllaSettings) -> String {
    let tablets = s.tablets.map(|on| format!(" AND tablets = {{'enabled': {on}}}")).unwrap_or_default();
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {} AND durable_writes = true{tablets}",
        s.keyspace, s.replication
    )
}

/// The tables of schema version 9: `(table, CREATE TABLE IF NOT EXISTS ...)`
/// (version 8 had all but `key_packages`, version 7 all but `service_accounts`
/// and `key_packages`;
/// version 1 had all but the last fourteen, version 2 all but the last twelve,
/// version 3 all but `templates`, `attachments` and the seven tables of
/// versions 6 and 7, version 4 all but `attachments` and those seven,
/// version 5 all but those seven, version 6 all but `data_keys`; version 6
/// added the three `audit_` tables, `user_directory`, `retention` and
/// `legal_holds`).
pub fn schema_ddl(ks: &str) -> Vec<(&'static str, String)> {
    let tables: [(&str, &str); 24] = [
        ("schema_version", "(component text PRIMARY KEY, version int, migrated_at_ms bigint, migrated_by text)"),
        ("meta", "(name text PRIMARY KEY, value text)"),
        (
            "messages",
            "(conversation_id bigint, bucket bigint, seq bigint, body blob, sender_id text, client_msg_id text, \
             writer bigint, PRIMARY KEY ((conversation_id, bucket), seq)) WITH CLUSTERING ORDER BY (seq ASC)",
        ),
        (
            "message_buckets",
            "(conversation_id bigint, bucket bigint, PRIMARY KEY ((conversation_id), bucket)) \
             WITH CLUSTERING ORDER BY (bucket DESC)",
        ),
        (
            "idempotency",
            "(conversation_id bigint, sender_id text, client_msg_id text, seq bigint, \
             PRIMARY KEY ((conversation_id, sender_id, client_msg_id)))",
        ),
        (
            "conversations",
            "(id bigint PRIMARY KEY, kind int, title text, case_id text, created_by text, created_at_ms bigint, \
             archived_at_ms bigint, support_state int, e2e boolean, retention_days int, legal_hold boolean)",
        ),
        (
            "members_by_conversation",
            "(conversation_id bigint, user_id text, role int, joined_at_ms bigint, delivered_seq bigint, \
             read_seq bigint, PRIMARY KEY ((conversation_id), user_id))",
        ),
        ("conversations_by_user", "(user_id text, conversation_id bigint, PRIMARY KEY ((user_id), conversation_id))"),
        (
            "support_queue",
            "(queue text, created_at_ms bigint, conversation_id bigint, \
             PRIMARY KEY ((queue), created_at_ms, conversation_id))",
        ),
        ("users", "(id text PRIMARY KEY, display_name text, role int)"),
        ("conversation_activity", "(conversation_id bigint PRIMARY KEY, activity_ms bigint)"),
        (
            "conversations_by_activity",
            "(user_id text, activity_ms bigint, conversation_id bigint, \
             PRIMARY KEY ((user_id), activity_ms, conversation_id)) \
             WITH CLUSTERING ORDER BY (activity_ms DESC, conversation_id DESC)",
        ),
        (
            "message_versions",
            "(conversation_id bigint, target_seq bigint, event_seq bigint, changed_by text, changed_at_ms bigint, \
             kind int, prior blob, writer bigint, PRIMARY KEY ((conversation_id, target_seq), event_seq)) \
             WITH CLUSTERING ORDER BY (event_seq ASC)",
        ),
        (
            "templates",
            "(scope int, owner text, id bigint, name text, body text, updated_at_ms bigint, updated_by text, \
             PRIMARY KEY ((scope, owner), id))",
        ),
        ("attachments", "(conversation_id bigint, id text, record text, PRIMARY KEY ((conversation_id), id))"),
        ("audit_chains", "(chain text PRIMARY KEY, last_bucket bigint)"),
        (
            "audit_entries",
            "(chain text, bucket bigint, seq bigint, record text, PRIMARY KEY ((chain, bucket), seq)) \
             WITH CLUSTERING ORDER BY (seq ASC)",
        ),
        (
            "audit_checkpoints",
            "(chain text, seq bigint, record text, PRIMARY KEY ((chain), seq)) WITH CLUSTERING ORDER BY (seq ASC)",
        ),
        // The user directory: a JSON `UserRecord` per user, so later fields need no schema change.
        ("user_directory", "(id text PRIMARY KEY, record text)"),
        ("retention", "(conversation_id bigint PRIMARY KEY, purged_through bigint)"),
        ("legal_holds", "(scope int, target text, record text, PRIMARY KEY ((scope), target))"),
        // Each conversation's data key, wrapped by the master key (id 0: the check key).
        ("data_keys", "(conversation_id bigint PRIMARY KEY, wrapped blob)"),
        // The API's service accounts: a JSON `ServiceAccountRecord` and its compare-and-set token.
        ("service_accounts", "(id text PRIMARY KEY, updated_at_ms bigint, record text)"),
        // The E2E KeyPackage directory: one partition per user, a row per KeyPackage.
        (
            "key_packages",
            "(user_id text, device_id text, ref blob, package blob, PRIMARY KEY ((user_id), device_id, ref))",
        ),
    ];
    tables.iter().map(|(t, cols)| (*t, format!("CREATE TABLE IF NOT EXISTS {ks}.{t} {cols}"))).collect()
}

/// Whether a recorded schema version lets this binary run; the error says what to do.
pub fn check_schema_version(keyspace: &str, recorded: Option<i32>) -> StoreResult<()> {
    let schema = |detail: String| Err(StoreError::Schema { keyspace: keyspace.to_owned(), detail });
    match recorded {
        None => schema("no schema version is recorded; run `chatd migrate`".into()),
        Some(v) if v < SCHEMA_VERSION => {
            schema(format!("schema version {v} is older than this binary's {SCHEMA_VERSION}; run `chatd migrate`"))
        }
        Some(v) if v > SCHEMA_VERSION => schema(format!(
            "schema version {v} is newer than this binary's {SCHEMA_VERSION}; run a chatd that knows it"
        )),
        Some(_) => Ok(()),
    }
}

/// Creates the keyspace and tables (idempotently) and records the schema
/// version and the epoch; returns what it did, one line each. Blocking: call
/// it outside an async context.
pub fn migrate(cfg: &ScyllaConfig) -> StoreResult<Vec<String>> {
    let s = ScyllaSettings::from_config(cfg)
        .map_err(|e| StoreError::Open { path: "scylla".into(), source: format!("store.scylla: {e}").into() })?;
    let rt = driver_runtime(&s)?;
    let out = block_on(&rt, migrate_with(&s));
    rt.shutdown_background();
    out
}

/// The schema version recorded in the keyspace (None: none recorded).
async fn recorded_version(session: &Session, s: &ScyllaSettings) -> StoreResult<Option<i32>> {
    let select = format!("SELECT version FROM {}.schema_version WHERE component = ?", s.keyspace);
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
        op: "schema_version",
        source: Box::new(CqlError {
            statement: "select_schema_version",
            consistency: s.consistency.to_string(),
            node: None,
            source: e,
        }),
    };
    let result = session.query_unpaged(select, (COMPONENT,)).await.map_err(|e| fail(e.into()))?;
    let row = result
        .into_rows_result()
        .map_err(|e| fail(e.into()))?
        .maybe_first_row::<(Option<i32>,)>()
        .map_err(|e| StoreError::Corrupt { table: "schema_version", detail: e.to_string() })?;
    Ok(row.and_then(|(v,)| v))
}

/// The `tablets` option `chatd migrate` gives `CREATE KEYSPACE`: the
/// configured one, else `false` on a server that has tablets (ScyllaDB 6.0+),
/// else none (Cassandra, older ScyllaDB: the option is unknown there).
pub fn effective_tablets(configured: Option<bool>, server_knows_tablets: bool) -> Option<bool> {
    configured.or(server_knows_tablets.then_some(false))
}

/// Whether an error is the server's "no such table or column" (`Invalid`).
fn is_invalid_request(e: &scylla::errors::ExecutionError) -> bool {
    use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
    matches!(e, ExecutionError::LastAttemptError(RequestAttemptError::DbError(DbError::Invalid, _)))
}

/// Whether the server has tablets: ScyllaDB's `system_schema.scylla_keyspaces`
/// with its `initial_tablets` column (what the driver itself looks at).
async fn server_knows_tablets(session: &Session) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    match session.query_unpaged("SELECT keyspace_name, initial_tablets FROM system_schema.scylla_keyspaces", ()).await {
        Ok(_) => Ok(true),
        Err(e) if is_invalid_request(&e) => Ok(false),
        Err(e) => Err(Box::new(e)),
    }
}

/// Whether a keyspace is tablets-based (`initial_tablets` is set); only asked
/// of a server that has tablets.
async fn keyspace_uses_tablets(session: &Session, ks: &str) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let r = session
        .query_unpaged("SELECT initial_tablets FROM system_schema.scylla_keyspaces WHERE keyspace_name = ?", (ks,))
        .await?;
    let row = r.into_rows_result()?.maybe_first_row::<(Option<i32>,)>()?;
    Ok(matches!(row, Some((Some(_),))))
}

/// Drops the keyspace of `s` and everything in it (`DROP KEYSPACE IF EXISTS`):
/// what tests and the load generator use to leave nothing behind on a shared node.
pub async fn drop_keyspace(s: &ScyllaSettings) -> StoreResult<()> {
    let session = connect(s).await?;
    let cql = format!("DROP KEYSPACE IF EXISTS {}", s.keyspace);
    session.query_unpaged(schema_change(cql), ()).await.map_err(|e| StoreError::Backend {
        op: "drop_keyspace",
        source: Box::new(CqlError {
            statement: "drop_keyspace",
            consistency: s.consistency.to_string(),
            node: None,
            source: e.into(),
        }),
    })?;
    Ok(())
}

/// [`migrate`] from within a runtime (the driver runs on the caller's).
pub async fn migrate_with(s: &ScyllaSettings) -> StoreResult<Vec<String>> {
    let session = connect(s).await?;
    let mut report = Vec::new();
    let ddl = |name: &'static str| {
        let consistency = s.consistency.to_string();
        move |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
            op: "migrate",
            source: Box::new(CqlError { statement: name, consistency, node: None, source: e }),
        }
    };
    // Tablets: unless configured, off on a ScyllaDB that has them (its tablets
    // keyspaces refuse lightweight transactions up to 2025.3), unsaid elsewhere.
    let knows_tablets = server_knows_tablets(&session).await.map_err(ddl("detect_tablets"))?;
    let with = ScyllaSettings { tablets: effective_tablets(s.tablets, knows_tablets), ..s.clone() };
    session
        .query_unpaged(schema_change(keyspace_ddl(&with)), ())
        .await
        .map_err(|e| ddl("create_keyspace")(e.into()))?;
    let tablets = match with.tablets {
        Some(on) => format!(" and tablets = {{'enabled': {on}}}"),
        None => String::new(),
    };
    report.push(format!(
        "keyspace {}: present (created with replication {}{tablets} if it was missing; an existing keyspace keeps \
         its own, change it with ALTER KEYSPACE)",
        s.keyspace, s.replication
    ));
    if knows_tablets && keyspace_uses_tablets(&session, &s.keyspace).await.map_err(ddl("detect_tablets"))? {
        report.push(format!(
            "keyspace {}: uses tablets; ScyllaDB 6.0 to 2025.3 refuse lightweight transactions there, which this \
             store needs for every append (make the keyspace again with tablets = {{'enabled': false}})",
            s.keyspace
        ));
    }
    let tables = schema_ddl(&s.keyspace);
    let (version_table, rest) = tables.split_first().expect("schema has tables");
    session
        .query_unpaged(schema_change(version_table.1.clone()), ())
        .await
        .map_err(|e| ddl("create_table")(e.into()))?;
    let recorded = recorded_version(&session, s).await?;
    if let Some(v) = recorded
        && v > SCHEMA_VERSION
    {
        return check_schema_version(&s.keyspace, Some(v)).map(|_| report);
    }
    for (table, create) in rest {
        session.query_unpaged(schema_change(create.clone()), ()).await.map_err(|e| ddl("create_table")(e.into()))?;
        report.push(format!("table {}.{table}: present", s.keyspace));
    }
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let by = format!("chatd {}", env!("CARGO_PKG_VERSION"));
    let insert = format!(
        "INSERT INTO {}.schema_version (component, version, migrated_at_ms, migrated_by) VALUES (?, ?, ?, ?)",
        s.keyspace
    );
    session
        .query_unpaged(insert, (COMPONENT, SCHEMA_VERSION, id_to_db(now_ms), by))
        .await
        .map_err(|e| ddl("insert_schema_version")(e.into()))?;
    match recorded {
        Some(v) if v == SCHEMA_VERSION => report.push(format!("schema version {v}: up to date")),
        Some(v) => report.push(format!("schema version {v} -> {SCHEMA_VERSION}")),
        None => report.push(format!("schema version {SCHEMA_VERSION} recorded (new schema)")),
    }
    let st = Statements::prepare(&session, s).await?;
    let inner = Inner { session, st, settings: s.clone(), listed: Mutex::new(HashSet::new()) };
    if recorded == Some(1) {
        let n = inner.backfill_activity().await?;
        report.push(format!("activity of {n} conversations made from their last messages (version 1 -> 2)"));
    }
    let epoch = inner.epoch().await?;
    report.push(format!("epoch: {epoch}"));
    Ok(report)
}

/// How long one schema change may take. A node applies it and waits for the
/// others to agree: seconds on a loaded machine (a CREATE TABLE on the test
/// CQL node took over the 5 s request timeout while two builds ran beside it).
const SCHEMA_CHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `cql` as a statement with [`SCHEMA_CHANGE_TIMEOUT`].
fn schema_change(cql: String) -> scylla::statement::unprepared::Statement {
    let mut st = scylla::statement::unprepared::Statement::new(cql);
    st.set_request_timeout(Some(SCHEMA_CHANGE_TIMEOUT));
    st
}

impl Inner {
    pub(super) async fn open(s: ScyllaSettings) -> StoreResult<(Inner, String)> {
        let session = connect(&s).await?;
        // A missing keyspace is a schema problem, not a failed statement.
        let ks = session
            .query_unpaged(
                "SELECT keyspace_name, replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
                (&s.keyspace,),
            )
            .await
            .map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })?;
        let rows = ks.into_rows_result().ok();
        let Some(rows) = rows.filter(|r| r.rows_num() > 0) else {
            return Err(StoreError::Schema {
                keyspace: s.keyspace.clone(),
                detail: "the keyspace does not exist; run `chatd migrate`".into(),
            });
        };
        // The configuration may not name the datacenters (a replication_factor
        // on a multi-datacenter cluster): check what the keyspace really has.
        let replication = rows
            .maybe_first_row::<(String, Option<HashMap<String, String>>)>()
            .map_err(|e| StoreError::Corrupt { table: "system_schema.keyspaces", detail: e.to_string() })?
            .and_then(|(_, r)| r)
            .unwrap_or_default();
        let dcs = replicated_datacenters(&replication);
        check_serial_for_datacenters(s.serial_consistency, &dcs).map_err(|detail| StoreError::Schema {
            keyspace: s.keyspace.clone(),
            detail: format!("store.scylla.{detail}"),
        })?;
        let has_table = session
            .query_unpaged(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
                (&s.keyspace, "schema_version"),
            )
            .await
            .map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })?
            .into_rows_result()
            .map(|r| r.rows_num() > 0)
            .unwrap_or(false);
        let recorded = if has_table { recorded_version(&session, &s).await? } else { None };
        check_schema_version(&s.keyspace, recorded)?;
        let st = Statements::prepare(&session, &s).await?;
        let inner = Inner { session, st, settings: s, listed: Mutex::new(HashSet::new()) };
        let epoch = inner.epoch().await?;
        Ok((inner, epoch))
    }

    /// The epoch, made (once, by whoever comes first) if missing.
    pub(super) async fn epoch(&self) -> StoreResult<String> {
        let read = |c| self.one::<(Option<String>,)>("open", &self.st.select_meta, ("epoch",), c);
        if let Some((Some(epoch),)) = read(None).await? {
            return Ok(epoch);
        }
        let fresh = format!("{:032x}", rand::random::<u128>());
        let r = self.exec("open", &self.st.insert_meta_if_absent, ("epoch", &fresh), None).await?;
        if self.applied("open", &self.st.insert_meta_if_absent, r)? {
            return Ok(fresh);
        }
        match read(Some(self.serial())).await? {
            Some((Some(epoch),)) if !epoch.is_empty() => Ok(epoch),
            _ => Err(StoreError::Corrupt { table: "meta", detail: "the epoch is empty".into() }),
        }
    }
}
