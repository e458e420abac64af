//! The ScyllaDB [`BlobStore`]: blobs a cluster shares, in 256 KiB chunks in
//! the message store's keyspace (`[store.scylla]`).
//!
//! Tables (made by `chatd migrate`, recorded as component `blobs` in
//! `schema_version`): `blob_uploads (upload, started_ms, chunks, hash)`
//! lists uploads in progress (the hash set just before the commit, so a
//! sweep can tell an upload whose commit was cut short from a lost one);
//! `blob_chunks ((upload, idx), data)` holds each chunk in a partition of
//! its own (spread over the cluster); `blobs (hash, size, upload,
//! chunk_bytes, touched_ms)` is written last, `IF NOT EXISTS`, and makes a
//! blob exist: a second upload of the same content loses that race, touches
//! the blob (`IF EXISTS`; lost to a sweep, it tries its insert again) and
//! removes its own chunks (deduplication). A sweep removes a blob's row
//! only `IF touched_ms` is still what it read, so a touch and a sweep never
//! both win. Rows written by version 1 have no `touched_ms`; their age is
//! the write time of `size`. An upload holds at most one chunk in
//! memory. Its record counts its chunks before each is written, so an abort
//! or drop removes exactly those, and what a crashed node left is removed
//! by the sweep each store does when it opens (uploads older than
//! `stale_after`, another node's may still be running). It owns those three
//! tables; the connection helpers are the message store's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::contract::{BlobError, BlobHash, BlobMeta, BlobResult, BlobStore, BlobWriter, Hasher, Listed, clamp_range};
use crate::store::scylla::{ScyllaSettings, applied, block_on, connect, driver_runtime};

/// Bytes per chunk row.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The version of the blob tables this binary writes and reads.
pub const BLOB_SCHEMA_VERSION: i32 = 2;

/// How old an upload in progress must be before a store opening sweeps it.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The tables: `(name, CREATE TABLE IF NOT EXISTS ...)`.
pub fn blob_ddl(ks: &str) -> Vec<(&'static str, String)> {
    [
        ("blob_uploads", "(upload bigint PRIMARY KEY, started_ms bigint, chunks int, hash blob)"),
        ("blob_chunks", "(upload bigint, idx int, data blob, PRIMARY KEY ((upload, idx)))"),
        ("blobs", "(hash blob PRIMARY KEY, size bigint, upload bigint, chunk_bytes int, touched_ms bigint)"),
    ]
    .iter()
    .map(|(t, cols)| (*t, format!("CREATE TABLE IF NOT EXISTS {ks}.{t} {cols}")))
    .collect()
}

fn cql(op: &'static str, statement: &str, e: impl std::fmt::Display) -> BlobError {
    BlobError::Backend { op, source: format!("statement {statement}: {e}").into() }
}

