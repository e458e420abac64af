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
pub mod thumbnail;

pub use contract::{
    BlobError, BlobHash, BlobMeta, BlobResult, BlobStore, BlobWriter, Hasher, MAX_READ_BYTES, clamp_range,
};

use bytes::Bytes;

use crate::config::{BlobBackend, Config};

/// The blob store the server runs on, chosen by `blobs.backend`.
pub enum Blobs {
    /// Files under `data_dir/blobs`.
    Fs(fs::FsBlobStore),
    /// Chunks in the ScyllaDB keyspace of `[store.scylla]`.
    Scylla(scylla::ScyllaBlobStore),
}

impl Blobs {
    /// Opens the configured backend (sweeping what a crash left). The
    /// ScyllaDB one needs the tables `chatd migrate` makes. Blocking: call it
    /// outside an async context.
    pub fn open(cfg: &Config) -> BlobResult<Self> {
        match cfg.blobs.backend {
            BlobBackend::Filesystem => Ok(Blobs::Fs(fs::FsBlobStore::open(&cfg.data_dir.join("blobs"))?)),
            BlobBackend::Scylla => Ok(Blobs::Scylla(scylla::ScyllaBlobStore::open(&scylla_settings(cfg)?)?)),
        }
    }
}

/// Runs `$body` with `$s` bound to whichever backend `$v` (a [`Blobs`] or a
/// [`BlobsWriter`]) is.
macro_rules! delegate {
    ($t:ident, $v:expr, $s:ident => $body:expr) => {
        match $v {
            $t::Fs($s) => $body,
            $t::Scylla($s) => $body,
        }
    };
}

/// The writer of whichever backend [`Blobs`] is.
pub enum BlobsWriter {
    /// A filesystem upload.
    Fs(fs::FsBlobWriter),
    /// A ScyllaDB upload.
    Scylla(scylla::ScyllaBlobWriter),
}

impl BlobWriter for BlobsWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        delegate!(BlobsWriter, self, w => w.write(chunk).await)
    }

    fn written(&self) -> u64 {
        delegate!(BlobsWriter, self, w => w.written())
    }

    async fn commit(self) -> BlobResult<BlobMeta> {
        delegate!(BlobsWriter, self, w => w.commit().await)
    }

    async fn abort(self) -> BlobResult<()> {
        delegate!(BlobsWriter, self, w => w.abort().await)
    }
}

impl BlobStore for Blobs {
    type Writer = BlobsWriter;

    async fn begin(&self, max_bytes: u64) -> BlobResult<BlobsWriter> {
        match self {
            Blobs::Fs(s) => s.begin(max_bytes).await.map(BlobsWriter::Fs),
            Blobs::Scylla(s) => s.begin(max_bytes).await.map(BlobsWriter::Scylla),
        }
    }

    async fn stat(&self, hash: &BlobHash) -> BlobResult<Option<BlobMeta>> {
        delegate!(Blobs, self, s => s.stat(hash).await)
    }

    async fn read_range(&self, hash: &BlobHash, start: u64, len: u64) -> BlobResult<Bytes> {
        delegate!(Blobs, self, s => s.read_range(hash, start, len).await)
    }

    async fn delete(&self, hash: &BlobHash) -> BlobResult<bool> {
        delegate!(Blobs, self, s => s.delete(hash).await)
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
