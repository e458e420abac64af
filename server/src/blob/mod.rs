//! Attachment storage: the [`BlobStore`] contract for content-addressed
//! blobs (SHA-256, stored once however often uploaded), its backends, and the
//! sans-IO checks an upload goes through.
//!
//! A blob is written through a [`BlobWriter`]: [`BlobStore::begin`], then
//! chunks, then [`BlobWriter::commit`], which makes it durable and returns
//! its hash and size. Until the commit nothing is visible; an abort, a drop,
//! a size cap exceeded mid-stream or a crash leaves nothing behind (what a
//! crash left is swept when the store opens). Reads are by byte range
//! ([`BlobStore::read_range`], for resumable downloads), bounded per call.
//!
//! Backends: [`fs`] (the default, files under `data_dir/blobs`) and
//! [`scylla`] (256 KiB chunks in the message store's ScyllaDB keyspace,
//! which a cluster shares), chosen by `blobs.backend` through [`Blobs`];
//! [`conformance`] holds the cases every backend passes. [`content`] checks
//! an upload's type by its bytes against the allow-list, and [`thumbnail`]
//! makes image previews; [`pace`] is the node's budget of transfer bytes
//! per second. This module does not know who may read a blob
//! (access goes by conversation and attachment id, decided above it) nor the
//! transfer protocol.

pub mod conformance;
pub mod content;
mod contract;
pub mod fs;
pub mod pace;
pub mod scylla;
pub mod sealed;
pub mod thumbnail;

pub use contract::{
    BlobError, BlobHash, BlobMeta, BlobResult, BlobStore, BlobWriter, Hasher, Listed, MAX_READ_BYTES, clamp_range,
};

use std::sync::Arc;

use bytes::Bytes;
use ring::aead::LessSafeKey;

use crate::config::{BlobBackend, Config};

/// Runs `$body` with `$s` bound to whichever backend `$v` (a [`Backend`] or a
/// [`BackendWriter`]) is.
macro_rules! delegate {
    ($t:ident, $v:expr, $s:ident => $body:expr) => {
        match $v {
            $t::Fs($s) => $body,
            $t::Scylla($s) => $body,
        }
    };
}

/// The backend a [`Blobs`] runs on, chosen by `blobs.backend`.
pub enum Backend {
    /// Files under `data_dir/blobs`.
    Fs(fs::FsBlobStore),
    /// Chunks in the ScyllaDB keyspace of `[store.scylla]`.
    Scylla(scylla::ScyllaBlobStore),
}

/// The blob store the server runs on: a [`Backend`], and the sealing of
/// what it stores ([`sealed`]) when encryption at rest is on.
pub struct Blobs {
    backend: Backend,
    /// The key-encryption key of sealed blobs (None: stored as uploaded).
    kek: Option<Arc<LessSafeKey>>,
}

impl Blobs {
    /// Opens the configured backend (sweeping what a crash left), storing
    /// blobs as uploaded until [`Blobs::sealed_with`]. The ScyllaDB one
    /// needs the tables `chatd migrate` makes. Blocking: call it outside an
    /// async context.
    pub fn open(cfg: &Config) -> BlobResult<Self> {
        let backend = match cfg.blobs.backend {
            BlobBackend::Filesystem => Backend::Fs(fs::FsBlobStore::open(&cfg.data_dir.join("blobs"))?),
            BlobBackend::Scylla => Backend::Scylla(scylla::ScyllaBlobStore::open(&scylla_settings(cfg)?)?),
        };
        Ok(Self::from_backend(backend))
    }

    /// Over `backend`, unsealed.
    pub fn from_backend(backend: Backend) -> Self {
        Self { backend, kek: None }
    }