/// Makes the blob tables in the (existing) keyspace and records their
/// version; what it did, one line each. Run by `chatd migrate` after the
/// message store's own migration made the keyspace.
pub async fn migrate_with(s: &ScyllaSettings) -> BlobResult<Vec<String>> {
    let session = connect(s).await.map_err(|e| BlobError::backend("migrate", e))?;
    let mut report = Vec::new();
    for (table, create) in blob_ddl(&s.keyspace) {
        let mut st = scylla::statement::unprepared::Statement::new(create);
        st.set_request_timeout(Some(Duration::from_secs(60)));
        session.query_unpaged(st, ()).await.map_err(|e| cql("migrate", "create_table", e))?;
        report.push(format!("table {}.{table}: present", s.keyspace));
    }
    // Version 2 added `blobs.touched_ms` (a table made by version 1 lacks it).
    let columns = "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'blobs'";
    let r = session.query_unpaged(columns, (&s.keyspace,)).await.map_err(|e| cql("migrate", "columns", e))?;
    let names: Vec<(String,)> = r
        .into_rows_result()
        .map_err(|e| cql("migrate", "columns", e))?
        .rows::<(String,)>()
        .map_err(|e| cql("migrate", "columns", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| cql("migrate", "columns", e))?;
    if !names.iter().any(|(n,)| n == "touched_ms") {
        let alter = format!("ALTER TABLE {}.blobs ADD touched_ms bigint", s.keyspace);
        session.query_unpaged(alter, ()).await.map_err(|e| cql("migrate", "add_touched_ms", e))?;
        report.push(format!("table {}.blobs: column touched_ms added", s.keyspace));
    }
    let insert = format!("INSERT INTO {}.schema_version (component, version) VALUES ('blobs', ?)", s.keyspace);
    session.query_unpaged(insert, (BLOB_SCHEMA_VERSION,)).await.map_err(|e| cql("migrate", "schema_version", e))?;
    report.push(format!("blob tables version {BLOB_SCHEMA_VERSION} recorded"));
    Ok(report)
}

/// The prepared statements.
struct Statements {
    insert_upload: PreparedStatement,
    count_chunks: PreparedStatement,
    set_hash: PreparedStatement,
    delete_upload: PreparedStatement,
    insert_chunk: PreparedStatement,
    select_chunk: PreparedStatement,
    delete_chunk: PreparedStatement,
    insert_blob: PreparedStatement,
    select_blob: PreparedStatement,
    delete_blob: PreparedStatement,
    touch_blob: PreparedStatement,
    delete_blob_if_untouched: PreparedStatement,
    list_first: PreparedStatement,
    list_after: PreparedStatement,
}

impl Statements {
    async fn prepare(session: &Session, ks: &str) -> BlobResult<Self> {
        let p = |cql: String| async move {
            let mut ps = session.prepare(cql.clone()).await.map_err(|e| cql_open(&cql, e))?;
            ps.set_is_idempotent(!cql.contains(" IF "));
            Ok::<_, BlobError>(ps)
        };
        Ok(Self {
            insert_upload: p(format!("INSERT INTO {ks}.blob_uploads (upload, started_ms, chunks) VALUES (?, ?, 0)"))
                .await?,
            count_chunks: p(format!("UPDATE {ks}.blob_uploads SET chunks = ? WHERE upload = ?")).await?,
            set_hash: p(format!("UPDATE {ks}.blob_uploads SET hash = ? WHERE upload = ?")).await?,
            delete_upload: p(format!("DELETE FROM {ks}.blob_uploads WHERE upload = ?")).await?,
            insert_chunk: p(format!("INSERT INTO {ks}.blob_chunks (upload, idx, data) VALUES (?, ?, ?)")).await?,
            select_chunk: p(format!("SELECT data FROM {ks}.blob_chunks WHERE upload = ? AND idx = ?")).await?,
            delete_chunk: p(format!("DELETE FROM {ks}.blob_chunks WHERE upload = ? AND idx = ?")).await?,
            insert_blob: p(format!(
                "INSERT INTO {ks}.blobs (hash, size, upload, chunk_bytes, touched_ms) VALUES (?, ?, ?, ?, ?) \
                 IF NOT EXISTS"
            ))
            .await?,
            select_blob: p(format!(
                "SELECT size, upload, chunk_bytes, touched_ms, writetime(size) FROM {ks}.blobs WHERE hash = ?"
            ))
            .await?,
            delete_blob: p(format!("DELETE FROM {ks}.blobs WHERE hash = ?")).await?,
            touch_blob: p(format!("UPDATE {ks}.blobs SET touched_ms = ? WHERE hash = ? IF EXISTS")).await?,
            delete_blob_if_untouched: p(format!("DELETE FROM {ks}.blobs WHERE hash = ? IF touched_ms = ?")).await?,
            list_first: p(format!("SELECT hash, touched_ms, writetime(size) FROM {ks}.blobs LIMIT ?")).await?,
            list_after: p(format!(
                "SELECT hash, touched_ms, writetime(size) FROM {ks}.blobs WHERE token(hash) > token(?) LIMIT ?"
            ))
            .await?,
        })
    }
}

fn cql_open(statement: &str, e: impl std::fmt::Display) -> BlobError {
    cql("open", "prepare", format!("{statement}: {e}"))
}

/// The connection and statements, shared by the store and its writers.
struct Inner {
    session: Session,
    st: Statements,
    keyspace: String,
}

/// An upload record: `(upload, started_ms, chunks, hash)`.
type UploadRow = (i64, Option<i64>, Option<i32>, Option<Vec<u8>>);

/// A stored blob's row.
#[derive(Clone, Copy)]
struct Row {
    size: u64,
    upload: i64,
    chunk_bytes: u64,
    /// `touched_ms` as stored (None: a row of version 1).
    touched: Option<i64>,
    /// When it was last touched ([`age_ms`]).
    age_ms: u64,
}

impl Row {
    /// How many chunk rows it has.
    fn chunks(&self) -> i32 {
        self.size.div_ceil(self.chunk_bytes) as i32
    }
}

impl Inner {
    async fn blob(&self, hash: &BlobHash) -> BlobResult<Option<Row>> {
        let r = self.session.execute_unpaged(&self.st.select_blob, (hash.0.as_slice(),)).await;
        let r = r.map_err(|e| cql("stat", "select_blob", e))?;
        let row = r
            .into_rows_result()
            .map_err(|e| cql("stat", "select_blob", e))?
            .maybe_first_row::<(i64, i64, i32, Option<i64>, Option<i64>)>()
            .map_err(|e| cql("stat", "select_blob", e))?;
        Ok(row.map(|(size, upload, chunk, touched, written)| Row {
            size: size as u64,
            upload,
            chunk_bytes: chunk.max(1) as u64,
            touched,
            age_ms: age_ms(touched, written),
        }))
    }

    /// Runs the lightweight transaction `st` (of `op`); whether it applied.
    async fn lwt(
        &self,
        op: &'static str,
        name: &'static str,
        st: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> BlobResult<bool> {
        let r = self.session.execute_unpaged(st, values).await.map_err(|e| cql(op, name, e))?;
        applied(r).map_err(|e| cql(op, name, e))
    }

    /// Removes the chunks `0..chunks` of a blob's upload.
    async fn remove_chunks(&self, upload: i64, chunks: i32, op: &'static str) -> BlobResult<()> {
        for idx in 0..chunks {
            let r = self.session.execute_unpaged(&self.st.delete_chunk, (upload, idx)).await;
            r.map_err(|e| cql(op, "delete_chunk", e))?;
        }
        Ok(())
    }

    /// Removes an upload's chunks `0..chunks` and then its record.
    async fn remove_upload(&self, upload: i64, chunks: i32) -> BlobResult<()> {
        self.remove_chunks(upload, chunks, "abort").await?;
        let r = self.session.execute_unpaged(&self.st.delete_upload, (upload,)).await;
        r.map_err(|e| cql("abort", "delete_upload", e))?;
        Ok(())
    }

    /// Removes uploads that started more than `stale_after` ago; how many.
    async fn sweep(&self, stale_after: Duration) -> BlobResult<usize> {
        let scan = format!("SELECT upload, started_ms, chunks, hash FROM {}.blob_uploads", self.keyspace);
        let fail = |e: &dyn std::fmt::Display| cql("open", "scan_uploads", e);
        let pager = self.session.query_iter(scan, ()).await.map_err(|e| fail(&e))?;
        let rows: Vec<UploadRow> =
            pager.rows_stream().map_err(|e| fail(&e))?.try_collect().await.map_err(|e| fail(&e))?;
        let cutoff = now_ms().saturating_sub(stale_after.as_millis() as i64);
        let mut swept = 0;
        for (upload, started, chunks, hash) in rows {
            if started.unwrap_or(0) > cutoff {
                continue;
            }
            // A commit cut short after its blob row was written: keep the chunks.
            let hash = hash.and_then(|h| <[u8; 32]>::try_from(h).ok()).map(BlobHash);
            let committed = match hash {
                Some(h) => self.blob(&h).await?.is_some_and(|row| row.upload == upload),
                None => false,
            };
            let chunks = if committed { 0 } else { chunks.unwrap_or(0) };
            self.remove_upload(upload, chunks).await?;
            swept += 1;
        }
        Ok(swept)
    }
}

fn now_ms() -> i64 {
    chat_protocol::unix_ms(std::time::SystemTime::now()) as i64
}

/// The ScyllaDB blob store; see the module docs.
pub struct ScyllaBlobStore {
    inner: Arc<Inner>,
    handle: tokio::runtime::Handle,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl ScyllaBlobStore {
    /// Connects, checks the blob tables' version and sweeps uploads older
    /// than `stale_after`, from any async context.
    pub async fn connect(s: &ScyllaSettings, stale_after: Duration) -> BlobResult<Self> {
        let rt = driver_runtime(s).map_err(|e| BlobError::backend("open", e))?;
        let (s, handle) = (s.clone(), rt.handle().clone());
        let inner = rt.spawn(async move { Inner::open(&s, stale_after).await }).await;
        match inner {
            Ok(Ok(inner)) => Ok(Self { inner: Arc::new(inner), handle, runtime: Mutex::new(Some(rt)) }),
            Ok(Err(e)) => {
                rt.shutdown_background();
                Err(e)
            }
            Err(e) => {
                rt.shutdown_background();
                Err(BlobError::backend("open", e))
            }
        }
    }

    /// [`ScyllaBlobStore::connect`] with [`STALE_AFTER`], blocking: call it
    /// outside an async context (as `chatd serve` does).
    pub fn open(s: &ScyllaSettings) -> BlobResult<Self> {
        let rt = driver_runtime(s).map_err(|e| BlobError::backend("open", e))?;
        let inner = block_on(&rt, Inner::open(s, STALE_AFTER))?;
        Ok(Self { inner: Arc::new(inner), handle: rt.handle().clone(), runtime: Mutex::new(Some(rt)) })
    }

    /// The keyspace in use.
    pub fn keyspace(&self) -> &str {
        &self.inner.keyspace
    }

    /// Pieces of uploads not committed: upload records, and chunks no blob
    /// refers to (full scans: for tests and operators, not the message path).
    pub async fn uncommitted_pieces(&self) -> BlobResult<usize> {
        let inner = self.inner.clone();
        self.run(async move {
            let ks = &inner.keyspace;
            let scan = |cql: String| {
                let session = &inner.session;
                async move {
                    let fail = |e: &dyn std::fmt::Display| cql_open("scan", e);
                    let pager = session.query_iter(cql, ()).await.map_err(|e| fail(&e))?;
                    let rows: Vec<(i64,)> = pager
                        .rows_stream::<(i64,)>()
                        .map_err(|e| fail(&e))?
                        .try_collect()
                        .await
                        .map_err(|e| fail(&e))?;
                    Ok::<_, BlobError>(rows.into_iter().map(|(u,)| u).collect::<Vec<_>>())
                }
            };
            let uploads = scan(format!("SELECT upload FROM {ks}.blob_uploads")).await?;
            let chunks = scan(format!("SELECT upload FROM {ks}.blob_chunks")).await?;
            let kept: std::collections::HashSet<i64> =
                scan(format!("SELECT upload FROM {ks}.blobs")).await?.into_iter().collect();
            Ok(uploads.len() + chunks.iter().filter(|u| !kept.contains(u)).count())
        })
        .await
    }

    /// Runs `fut` on the driver's runtime (any shard can await it).
    async fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = BlobResult<T>> + Send + 'static,
    ) -> BlobResult<T> {
        self.handle.spawn(fut).await.map_err(|e| BlobError::backend("driver", e))?
    }
}

impl Drop for ScyllaBlobStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.lock().unwrap_or_else(|p| p.into_inner()).take() {
            rt.shutdown_background();
        }
    }
}

