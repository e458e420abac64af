//! Redis locked down, and the limits it makes cluster-wide: nodes reach a
//! real TLS-only `redis-server` (started per test on a free port,
//! certificates made by the test with rcgen, client certificates required)
//! as an ACL user that has exactly the permissions deploy/CLUSTER.md gives
//! it, with the `default` user disabled. A permission chatd needs and that
//! ACL line lacks makes these tests fail. On that Redis, one user's messages
//! and one address's connections count once across two nodes.
//!
//! `redis-server` (with TLS, as Debian's 7.0 is) must be on PATH.

mod common;
use chat_server::config::Config;
use chat_server::redis_server::{RedisServer, TestPki};
use chat_server::store::Store;
use common::cluster::*;
use common::text;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_client::ClientError;
use chat_protocol::v1::{ConversationKind, ErrorCode};

/// The chatd user's password in these tests.
const PASSWORD: &str = "chatd-test-password-0123456789";

/// The ACL line for the chatd user, read from deploy/CLUSTER.md (the one
/// operators copy) with the test password put in for its placeholder.
fn chatd_acl() -> String {
    let doc = include_str!("../../deploy/CLUSTER.md");
    let line = doc.lines().find(|l| l.starts_with("user chatd on ")).expect("deploy/CLUSTER.md has the ACL line");
    assert!(line.contains(">CHANGE-ME"), "the ACL line's password placeholder: {line}");
    line.trim_start_matches("user ").replace(">CHANGE-ME", &format!(">{PASSWORD}"))
}

/// A TLS-only Redis with the documented ACL (and `default` off), and its certificates.
fn locked_down_redis(dir: &std::path::Path) -> (RedisServer, TestPki) {
    let pki = TestPki::generate(dir, "redis").unwrap();
    let redis = RedisServer::start_tls(&pki, &["default off", &chatd_acl()]).unwrap();
    (redis, pki)
}

/// Trust `pki`'s CA and present its client certificate.
fn use_tls(cfg: &mut Config, pki: &TestPki) {
    cfg.cluster.redis_ca_file = pki.ca.display().to_string();
    cfg.cluster.redis_cert_file = pki.client_cert.display().to_string();
    cfg.cluster.redis_key_file = pki.client_key.display().to_string();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_tls_as_the_acl_user_carry_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, pki) = locked_down_redis(dir.path());
    let (with_creds, bare) = (redis.tls_url("chatd", PASSWORD), format!("rediss://127.0.0.1:{}", redis.port()));
    let c = Cluster::start_on(redis, 2, |i, cfg| {
        use_tls(cfg, &pki);
        if i == 0 {
            // The user and password in the URL ...
            cfg.cluster.redis_url = with_creds.clone();
        } else {
            // ... or in their own fields (the password from CHAT_CLUSTER__REDIS_PASSWORD).
            cfg.cluster.redis_url = bare.clone();
            cfg.cluster.redis_username = "chatd".into();
            cfg.cluster.redis_password = PASSWORD.into();
        }
    })
    .await;
    let (alice, mut a_ev) = c.connect("alice", "advocate", 0).await;
    let (bob, mut b_ev) = c.connect("bob", "advocate", 1).await;
    // Each way once, so one of the sends crosses to its owner and one fan-out crosses back.
    let conv = create(&alice, ConversationKind::Group, &["bob"]).await;
    alice.send_text(conv, "over TLS").await.unwrap();
    assert_eq!(text(&messages(&mut b_ev, conv, 1).await[0]), "over TLS", "bob on the other node got it");
    bob.send_text(conv, "and back").await.unwrap();
    let got = messages(&mut a_ev, conv, 2).await;
    assert_eq!(text(&got[1]), "and back", "alice got bob's answer across nodes");
    // Presence keys and their reads (MGET) work under the ACL too.
    let p = bob.get_presence(vec!["alice".into()]).await.unwrap();
    assert!(p[0].online, "alice is online, seen from bob's node: {p:?}");
    alice.close().await;
    presence_change(&mut b_ev, "alice", false).await;
    let p = bob.get_presence(vec!["alice".into()]).await.unwrap();
    assert!(!p[0].online, "alice's presence key is gone: {p:?}");
}

