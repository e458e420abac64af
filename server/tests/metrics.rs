//! What an operator watches, against real servers on loopback (port 0): the
//! Prometheus `/metrics` endpoint on its own address (scraped over HTTP while
//! users chat through the real SDK over QUIC), and `/healthz` / `/livez` on
//! the web port, including a cluster node whose Redis (a real
//! `redis-server`) goes away and comes back.

mod common;
use chat_client::{Event, Transport};
use chat_protocol::v1::{ConversationKind, ErrorCode};
use common::server::{Server, code, create, messages, next_where};
use common::web::http;
use std::net::SocketAddr;
use std::time::Duration;

/// Scrapes `/metrics`: the body of a 200.
async fn scrape(addr: SocketAddr) -> String {
    let r = http(addr, "GET", "/metrics", "localhost").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    String::from_utf8(r.body).unwrap()
}

/// The value of the sample `series` (`name` or `name{labels}`), if exported.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("{series} is not exported:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_messages_latencies_and_refusals() {
    let s = Server::start_with(|c| {
        c.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
        c.limits.messages_per_minute = 5;
    });
    let addr = s.h().metrics_addr().expect("metrics.listen is set");
    let web = s.h().web_addr().unwrap();
    assert_ne!(addr.port(), web.port());
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (_bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "m", "", &["bob"]).await;
    next_where(&mut b_ev, |e| match e {
        Event::Conversation(s) if s.conversation.as_ref().is_some_and(|x| x.id == conv) => Some(()),
        _ => None,
    })
    .await;
    let before = scrape(addr).await;
    assert_eq!(must(&before, "chatd_connections_open{transport=\"quic\"}"), 2.0);
    assert_eq!(must(&before, "chatd_messages_accepted_total"), 0.0);
    for k in 0..3 {
        alice.send_text(conv, &format!("m{k}")).await.unwrap();
    }
    assert_eq!(messages(&mut b_ev, conv, 3).await.len(), 3);
    let after = scrape(addr).await;
    assert_eq!(must(&after, "chatd_messages_accepted_total"), 3.0);
    assert_eq!(must(&after, "chatd_deliveries_total"), 3.0, "bob got three; alice's own is placed by its ack");
    assert_eq!(must(&after, "chatd_ack_latency_seconds_count"), 3.0);
    assert!(must(&after, "chatd_ack_latency_seconds_sum") > 0.0);
    assert_eq!(must(&after, "chatd_delivery_latency_seconds_count"), 3.0);
    assert!(must(&after, "chatd_store_commit_seconds_count{backend=\"embedded\"}") >= 1.0);
    assert!(must(&after, "chatd_store_batch_size_count{backend=\"embedded\"}") >= 1.0);
    assert!(after.contains("# HELP chatd_refusals_total"), "{after}");
    assert!(value(&after, "chatd_queue_depth{queue=\"shard_mailbox\",shard=\"1\"}").is_some(), "{after}");
    assert_eq!(must(&after, "chatd_refusals_total{reason=\"rate_limit\"}"), 0.0);

    // Five a minute: the sixth message is refused, and counted under its reason.
    alice.send_text(conv, "m3").await.unwrap();
    alice.send_text(conv, "m4").await.unwrap();
    let refused = alice.send_text(conv, "m5").await.unwrap_err();
    assert_eq!(code(refused), Some(ErrorCode::RateLimited));
    let limited = scrape(addr).await;
    assert_eq!(must(&limited, "chatd_refusals_total{reason=\"rate_limit\"}"), 1.0);
    assert_eq!(must(&limited, "chatd_messages_accepted_total"), 5.0);
    assert!(must(&limited, "chatd_process_resident_memory_bytes") > 1e6);
    assert!(value(&limited, "chatd_process_cpu_seconds_total").is_some(), "{limited}");

    // Not on the public web port; nothing else on the metrics port.
    assert_eq!(http(web, "GET", "/metrics", "localhost").await.status, 404);
    assert_eq!(http(addr, "GET", "/", "localhost").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default_and_health_says_ok() {
    let s = Server::start();
    assert_eq!(s.h().metrics_addr(), None, "chatd serve binds nothing new unless metrics.listen is set");
    let web = s.h().web_addr().unwrap();
    let ok = http(web, "GET", "/healthz", "localhost").await;
    assert_eq!((ok.status, String::from_utf8_lossy(&ok.body).trim()), (200, "ok"));
    let live = http(web, "GET", "/livez", "localhost").await;
    assert_eq!((live.status, String::from_utf8_lossy(&live.body).trim()), (200, "ok"));
}

/// Redis goes away: a node's `/healthz` turns to 503 "degraded: redis ..."
/// within a few heartbeats (and `/livez` stays 200, so nothing restarts it);
/// Redis comes back on the same port: `/healthz` is "ok" again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_degrades_while_redis_is_away_and_recovers() {
    use common::cluster::{shared_store, try_start_node_with};
    let mut redis = chat_server::redis_server::RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = shared_store(dir.path()).await;
    let node = try_start_node_with("solo", &redis.url(), &store, &dir.path().join("n"), |c| {
        c.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .unwrap();
    let (web, metrics) = (node.web_addr().unwrap(), node.metrics_addr().unwrap());
    let health = |web| async move {
        let r = http(web, "GET", "/healthz", "localhost").await;
        (r.status, String::from_utf8_lossy(&r.body).trim().to_string())
    };
    assert_eq!(health(web).await, (200, "ok".to_string()));
    let text = scrape(metrics).await;
    assert_eq!(must(&text, "chatd_redis_up"), 1.0);
    assert_dashboard_queries_only(&text);

    let outage = std::thread::spawn(move || {
        redis.restart_after(Duration::from_secs(5)).unwrap();
        redis
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let degraded = loop {
        let (status, body) = health(web).await;
        if status == 503 {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {status} {body} with Redis away");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(degraded.starts_with("degraded: redis heartbeat failing for "), "{degraded}");
    assert_eq!(http(web, "GET", "/livez", "localhost").await.status, 200);
    assert_eq!(must(&scrape(metrics).await, "chatd_redis_up"), 0.0);
    assert!(must(&scrape(metrics).await, "chatd_redis_heartbeat_age_seconds") > 0.5);

    let _redis = tokio::task::spawn_blocking(move || outage.join().unwrap()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = health(web).await;
        if status == 200 {
            assert_eq!(body, "ok");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {status} {body} after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(must(&scrape(metrics).await, "chatd_redis_up"), 1.0);
    tokio::task::spawn_blocking(move || node.shutdown()).await.unwrap();
}

/// Every `chatd_*` name the Grafana dashboard (`deploy/grafana/chatd.json`)
/// queries is one a cluster node exports (`text`: its scrape).
fn assert_dashboard_queries_only(text: &str) {
    let exported: std::collections::HashSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/chatd.json");
    let dashboard = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(json["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let mut used = 0;
    for (i, _) in dashboard.match_indices("chatd_") {
        let name: String = dashboard[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        assert!(exported.contains(base), "the dashboard queries {name}, which chatd does not export:\n{text}");
        used += 1;
    }
    assert!(used > 10, "the dashboard queries chatd metrics");
}
