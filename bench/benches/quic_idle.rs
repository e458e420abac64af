//! The memory floor of an idle connection: raw quinn with chatd's own QUIC and
//! TLS configuration and chatd's allocator (jemalloc), no chat protocol, no
//! store. The server runs in a child process (this same binary, started with
//! `QUIC_IDLE_ROLE=server`) so that its RSS holds only server state, as
//! `loadgen run idle` measures chatd's. Each of N clients opens a
//! bidirectional stream and writes one byte, and the server answers on a
//! unidirectional stream it opens: the two streams a chat session holds. It
//! reports (RSS with the connections - RSS before) / N, the figure
//! bench/RESULTS.md sets beside chatd's memory per idle connection.
//!
//! `cargo bench -p bench --bench quic_idle` (env `IDLE_CONNECTIONS`, default
//! 10000). Not a criterion bench: what it measures is a resident size.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

/// The server's allocator is chatd's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PER_SOCKET: usize = 32;

fn main() {
    if std::env::var("QUIC_IDLE_ROLE").as_deref() == Ok("server") {
        serve();
        return;
    }
    let n = std::env::var("IDLE_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000usize);
    let mut child = Command::new(std::env::current_exe().expect("own executable"))
        .env("QUIC_IDLE_ROLE", "server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut lines = BufReader::new(child.stdout.take().expect("server stdout")).lines();
    let line = lines.next().expect("server banner").expect("server banner");
    let (addr, hash) = line.split_once(' ').expect("banner: ADDR HASH");
    let addr: SocketAddr = addr.parse().expect("server address");
    // Let the server settle (runtime, allocator arenas) before the baseline.
    std::thread::sleep(Duration::from_secs(1));
    let before = rss(child.id());
    let opened = Arc::new(AtomicUsize::new(0));
    let clients = {
        let (hash, opened) = (hash.to_string(), opened.clone());
        std::thread::spawn(move || clients(addr, &hash, n, &opened))
    };
    let t0 = Instant::now();
    while opened.load(Relaxed) < n && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Idle for a few keep-alive rounds, so that what a connection keeps after
    // its handshake is what is measured.
    std::thread::sleep(Duration::from_secs(5));
    let after = rss(child.id());
    let opened = opened.load(Relaxed);
    println!("quic_idle: {opened} of {n} connections open, each with a bidirectional and a unidirectional stream");
    println!(
        "  server RSS {:.1} MiB before, {:.1} MiB with them: {:.0} bytes per idle connection",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / opened.max(1) as f64
    );
    let _ = child.kill();
    let _ = child.wait();
    drop(clients);
    std::process::exit(0);
}

/// The server process: one current-thread runtime on one socket (a shard's
/// worth), holding every connection and its two streams until stdin closes.
fn serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let id = chat_server::tls::dev_identity(dir.path(), &[], SystemTime::now()).expect("dev certificate");
    let config = chat_server::tls::quinn_server_config(&id, &Default::default()).expect("server config");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("bind");
        println!("{} {}", endpoint.local_addr().expect("addr"), id.sha256_hex());
        while let Some(incoming) = endpoint.accept().await {
            tokio::task::spawn_local(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok((_tx, mut rx)) = conn.accept_bi().await else { return };
                let mut byte = [0u8; 1];
                if rx.read_exact(&mut byte).await.is_err() {
                    return;
                }
                let Ok(mut events) = conn.open_uni().await else { return };
                if events.write_all(&byte).await.is_err() {
                    return;
                }
                // Hold the connection and both streams, as a session does.
                let _ = conn.closed().await;
            });
        }
    });
}

/// `n` client connections (32 per client socket, as the loadgen does), each
/// counted once the server's stream has answered.
fn clients(addr: SocketAddr, hash: &str, n: usize, opened: &AtomicUsize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let trust = chat_client::Trust::cert_hash_hex(hash).expect("hash");
        let tls = chat_client::rustls_client_config(&trust, chat_protocol::ALPN_CHAT).expect("tls");
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(2)));
        config.transport_config(Arc::new(transport));
        let mut held = Vec::with_capacity(n);
        let mut endpoint = None;
        for i in 0..n {
            if i % PER_SOCKET == 0 {
                endpoint = Some(quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind"));
            }
            let ep = endpoint.clone().expect("endpoint");
            let config = config.clone();
            held.push(tokio::spawn(async move {
                let conn = ep.connect_with(config, addr, "localhost").ok()?.await.ok()?;
                let (mut tx, _rx) = conn.open_bi().await.ok()?;
                tx.write_all(&[1]).await.ok()?;
                let mut events = conn.accept_uni().await.ok()?;
                events.read_exact(&mut [0u8; 1]).await.ok()?;
                Some((conn, tx))
            }));
            // Paced like clients arriving, so the handshakes do not time out.
            if i % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut keep = Vec::with_capacity(n);
        for h in held {
            if let Ok(Some(c)) = h.await {
                opened.fetch_add(1, Relaxed);
                keep.push(c);
            }
        }
        // Keep every connection open until the process ends.
        std::future::pending::<()>().await;
    });
}

/// Resident set size of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
