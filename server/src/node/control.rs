//! The running server's control socket, `data_dir/control.sock` (a Unix
//! domain socket, mode 0600 inside the 0700 data directory: only the local
//! user who runs chatd can use it), and the client `chatd backup`,
//! `chatd gdpr export`, `chatd gdpr erase`, `chatd conversations erase`
//! and `chatd service-accounts` use. One request per connection, one JSON line each way; requests are
//! served one at a time on the socket's own thread, so a backup or an export
//! never runs on a shard. An erasure is the `EraseUser` or
//! `EraseConversation` command, run on shard 0 as the node itself (a system
//! admin named `chatd`), because only the running node reaches the
//! conversations' owners and the user's live sessions. The socket is made
//! at start and removed at stop.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::audit::{AuditEvent, EventKind};
use crate::backup::format::Manifest;
use crate::blob::Blobs;
use crate::ids::Caller;
use crate::retention::export::{ExportManifest, export_user_blocking, exported_event};
use crate::shard::{LocalCommand, Mesh, ShardMsg};
use crate::store::at_rest::Rotated;
use crate::store::at_rest::master::LocalMasterKey;
use crate::store::{Backend, Store, StoreError};
use chat_protocol::v1::{self, Role, command, reply};

/// The socket's file name in the data directory.
pub const SOCKET: &str = "control.sock";
/// The longest request line read.
const MAX_REQUEST: u64 = 64 << 10;

/// A request on the control socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Take a backup into `to` (an absolute, empty or absent directory) at `bytes_per_sec` at most.
    Backup {
        /// The backup directory.
        to: PathBuf,
        /// The pace (0: no limit).
        bytes_per_sec: u64,
    },
    /// Export everything of `user` into `to` (an absolute, empty or absent directory).
    GdprExport {
        /// The user id.
        user: String,
        /// The export directory.
        to: PathBuf,
    },
    /// Erase `user` (GDPR) for `reason`, as the `EraseUser` command does.
    GdprErase {
        /// The user id.
        user: String,
        /// Why (required; on the audit trail).
        reason: String,
    },
    /// Erase conversation `conversation_id` for `reason`, as the `EraseConversation` command does.
    EraseConversation {
        /// The conversation.
        conversation_id: u64,
        /// Why (required; on the audit trail).
        reason: String,
    },
    /// Make the master key in `new_key_file` current and re-wrap every data key under it.
    KeysRotate {
        /// The new master key's file (64 hex digits).
        new_key_file: PathBuf,
    },
    /// Create, rotate, revoke or list service accounts of the server API.
    ServiceAccounts(crate::api::accounts::Op),
    /// Write the transcript of a conversation (or of every conversation of a case) into `to`.
    Transcript {
        /// The conversation (0: the case's).
        conversation_id: u64,
        /// The case (empty: the conversation's).
        case_id: String,
        /// PDF or JSON.
        format: crate::transcript::Format,
        /// The file to write (absolute; never overwritten).
        to: PathBuf,
    },
}

/// What an erasure did (`chat.v1.EraseResult` for the operator).
#[derive(Debug, Serialize, Deserialize)]
pub struct Erased {
    /// Their pseudonym in the directory now.
    pub pseudonym: String,
    /// Messages made tombstones.
    pub messages_erased: u64,
    /// Attachment records removed.
    pub attachments_erased: u64,
    /// Tombstones that could not be made (erase again after the cause is gone).
    pub messages_failed: u64,
    /// Conversations a legal hold kept: id, the hold's scope and target, their messages there.
    pub kept: Vec<(u64, String, String, u64)>,
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The backup is complete; its manifest.
    Backup(Box<Manifest>),
    /// The export is complete; its manifest.
    GdprExport(Box<ExportManifest>),
    /// The erasure is done; what it did.
    GdprErase(Erased),
    /// The conversation's erasure is done; what it did: messages and
    /// attachment records removed, whether its data key was destroyed.
    EraseConversation {
        /// Messages removed.
        messages: u64,
        /// Attachment records removed.
        attachments: u64,
        /// Whether a data key was destroyed.
        key_destroyed: bool,
    },
    /// The rotation is complete.
    KeysRotate(Rotated),
    /// The service-account operation is done.
    ServiceAccounts(crate::api::accounts::Done),
    /// The transcript is written: its conversations and size.
    Transcript {
        /// The conversations in it.
        conversations: usize,
        /// Its bytes.
        bytes: usize,
    },
    /// Refused or failed, why.
    Error(String),
}