    /// Seals every blob written from now on under `kek` (the store's blob
    /// key, `Store::blob_key`), and opens sealed ones; None: as uploaded.
    /// Blobs stored before stay readable as they are.
    pub fn sealed_with(mut self, kek: Option<Arc<LessSafeKey>>) -> Self {
        self.kek = kek;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// How a blob is stored: absent, as uploaded (encryption off, or stored
    /// before it was on), or sealed (its plaintext size and key).
    async fn stored(&self, hash: &BlobHash) -> BlobResult<Stored> {
        let Some(meta) = delegate!(Backend, &self.backend, s => s.stat(hash).await)? else { return Ok(Stored::Absent) };
        let (Some(kek), Some(plain)) = (&self.kek, sealed::plain_size(meta.size)) else {
            return Ok(Stored::Plain(meta));
        };
        let header = delegate!(Backend, &self.backend, s => s.read_range(hash, 0, sealed::HEADER).await)?;
        if !sealed::is_sealed(&header) {
            return Ok(Stored::Plain(meta));
        }
        let corrupt = || BlobError::Corrupt { hash: *hash, detail: "its sealed key does not open".into() };
        Ok(Stored::Sealed { plain, key: Box::new(sealed::open_header(kek, &header).ok_or_else(corrupt)?) })
    }
}

/// How a blob is stored (see [`Blobs::stored`]).
enum Stored {
    Absent,
    Plain(BlobMeta),
    Sealed { plain: u64, key: Box<LessSafeKey> },
}

/// The writer of whichever backend [`Blobs`] runs on.
pub enum BackendWriter {
    /// A filesystem upload.
    Fs(fs::FsBlobWriter),
    /// A ScyllaDB upload.
    Scylla(scylla::ScyllaBlobWriter),
}

impl BlobWriter for BackendWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        delegate!(BackendWriter, self, w => w.write(chunk).await)
    }

    fn written(&self) -> u64 {
        delegate!(BackendWriter, self, w => w.written())
    }

    async fn commit_named(self, hash: Option<BlobHash>) -> BlobResult<BlobMeta> {
        delegate!(BackendWriter, self, w => w.commit_named(hash).await)
    }

    async fn abort(self) -> BlobResult<()> {
        delegate!(BackendWriter, self, w => w.abort().await)
    }
}

/// A sealed upload's state: the plaintext's hash, the chunk being filled.
struct Sealing {
    sealer: sealed::Sealer,
    hasher: Hasher,
    buf: Vec<u8>,
}

/// An upload into [`Blobs`]: sealed chunk by chunk when encryption is on.
pub struct BlobsWriter {
    /// None once failed past the cap (its upload already removed).
    inner: Option<BackendWriter>,
    sealing: Option<Sealing>,
    written: u64,
    max_bytes: u64,
}

impl BlobsWriter {
    fn inner(&mut self) -> BlobResult<&mut BackendWriter> {
        self.inner.as_mut().ok_or(BlobError::WriterFinished)
    }
}

impl BlobWriter for BlobsWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        if self.sealing.is_none() {
            return self.inner()?.write(chunk).await;
        }
        if self.written + chunk.len() as u64 > self.max_bytes {
            if let Some(inner) = self.inner.take() {
                inner.abort().await?;
            }
            return Err(BlobError::TooLarge { limit: self.max_bytes });
        }
        let inner = self.inner.as_mut().ok_or(BlobError::WriterFinished)?;
        let s = self.sealing.as_mut().expect("checked above");
        s.hasher.update(chunk);
        s.buf.extend_from_slice(chunk);
        self.written += chunk.len() as u64;
        // Keep the last bytes back: only the commit knows which chunk is last.
        while s.buf.len() as u64 > sealed::CHUNK {
            let rest = s.buf.split_off(sealed::CHUNK as usize);
            let full = std::mem::replace(&mut s.buf, rest);
            inner.write(&s.sealer.seal(&full, false)).await?;
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        match (&self.sealing, &self.inner) {
            (None, Some(inner)) => inner.written(),
            _ => self.written,
        }
    }

    /// Seals the last chunk and commits under `hash` (None: the plaintext's).
    async fn commit_named(mut self, hash: Option<BlobHash>) -> BlobResult<BlobMeta> {
        let mut inner = self.inner.take().ok_or(BlobError::WriterFinished)?;
        let Some(mut s) = self.sealing.take() else { return inner.commit_named(hash).await };
        inner.write(&s.sealer.seal(&s.buf, true)).await?;
        let hash = hash.unwrap_or_else(|| s.hasher.finish());
        inner.commit_named(Some(hash)).await?;
        Ok(BlobMeta { hash, size: self.written })
    }

    async fn abort(mut self) -> BlobResult<()> {
        match self.inner.take() {
            Some(inner) => inner.abort().await,
            None => Ok(()),
        }
    }
}

impl BlobStore for Blobs {
    type Writer = BlobsWriter;