impl Inner {
    async fn open(s: &ScyllaSettings, stale_after: Duration) -> BlobResult<Inner> {
        let session = connect(s).await.map_err(|e| BlobError::backend("open", e))?;
        let select = format!("SELECT version FROM {}.schema_version WHERE component = 'blobs'", s.keyspace);
        let version = session
            .query_unpaged(select, ())
            .await
            .map_err(|e| cql("open", "select_schema_version", e))?
            .into_rows_result()
            .map_err(|e| cql("open", "select_schema_version", e))?
            .maybe_first_row::<(Option<i32>,)>()
            .map_err(|e| cql("open", "select_schema_version", e))?;
        if version.and_then(|(v,)| v) != Some(BLOB_SCHEMA_VERSION) {
            return Err(BlobError::backend(
                "open",
                std::io::Error::other(format!(
                    "blob tables in keyspace {} are missing or not version {BLOB_SCHEMA_VERSION}: run `chatd migrate`",
                    s.keyspace
                )),
            ));
        }
        let st = Statements::prepare(&session, &s.keyspace).await?;
        let inner = Inner { session, st, keyspace: s.keyspace.clone() };
        let swept = inner.sweep(stale_after).await?;
        if swept > 0 {
            tracing::info!(swept, "blob store: removed uploads cut off by a crash");
        }
        Ok(inner)
    }
}

