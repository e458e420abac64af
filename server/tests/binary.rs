//! The `chatd` binary itself: `serve` prints what a client needs, SIGTERM
//! drains and flushes, a restart on the same data directory keeps everything.

use chat_client::{Client, ClientConfig, Trust};
use chat_protocol::v1::ConversationKind;
use std::io::{BufRead, BufReader};
#[path = "common/chatd.rs"]
mod chatd;

use chatd::{serve, serve_on, serve_with, terminate, token};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A second chatd (another data directory, the same user) on the UDP or the
/// TCP port of a running one refuses to start, naming the port, instead of
/// taking half its connections through `SO_REUSEPORT`; the first keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_cannot_take_the_ports() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (child, addr, hash, web) = serve_on(first.path(), "127.0.0.1:0", "127.0.0.1:0");
    let refused = |listen: &str, web_listen: &str| {
        let mut stray = Command::new(env!("CARGO_BIN_EXE_chatd"))
            .args(["serve", "--listen", listen, "--web-listen", web_listen, "--shards", "2", "--data-dir"])
            .arg(second.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chatd");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = stray.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = stray.kill();
                panic!("a second chatd on {listen} / {web_listen} kept running");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut stray.stderr.take().expect("stderr"), &mut err).unwrap();
        assert!(!status.success());
        err
    };
    let udp_port = addr.rsplit(':').next().unwrap();
    let err = refused(&addr, "127.0.0.1:0");
    assert!(err.contains(&format!("UDP port {udp_port} on 127.0.0.1 is already in use")), "{err}");
    assert!(err.contains("`listen`"), "names the setting: {err}");
    let web_port = web.rsplit(':').next().unwrap();
    let err = refused("127.0.0.1:0", &web);
    assert!(err.contains(&format!("TCP port {web_port} on 127.0.0.1 is already in use")), "{err}");
    assert!(err.contains("`web.listen`"), "names the setting: {err}");
    // The first still serves, every connection.
    for _ in 0..4 {
        let cfg = ClientConfig::new(&addr, token(first.path(), "alice"), Trust::cert_hash_hex(&hash).unwrap());
        let (alice, _events) = Client::connect(cfg).await.expect("the first server answers");
        alice.ping().await.unwrap();
    }
    terminate(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_a_restart_keeps_history() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr, hash) = serve(data.path());
    let cfg = |user: &str, addr: &str, hash: &str| {
        ClientConfig::new(addr, token(data.path(), user), Trust::cert_hash_hex(hash).unwrap())
    };
    // Bob signs in once: then he is in the user directory and may be added.
    Client::connect(cfg("bob", &addr, &hash)).await.unwrap().0.close().await;
    let (alice, _events) = Client::connect(cfg("alice", &addr, &hash)).await.unwrap();
    let created = alice.create_conversation(ConversationKind::Group, "matter", "", vec!["bob".into()]).await.unwrap();
    let conv = created.summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    for i in 0..20 {
        alice.send_text(conv, &format!("before shutdown {i}")).await.unwrap();
    }
    alice.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();

    // Same data directory, same dev certificate (still valid), everything kept.
    let (child, addr2, hash2) = serve(data.path());
    assert_eq!(hash2, hash, "the dev certificate is reused while valid");
    let (bob, _events) = Client::connect(cfg("bob", &addr2, &hash2)).await.unwrap();
    let history = bob.history(conv, 0, 0, 100).await.unwrap();
    assert_eq!(history.messages.len(), 20);
    assert_eq!(history.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    bob.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();
}