    async fn begin(&self, max_bytes: u64) -> BlobResult<BlobsWriter> {
        let stored_max = match self.kek {
            Some(_) => sealed::stored_size(max_bytes),
            None => max_bytes,
        };
        let mut inner = match &self.backend {
            Backend::Fs(s) => s.begin(stored_max).await.map(BackendWriter::Fs)?,
            Backend::Scylla(s) => s.begin(stored_max).await.map(BackendWriter::Scylla)?,
        };
        let sealing = match &self.kek {
            None => None,
            Some(kek) => {
                let (header, sealer) = sealed::Sealer::new(kek);
                inner.write(&header).await?;
                Some(Sealing { sealer, hasher: Hasher::new(), buf: Vec::new() })
            }
        };
        Ok(BlobsWriter { inner: Some(inner), sealing, written: 0, max_bytes })
    }

    async fn stat(&self, hash: &BlobHash) -> BlobResult<Option<BlobMeta>> {
        Ok(match self.stored(hash).await? {
            Stored::Absent => None,
            Stored::Plain(meta) => Some(meta),
            Stored::Sealed { plain, .. } => Some(BlobMeta { hash: *hash, size: plain }),
        })
    }

    async fn read_range(&self, hash: &BlobHash, start: u64, len: u64) -> BlobResult<Bytes> {
        if self.kek.is_none() {
            return delegate!(Backend, &self.backend, s => s.read_range(hash, start, len).await);
        }
        let (plain, key) = match self.stored(hash).await? {
            Stored::Sealed { plain, key } => (plain, key),
            Stored::Absent => return Err(BlobError::NotFound { hash: *hash }),
            Stored::Plain(_) => return delegate!(Backend, &self.backend, s => s.read_range(hash, start, len).await),
        };
        let n = clamp_range(plain, start, len)?;
        let (offset, stored_len, first) = sealed::span(plain, start, n);
        let mut stored = Vec::with_capacity(stored_len as usize);
        while (stored.len() as u64) < stored_len {
            let at = offset + stored.len() as u64;
            let want = stored_len - stored.len() as u64;
            let part = delegate!(Backend, &self.backend, s => s.read_range(hash, at, want).await)?;
            if part.is_empty() {
                break;
            }
            stored.extend_from_slice(&part);
        }
        let opened = sealed::open_span(&key, plain, start, n, first, &stored);
        opened.map(Bytes::from).ok_or(BlobError::Corrupt { hash: *hash, detail: "a sealed chunk does not open".into() })
    }

    async fn delete(&self, hash: &BlobHash) -> BlobResult<bool> {
        delegate!(Backend, &self.backend, s => s.delete(hash).await)
    }

    async fn list_page(&self, after: Option<BlobHash>, limit: usize) -> BlobResult<Vec<Listed>> {
        delegate!(Backend, &self.backend, s => s.list_page(after, limit).await)
    }

    async fn delete_untouched(&self, hash: &BlobHash, cutoff_ms: u64) -> BlobResult<bool> {
        delegate!(Backend, &self.backend, s => s.delete_untouched(hash, cutoff_ms).await)
    }
}

fn scylla_settings(cfg: &Config) -> BlobResult<crate::store::scylla::ScyllaSettings> {
    crate::store::scylla::ScyllaSettings::from_config(&cfg.store.scylla)
        .map_err(|e| BlobError::backend("open", std::io::Error::other(format!("store.scylla: {e}"))))
}

/// `chatd migrate`'s part for blobs: makes the ScyllaDB backend's tables
/// (after the message store's migration made the keyspace); what it did.
/// Blocking: call it outside an async context.
pub fn migrate(cfg: &Config) -> BlobResult<Vec<String>> {
    match cfg.blobs.backend {
        BlobBackend::Filesystem => {
            Ok(vec!["blobs.backend = \"filesystem\": nothing to migrate (data_dir/blobs is made when opened)".into()])
        }
        BlobBackend::Scylla => {
            let s = scylla_settings(cfg)?;
            let rt = crate::store::scylla::driver_runtime(&s).map_err(|e| BlobError::backend("migrate", e))?;
            let out = crate::store::scylla::block_on(&rt, scylla::migrate_with(&s));
            rt.shutdown_background();
            out
        }
    }
}