impl BlobStore for ScyllaBlobStore {
    type Writer = ScyllaBlobWriter;

    async fn begin(&self, max_bytes: u64) -> BlobResult<ScyllaBlobWriter> {
        let upload = rand::random::<i64>();
        let inner = self.inner.clone();
        self.run(async move {
            let r = inner.session.execute_unpaged(&inner.st.insert_upload, (upload, now_ms())).await;
            r.map_err(|e| cql("begin", "insert_upload", e)).map(|_| ())
        })
        .await?;
        Ok(ScyllaBlobWriter {
            inner: self.inner.clone(),
            handle: self.handle.clone(),
            upload,
            buf: Vec::new(),
            chunks: 0,
            hasher: Some(Hasher::new()),
            written: 0,
            max_bytes,
        })
    }

    async fn stat(&self, hash: &BlobHash) -> BlobResult<Option<BlobMeta>> {
        let (inner, hash) = (self.inner.clone(), *hash);
        let row = self.run(async move { inner.blob(&hash).await }).await?;
        Ok(row.map(|r| BlobMeta { hash, size: r.size }))
    }

    async fn read_range(&self, hash: &BlobHash, start: u64, len: u64) -> BlobResult<Bytes> {
        let (inner, hash) = (self.inner.clone(), *hash);
        self.run(async move {
            let row = inner.blob(&hash).await?.ok_or(BlobError::NotFound { hash })?;
            let n = clamp_range(row.size, start, len)?;
            let mut out = Vec::with_capacity(n as usize);
            let mut at = start;
            while (out.len() as u64) < n {
                let idx = at / row.chunk_bytes;
                let r = inner.session.execute_unpaged(&inner.st.select_chunk, (row.upload, idx as i32)).await;
                let data = r
                    .map_err(|e| cql("read_range", "select_chunk", e))?
                    .into_rows_result()
                    .map_err(|e| cql("read_range", "select_chunk", e))?
                    .maybe_first_row::<(Vec<u8>,)>()
                    .map_err(|e| cql("read_range", "select_chunk", e))?
                    .map(|(d,)| d)
                    .ok_or_else(|| BlobError::Corrupt { hash, detail: format!("chunk {idx} is missing") })?;
                let from = (at - idx * row.chunk_bytes) as usize;
                let take = ((n - out.len() as u64) as usize).min(data.len().saturating_sub(from));
                if take == 0 {
                    return Err(BlobError::Corrupt { hash, detail: format!("chunk {idx} is short") });
                }
                out.extend_from_slice(&data[from..from + take]);
                at += take as u64;
            }
            Ok(Bytes::from(out))
        })
        .await
    }

