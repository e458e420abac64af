//! Taking a backup (effects): every keyspace streamed from one fjall snapshot
//! into `partitions/<name>.bin`, then the complete attachment blobs and the
//! audit chain id copied, all paced to a byte rate so that serving goes on,
//! and `manifest.json` written last (atomically, by rename), so a backup
//! without it is incomplete. Memory is bounded: records and files stream.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::format::{FORMAT_VERSION, FileEntry, Hashing, MANIFEST, Manifest, PartitionEntry, RecordWriter};
use super::{BLOBS_DIR, BackupError, CHAIN_ID_FILE, PARTITIONS_DIR, io_at, require_empty};
use crate::store::embedded::EmbeddedStore;

/// The default pace: 64 MiB/s of backup writes.
pub const DEFAULT_BYTES_PER_SEC: u64 = 64 << 20;

/// How long to wait, having moved `spent` bytes in `elapsed`, to stay at
/// `rate` bytes a second (0: no limit). Sans-IO.
pub fn pace_delay(spent: u64, rate: u64, elapsed: Duration) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let due = Duration::from_secs_f64(spent as f64 / rate as f64);
    due.saturating_sub(elapsed)
}

/// A byte-rate limiter over [`pace_delay`] that also sees the stop flag.
struct Pace<'a> {
    rate: u64,
    start: Instant,
    spent: u64,
    stop: &'a AtomicBool,
}

impl Pace<'_> {
    fn spend(&mut self, n: usize) -> Result<(), BackupError> {
        self.spent += n as u64;
        // Sleep in steps of at least 10 ms, not per record.
        let wait = pace_delay(self.spent, self.rate, self.start.elapsed());
        if wait >= Duration::from_millis(10) {
            std::thread::sleep(wait);
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(BackupError::Stopping);
        }
        Ok(())
    }
}

/// Takes a backup of the store (and the blobs and chain id under `data_dir`)
/// into `to`, which must be empty or absent, at most `bytes_per_sec` (0: no
/// limit); `stop` abandons it. Blocking: run it on a thread of its own.
pub fn take(
    store: &EmbeddedStore,
    data_dir: &Path,
    to: &Path,
    bytes_per_sec: u64,
    stop: &AtomicBool,
) -> Result<Manifest, BackupError> {
    require_empty(to, "backup directory")?;
    let view = store.backup_view();
    let snapshot_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let mut pace = Pace { rate: bytes_per_sec, start: Instant::now(), spent: 0, stop };
    let parts_dir = to.join(PARTITIONS_DIR);
    crate::files::private_dir(&parts_dir).map_err(io_at(&parts_dir))?;
    let mut partitions = Vec::new();
    for name in view.partitions() {
        let rel = format!("{PARTITIONS_DIR}/{name}.bin");
        let path = to.join(&rel);
        let file = File::create(&path).map_err(io_at(&path))?;
        let mut w = RecordWriter::new(Hashing::new(BufWriter::with_capacity(256 << 10, file)), &rel)?;
        for rec in view.records(name)? {
            let (k, v) = rec?;
            w.push(&k, &v)?;
            pace.spend(k.len() + v.len() + 8)?;
        }
        let (hashing, records) = w.finish()?;
        let (buf, sha256, bytes) = hashing.finish();
        buf.into_inner().map_err(|e| io_at(&path)(e.into_error()))?.sync_all().map_err(io_at(&path))?;
        partitions.push(PartitionEntry { name: name.to_string(), file: rel, records, bytes, sha256 });
    }
    let mut files = Vec::new();
    for rel in blob_files(data_dir)?.into_iter().chain(std::iter::once(CHAIN_ID_FILE.to_string())) {
        if let Some(entry) = copy_file(&data_dir.join(&rel), &to.join(&rel), &rel, &mut pace)? {
            files.push(entry);
        }
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        chatd_version: env!("CARGO_PKG_VERSION").to_string(),
        layout: view.layout()?,
        epoch: store_epoch(store),
        snapshot_ms,
        snapshot_seqno: view.seqno(),
        partitions,
        files,
    };
    write_manifest(to, &manifest)?;
    tracing::info!(
        to = %to.display(),
        partitions = manifest.partitions.len(),
        files = manifest.files.len(),
        bytes = pace.spent,
        secs = pace.start.elapsed().as_secs_f64(),
        "backup taken"
    );
    Ok(manifest)
}

fn store_epoch(store: &EmbeddedStore) -> String {
    crate::store::MessageStore::epoch(store).to_string()
}

/// The complete blob files under `data_dir/blobs` (not `tmp/`), relative to `data_dir`.
fn blob_files(data_dir: &Path) -> Result<Vec<String>, BackupError> {
    let root = data_dir.join(BLOBS_DIR);
    let mut out = Vec::new();
    let dirs = match std::fs::read_dir(&root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_at(&root)(e)),
    };
    for dir in dirs {
        let dir = dir.map_err(io_at(&root))?;
        let name = dir.file_name().to_string_lossy().into_owned();
        // Blobs live in two-hex-digit directories; `tmp` holds uploads in flight.
        if name.len() != 2 || !dir.file_type().map_err(io_at(&root))?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).map_err(io_at(&dir.path()))? {
            let file = file.map_err(io_at(&dir.path()))?;
            out.push(format!("{BLOBS_DIR}/{name}/{}", file.file_name().to_string_lossy()));
        }
    }
    out.sort();
    Ok(out)
}

/// Copies `from` to `to` hashing it, paced; None when `from` is gone (a
/// blob purged since the listing, or no chain id yet).
fn copy_file(from: &Path, to: &Path, rel: &str, pace: &mut Pace<'_>) -> Result<Option<FileEntry>, BackupError> {
    let mut src = match File::open(from) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(from)(e)),
    };
    if let Some(parent) = to.parent() {
        crate::files::private_dir(parent).map_err(io_at(parent))?;
    }
    let dst = File::create(to).map_err(io_at(to))?;
    let mut w = Hashing::new(dst);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = std::io::Read::read(&mut src, &mut buf).map_err(io_at(from))?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).map_err(io_at(to))?;
        pace.spend(n)?;
    }
    let (dst, sha256, bytes) = w.finish();
    dst.sync_all().map_err(io_at(to))?;
    Ok(Some(FileEntry { path: rel.to_string(), bytes, sha256 }))
}

/// Writes the manifest beside the files, fsyncs it and renames it into place.
fn write_manifest(to: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let tmp = to.join(format!("{MANIFEST}.part"));
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Target(e.to_string()))?;
    let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
    f.write_all(&text).and_then(|()| f.sync_all()).map_err(io_at(&tmp))?;
    let path = to.join(MANIFEST);
    std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
    File::open(to).and_then(|d| d.sync_all()).map_err(io_at(to))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_waits_only_when_ahead_of_the_rate() {
        assert_eq!(pace_delay(100, 0, Duration::ZERO), Duration::ZERO);
        assert_eq!(pace_delay(1000, 1000, Duration::from_millis(400)), Duration::from_millis(600));
        assert_eq!(pace_delay(1000, 1000, Duration::from_secs(2)), Duration::ZERO);
    }
}
