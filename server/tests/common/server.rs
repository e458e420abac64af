//! The end-to-end harness: a real server (2 shards) on loopback with a fresh
//! data directory and raised limits, clients through the real Rust SDK, and
//! the waits the tests share.
#![allow(dead_code)]

use chat_client::{Client, ClientConfig, ClientError, Event, Events, Transport, Trust};
use chat_protocol::v1::{self, ConversationKind, ErrorCode};
use chat_server::config::{Config, PUBLIC_DEV_SECRET};
use std::path::Path;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

/// The people of the tests' firm: in the user directory of every test
/// server from the start, as if each had signed in once (so a test may put
/// them in a conversation before they connect; their token's claims then
/// set their name and role). Anyone else must sign in or be provisioned
/// first: nobody can be addressed who does not exist.
pub const CAST: &[&str] = &[
    "alice", "bob", "carol", "dave", "dana", "eve", "erin", "frank", "mallory", "sam", "oscar", "peggy", "trent",
    "victor",
];

/// Puts `ids` in `store`'s user directory as if each had signed in once
/// (display name "<id> name", role client). Blocking: runs on a runtime of
/// its own, so it may be called anywhere.
pub fn seed_directory(store: &chat_server::store::Store, ids: &[&str]) {
    use chat_server::store::{MessageStore, UserRecord};
    std::thread::scope(|t| {
        t.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                for id in ids {
                    let u = UserRecord {
                        id: id.to_string(),
                        display_name: format!("{id} name"),
                        role: v1::Role::Client as i32,
                        ..UserRecord::default()
                    };
                    store.upsert_user(&u).await.unwrap();
                }
            })
        })
        .join()
        .unwrap()
    });
}

pub struct Server {
    /// The running server (None while it restarts).
    pub handle: Option<chat_server::ServerHandle>,
    /// Its configuration.
    pub cfg: Config,
    /// Its data directory, removed with it.
    pub _dir: Option<tempfile::TempDir>,
}

pub fn config(dir: &Path) -> Config {
    let mut cfg =
        Config { listen: "127.0.0.1:0".parse().unwrap(), shards: 2, data_dir: dir.to_path_buf(), ..Default::default() };
    cfg.auth.hs256_secret = PUBLIC_DEV_SECRET.into();
    cfg.web.listen = "127.0.0.1:0".parse().unwrap();
    cfg.limits.connections_per_minute_per_ip = 10_000;
    cfg.limits.connections_per_minute_per_user = 10_000;
    cfg.limits.messages_per_minute = 10_000;
    cfg.limits.conversations_per_hour = 10_000;
    cfg.limits.typing_timeout_ms = 600;
    cfg
}

impl Server {
    pub fn start_with(f: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        f(&mut cfg);
        let handle = chat_server::start(cfg.clone()).unwrap();
        seed_directory(handle.store(), CAST);
        Server { handle: Some(handle), cfg, _dir: Some(dir) }
    }

    /// A server whose user directory starts empty (see [`CAST`]).
    pub fn start_empty_directory() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let handle = chat_server::start(cfg.clone()).unwrap();
        Server { handle: Some(handle), cfg, _dir: Some(dir) }
    }

    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn h(&self) -> &chat_server::ServerHandle {
        self.handle.as_ref().unwrap()
    }

    /// Where the filesystem blob store keeps the file of SHA-256 `hex`.
    pub fn blob_file(&self, hex: &str) -> std::path::PathBuf {
        self.cfg.data_dir.join("blobs").join(&hex[..2]).join(hex)
    }

    /// Stops and starts again on the same port and data directory.
    pub async fn restart(&mut self) {
        let h = self.handle.take().unwrap();
        let addr = h.addr();
        tokio::task::spawn_blocking(move || h.shutdown()).await.unwrap();
        self.cfg.listen = addr;
        self.handle = Some(chat_server::start(self.cfg.clone()).unwrap());
    }

    pub fn client_config(&self, user: &str, role: &str, transport: Transport) -> ClientConfig {
        let token = super::token(user, role);
        let trust = Trust::cert_hash_hex(self.h().cert_sha256()).unwrap();
        let mut c = ClientConfig::new(self.h().addr().to_string(), token, trust).transport(transport);
        c.backoff.initial = Duration::from_millis(50);
        c.backoff.max = Duration::from_millis(500);
        c
    }

    pub async fn connect(&self, user: &str, role: &str, transport: Transport) -> (Client, Events) {
        Client::connect(self.client_config(user, role, transport)).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

/// Waits for the next event that `f` picks.
pub async fn next_where<T>(ev: &mut Events, f: impl FnMut(Event) -> Option<T>) -> T {
    super::next_where(ev, WAIT, f).await
}

/// Collects `n` messages of `conv`.
pub async fn messages(ev: &mut Events, conv: u64, n: usize) -> Vec<v1::Message> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(
            next_where(ev, |e| match e {
                Event::Message(m) if m.conversation_id == conv => Some(m),
                _ => None,
            })
            .await,
        );
    }
    out
}

/// No further message of `conv` arrives within `t`.
pub async fn assert_quiet(ev: &mut Events, conv: u64, t: Duration) {
    let r = tokio::time::timeout(t, async {
        loop {
            match ev.next().await {
                Some(Event::Message(m)) if m.conversation_id == conv => return m,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    assert!(r.is_err(), "unexpected message {:?}", r.ok().map(|m| m.seq));
}

pub async fn create(c: &Client, kind: ConversationKind, title: &str, case: &str, members: &[&str]) -> u64 {
    let ok = c.create_conversation(kind, title, case, members.iter().map(|s| s.to_string()).collect()).await.unwrap();
    ok.summary.unwrap().conversation.unwrap().id
}

/// The server's refusal in `e` (a test failure if it is another error).
pub fn server_error(e: ClientError) -> chat_client::WireErrorOwned {
    match e {
        ClientError::Server(w) => w,
        other => panic!("expected a server error, got {other:?}"),
    }
}

pub fn code(e: ClientError) -> Option<ErrorCode> {
    match e {
        ClientError::Server(w) => w.code(),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// `user`'s presence as `c` sees it, once `want` holds (or as it is after 10 s).
pub async fn presence_settles(c: &Client, user: &str, want: impl Fn(&v1::PresenceEvent) -> bool) -> v1::PresenceEvent {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let p = c.get_presence(vec![user.into()]).await.unwrap().remove(0);
        if want(&p) || std::time::Instant::now() > deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A small valid-looking PDF (the content check accepts it), `n` filler bytes long.
pub fn pdf_of(n: u32) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..n).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    v
}

/// The seqs of the latest page of `conv`'s history as `c` reads it.
pub async fn seqs(c: &Client, conv: u64) -> Vec<u64> {
    c.history(conv, 0, 0, 100).await.expect("history").messages.iter().map(|m| m.seq).collect()
}

/// Seqs of the hits of `query`, waiting (the index commits on an interval) until `want`.
pub async fn search_until(c: &Client, query: &str, want: &[u64]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page = c.search(v1::Search { query: query.into(), ..Default::default() }).await.expect("search");
        let got: Vec<u64> = page.hits.iter().map(|h| h.seq).collect();
        if got == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "search {query:?}: got {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