    async fn delete(&self, hash: &BlobHash) -> BlobResult<bool> {
        let (inner, hash) = (self.inner.clone(), *hash);
        self.run(async move {
            let Some(row) = inner.blob(&hash).await? else { return Ok(false) };
            let r = inner.session.execute_unpaged(&inner.st.delete_blob, (hash.0.as_slice(),)).await;
            r.map_err(|e| cql("delete", "delete_blob", e))?;
            inner.remove_chunks(row.upload, row.chunks(), "delete").await?;
            Ok(true)
        })
        .await
    }

    async fn list_page(&self, after: Option<BlobHash>, limit: usize) -> BlobResult<Vec<Listed>> {
        let inner = self.inner.clone();
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        self.run(async move {
            let r = match after {
                None => inner.session.execute_unpaged(&inner.st.list_first, (limit,)).await,
                Some(h) => inner.session.execute_unpaged(&inner.st.list_after, (h.0.as_slice(), limit)).await,
            };
            let fail = |e: &dyn std::fmt::Display| cql("list_page", "list_blobs", e);
            let rows = r.map_err(|e| fail(&e))?.into_rows_result().map_err(|e| fail(&e))?;
            let mut out = Vec::new();
            for row in rows.rows::<(Vec<u8>, Option<i64>, Option<i64>)>().map_err(|e| fail(&e))? {
                let (hash, touched, written) = row.map_err(|e| fail(&e))?;
                let Ok(hash) = <[u8; 32]>::try_from(hash) else { continue };
                out.push(Listed { hash: BlobHash(hash), touched_ms: age_ms(touched, written) });
            }
            Ok(out)
        })
        .await
    }

