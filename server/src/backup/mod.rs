//! Online backup and restore of the embedded store: [`format`] (sans-IO: the
//! partition files' codec, checksums, the manifest and its rules), [`take`]
//! (a backup from one fjall snapshot plus the attachment blobs, paced, the
//! manifest written last), [`restore`] (verify everything, then fill an empty
//! data directory and give it a new epoch) and [`control`] (the running
//! server's local socket `data_dir/control.sock` through which `chatd backup`
//! asks for one). Keys are never in a backup (README, "Backup and restore").

pub mod format;
pub mod restore;
pub mod take;

use std::path::PathBuf;

/// The audit chain id file, relative to the data directory (backed up: it is not a key).
pub const CHAIN_ID_FILE: &str = "audit/chain_id";
/// The blob directory, relative to the data directory (and the backup).
pub const BLOBS_DIR: &str = "blobs";
/// The partition files' directory inside a backup.
pub const PARTITIONS_DIR: &str = "partitions";

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup's format, checksums or manifest.
    #[error(transparent)]
    Format(#[from] format::FormatError),
    /// The store.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A file system operation on `path`.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The target (backup directory or data directory) cannot be used.
    #[error("{0}")]
    Target(String),
    /// The server is stopping; the backup is incomplete (no manifest).
    #[error("the server is stopping: backup abandoned, incomplete (no manifest)")]
    Stopping,
    /// Only the embedded store is backed up by chatd.
    #[error("this server runs on ScyllaDB: back it up with nodetool snapshot (deploy/BACKUP.md)")]
    NotEmbedded,
}

/// A [`BackupError::Io`] on `path`.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_owned(), source }
}

/// Refuses `dir` when it exists and holds anything, naming one entry.
pub(crate) fn require_empty(dir: &std::path::Path, what: &str) -> Result<(), BackupError> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(dir)(e)),
    };
    match entries.next() {
        None => Ok(()),
        Some(entry) => {
            let name = entry.map_err(io_at(dir))?.file_name();
            Err(BackupError::Target(format!(
                "{what} {} is not empty (it holds {}): {}",
                dir.display(),
                name.to_string_lossy(),
                if what == "data directory" {
                    "a restore fills an empty data directory only"
                } else {
                    "a backup is written into an empty directory only"
                }
            )))
        }
    }
}