/// A server whose stdout goes away (its reader exited: a closed pipe) keeps
/// serving and still stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_does_not_stop_the_server() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["serve", "--listen", &addr, "--web-listen", "127.0.0.1:0", "--shards", "1", "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chatd");
    drop(child.stdout.take()); // nobody reads the banner
    // The dev certificate is written before the banner; its hash is what clients pin.
    let deadline = Instant::now() + Duration::from_secs(15);
    let hash = loop {
        let pem = std::fs::read(data.path().join("tls").join("dev-cert.pem")).ok();
        if let Some(der) = pem.and_then(|p| rustls_pemfile::certs(&mut &p[..]).next()).and_then(Result::ok) {
            break hex::encode(ring::digest::digest(&ring::digest::SHA256, &der));
        }
        assert!(Instant::now() < deadline, "chatd made no dev certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut connected = None;
    while connected.is_none() && Instant::now() < deadline {
        let cfg = ClientConfig::new(addr.as_str(), token(data.path(), "carol"), Trust::cert_hash_hex(&hash).unwrap());
        match Client::connect(cfg).await {
            Ok(c) => connected = Some(c),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let (carol, _events) = connected.expect("chatd serves after its stdout closed");
    carol.list_conversations(Default::default()).await.expect("a request is answered");
    carol.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();
}

/// A default install accepts no token signed with the public development
/// secret (it has a random one of its own), and refuses to start with the
/// public secret on a listener other than loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_dev_secret_opens_nothing() {
    use chat_server::config::PUBLIC_DEV_SECRET;
    let data = tempfile::tempdir().unwrap();
    let (child, addr, hash) = serve(data.path());
    let forged = chat_server::auth::mint_hs256(PUBLIC_DEV_SECRET, "mallory", "", "admin", Duration::from_secs(600));
    let e = Client::connect(ClientConfig::new(addr.as_str(), forged, Trust::cert_hash_hex(&hash).unwrap()))
        .await
        .expect_err("an admin token signed with the public secret is refused");
    assert!(e.to_string().contains("signature"), "{e}");
    let (ok, _events) = Client::connect(ClientConfig::new(
        addr.as_str(),
        token(data.path(), "alice"),
        Trust::cert_hash_hex(&hash).unwrap(),
    ))
    .await
    .expect("the data directory's own secret is accepted");
    ok.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();

    for (listen, web) in [("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "[::]:0")] {
        let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
            .args(["serve", "--listen", listen, "--web-listen", web, "--data-dir"])
            .arg(data.path())
            .env("CHAT_AUTH__HS256_SECRET", PUBLIC_DEV_SECRET)
            .output()
            .expect("run chatd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{listen} / {web}: chatd started with the public secret");
        assert!(err.contains("public development secret"), "{listen} / {web}: {err}");
    }
}

/// Privileged text lives under the data directory: only chatd's user may
/// read it. `chatd serve` makes the directory 0700 and every file 0600,
/// whatever umask it was started with, and tightens an open directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (child, addr, hash) = serve(&data);
    let cfg = |user: &str| ClientConfig::new(addr.as_str(), token(&data, user), Trust::cert_hash_hex(&hash).unwrap());
    // Bob signs in once: then he is in the user directory and may be added.
    Client::connect(cfg("bob")).await.unwrap().0.close().await;
    let (alice, _events) = Client::connect(cfg("alice")).await.unwrap();
    let created = alice.create_conversation(ConversationKind::Group, "privileged", "", vec!["bob".into()]).await;
    let conv = created.unwrap().summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    alice.send_text(conv, "attorney-client privileged").await.unwrap();
    alice.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();
    fn walk(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u32, bool)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.push((p.clone(), m.permissions().mode() & 0o777, m.is_dir()));
            if m.is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut all = vec![(data.clone(), std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, true)];
    walk(&data, &mut all);
    assert!(all.len() > 10, "the store, keys and certificate are there: {all:?}");
    let open: Vec<_> = all.iter().filter(|(_, mode, _)| mode & 0o077 != 0).collect();
    assert!(open.is_empty(), "readable by others: {open:?}");
    assert!(all.iter().all(|(_, mode, dir)| !dir || *mode == 0o700), "directories are 0700: {all:?}");
}

/// After a crash (SIGKILL), chatd restarted on the same data directory and
/// port ends its predecessor's connections at once: it answers their packets
/// with stateless resets made with the data directory's key, which the
/// clients accept, so they reconnect within a keep-alive instead of waiting
/// out their idle timeout (30 s here, as a browser's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_resets_old_connections_at_once() {
    use chat_client::Event;
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr, hash, web) = serve_on(data.path(), "127.0.0.1:0", "127.0.0.1:0");
    let mut cfg = ClientConfig::new(&addr, token(data.path(), "alice"), Trust::cert_hash_hex(&hash).unwrap());
    cfg.idle_timeout = Duration::from_secs(30);
    let (alice, mut events) = Client::connect(cfg).await.unwrap();
    alice.ping().await.unwrap();
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let (again, _, _, _) = serve_on(data.path(), &addr, &web);
    let restarted = Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.next().await {
                Some(Event::Disconnected { reason, .. }) => return reason,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("the old connection ends");
    let took = restarted.elapsed();
    assert!(took < Duration::from_secs(3), "noticed {took:?} after the restart ({lost})");
    // And the client is back on the new server.
    tokio::time::timeout(Duration::from_secs(10), alice.ping()).await.expect("reconnected").unwrap();
    let key = std::fs::metadata(data.path().join("quic").join("reset.key")).expect("the reset key file");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
    terminate(again);
}

/// The same for many clients at once: every one of 400 connections of a
/// killed server hears its reset within 3 s of the restart. quinn's default
/// of one reset per 20 ms per endpoint answered 50 a second on each shard,
/// and the rest waited out their idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_resets_hundreds_of_connections_at_once() {
    use chat_client::Event;
    use futures_util::StreamExt;
    const USERS: usize = 20;
    const PER_USER: usize = 20;
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr, hash, web) = serve_on(data.path(), "127.0.0.1:0", "127.0.0.1:0");
    let tokens: Vec<String> = (0..USERS).map(|u| token(data.path(), &format!("crowd{u}"))).collect();
    let connects = (0..USERS * PER_USER).map(|i| {
        let mut cfg = ClientConfig::new(&addr, tokens[i % USERS].clone(), Trust::cert_hash_hex(&hash).unwrap());
        cfg.idle_timeout = Duration::from_secs(30);
        async move { Client::connect(cfg).await.expect("connects") }
    });
    let clients: Vec<_> = futures_util::stream::iter(connects).buffer_unordered(32).collect().await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let (again, _, _, _) = serve_on(data.path(), &addr, &web);
    let restarted = Instant::now();
    let lost = clients.into_iter().map(|(client, mut events)| async move {
        let r = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(e) = events.next().await {
                if matches!(e, Event::Disconnected { .. }) {
                    return restarted.elapsed();
                }
            }
            panic!("events ended")
        })
        .await
        .expect("the old connection ends");
        client.close().await;
        r
    });
    let mut took: Vec<Duration> = futures_util::future::join_all(lost).await;
    took.sort();
    let slowest = *took.last().unwrap();
    assert!(
        slowest < Duration::from_secs(3),
        "the last noticed {slowest:?} after the restart; median {:?}",
        took[took.len() / 2]
    );
    terminate(again);
}