    async fn delete_untouched(&self, hash: &BlobHash, cutoff_ms: u64) -> BlobResult<bool> {
        let (inner, hash) = (self.inner.clone(), *hash);
        self.run(async move {
            let Some(row) = inner.blob(&hash).await? else { return Ok(false) };
            if row.age_ms >= cutoff_ms {
                return Ok(false);
            }
            // Only if no commit touched it since it was read.
            let values = (hash.0.as_slice(), row.touched);
            let st = &inner.st.delete_blob_if_untouched;
            if !inner.lwt("delete_untouched", "delete_blob_if_untouched", st, values).await? {
                return Ok(false);
            }
            inner.remove_chunks(row.upload, row.chunks(), "delete_untouched").await?;
            Ok(true)
        })
        .await
    }
}

/// A blob row's age: its `touched_ms`, or for a row of version 1 the write
/// time of its `size` (µs).
fn age_ms(touched_ms: Option<i64>, size_written_us: Option<i64>) -> u64 {
    touched_ms.or(size_written_us.map(|us| us / 1000)).unwrap_or(0).max(0) as u64
}

/// Streams one upload into chunk rows; see [`ScyllaBlobStore`].
pub struct ScyllaBlobWriter {
    inner: Arc<Inner>,
    handle: tokio::runtime::Handle,
    upload: i64,
    /// The chunk being filled (at most [`CHUNK_BYTES`]).
    buf: Vec<u8>,
    /// Chunks written (and counted in the upload's record).
    chunks: i32,
    /// None once committed, aborted or failed.
    hasher: Option<Hasher>,
    written: u64,
    max_bytes: u64,
}

impl ScyllaBlobWriter {
    /// Counts, then writes, the next chunk from `data`.
    async fn put_chunk(&mut self, data: Vec<u8>) -> BlobResult<()> {
        let (inner, upload, idx) = (self.inner.clone(), self.upload, self.chunks);
        self.handle
            .spawn(async move {
                let r = inner.session.execute_unpaged(&inner.st.count_chunks, (idx + 1, upload)).await;
                r.map_err(|e| cql("write", "count_chunks", e))?;
                let r = inner.session.execute_unpaged(&inner.st.insert_chunk, (upload, idx, data)).await;
                r.map_err(|e| cql("write", "insert_chunk", e)).map(|_| ())
            })
            .await
            .map_err(|e| BlobError::backend("write", e))??;
        self.chunks += 1;
        Ok(())
    }

    /// Removes what was written and ends the writer.
    async fn discard(&mut self) -> BlobResult<()> {
        if self.hasher.take().is_none() {
            return Ok(());
        }
        self.buf = Vec::new();
        let (inner, upload, chunks) = (self.inner.clone(), self.upload, self.chunks);
        self.handle
            .spawn(async move { inner.remove_upload(upload, chunks + 1).await })
            .await
            .map_err(|e| BlobError::backend("abort", e))?
    }

