//! `ExportUserData` (GDPR): a user's export of their own data, or a system
//! admin's of anyone's, served on a transfer stream. The rules (who may
//! export whom) are [`check`]; the export itself is
//! `crate::retention::export`'s, run on a thread of its own (it reads the
//! whole store and writes files: never on a shard) into a scratch directory
//! under `data_dir/exports`, packed into one tar archive there, and the
//! archive's bytes are then read back in bounded pieces onto the stream. One
//! export runs per node at a time; the scratch files go when the transfer
//! ends, however it ends, and at the next start if the process died.

use super::request::{Requester, err};
use super::users::rules as user_rules;
use crate::retention::export::{ExportError, ExportManifest, MANIFEST, export_user_blocking, exported_event};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The scratch directory of exports in progress, under the data directory.
pub const SCRATCH_DIR: &str = "exports";
/// Bytes read from the archive at once.
const PIECE: usize = 64 * 1024;
/// What a refused export waits before trying again while another runs.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// Who is exported for `caller`: themselves (an empty id or their own) or,
/// for system admins, anyone; else FORBIDDEN.
pub fn check(caller: &str, role: Role, user_id: &str) -> Result<String, WireError> {
    if user_id.is_empty() || user_id == caller {
        return Ok(caller.to_string());
    }
    if role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "users export their own data; only system admins export another user's"));
    }
    Ok(user_id.to_string())
}

/// An export being sent: its header, then the archive's bytes. Dropping it
/// removes the archive and frees the node's export slot.
pub struct Export {
    /// The header the client gets first.
    pub ok: v1::ExportOk,
    file: tokio::fs::File,
    left: u64,
    scratch: Scratch,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// `ExportUserData`: checks it, makes the archive (off the shard), audits
/// it and says what follows.
pub async fn begin(req: &Requester, e: v1::ExportUserData) -> Result<Export, WireError> {
    let user = check(&req.caller.user, req.caller.role, &e.user_id)?;
    let shared = &req.ctx.shared;
    let slot = shared.exports.clone().try_acquire_owned().map_err(|_| {
        WireError::limited(
            ErrorCode::Overloaded,
            "exports_per_node",
            "another export runs on this node; one runs at a time",
            Some(BUSY_RETRY),
        )
    })?;
    let scratch = Scratch::new(&shared.cfg.data_dir)?;
    let (store, blobs, who) = (shared.store.clone(), shared.blobs.clone(), user.clone());
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The thread owns the scratch and the slot until it answers: a requester
    // gone meanwhile leaves it to clean up once the export stops.
    let spawned = std::thread::Builder::new().name("gdpr-export".into()).spawn(move || {
        let dir = &scratch.dir;
        let made = export_user_blocking(&store, &*blobs, &who, &dir.join("files"), now_ms)
            .and_then(|m| pack(dir, &m).map(|()| m));
        let _ = tx.send((made, scratch, slot));
    });
    spawned.map_err(|e| unavailable(&format!("no thread for the export: {e}")))?;
    let (manifest, scratch, slot) = match rx.await {
        Ok((Ok(m), scratch, slot)) => (m, scratch, slot),
        Ok((Err(ExportError::UnknownUser(_)), ..)) => return Err(user_rules::unknown_users_error(&[user])),
        Ok((Err(e), ..)) => return Err(unavailable(&e.to_string())),
        Err(_) => return Err(unavailable("the export thread ended without an answer")),
    };
    let archive = scratch.archive();
    let io = |e: std::io::Error| unavailable(&format!("{}: {e}", archive.display()));
    let file = tokio::fs::File::open(&archive).await.map_err(io)?;
    let length = file.metadata().await.map_err(io)?.len();
    let ev = exported_event(&manifest, &req.caller.user, "the requester's transfer stream", "ExportUserData");
    super::audit::record(&req.ctx, ev).await;
    let ok = v1::ExportOk {
        user_id: user,
        length,
        conversations: manifest.conversations,
        messages: manifest.messages,
        attachments: manifest.attachments,
        audit_entries: manifest.audit_entries,
        exported_at_ms: manifest.exported_at_ms,
    };
    Ok(Export { ok, file, left: length, scratch, _slot: slot })
}

impl Export {
    /// The next bytes of the archive; None at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, WireError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut buf = vec![0; PIECE.min(self.left as usize)];
        let n = self.file.read(&mut buf).await.map_err(|e| {
            tracing::error!(dir = %self.scratch.dir.display(), error = %e, "reading an export archive");
            unavailable("the export archive cannot be read")
        })?;
        if n == 0 {
            return Err(unavailable("the export archive ended early"));
        }
        buf.truncate(n);
        self.left -= n as u64;
        Ok(Some(Bytes::from(buf)))
    }
}

fn unavailable(why: &str) -> WireError {
    tracing::error!(error = why, "GDPR export failed");
    WireError::limited(ErrorCode::Unavailable, "export", format!("the export failed: {why}"), Some(BUSY_RETRY))
}

/// Packs the export in `dir/files` into `dir/export.tar`, its files in the
/// manifest's order and the manifest last, then removes `dir/files`.
fn pack(dir: &Path, m: &ExportManifest) -> Result<(), ExportError> {
    let files = dir.join("files");
    let archive = dir.join(ARCHIVE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    let out = std::fs::File::create(&archive).map_err(io(&archive))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
    let names = m.files.iter().map(|f| f.path.as_str()).chain([MANIFEST]);
    for name in names {
        let path = files.join(name);
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        let mut h = tar::Header::new_gnu();
        h.set_size(file.metadata().map_err(io(&path))?.len());
        h.set_mode(0o600);
        h.set_mtime(m.exported_at_ms / 1000);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, file).map_err(io(&path))?;
    }
    tar.into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(io(&archive))?
        .sync_all()
        .map_err(io(&archive))?;
    std::fs::remove_dir_all(&files).map_err(io(&files))
}

/// The archive's name in its scratch directory.
const ARCHIVE: &str = "export.tar";

/// One export's scratch directory (`data_dir/exports/<random>`, 0700),
/// removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(data_dir: &Path) -> Result<Self, WireError> {
        let dir = data_dir.join(SCRATCH_DIR).join(hex::encode(rand::random::<[u8; 16]>()));
        let made = std::fs::DirBuilder::new().recursive(true).create(&dir).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        });
        made.map_err(|e| unavailable(&format!("{}: {e}", dir.display())))?;
        Ok(Scratch { dir })
    }

    fn archive(&self) -> PathBuf {
        self.dir.join(ARCHIVE)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "export scratch not removed");
        }
    }
}

/// Removes what exports cut off by a crash left (at start, before serving).
pub fn clear_scratch(data_dir: &Path) {
    let dir = data_dir.join(SCRATCH_DIR);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => tracing::info!(dir = %dir.display(), "removed the scratch of unfinished exports"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "export scratch not removed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_export_themselves_and_admins_anyone() {
        assert_eq!(check("alice", Role::Client, "").unwrap(), "alice");
        assert_eq!(check("alice", Role::Client, "alice").unwrap(), "alice");
        let e = check("alice", Role::Advocate, "bob").unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(check("ida", Role::Admin, "bob").unwrap(), "bob");
        assert_eq!(check("ida", Role::Admin, "").unwrap(), "ida");
    }
}
