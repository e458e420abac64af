//! The running server's control socket, `data_dir/control.sock` (a Unix
//! domain socket, mode 0600 inside the 0700 data directory: only the local
//! user who runs chatd can use it), and the client `chatd backup` uses. One
//! request per connection, one JSON line each way; requests are served one
//! at a time on the socket's own thread, so a backup never runs on a shard.
//! The socket is made at start and removed at stop.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::format::Manifest;
use crate::store::Store;

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
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The backup is complete; its manifest.
    Backup(Box<Manifest>),
    /// Refused or failed, why.
    Error(String),
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
    pub fn start(data_dir: &Path, store: Arc<Store>) -> std::io::Result<Self> {
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
            std::thread::Builder::new().name("control".into()).spawn(move || serve(listener, &dir, &store, &flag))?;
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

fn serve(listener: UnixListener, data_dir: &Path, store: &Store, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = answer(conn, data_dir, store, stop) {
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

fn answer(conn: UnixStream, data_dir: &Path, store: &Store, stop: &AtomicBool) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(&conn, MAX_REQUEST)).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => Reply::Error(format!("bad request: {e}")),
        Ok(Request::Backup { to, bytes_per_sec }) => match (store, to.is_absolute()) {
            (_, false) => Reply::Error(format!("{}: the backup directory must be an absolute path", to.display())),
            (Store::Embedded(s), true) => {
                tracing::info!(to = %to.display(), "backup requested on the control socket");
                match super::take::take(s, data_dir, &to, bytes_per_sec, stop) {
                    Ok(m) => Reply::Backup(Box::new(m)),
                    Err(e) => Reply::Error(e.to_string()),
                }
            }
            (_, true) => Reply::Error(super::BackupError::NotEmbedded.to_string()),
        },
    };
    let mut text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    text.push('\n');
    (&conn).write_all(text.as_bytes())
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