/// Starts a node with `cfg` on `store` (off the runtime: it blocks); its refusal.
async fn refusal(cfg: Config, store: &Arc<Store>) -> String {
    let store = store.clone();
    let started = Instant::now();
    let e = tokio::task::spawn_blocking(move || chat_server::start_with_store(cfg, store).err())
        .await
        .unwrap()
        .map(|e| format!("{e:#}"))
        .unwrap_or_else(|| "it started".into());
    assert!(started.elapsed() < Duration::from_secs(10), "refused promptly: {e}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_redis_it_cannot_trust_or_log_into() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, pki) = locked_down_redis(dir.path());
    let store = shared_store(dir.path()).await;
    let good = {
        let mut cfg = node_config("node-a", &redis.tls_url("chatd", PASSWORD), &dir.path().join("node"));
        use_tls(&mut cfg, &pki);
        cfg
    };
    let shown = format!("rediss://<redacted>@127.0.0.1:{}", redis.port());
    // Each case: what changes, and what the refusal must say.
    let mut cases: Vec<(&str, Config, String)> = Vec::new();
    let mut c = good.clone();
    c.cluster.redis_url = redis.tls_url("chatd", "wrong-password");
    cases.push(("wrong password", c, format!("Redis at {shown}: wrong Redis user or password")));
    let mut c = good.clone();
    let stranger = TestPki::generate(dir.path(), "stranger").unwrap();
    c.cluster.redis_ca_file = stranger.ca.display().to_string();
    cases.push(("untrusted CA", c, format!("Redis at {shown}: the Redis server's certificate is not signed by a CA")));
    let mut c = good.clone();
    c.cluster.redis_url = format!("rediss://chatd:{PASSWORD}@127.0.0.2:{}", redis.port());
    let at = format!("Redis at rediss://<redacted>@127.0.0.2:{}", redis.port());
    cases.push(("wrong server name", c, format!("{at}: the Redis server's certificate is not valid for the host")));
    let mut c = good.clone();
    c.cluster.redis_url = format!("redis://chatd:{PASSWORD}@127.0.0.1:{}", redis.port());
    (c.cluster.redis_ca_file, c.cluster.redis_cert_file, c.cluster.redis_key_file) = Default::default();
    let at = format!("Redis at redis://<redacted>@127.0.0.1:{}", redis.port());
    cases.push(("plain to a TLS-only port", c, format!("{at}: the server closed the connection (a TLS-only port?")));
    let plain = RedisServer::start().unwrap();
    let mut c = good.clone();
    c.cluster.redis_url = format!("rediss://127.0.0.1:{}", plain.port());
    let at = format!("Redis at rediss://127.0.0.1:{}", plain.port());
    cases.push(("TLS to a plain port", c, format!("{at}: the server did not answer in TLS")));
    let mut c = good.clone();
    (c.cluster.redis_cert_file, c.cluster.redis_key_file) = Default::default();
    cases.push(("no client certificate", c, format!("Redis at {shown}: the Redis server wants a client certificate")));
    let mut c = good.clone();
    c.cluster.redis_ca_file = dir.path().join("nowhere.pem").display().to_string();
    cases.push(("missing CA file", c, format!("TLS to Redis at {shown}: cluster.redis_ca_file")));
    for (case, cfg, want) in cases {
        let e = refusal(cfg, &store).await;
        assert!(e.contains(&want), "{case}: {e}");
        assert!(!e.contains(PASSWORD), "{case}: the password is never shown: {e}");
    }
    // And the right settings join (each refusal was for its own reason).
    let store2 = store.clone();
    let node = tokio::task::spawn_blocking(move || chat_server::start_with_store(good, store2)).await.unwrap();
    node.expect("the right settings join").shutdown();
    store.close();
}

/// Longer than two of the bridge's batch intervals (100 ms) and round trips:
/// each node has learned the other's counts before the next action.
const GAP: Duration = Duration::from_millis(500);
/// What may pass the limit all the same: one action, when a flush comes late
/// on a loaded machine or the run crosses a window's edge (the accuracy
/// deploy/CLUSTER.md states). Counted per node it would be the limit again.
const SLACK: usize = 1;

/// Two nodes on the locked-down Redis with `limits` set by `set`.
async fn limited_pair(dir: &std::path::Path, set: impl Fn(&mut Config) + 'static) -> Cluster {
    let (redis, pki) = locked_down_redis(dir);
    let url = redis.tls_url("chatd", PASSWORD);
    Cluster::start_on(redis, 2, move |_, cfg| {
        use_tls(cfg, &pki);
        cfg.cluster.redis_url = url.clone();
        set(cfg);
    })
    .await
}

/// A refusal of `limit`, with a time to retry.
fn assert_refused(e: &ClientError, code: ErrorCode, limit: &str) {
    match e {
        ClientError::Server(e) => {
            assert_eq!((e.code(), e.limit.as_deref()), (Some(code), Some(limit)), "{e:?}");
            assert!(e.retry_after.is_some_and(|r| r > Duration::ZERO), "{e:?}");
        }
        other => panic!("expected a {limit} refusal, got {other:?}"),
    }
}

/// Connects `n` clients (user `who(i)`) to the two nodes in turn, a gap
/// apart; those refused are refused for `limit`. The clients that got in.
async fn connect_alternately(
    c: &Cluster,
    n: usize,
    who: impl Fn(usize) -> String,
    limit: &str,
) -> Vec<(chat_client::Client, chat_client::Events)> {
    let mut open = Vec::new();
    for i in 0..n {
        let mut cfg = c.client_config(&who(i), "advocate", i % 2);
        cfg.fallback_addrs.clear();
        match chat_client::Client::connect(cfg).await {
            Ok(client) => open.push(client),
            Err(e) => assert_refused(&e, ErrorCode::ConnectionRateLimited, limit),
        }
        tokio::time::sleep(GAP).await;
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_nodes_gets_the_message_limit_once() {
    const LIMIT: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let c = limited_pair(dir.path(), |cfg| cfg.limits.messages_per_minute = LIMIT as u32).await;
    let devices = [c.connect("alice", "advocate", 0).await.0, c.connect("alice", "advocate", 1).await.0];
    let conv = create(&devices[0], ConversationKind::Group, &["bob"]).await;
    // Alternately on each node, twice the limit.
    let mut accepted = 0;
    for i in 0..2 * LIMIT {
        match devices[i % 2].send_text(conv, &format!("m{i}")).await {
            Ok(_) => accepted += 1,
            Err(e) => assert_refused(&e, ErrorCode::RateLimited, "messages_per_minute"),
        }
        tokio::time::sleep(GAP).await;
    }
    assert!(
        (LIMIT..=LIMIT + SLACK).contains(&accepted),
        "{accepted} accepted: the limit holds across both nodes, not per node"
    );
    // And both nodes now refuse alike.
    for d in &devices {
        assert_refused(&d.send_text(conv, "more").await.unwrap_err(), ErrorCode::RateLimited, "messages_per_minute");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_at_two_nodes_gets_the_connection_limit_once() {
    const LIMIT: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let c = limited_pair(dir.path(), |cfg| cfg.limits.connections_per_minute_per_ip = LIMIT as u32).await;
    let n = connect_alternately(&c, 2 * LIMIT, |i| format!("user{i}"), "connections_per_minute_per_ip").await.len();
    assert!((LIMIT..=LIMIT + SLACK).contains(&n), "{n} opened: one address's connections count once across both nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_at_two_nodes_gets_the_per_user_connection_limit_once() {
    const LIMIT: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let c = limited_pair(dir.path(), |cfg| cfg.limits.connections_per_minute_per_user = LIMIT as u32).await;
    let open = connect_alternately(&c, 2 * LIMIT, |_| "alice".into(), "connections_per_minute_per_user").await;
    let n = open.len();
    assert!((LIMIT..=LIMIT + SLACK).contains(&n), "{n} opened: one user's connections count once across both nodes");
    // Another user at the same address is not held back by alice's loop.
    let mut cfg = c.client_config("bob", "client", 0);
    cfg.fallback_addrs.clear();
    chat_client::Client::connect(cfg).await.expect("bob connects");
}