    async fn fail<T>(&mut self, e: BlobError) -> BlobResult<T> {
        if let Err(cleanup) = self.discard().await {
            tracing::warn!(error = %cleanup, "blob store: an upload's chunks stay until the next sweep");
        }
        Err(e)
    }
}

impl BlobWriter for ScyllaBlobWriter {
    async fn write(&mut self, mut chunk: &[u8]) -> BlobResult<()> {
        let Some(hasher) = self.hasher.as_mut() else { return Err(BlobError::WriterFinished) };
        if self.written + chunk.len() as u64 > self.max_bytes {
            return self.fail(BlobError::TooLarge { limit: self.max_bytes }).await;
        }
        hasher.update(chunk);
        self.written += chunk.len() as u64;
        while !chunk.is_empty() {
            let take = (CHUNK_BYTES - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() == CHUNK_BYTES {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
                if let Err(e) = self.put_chunk(full).await {
                    return self.fail(e).await;
                }
            }
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn abort(mut self) -> BlobResult<()> {
        self.discard().await
    }

    async fn commit_named(mut self, given: Option<BlobHash>) -> BlobResult<BlobMeta> {
        let Some(hasher) = self.hasher.take() else { return Err(BlobError::WriterFinished) };
        // Put back: until the blob row may exist, a failure removes the chunks.
        self.hasher = Some(Hasher::new());
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            if let Err(e) = self.put_chunk(last).await {
                return self.fail(e).await;
            }
        }
        let meta = BlobMeta { hash: given.unwrap_or_else(|| hasher.finish()), size: self.written };
        let (inner, upload, chunks) = (self.inner.clone(), self.upload, self.chunks);
        let marking = inner.clone();
        let marked = self
            .handle
            .spawn(async move {
                let inner = marking;
                let r = inner.session.execute_unpaged(&inner.st.set_hash, (meta.hash.0.to_vec(), upload)).await;
                r.map_err(|e| cql("commit", "set_hash", e)).map(|_| ())
            })
            .await
            .map_err(|e| BlobError::backend("commit", e));
        if let Err(e) = marked.and_then(|r| r) {
            return self.fail(e).await;
        }
        // From here the blob row may exist whatever the answer: a failure
        // leaves the upload to the sweep, which keeps a committed blob's chunks.
        self.hasher = None;
        self.handle
            .spawn(async move {
                // A sweep may remove the stored copy between the two LWTs; a
                // few rounds settle it (each is won by one of them).
                for _ in 0..4 {
                    let values = (meta.hash.0.to_vec(), meta.size as i64, upload, CHUNK_BYTES as i32, now_ms());
                    if inner.lwt("commit", "insert_blob", &inner.st.insert_blob, values).await? {
                        let r = inner.session.execute_unpaged(&inner.st.delete_upload, (upload,)).await;
                        r.map_err(|e| cql("commit", "delete_upload", e))?;
                        return Ok(meta);
                    }
                    let touch = (now_ms(), meta.hash.0.as_slice());
                    if inner.lwt("commit", "touch_blob", &inner.st.touch_blob, touch).await? {
                        // Deduplicated: the stored blob has the same bytes.
                        inner.remove_upload(upload, chunks).await?;
                        return Ok(meta);
                    }
                }
                Err(cql("commit", "insert_blob", "the blob row kept appearing and vanishing"))
            })
            .await
            .map_err(|e| BlobError::backend("commit", e))?
    }
}

impl Drop for ScyllaBlobWriter {
    fn drop(&mut self) {
        if self.hasher.take().is_some() {
            let (inner, upload, chunks) = (self.inner.clone(), self.upload, self.chunks);
            // In the background: a drop cannot wait. A failure leaves it to the next sweep.
            self.handle.spawn(async move {
                if let Err(e) = inner.remove_upload(upload, chunks + 1).await {
                    tracing::warn!(error = %e, "blob store: a dropped upload stays until the next sweep");
                }
            });
        }
    }
}