/// The first lines `chatd serve` logs to `stderr` (piped, not a terminal)
/// with `CHAT_LOG_FORMAT` set to `format` (None: unset).
fn first_log_lines(format: Option<&str>) -> Vec<String> {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatd"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(f) = format {
        cmd.env("CHAT_LOG_FORMAT", f);
    }
    let mut child = cmd.spawn().expect("start chatd");
    let lines: Vec<String> =
        BufReader::new(child.stderr.take().expect("stderr")).lines().take(2).map(|l| l.expect("a log line")).collect();
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// Logs written to a file or pipe carry no colour escape codes; with
/// `CHAT_LOG_FORMAT=json` each line is one JSON object with its level and
/// message; an unknown format is refused.
#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let text = first_log_lines(None);
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text.iter().all(|l| !l.contains('\u{1b}')), "escape codes in a piped log: {text:?}");
    assert!(text.iter().all(|l| l.contains(" WARN ") || l.contains(" INFO ")), "{text:?}");
    for line in first_log_lines(Some("json")) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["config"])
        .env("CHAT_LOG_FORMAT", "xml")
        .output()
        .expect("chatd config");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CHAT_LOG_FORMAT is `text` or `json`"));
}

/// On the real CQL node (`CHAT_SCYLLA_NODES`): `chatd migrate` makes the
/// schema, `chatd serve` runs on it, and a restart of chatd, and of the node
/// too when the test is told how (`CQL_NODE_DIR` and `CQL_NODE_DATA`, as
/// scripts/test.sh does), keeps every message and the sequence. Without
/// `CHAT_SCYLLA_NODES` it says it was skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_serve_on_the_cql_node_keeps_history_across_restarts() {
    let Some(nodes) = std::env::var("CHAT_SCYLLA_NODES").ok().filter(|n| !n.is_empty()) else {
        chat_server::store::conformance::report_skip("migrate_then_serve_on_the_cql_node", "CHAT_SCYLLA_NODES not set");
        return;
    };
    let keyspace = format!("chat_bin_{:016x}", rand::random::<u64>());
    let list = nodes.split(',').map(|n| format!("\"{}\"", n.trim())).collect::<Vec<_>>().join(",");
    let env: Vec<(String, String)> = [
        ("CHAT_STORE__BACKEND", "scylla".to_string()),
        ("CHAT_STORE__SCYLLA__NODES", format!("[{list}]")),
        ("CHAT_STORE__SCYLLA__KEYSPACE", keyspace.clone()),
        ("CHAT_STORE__SCYLLA__REPLICATION__CLASS", "SimpleStrategy".to_string()),
        ("CHAT_STORE__SCYLLA__REPLICATION__FACTOR", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let data = tempfile::tempdir().unwrap();
    let migrate = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("migrate")
        .env("CHAT_DATA_DIR", data.path())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("CHAT_SCYLLA_NODES")
        .output()
        .expect("chatd migrate");
    let said = String::from_utf8_lossy(&migrate.stdout).to_string() + &String::from_utf8_lossy(&migrate.stderr);
    assert!(migrate.status.success(), "chatd migrate failed: {said}");
    let recorded = format!("schema version {} recorded", chat_server::store::scylla::SCHEMA_VERSION);
    assert!(said.contains(&recorded), "{said}");

    let (child, addr, hash, web) = serve_with(data.path(), "127.0.0.1:0", "127.0.0.1:0", &env);
    let connect_as = |user: &str, addr: &str, hash: &str| {
        let cfg = ClientConfig::new(addr, token(data.path(), user), Trust::cert_hash_hex(hash).unwrap());
        Client::connect(cfg)
    };
    let connect = |addr: &str, hash: &str| connect_as("alice", addr, hash);
    // Bob is in the directory once he has signed in.
    connect_as("bob", &addr, &hash).await.unwrap().0.close().await;
    let (alice, _events) = connect(&addr, &hash).await.unwrap();
    let created = alice.create_conversation(ConversationKind::Group, "matter", "", vec!["bob".into()]).await.unwrap();
    let conv = created.summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    for i in 1..=10 {
        assert_eq!(alice.send_text(conv, &format!("on scylla {i}")).await.unwrap().seq, i);
    }
    alice.close().await;
    terminate(child);
    // The node too, when this test may.
    if let (Ok(dir), Ok(cql_data)) = (std::env::var("CQL_NODE_DIR"), std::env::var("CQL_NODE_DATA")) {
        let port = nodes.split(',').next().unwrap().rsplit(':').next().unwrap().to_string();
        let stop = Command::new(format!("{dir}/stop.sh")).arg(&cql_data).output().expect("stop.sh");
        assert!(stop.status.success(), "{stop:?}");
        let start = Command::new(format!("{dir}/start.sh")).args([&port, &cql_data]).output().expect("start.sh");
        assert!(start.status.success(), "{start:?}");
    }
    let (again, addr, hash, _) = serve_with(data.path(), "127.0.0.1:0", &web, &env);
    let (alice, _events) = connect(&addr, &hash).await.unwrap();
    let history = alice.history(conv, 0, 0, 100).await.unwrap();
    let seqs: Vec<u64> = history.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "every message, in order, once");
    assert_eq!(alice.send_text(conv, "after the restart").await.unwrap().seq, 11, "the sequence goes on");
    alice.close().await;
    terminate(again);
    // Leave nothing behind on the shared node.
    let settings = chat_server::store::scylla::ScyllaSettings::for_tests(&keyspace).expect("CHAT_SCYLLA_NODES is set");
    chat_server::store::scylla::drop_keyspace(&settings).await.expect("drop keyspace");
}

