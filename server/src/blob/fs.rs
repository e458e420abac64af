//! The filesystem [`BlobStore`]: the embedded default, one file per blob
//! under `data_dir/blobs/<first two hex digits>/<hash>`.
//!
//! An upload streams into `tmp/<random>.part` beside them (never held whole
//! in memory), hashed as it goes; the commit fsyncs the file, renames it to
//! its hash (keeping an existing blob of that hash instead) and fsyncs the
//! directory, so a committed blob survives a power cut and a half-written
//! one is never visible under a hash. `tmp/` is emptied when the store
//! opens: whatever is there was cut off by a crash. It owns that directory
//! and nothing else.
//!
//! A blob's modification time is when it was last touched: written, or
//! uploaded again (deduplicated; the commit sets it to now through an open
//! file and then checks that the name still leads to that file). A sweep
//! ([`BlobStore::delete_untouched`]) first renames the blob into `tmp/`,
//! so no commit can reach it, then reads its time again: touched in
//! between, it is linked back; otherwise it is unlinked.

use std::io::{ErrorKind, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::contract::{BlobError, BlobHash, BlobMeta, BlobResult, BlobStore, BlobWriter, Hasher, Listed, clamp_range};

/// Files under one directory; see the module docs.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (making it, private) the store at `root` and removes what
    /// uploads cut off by a crash left in `root/tmp`. Blocking.
    pub fn open(root: &Path) -> BlobResult<Self> {
        let tmp = root.join("tmp");
        crate::files::private_dir(&tmp).map_err(|e| BlobError::backend("open", e))?;
        let mut swept = 0usize;
        for entry in std::fs::read_dir(&tmp).map_err(|e| BlobError::backend("open", e))? {
            let path = entry.map_err(|e| BlobError::backend("open", e))?.path();
            std::fs::remove_file(&path).map_err(|e| BlobError::backend("open", e))?;
            swept += 1;
        }
        if swept > 0 {
            tracing::info!(swept, dir = %tmp.display(), "removed uploads cut off by a crash");
        }
        Ok(Self { root: root.to_owned() })
    }

    /// The directory it keeps blobs in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, hash: &BlobHash) -> PathBuf {
        path_of(&self.root, hash)
    }
}

fn path_of(root: &Path, hash: &BlobHash) -> PathBuf {
    let hex = hash.to_hex();
    root.join(&hex[..2]).join(hex)
}

/// When a file was last touched, ms since the Unix epoch.
fn touched_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified().map(chat_protocol::unix_ms).unwrap_or(0)
}

