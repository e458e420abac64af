//! The physical limit our message path is measured against: raw quinn on
//! loopback, no chat protocol, no store. One server thread (one shard's worth:
//! one current-thread runtime on one socket, the server's own QUIC and TLS
//! configuration) echoes 100-byte messages for N client connections on a
//! second thread (32 connections per client socket, as the loadgen does), each
//! client keeping one message in flight. It reports echoes/s, UDP datagrams
//! per echo (the kernel's counters) and the server thread's CPU per datagram,
//! the figure bench/RESULTS.md compares chatd's CPU per datagram with.
//!
//! `cargo bench -p bench --bench quic_floor` (env `FLOOR_CONNECTIONS`, default
//! 1000; `FLOOR_SECONDS`, default 10). Not a criterion bench: what it measures
//! is a rate over seconds, with CPU read from /proc.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

const MESSAGE: usize = 100;
const PER_SOCKET: usize = 32;

fn main() {
    let connections = env_or("FLOOR_CONNECTIONS", 1000) as usize;
    let seconds = env_or("FLOOR_SECONDS", 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let id = chat_server::tls::dev_identity(dir.path(), &[], SystemTime::now()).expect("dev certificate");
    let hash = id.sha256_hex();
    let server_config = chat_server::tls::quinn_server_config(&id, &Default::default()).expect("server config");

    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let server_cpu = Arc::new(AtomicU64::new(0));
    let server = {
        let (stop, server_cpu) = (stop.clone(), server_cpu.clone());
        std::thread::Builder::new()
            .name("floor-server".into())
            .spawn(move || serve(server_config, addr_tx, stop, server_cpu))
            .expect("server thread")
    };
    let addr: SocketAddr = addr_rx.recv().expect("server address");
    let echoes = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, echoes) = (stop.clone(), echoes.clone());
        std::thread::Builder::new()
            .name("floor-clients".into())
            .spawn(move || clients(addr, &hash, connections, stop, echoes))
            .expect("client thread")
    };

    // Warm up (handshakes), then measure.
    std::thread::sleep(Duration::from_secs(3));
    let (e0, u0, c0, t0) = (echoes.load(Relaxed), udp_out(), server_cpu.load(Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (e1, u1, c1, secs) = (echoes.load(Relaxed), udp_out(), server_cpu.load(Relaxed), t0.elapsed().as_secs_f64());
    stop.store(true, Relaxed);

    let echoes = (e1 - e0) as f64;
    let datagrams = u1.saturating_sub(u0) as f64;
    // The server thread's CPU is sampled by that thread every 100 ms.
    let cpu = (c1.saturating_sub(c0)) as f64 / ticks_per_second();
    println!("quic_floor: {connections} connections, one server thread, {MESSAGE}-byte echoes, {secs:.1} s");
    println!(
        "  {:.0} echoes/s, {:.2} UDP datagrams per echo (machine-wide), server thread {:.2} CPU s ({:.0}% of a core)",
        echoes / secs,
        datagrams / echoes.max(1.0),
        cpu,
        100.0 * cpu / secs
    );
    println!(
        "  server: {:.1} µs CPU per echo, {:.2} µs CPU per datagram, {:.0} datagrams per server-core-second",
        cpu * 1e6 / echoes.max(1.0),
        cpu * 1e6 / datagrams.max(1.0),
        datagrams / cpu.max(1e-9)
    );
    // Clients still waiting on an echo would wait for their idle timeout:
    // the figures are in, so end here.
    drop((client, server));
    std::process::exit(0);
}

/// One shard's worth of server: echo every 100-byte message back on its stream.
fn serve(
    config: quinn::ServerConfig,
    addr_tx: std::sync::mpsc::Sender<SocketAddr>,
    stop: Arc<AtomicBool>,
    cpu: Arc<AtomicU64>,
) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("bind");
        addr_tx.send(endpoint.local_addr().expect("addr")).expect("send addr");
        let sampler = {
            let stop = stop.clone();
            tokio::task::spawn_local(async move {
                while !stop.load(Relaxed) {
                    cpu.store(thread_ticks(), Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        while !stop.load(Relaxed) {
            let Ok(Some(incoming)) = tokio::time::timeout(Duration::from_millis(200), endpoint.accept()).await else {
                continue;
            };
            tokio::task::spawn_local(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut tx, mut rx)) = conn.accept_bi().await {
                    tokio::task::spawn_local(async move {
                        let mut buf = [0u8; MESSAGE];
                        while rx.read_exact(&mut buf).await.is_ok() {
                            if tx.write_all(&buf).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
        }
        let _ = sampler.await;
        endpoint.close(0u32.into(), b"done");
    });
}

/// `n` clients, each with one message in flight.
fn clients(addr: SocketAddr, hash: &str, n: usize, stop: Arc<AtomicBool>, echoes: Arc<AtomicU64>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let trust = chat_client::Trust::cert_hash_hex(hash).expect("hash");
        let tls = chat_client::rustls_client_config(&trust, chat_protocol::ALPN_CHAT).expect("tls");
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut tasks = Vec::new();
        let mut endpoint = None;
        for i in 0..n {
            if i % PER_SOCKET == 0 {
                endpoint = Some(quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind"));
            }
            let ep = endpoint.clone().expect("endpoint");
            let (config, stop, echoes) = (config.clone(), stop.clone(), echoes.clone());
            tasks.push(tokio::spawn(async move {
                // A connection that cannot be made only lowers the rate measured.
                let Ok(conn) = ep.connect_with(config, addr, "localhost") else { return };
                let Ok(conn) = conn.await else { return };
                let Ok((mut tx, mut rx)) = conn.open_bi().await else { return };
                let mut buf = [7u8; MESSAGE];
                // The server may close first when the run stops.
                while !stop.load(Relaxed) && tx.write_all(&buf).await.is_ok() && rx.read_exact(&mut buf).await.is_ok() {
                    echoes.fetch_add(1, Relaxed);
                }
                conn.close(0u32.into(), b"done");
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The machine's UDP datagrams sent so far.
fn udp_out() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return 0 };
    let i = names.split_whitespace().position(|n| n == "OutDatagrams");
    i.and_then(|i| values.split_whitespace().nth(i)?.parse().ok()).unwrap_or(0)
}

/// This thread's user + system CPU in clock ticks.
fn thread_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the ')'.
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// Linux reports /proc CPU times in USER_HZ ticks, 100 per second on every
/// architecture Rust targets.
fn ticks_per_second() -> f64 {
    100.0
}