/// `chatd reindex` on a stopped node rebuilds a lost search index from the
/// store: after the index directory is wiped, search finds nothing until
/// the rebuild; then the latest state of every message is found again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_restores_a_wiped_search_index() {
    use chat_protocol::v1;
    let data = tempfile::tempdir().unwrap();
    let fast = [("CHAT_SEARCH__COMMIT_INTERVAL_MS".to_string(), "50".to_string())];
    let (child, addr, hash, _) = serve_with(data.path(), "127.0.0.1:0", "127.0.0.1:0", &fast);
    let cfg = |addr: &str, hash: &str| {
        ClientConfig::new(addr, token(data.path(), "alice"), Trust::cert_hash_hex(hash).unwrap())
    };
    // Bob signs in once: then he is in the user directory and may be added.
    let bob = ClientConfig::new(addr.as_str(), token(data.path(), "bob"), Trust::cert_hash_hex(&hash).unwrap());
    Client::connect(bob).await.unwrap().0.close().await;
    let found = |c: Client, word: &'static str| async move {
        let s = v1::Search { query: word.into(), ..Default::default() };
        let hits = c.search(s).await.unwrap().hits;
        (c, hits.iter().map(|h| h.seq).collect::<Vec<_>>())
    };
    let (alice, _events) = Client::connect(cfg(&addr, &hash)).await.unwrap();
    let created = alice.create_conversation(ConversationKind::Group, "matter", "", vec!["bob".into()]).await.unwrap();
    let conv = created.summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    let kept = alice.send_text(conv, "subpoena served").await.unwrap().seq;
    let edited = alice.send_text(conv, "subpoena draft").await.unwrap().seq;
    let gone = alice.send_text(conv, "subpoena withdrawn").await.unwrap().seq;
    alice.edit(conv, edited, "affidavit draft").await.unwrap();
    alice.delete(conv, gone).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut alice = alice;
    loop {
        let (a, seqs) = found(alice, "subpoena").await;
        alice = a;
        if seqs == [kept] {
            break;
        }
        assert!(Instant::now() < deadline, "indexed: {seqs:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    alice.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();

    std::fs::remove_dir_all(data.path().join("search")).unwrap();
    let (child, addr, hash, _) = serve_with(data.path(), "127.0.0.1:0", "127.0.0.1:0", &fast);
    let (alice, _events) = Client::connect(cfg(&addr, &hash)).await.unwrap();
    let (alice, seqs) = found(alice, "subpoena").await;
    assert_eq!(seqs, Vec::<u64>::new(), "the wiped index knows nothing");
    alice.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("reindex")
        .env("CHAT_DATA_DIR", data.path())
        .env_remove("CHAT_SCYLLA_NODES")
        .stderr(Stdio::null())
        .output()
        .expect("chatd reindex");
    assert!(out.status.success(), "chatd reindex failed: {out:?}");
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.starts_with("reindexed 2 messages in 1 conversations"), "{said}");

    let (child, addr, hash, _) = serve_with(data.path(), "127.0.0.1:0", "127.0.0.1:0", &fast);
    let (alice, _events) = Client::connect(cfg(&addr, &hash)).await.unwrap();
    let (alice, seqs) = found(alice, "subpoena").await;
    assert_eq!(seqs, [kept], "the deleted message stays out");
    let (alice, seqs) = found(alice, "affidavit").await;
    assert_eq!(seqs, [edited], "the edited message is found by its new text");
    alice.close().await;
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();
}