/// Up to `limit` blobs after `after`, in hex order (blocking).
fn list_blocking(root: &Path, after: Option<BlobHash>, limit: usize) -> std::io::Result<Vec<Listed>> {
    let after_hex = after.map(|h| h.to_hex()).unwrap_or_default();
    let first_dir = after.map_or(0, |h| h.0[0] as usize);
    let mut out = Vec::new();
    for dir in first_dir..=0xff {
        let entries = match std::fs::read_dir(root.join(format!("{dir:02x}"))) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(hash) = BlobHash::from_hex(&name) else { continue };
            if name.as_str() > after_hex.as_str() {
                found.push((hash, entry));
            }
        }
        found.sort_by_key(|(h, _)| *h);
        for (hash, entry) in found {
            match entry.metadata() {
                Ok(m) => out.push(Listed { hash, touched_ms: touched_ms(&m) }),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            if out.len() == limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Removes the blob at `path` unless touched at or after `cutoff_ms`; see
/// the module docs (blocking).
fn delete_untouched_blocking(root: &Path, hash: &BlobHash, cutoff_ms: u64) -> std::io::Result<bool> {
    let path = path_of(root, hash);
    match std::fs::metadata(&path) {
        Ok(m) if touched_ms(&m) < cutoff_ms => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let aside = root.join("tmp").join(format!("{}.swept", hash.to_hex()));
    match std::fs::rename(&path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    if touched_ms(&std::fs::metadata(&aside)?) >= cutoff_ms {
        // A commit touched it just before it was moved: it stays.
        match std::fs::hard_link(&aside, &path) {
            Ok(()) => {}
            // That commit stored the bytes again.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        std::fs::remove_file(&aside)?;
        return Ok(false);
    }
    std::fs::remove_file(&aside)?;
    Ok(true)
}

/// Runs blocking file work `f` off the async runtime; its failure as `op`'s.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> BlobResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(done) => done.map_err(|e| BlobError::backend(op, e)),
        Err(e) => Err(BlobError::backend(op, e)),
    }
}

/// Touches the stored blob at `target` (its time becomes now); whether it
/// is still there under that name afterwards (false: store the bytes again).
async fn touch(target: PathBuf) -> std::io::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let file = match std::fs::File::open(&target) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        file.set_modified(SystemTime::now())?;
        let touched = file.metadata()?;
        match std::fs::metadata(&target) {
            Ok(m) => Ok(m.ino() == touched.ino() && m.dev() == touched.dev()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

impl BlobStore for FsBlobStore {
    type Writer = FsBlobWriter;

    async fn begin(&self, max_bytes: u64) -> BlobResult<FsBlobWriter> {
        let path = self.root.join("tmp").join(format!("{:032x}.part", rand::random::<u128>()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| BlobError::backend("begin", e))?;
        Ok(FsBlobWriter {
            root: self.root.clone(),
            state: Some(Open { file, path, hasher: Hasher::new() }),
            written: 0,
            max_bytes,
        })
    }

    async fn stat(&self, hash: &BlobHash) -> BlobResult<Option<BlobMeta>> {
        match tokio::fs::metadata(self.path_of(hash)).await {
            Ok(m) => Ok(Some(BlobMeta { hash: *hash, size: m.len() })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::backend("stat", e)),
        }
    }

    async fn read_range(&self, hash: &BlobHash, start: u64, len: u64) -> BlobResult<Bytes> {
        let mut file = match tokio::fs::File::open(self.path_of(hash)).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(BlobError::NotFound { hash: *hash }),
            Err(e) => return Err(BlobError::backend("read_range", e)),
        };
        let size = file.metadata().await.map_err(|e| BlobError::backend("read_range", e))?.len();
        let n = clamp_range(size, start, len)?;
        file.seek(SeekFrom::Start(start)).await.map_err(|e| BlobError::backend("read_range", e))?;
        let mut buf = vec![0u8; n as usize];
        match file.read_exact(&mut buf).await {
            Ok(_) => Ok(Bytes::from(buf)),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                Err(BlobError::Corrupt { hash: *hash, detail: format!("shorter than its {size} bytes") })
            }
            Err(e) => Err(BlobError::backend("read_range", e)),
        }
    }

    async fn delete(&self, hash: &BlobHash) -> BlobResult<bool> {
        match tokio::fs::remove_file(self.path_of(hash)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::backend("delete", e)),
        }
    }

    async fn list_page(&self, after: Option<BlobHash>, limit: usize) -> BlobResult<Vec<Listed>> {
        let root = self.root.clone();
        blocking("list_page", move || list_blocking(&root, after, limit)).await
    }

    async fn delete_untouched(&self, hash: &BlobHash, cutoff_ms: u64) -> BlobResult<bool> {
        let (root, hash) = (self.root.clone(), *hash);
        blocking("delete_untouched", move || delete_untouched_blocking(&root, &hash, cutoff_ms)).await
    }
}

/// An upload in progress.
struct Open {
    file: tokio::fs::File,
    path: PathBuf,
    hasher: Hasher,
}

/// Streams one upload to a file in `tmp/`; see [`FsBlobStore`].
pub struct FsBlobWriter {
    root: PathBuf,
    /// None once committed, aborted or failed (the temporary file is gone).
    state: Option<Open>,
    written: u64,
    max_bytes: u64,
}

impl FsBlobWriter {
    /// Removes the temporary file and ends the writer.
    async fn discard(&mut self) -> BlobResult<()> {
        let Some(open) = self.state.take() else { return Ok(()) };
        drop(open.file);
        match tokio::fs::remove_file(&open.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::backend("abort", e)),
        }
    }
}

impl BlobWriter for FsBlobWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        if self.state.is_none() {
            return Err(BlobError::WriterFinished);
        }
        if self.written + chunk.len() as u64 > self.max_bytes {
            self.discard().await?;
            return Err(BlobError::TooLarge { limit: self.max_bytes });
        }
        let open = self.state.as_mut().ok_or(BlobError::WriterFinished)?;
        if let Err(e) = open.file.write_all(chunk).await {
            self.discard().await?;
            return Err(BlobError::backend("write", e));
        }
        open.hasher.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn abort(mut self) -> BlobResult<()> {
        self.discard().await
    }

    async fn commit_named(mut self, given: Option<BlobHash>) -> BlobResult<BlobMeta> {
        let Some(mut open) = self.state.take() else { return Err(BlobError::WriterFinished) };
        let synced = async {
            open.file.flush().await?;
            open.file.sync_all().await
        };
        if let Err(e) = synced.await {
            let _ = tokio::fs::remove_file(&open.path).await;
            return Err(BlobError::backend("commit", e));
        }
        drop(open.file);
        let hash = given.unwrap_or_else(|| open.hasher.finish());
        let meta = BlobMeta { hash, size: self.written };
        let hex = hash.to_hex();
        let dir = self.root.join(&hex[..2]);
        let target = dir.join(&hex);
        let placed = async {
            if touch(target.clone()).await? {
                // Deduplicated: the stored copy has the same bytes.
                tokio::fs::remove_file(&open.path).await?;
                return Ok(());
            }
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::rename(&open.path, &target).await?;
            sync_dir(dir).await
        };
        if let Err(e) = placed.await {
            let _ = tokio::fs::remove_file(&open.path).await;
            return Err(BlobError::backend("commit", e));
        }
        Ok(meta)
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        if let Some(open) = self.state.take() {
            drop(open.file);
            // One unlink; cheap enough to do in place.
            if let Err(e) = std::fs::remove_file(&open.path)
                && e.kind() != ErrorKind::NotFound
            {
                tracing::warn!(path = %open.path.display(), error = %e, "could not remove an abandoned upload");
            }
        }
    }
}

/// fsyncs a directory, so that a rename in it is durable.
async fn sync_dir(dir: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await.map_err(std::io::Error::other)?
}
