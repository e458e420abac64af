//! The blob storage contract: the [`BlobStore`] and [`BlobWriter`] traits,
//! the [`BlobHash`] address and its streaming [`Hasher`], [`BlobMeta`], the
//! errors, and the range rule every backend applies ([`clamp_range`]). The
//! module docs of `blob` say what the contract promises; backends live
//! beside this file.

use std::fmt;

use bytes::Bytes;

/// Most bytes one [`BlobStore::read_range`] returns; a download reads on.
pub const MAX_READ_BYTES: u64 = 1024 * 1024;

/// A blob's SHA-256, its address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `data`, in one piece.
    pub fn of(data: &[u8]) -> Self {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, BlobError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BlobError::BadHash { given: s.chars().take(80).collect() })?;
        Ok(Self(out))
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// SHA-256 computed as chunks stream past.
pub struct Hasher(ring::digest::Context);

impl Hasher {
    /// An empty hash state.
    pub fn new() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash of everything added.
    pub fn finish(self) -> BlobHash {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        BlobHash(out)
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// What a committed blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its SHA-256.
    pub hash: BlobHash,
    /// Its length in bytes.
    pub size: u64,
}

/// A stored blob as a sweep sees it ([`BlobStore::list_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// Its SHA-256.
    pub hash: BlobHash,
    /// When it was last committed (written, or uploaded again and
    /// deduplicated), ms since the Unix epoch.
    pub touched_ms: u64,
}

/// A blob failure, precise enough to answer a client with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The upload passed the size cap; nothing of it is kept.
    #[error("blob larger than the limit of {limit} bytes")]
    TooLarge {
        /// The cap, bytes (`blobs.max_file_bytes`).
        limit: u64,
    },
    /// No blob has this hash.
    #[error("no blob {hash}")]
    NotFound {
        /// The hash asked for.
        hash: BlobHash,
    },
    /// A read starts at or past the end (an empty blob has no range).
    #[error("range starting at byte {start} is beyond the end of a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// The first byte asked for.
        start: u64,
        /// The blob's size.
        size: u64,
    },
    /// Not a hash (64 hex characters).
    #[error("{given:?} is not a SHA-256 in hex")]
    BadHash {
        /// What was given (at most 80 characters).
        given: String,
    },
    /// The writer failed or was finished before; begin a new one.
    #[error("this blob writer has already failed or finished")]
    WriterFinished,
    /// A stored blob is not what its address says.
    #[error("blob {hash} is corrupt: {detail}")]
    Corrupt {
        /// Which blob.
        hash: BlobHash,
        /// What is wrong.
        detail: String,
    },
    /// The backend failed (disk, database).
    #[error("blob store {op} failed: {source}")]
    Backend {
        /// The operation ("write", "commit", "read_range"...).
        op: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BlobError {
    /// A backend failure of `op`.
    pub fn backend(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        BlobError::Backend { op, source: Box::new(e) }
    }
}

/// A blob store result.
pub type BlobResult<T> = Result<T, BlobError>;

/// Streams one upload into a [`BlobStore`]. Dropping it uncommitted, or
/// [`abort`](Self::abort), leaves nothing behind; so does a write past the
/// size cap (it fails with [`BlobError::TooLarge`] and the writer is done).
#[allow(async_fn_in_trait)]
pub trait BlobWriter: Send {
    /// Appends `chunk`. Fails with [`BlobError::TooLarge`] (and keeps nothing)
    /// once the total would pass the cap given to `begin`.
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Makes the blob durable and visible under `hash` (None: the hash of
    /// the bytes written) and returns it. A blob already stored with that
    /// hash is kept as it is (deduplication), and touched: its
    /// [`Listed::touched_ms`] becomes now, atomically with respect to
    /// [`BlobStore::delete_untouched`] (a sweep racing this commit either
    /// leaves the blob, or this commit stores its own bytes again). A layer that seals the bytes it
    /// writes names the blob by the SHA-256 of its plaintext.
    async fn commit_named(self, hash: Option<BlobHash>) -> BlobResult<BlobMeta>;

    /// Makes the blob durable and visible under its hash and returns it.
    async fn commit(self) -> BlobResult<BlobMeta>
    where
        Self: Sized,
    {
        self.commit_named(None).await
    }

    /// Drops what was written, now (a drop does the same, in the background
    /// where the backend needs to).
    async fn abort(self) -> BlobResult<()>;
}

/// Content-addressed blob storage; see the module docs. Shared by all
/// shards; writers are independent of each other.
#[allow(async_fn_in_trait)]
pub trait BlobStore: Send + Sync + 'static {
    /// The writer of one upload.
    type Writer: BlobWriter;

    /// Starts an upload of at most `max_bytes` bytes.
    async fn begin(&self, max_bytes: u64) -> BlobResult<Self::Writer>;

    /// The blob's size, if it is stored.
    async fn stat(&self, hash: &BlobHash) -> BlobResult<Option<BlobMeta>>;

    /// Whether the blob is stored.
    async fn exists(&self, hash: &BlobHash) -> BlobResult<bool> {
        Ok(self.stat(hash).await?.is_some())
    }

    /// Bytes `start..start + len` of the blob, cut at its end and at
    /// [`MAX_READ_BYTES`]; fails with [`BlobError::RangeNotSatisfiable`] when
    /// `start` is at or past the end, [`BlobError::NotFound`] when absent.
    async fn read_range(&self, hash: &BlobHash, start: u64, len: u64) -> BlobResult<Bytes>;

    /// Removes the blob; whether it was there. Readers that already started
    /// may see it vanish between calls.
    async fn delete(&self, hash: &BlobHash) -> BlobResult<bool>;

    /// Up to `limit` stored blobs after `after` (None: from the first), in
    /// the backend's own order; every blob stored throughout a walk of
    /// pages is listed once, and a page shorter than `limit` is the last.
    async fn list_page(&self, after: Option<BlobHash>, limit: usize) -> BlobResult<Vec<Listed>>;

    /// Removes the blob only if it was last touched before `cutoff_ms`;
    /// whether it removed it. A commit of the same content touches it, and
    /// the two are atomic with respect to each other (see
    /// [`BlobWriter::commit_named`]).
    async fn delete_untouched(&self, hash: &BlobHash, cutoff_ms: u64) -> BlobResult<bool>;
}

/// How many bytes a read of `start..start + len` returns from a blob of
/// `size` bytes, or why it cannot: the rule every backend applies.
pub fn clamp_range(size: u64, start: u64, len: u64) -> BlobResult<u64> {
    if start >= size {
        return Err(BlobError::RangeNotSatisfiable { start, size });
    }
    Ok(len.min(size - start).min(MAX_READ_BYTES))
}