/// `chatd service-accounts` with no chatd running works on the store
/// directly: create prints the credential once, list shows the account
/// without it, revoke marks it, a bad scope or a taken id is refused.
#[test]
fn service_accounts_are_managed_on_the_store_when_no_chatd_runs() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| chatd::run(args, data.path());
    let made = run(&["service-accounts", "create", "--id", "cms", "--name", "Case system", "--scopes", "read,admin"]);
    assert!(made.status.success(), "{}", chatd::text(&made));
    let out = chatd::text(&made);
    let credential = out.lines().find(|l| l.starts_with("chatd_sa_cms_")).expect("the credential");
    assert_eq!(credential.len(), "chatd_sa_cms_".len() + 64);
    let listed = chatd::text(&run(&["service-accounts", "list"]));
    assert!(listed.contains("cms (\"Case system\") scopes read,admin") && listed.contains("active"), "{listed}");
    assert!(!listed.contains(&credential["chatd_sa_cms_".len()..]), "the secret is never shown again");
    let again = run(&["service-accounts", "create", "--id", "cms", "--name", "x"]);
    assert!(!again.status.success() && chatd::text(&again).contains("exists already"), "{}", chatd::text(&again));
    let bad = run(&["service-accounts", "create", "--id", "dms", "--name", "x", "--scopes", "read,root"]);
    assert!(!bad.status.success() && chatd::text(&bad).contains("unknown scope \"root\""), "{}", chatd::text(&bad));
    assert!(run(&["service-accounts", "revoke", "--id", "cms"]).status.success());
    let listed = chatd::text(&run(&["service-accounts", "list"]));
    assert!(listed.contains("revoked at") && listed.contains("by chatd"), "{listed}");
    let rotate = run(&["service-accounts", "rotate", "--id", "cms"]);
    assert!(chatd::text(&rotate).contains("is revoked"), "{}", chatd::text(&rotate));
}