/// What the socket's requests work on: the node's store, blob store, audit
/// trail and shards.
pub struct Served {
    /// The store.
    pub store: Arc<Store>,
    /// The attachments' bytes.
    pub blobs: Arc<Blobs>,
    /// Where exports are recorded.
    pub audit: Arc<Audit>,
    /// The shards' mailboxes (an erasure runs on shard 0).
    pub mesh: Mesh,
    /// The `[api]` section (the firm's time zone for transcripts).
    pub api: crate::config::ApiConfig,
}

/// The control socket's listener thread.
pub struct ControlSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlSocket {
    /// Binds `data_dir/control.sock` (0600) and serves it on a thread. A stale
    /// socket (nobody answers) is replaced; a live one is an error.
    pub fn start(data_dir: &Path, with: Served) -> std::io::Result<Self> {
        let path = data_dir.join(SOCKET);
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} answers: another chatd serves this data directory", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, dir) = (stop.clone(), data_dir.to_owned());
        let thread =
            std::thread::Builder::new().name("control".into()).spawn(move || serve(listener, &dir, &with, &flag))?;
        Ok(Self { path, stop, thread: Some(thread) })
    }

    /// Stops serving (a backup in progress is abandoned) and removes the socket.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, data_dir: &Path, with: &Served, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = answer(conn, data_dir, with, stop) {
                    tracing::warn!(error = %e, "control socket: request failed");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn answer(conn: UnixStream, data_dir: &Path, with: &Served, stop: &AtomicBool) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(&conn, MAX_REQUEST)).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => Reply::Error(format!("bad request: {e}")),
        Ok(Request::GdprExport { user, to }) => gdpr_export(with, &user, &to),
        Ok(Request::GdprErase { user, reason }) => gdpr_erase(&with.mesh, user, reason),
        Ok(Request::EraseConversation { conversation_id, reason }) => {
            erase_conversation(&with.mesh, conversation_id, reason)
        }
        Ok(Request::KeysRotate { new_key_file }) => keys_rotate(with, &new_key_file),
        Ok(Request::ServiceAccounts(op)) => service_accounts(with, op),
        Ok(Request::Transcript { conversation_id, case_id, format, to }) => {
            let cfg = &with.api;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let target = crate::transcript::Target { conversation_id, case_id: &case_id, format, to: &to };
            match rt.map_err(|e| e.to_string()) {
                Ok(rt) => match rt.block_on(crate::transcript::to_file(&with.store, &with.audit, cfg, target)) {
                    Ok((conversations, bytes)) => Reply::Transcript { conversations, bytes },
                    Err(e) => Reply::Error(e),
                },
                Err(e) => Reply::Error(e),
            }
        }
        Ok(Request::Backup { to, bytes_per_sec }) => match (with.store.backend(), to.is_absolute()) {
            (_, false) => Reply::Error(format!("{}: the backup directory must be an absolute path", to.display())),
            (Backend::Embedded(s), true) => {
                tracing::info!(to = %to.display(), "backup requested on the control socket");
                match crate::backup::take::take(s, data_dir, &to, bytes_per_sec, stop) {
                    Ok(m) => Reply::Backup(Box::new(m)),
                    Err(e) => Reply::Error(e.to_string()),
                }
            }
            (_, true) => Reply::Error(crate::backup::BackupError::NotEmbedded.to_string()),
        },
    };
    let mut text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    text.push('\n');
    (&conn).write_all(text.as_bytes())
}

/// Runs a GDPR export on this thread (its own small runtime) and records it.
fn gdpr_export(with: &Served, user: &str, to: &Path) -> Reply {
    if !to.is_absolute() {
        return Reply::Error(format!("{}: the export directory must be an absolute path", to.display()));
    }
    tracing::info!(to = %to.display(), "GDPR export requested on the control socket");
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    match export_user_blocking(&with.store, &*with.blobs, user, to, now_ms) {
        Ok(m) => {
            if let Err(e) = with.audit.record_now(exported_event(
                &m,
                "chatd",
                &to.display().to_string(),
                "chatd gdpr export (control socket)",
            )) {
                tracing::error!(error = %e, "GDPR export not recorded on the audit trail");
            }
            Reply::GdprExport(Box::new(m))
        }
        Err(e) => Reply::Error(e.to_string()),
    }
}

/// Rotates the master key of the running node's store (on this thread, its
/// own small runtime) and records it on the audit trail.
fn keys_rotate(with: &Served, new_key_file: &Path) -> Reply {
    tracing::info!(file = %new_key_file.display(), "master key rotation requested on the control socket");
    let rotated = LocalMasterKey::from_file(new_key_file).map_err(StoreError::from).and_then(|key| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        rt.map_err(|e| StoreError::Backend { op: "rotate", source: e.into() })?
            .block_on(with.store.rotate_master_key(Arc::new(key)))
    });
    match rotated {
        Ok(r) => {
            let details = serde_json::json!({
                "action": "keys.rotate",
                "master_key": r.master_key,
                "rewrapped": r.rewrapped,
                "already": r.already,
            });
            if let Err(e) = with.audit.record_now(AuditEvent::new(EventKind::AdminAction, "chatd").details(details)) {
                tracing::error!(error = %e, "master key rotation not recorded on the audit trail");
            }
            Reply::KeysRotate(r)
        }
        Err(e) => Reply::Error(e.to_string()),
    }
}

/// Runs a service-account operation (on this thread, its own small runtime)
/// as the node's operator.
fn service_accounts(with: &Served, op: crate::api::accounts::Op) -> Reply {
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let done =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string()).and_then(|rt| {
            rt.block_on(crate::api::accounts::apply(&with.store, &with.audit, "chatd", op, now_ms))
                .map_err(|e| e.to_string())
        });
    match done {
        Ok(d) => Reply::ServiceAccounts(d),
        Err(e) => Reply::Error(e),
    }
}

/// Runs `body` on shard 0 as the node itself (a system admin named
/// `chatd`) and waits for its answer; the refusal or failure as text.
fn run_as_node(mesh: &Mesh, body: command::Body) -> Result<reply::Result, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let run = LocalCommand { caller: Caller { user: Arc::from("chatd"), role: Role::Admin }, body, reply: tx };
    if mesh.blocking_send(0, ShardMsg::Local(Box::new(run))).is_err() {
        return Err("the node is stopping".into());
    }
    match rx.blocking_recv() {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err("the node stopped before the erasure finished; run it again to finish it".into()),
    }
}

fn erase_conversation(mesh: &Mesh, conversation_id: u64, reason: String) -> Reply {
    tracing::info!(conversation_id, "conversation erasure requested on the control socket");
    let e = v1::EraseConversation { conversation_id, reason };
    match run_as_node(mesh, command::Body::EraseConversation(e)) {
        Ok(reply::Result::ConversationErased(r)) => Reply::EraseConversation {
            messages: r.messages,
            attachments: r.attachments,
            key_destroyed: r.key_destroyed,
        },
        Ok(other) => Reply::Error(format!("unexpected answer {other:?}")),
        Err(e) => Reply::Error(e),
    }
}

fn gdpr_erase(mesh: &Mesh, user: String, reason: String) -> Reply {
    tracing::info!(user, "GDPR erasure requested on the control socket");
    match run_as_node(mesh, command::Body::EraseUser(v1::EraseUser { user_id: user, reason })) {
        Ok(reply::Result::Erased(r)) => Reply::GdprErase(Erased {
            pseudonym: r.pseudonym,
            messages_erased: r.messages_erased,
            attachments_erased: r.attachments_erased,
            messages_failed: r.messages_failed,
            kept: r
                .kept
                .into_iter()
                .map(|k| {
                    let scope = v1::HoldScope::try_from(k.scope).map_or("HOLD_SCOPE_UNSPECIFIED", |s| s.as_str_name());
                    (k.conversation_id, scope.to_owned(), k.target, k.messages)
                })
                .collect(),
        }),
        Ok(other) => Reply::Error(format!("unexpected answer {other:?}")),
        Err(e) => Reply::Error(e),
    }
}

/// Asks the server on `data_dir` over its socket; None when no server
/// listens there (no socket, or nobody answers).
pub fn request(data_dir: &Path, req: &Request) -> std::io::Result<Option<Reply>> {
    let path = data_dir.join(SOCKET);
    let conn = match UnixStream::connect(&path) {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut text = serde_json::to_string(req).map_err(std::io::Error::other)?;
    text.push('\n');
    (&conn).write_all(text.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    serde_json::from_str(&line).map(Some).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("control socket answered {line:?}: {e}"))
    })
}