/// `chatd conversations transcript` asks the running chatd, then (stopped)
/// works on the store directly: a PDF and a JSON transcript of a case with
/// its messages, never overwriting a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_are_written_by_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr, hash) = serve(data.path());
    let cfg = |user: &str| ClientConfig::new(&addr, token(data.path(), user), Trust::cert_hash_hex(&hash).unwrap());
    Client::connect(cfg("bob")).await.unwrap().0.close().await;
    let (alice, _events) = Client::connect(cfg("alice")).await.unwrap();
    let created = alice.create_conversation(ConversationKind::Case, "Adler", "M-1", vec!["bob".into()]).await.unwrap();
    let conv = created.summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    alice.send_text(conv, "Settlement offer received").await.unwrap();
    alice.close().await;
    let pdf = data.path().join("t.pdf");
    let id = conv.to_string();
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        chatd::run(&args, data.path())
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let out = run(s(&["conversations", "transcript", "--id", &id, "--to", pdf.to_str().unwrap()]));
    assert!(out.status.success(), "{}", chatd::text(&out));
    assert!(chatd::text(&out).contains("1 conversation"), "{}", chatd::text(&out));
    let text = std::process::Command::new("pdftotext").arg(&pdf).arg("-").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("Settlement offer received") && text.contains("by chatd"), "{text}");
    let again = run(s(&["conversations", "transcript", "--id", &id, "--to", pdf.to_str().unwrap()]));
    assert!(!again.status.success() && chatd::text(&again).contains("never overwritten"), "{}", chatd::text(&again));
    tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();

    // No chatd: from the store, by case, as JSON.
    let json = data.path().join("case.json");
    let out =
        run(s(&["conversations", "transcript", "--case", "M-1", "--format", "json", "--to", json.to_str().unwrap()]));
    assert!(out.status.success(), "{}", chatd::text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["conversations"][0]["entries"][0]["text"], "Settlement offer received");
    assert_eq!(doc["header"]["exported_by"], "chatd");
    let bad = run(s(&["conversations", "transcript", "--case", "NONE", "--to", "/tmp/never.pdf"]));
    assert!(chatd::text(&bad).contains("has no conversation"), "{}", chatd::text(&bad));
}
