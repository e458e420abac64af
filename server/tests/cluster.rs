//! Scale-out: 3 real `chatd` nodes (separate endpoints, shards and Redis
//! connections) in this process, on loopback, sharing one store and one real
//! `redis-server` started per test on a free port, talked to through the real
//! SDK over QUIC.
//!
//! The nodes share ONE embedded store handle through
//! `chat_server::start_with_store` (a configuration file cannot do that:
//! `chatd serve` refuses a cluster on the embedded store, see the last test).
//! Every test here needs a store shared by the nodes; none can run with one
//! embedded store per node. With the ScyllaDB backend (`CHAT_SCYLLA_NODES`)
//! the same tests run on a shared Scylla store once `store::Store` can open
//! one: see `shared_store`.
//!
//! `redis-server` must be on PATH (`apt-get install redis-server`; `.ci/run`
//! installs it). Without it these tests fail and say so.

mod common;
use chat_client::{Client, ClientConfig, Event, Events, Trust};
use chat_protocol::v1::{self, ConversationKind, ReceiptKind};
use chat_server::config::{Config, PUBLIC_DEV_SECRET};
use chat_server::redis_server::{self, RedisServer};
use chat_server::store::{Direction, MessageStore, Range, Store};
use common::text;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_nodes_in_one_order() {
    let c = Cluster::start().await;
    let users = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    for (i, u) in users.iter().enumerate() {
        clients.push(c.connect(u, "advocate", i).await);
    }
    // Enough groups that their owners land on every node.
    let mut convs = Vec::new();
    let mut owners = HashSet::new();
    while owners.len() < 3 || convs.len() < 3 {
        let conv = create(&clients[0].0, ConversationKind::Group, &["bob", "carol"]).await;
        owners.insert(c.owner_of(conv));
        convs.push(conv);
        assert!(convs.len() < 40, "owners never spread: {owners:?}");
    }
    // Everyone sends in every group, concurrently, from their own node.
    let per_user = 5;
    let mut tasks = Vec::new();
    for (i, (client, _)) in clients.iter().enumerate() {
        let client = client.clone();
        let convs = convs.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..per_user {
                for &conv in &convs {
                    client.send_text(conv, &format!("{} {k}", users[i])).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = per_user * users.len();
    for &conv in &convs {
        let stored = c.stored(conv).await;
        assert_eq!(stored.len(), n, "conversation {conv} (owner {})", c.owner_of(conv));
    }
    let mut logs: Vec<BTreeMap<u64, Vec<v1::Message>>> = Vec::new();
    for (_, ev) in clients.iter_mut() {
        let mut log: BTreeMap<u64, Vec<v1::Message>> = convs.iter().map(|c| (*c, Vec::new())).collect();
        while log.values().any(|l| l.len() < n) {
            let m = next_where(ev, |e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .await;
            log.entry(m.conversation_id).or_default().push(m);
        }
        logs.push(log);
    }
    for &conv in &convs {
        let order: Vec<(u64, String)> = c.stored(conv).await.iter().map(|m| (m.seq, text(m))).collect();
        for (i, log) in logs.iter().enumerate() {
            assert_exactly_once_in_order(users[i], &log[&conv], n);
            let seen: Vec<(u64, String)> = log[&conv].iter().map(|m| (m.seq, text(m))).collect();
            assert_eq!(seen, order, "{} sees the one order of conversation {conv}", users[i]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_conversation_loses_and_repeats_nothing() {
    let mut c = Cluster::start().await;
    let users = ["alice", "bob", "carol"];
    let (creator, _) = c.connect("dave", "advocate", 0).await;
    let conv = create(&creator, ConversationKind::Group, &users).await;
    let victim = c.owner_of(conv);
    let mut clients = Vec::new();
    for (i, u) in users.iter().enumerate() {
        // One user on each node, so the owner's node has one too.
        clients.push(c.connect(u, "advocate", i).await);
    }
    let per_user = 30;
    let mut tasks = Vec::new();
    for (i, (client, _)) in clients.iter().enumerate() {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in 0..per_user {
                let ok = client.send_text(conv, &format!("{} {k}", users[i])).await.unwrap();
                acked.push(ok.seq);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill(victim).await;
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(tokio::time::timeout(Duration::from_secs(60), t).await.expect("sends finish").unwrap());
    }
    let n = per_user * users.len();
    acked.sort_unstable();
    assert_eq!(acked, (1..=n as u64).collect::<Vec<_>>(), "every send acked once, seqs 1..={n} without holes");
    // The store: every seq once (the fence), every client message once.
    let stored = c.stored(conv).await;
    assert_eq!(stored.len(), n);
    let ids: HashSet<(String, String)> =
        stored.iter().map(|m| (m.sender_id.clone(), m.client_msg_id.clone())).collect();
    assert_eq!(ids.len(), n, "no message stored twice");
    let order: Vec<(u64, String)> = stored.iter().map(|m| (m.seq, text(m))).collect();
    for (i, (_, ev)) in clients.iter_mut().enumerate() {
        let got = messages(ev, conv, n).await;
        assert_exactly_once_in_order(users[i], &got, n);
        let seen: Vec<(u64, String)> = got.iter().map(|m| (m.seq, text(m))).collect();
        assert_eq!(seen, order, "{} sees the stored order", users[i]);
        // And nothing more arrives (no duplicate after the last).
        common::server::assert_quiet(ev, conv, Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_nodes_and_a_killed_node_goes_offline() {
    let mut c = Cluster::start().await;
    let (carol, mut c_ev) = c.connect("carol", "advocate", 2).await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    // A group carol made: alice is shown to its members (a private conversation
    // from carol would show her only once she answered).
    create(&carol, ConversationKind::Group, &["alice"]).await;
    let presence = |online: bool| {
        move |e: Event| match e {
            Event::Presence(p) if p.user_id == "alice" && p.online == online => Some(p),
            _ => None,
        }
    };
    // Alice was online before the conversation existed: carol asks.
    let p = carol.get_presence(vec!["alice".into()]).await.unwrap();
    assert!(p[0].online && p[0].devices == 1, "alice is online on node A: {p:?}");
    alice.close().await;
    next_where(&mut c_ev, presence(false)).await;
    // Back, on node B: online again, seen on node C.
    let mut cfg = c.client_config("alice", "advocate", 1);
    cfg.fallback_addrs.clear(); // when node B dies she stays away
    let (_alice, _a_ev) = Client::connect(cfg).await.unwrap();
    next_where(&mut c_ev, presence(true)).await;
    // Node B crashes: no goodbye, no cleanup; alice goes offline by herself.
    let killed = tokio::time::Instant::now();
    c.kill(1).await;
    next_where(&mut c_ev, presence(false)).await;
    let took = killed.elapsed();
    assert!(
        // (The slack covers stopping node B's threads, which the clock includes.)
        took <= Duration::from_millis(NODE_TTL_MS + 3 * HEARTBEAT_MS + 1_500),
        "offline within node_ttl + a heartbeat or so, took {took:?}"
    );
    let p = carol.get_presence(vec!["alice".into()]).await.unwrap();
    assert!(!p[0].online, "{p:?}");
}

/// Redis goes away and comes back empty: nothing stored is lost, a node keeps
/// serving the conversations it owns, a send to another node's conversation
/// waits (retried by the SDK) until Redis is back, and live delivery resumes
/// with the gap filled from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_degrades_and_recovers() {
    let mut c = Cluster::start().await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    let (bob, mut b_ev) = c.connect("bob", "advocate", 1).await;
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 0).await;
    next_where(&mut b_ev, |e| match e {
        Event::Conversation(s) if s.conversation.as_ref().is_some_and(|x| x.id == conv) => Some(()),
        _ => None,
    })
    .await;
    alice.send_text(conv, "before").await.unwrap();
    assert_eq!(text(&messages(&mut b_ev, conv, 1).await[0]), "before");
    // Outage: alice's node owns the conversation and keeps taking her messages.
    let mut redis = c.redis.take().unwrap();
    let restart = std::thread::spawn(move || {
        redis.restart_after(Duration::from_millis(1_500)).unwrap();
        redis
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for k in 0..3 {
        let ok = tokio::time::timeout(Duration::from_secs(5), alice.send_text(conv, &format!("during {k}"))).await;
        assert!(ok.expect("the owner node serves its conversation without Redis").is_ok());
    }
    // Bob's send needs the owner node: it waits for Redis, then goes through.
    let bob_send = tokio::spawn({
        let bob = bob.clone();
        async move { bob.send_text(conv, "from bob").await }
    });
    c.redis = Some(restart.join().unwrap());
    let ok = tokio::time::timeout(WAIT, bob_send).await.expect("bob's send completes after the outage").unwrap();
    let bob_seq = ok.unwrap().seq;
    alice.send_text(conv, "after").await.unwrap();
    let total = 6;
    assert_eq!(c.stored(conv).await.len(), total);
    // Bob gets everything after "before", exactly once, in order (his own
    // message placed by its ack).
    let got = messages(&mut b_ev, conv, total - 1).await;
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (2..=total as u64).collect::<Vec<_>>(), "bob's own is seq {bob_seq}");
}

/// A node that missed a user coming online (pub/sub lost it) still shows the
/// truth: its snapshot reads the presence keys, and when the user leaves, it
/// checks the keys and announces offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_survives_lost_pubsub() {
    let c = Cluster::start().await;
    let (carol, mut c_ev) = c.connect("carol", "advocate", 2).await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    // A group carol made: alice is shown to its members (a private conversation
    // from carol would show her only once she answered).
    create(&carol, ConversationKind::Group, &["alice"]).await;
    alice.close().await;
    presence_change(&mut c_ev, "alice", false).await;
    // Alice comes back while every subscriber keeps being cut: her "online"
    // never reaches node C by pub/sub.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = cut_subscribers_until(c.redis_port(), stop.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(cutter.join().unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = carol.get_presence(vec!["alice".into()]).await.unwrap();
    assert!(p[0].online, "the presence keys know: {p:?}");
    alice.close().await;
    presence_change(&mut c_ev, "alice", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_read_receipts_cross_nodes() {
    let c = Cluster::start().await;
    let (alice, mut a_ev) = c.connect("alice", "advocate", 0).await;
    let (bob, mut b_ev) = c.connect("bob", "client", 1).await;
    // A conversation owned by the third node, so both go through Redis.
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 2).await;
    // Bob's session on node B attaches when it hears of the conversation
    // (from node C, through Redis); typing before that is not for him.
    next_where(&mut b_ev, |e| match e {
        Event::Conversation(s) if s.conversation.as_ref().is_some_and(|x| x.id == conv) => Some(()),
        _ => None,
    })
    .await;
    alice.set_typing(conv, true).await.unwrap();
    let t = next_where(&mut b_ev, |e| match e {
        Event::Typing(t) if t.conversation_id == conv => Some(t),
        _ => None,
    })
    .await;
    assert!(t.typing && t.user_id == "alice");
    // The message ends the indicator. The indicator goes as a datagram, the
    // message on the stream: either may arrive first.
    alice.send_text(conv, "hello").await.unwrap();
    let (mut stopped, mut hello) = (None, None);
    while stopped.is_none() || hello.is_none() {
        match next_where(&mut b_ev, |e| match e {
            e @ (Event::Typing(_) | Event::Message(_)) => Some(e),
            _ => None,
        })
        .await
        {
            Event::Typing(t) if t.conversation_id == conv => stopped = Some(t.typing),
            Event::Message(m) if m.conversation_id == conv => hello = Some(text(&m)),
            _ => {}
        }
    }
    assert_eq!(stopped, Some(false));
    assert_eq!(hello.as_deref(), Some("hello"));
    bob.mark_read(conv, 1).await.unwrap();
    let r = next_where(&mut a_ev, |e| match e {
        Event::Receipt(r) if r.conversation_id == conv && r.kind == ReceiptKind::Read as i32 => Some(r),
        _ => None,
    })
    .await;
    assert_eq!((r.user_id.as_str(), r.seq), ("bob", 1));
    let members = alice.get_members(conv).await.unwrap();
    let b = members.members.iter().find(|m| m.user_id == "bob").unwrap();
    assert_eq!(b.read_seq, 1, "the read watermark is stored by the owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_pubsub_messages_are_filled_from_the_store() {
    let c = Cluster::start().await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    let (_bob, mut b_ev) = c.connect("bob", "advocate", 1).await;
    let (_carol, mut c_ev) = c.connect("carol", "advocate", 2).await;
    // Owned by alice's node: every delivery to bob and carol crosses Redis.
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob", "carol"], 0).await;
    let n = 30;
    let mut killed = 0;
    for k in 0..n {
        if k % 7 == 3 || k == n - 1 {
            // The subscribers are cut right before this send: its fan-out
            // (and the last one's) is lost on the way to the other nodes.
            killed += kill_subscribers(c.redis_port());
        }
        alice.send_text(conv, &format!("m{k}")).await.unwrap();
    }
    assert!(killed >= 3, "subscriber connections were cut ({killed})");
    for (who, ev) in [("bob", &mut b_ev), ("carol", &mut c_ev)] {
        let got = messages(ev, conv, n).await;
        assert_exactly_once_in_order(who, &got, n);
        assert_eq!(text(got.last().unwrap()), format!("m{}", n - 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_message_its_owner_died_before_fanning_out_still_arrives() {
    let mut c = Cluster::start().await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    let (_bob, mut b_ev) = c.connect("bob", "advocate", 1).await;
    // Owned by alice's node: bob's copy crosses Redis.
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 0).await;
    alice.send_text(conv, "m0").await.unwrap();
    assert_eq!(text(&messages(&mut b_ev, conv, 1).await[0]), "m0");
    // The last message is stored and acked but its fan-out never leaves
    // (Redis refuses every PUBLISH meanwhile), and its owner dies before it
    // nudges the head; nobody sends again, so no later message or new owner
    // would ever reveal the gap.
    let port = c.redis_port();
    let acl = |rule: &str| redis_server::command(port, &["ACL", "SETUSER", "default", rule]).unwrap();
    assert_eq!(acl("-publish").trim(), "+OK");
    alice.send_text(conv, "m1").await.unwrap();
    c.kill(0).await;
    assert_eq!(acl("+publish").trim(), "+OK");
    let got = messages(&mut b_ev, conv, 1).await;
    assert_eq!((got[0].seq, text(&got[0])), (2, "m1".to_string()), "filled once the owner's loss is seen");
    common::server::assert_quiet(&mut b_ev, conv, Duration::from_millis(300)).await;
}

/// Two nodes on two different Redis servers (a partition that never heals:
/// each believes it alone is live) on one shared store.
struct SplitPair {
    _redis: (RedisServer, RedisServer),
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    nodes: [chat_server::ServerHandle; 2],
}

impl SplitPair {
    async fn start() -> Self {
        let redis = (RedisServer::start().unwrap(), RedisServer::start().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = shared_store(dir.path()).await;
        let a = start_node("node-a", &redis.0.url(), &store, &dir.path().join("a"));
        let b = start_node("node-b", &redis.1.url(), &store, &dir.path().join("b"));
        SplitPair { _redis: redis, _dir: dir, store, nodes: [a, b] }
    }

    async fn connect(&self, node: usize, user: &str) -> (Client, Events) {
        let h = &self.nodes[node];
        let token = chat_server::auth::mint_hs256(
            PUBLIC_DEV_SECRET,
            user,
            &format!("{user} name"),
            "advocate",
            Duration::from_secs(600),
        );
        let cfg = ClientConfig::new(h.addr().to_string(), token, Trust::cert_hash_hex(h.cert_sha256()).unwrap());
        Client::connect(cfg).await.unwrap()
    }

    async fn stop(self) {
        let SplitPair { nodes, store, _redis, _dir } = self;
        tokio::task::spawn_blocking(move || {
            for n in nodes {
                n.shutdown();
            }
            store.close();
        })
        .await
        .unwrap();
    }
}

/// Split views of the membership, at their worst: two nodes on two different
/// Redis servers (a partition that never heals) each believe they alone are
/// live, so both sequence the same conversation on the shared store. The
/// store's `(conversation, seq)` uniqueness fences them: every send is acked
/// with a seq nobody else got, and nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_owners_never_assign_one_seq_twice() {
    let p = SplitPair::start().await;
    let (alice, _a_ev) = p.connect(0, "alice").await;
    let (bob, _b_ev) = p.connect(1, "bob").await;
    let conv = create(&alice, ConversationKind::Group, &["bob"]).await;
    let per_user = 40;
    let mut tasks = Vec::new();
    for (who, c) in [("alice", alice.clone()), ("bob", bob.clone())] {
        tasks.push(tokio::spawn(async move {
            // Many in flight at once, so the two sequencers collide.
            let sends = (0..per_user).map(|k| {
                let c = c.clone();
                async move { c.send_text(conv, &format!("{who} {k}")).await.unwrap().seq }
            });
            futures_util::future::join_all(sends).await
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(tokio::time::timeout(Duration::from_secs(60), t).await.expect("sends finish").unwrap());
    }
    acked.sort_unstable();
    let n = 2 * per_user;
    assert_eq!(acked, (1..=n as u64).collect::<Vec<_>>(), "every send acked with its own seq");
    let range = Range { after: 0, before: u64::MAX, limit: 1_000_000, direction: Direction::Forward };
    let rows = p.store.read_range(conv, range).await.unwrap();
    assert_eq!(rows.len(), n);
    let ids: HashSet<Vec<u8>> = rows
        .iter()
        .map(|(_, b)| {
            use prost::Message as _;
            let m = v1::Message::decode(b.as_ref()).unwrap();
            format!("{} {}", m.sender_id, m.client_msg_id).into_bytes()
        })
        .collect();
    assert_eq!(ids.len(), n, "no message stored twice");
    drop((alice, bob));
    p.stop().await;
}

#[tokio::test]
async fn a_node_without_redis_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = shared_store(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = Config { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.path().into(), ..Default::default() };
    cfg.auth.hs256_secret = PUBLIC_DEV_SECRET.into();
    cfg.cluster.redis_url = format!("redis://127.0.0.1:{port}");
    cfg.cluster.secret = CLUSTER_SECRET.into();
    let started = std::time::Instant::now();
    let (mut tls_cfg, tls_store) = (cfg.clone(), store.clone());
    let e = tokio::task::spawn_blocking(move || chat_server::start_with_store(cfg, store).err().expect("refused"))
        .await
        .unwrap()
        .to_string();
    assert!(e.contains("cannot reach Redis"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "it says so promptly");
    // Over TLS likewise (the other refusals over TLS: tests/cluster_redis.rs).
    tls_cfg.cluster.redis_url = "rediss://127.0.0.1:1".into();
    let e =
        tokio::task::spawn_blocking(move || chat_server::start_with_store(tls_cfg, tls_store).err().expect("refused"))
            .await
            .unwrap()
            .to_string();
    assert!(e.contains("Redis at rediss://127.0.0.1:1"), "{e}");
}

#[tokio::test]
async fn a_cluster_on_per_node_embedded_stores_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.path().into(), ..Default::default() };
    cfg.cluster.redis_url = "redis://127.0.0.1:1".into();
    let e = chat_server::start(cfg.clone()).err().expect("refused").to_string();
    assert!(e.contains("each node would keep its own copy"), "{e}");
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.contains("store.backend = \"scylla\""), "{e}");
}

/// A member removed on the owner's node while the removal's event to their
/// node is lost (every subscriber cut): within the reconciliation bound
/// (resubscribe, then a session check each second; a full check every 5 s
/// anyway) their session on the other node stops getting the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_whose_removal_was_lost_gets_nothing_more() {
    let c = Cluster::start().await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    let (_bob, mut b_ev) = c.connect("bob", "advocate", 1).await;
    let (_carol, mut c_ev) = c.connect("carol", "advocate", 1).await;
    // Owned by alice's node: the removal happens there, bob's session is on B.
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob", "carol"], 0).await;
    alice.send_text(conv, "before").await.unwrap();
    for ev in [&mut b_ev, &mut c_ev] {
        assert_eq!(text(&messages(ev, conv, 1).await[0]), "before");
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = cut_subscribers_until(c.redis_port(), stop.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    alice.remove_member(conv, "bob").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(cutter.join().unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for k in 0..5 {
        alice.send_text(conv, &format!("after {k}")).await.unwrap();
    }
    let got = messages(&mut c_ev, conv, 5).await;
    assert_eq!(text(&got[4]), "after 4", "carol, on bob's node, still gets them");
    let leaked = tokio::time::timeout(Duration::from_millis(1_500), async {
        loop {
            match b_ev.next().await {
                Some(Event::Message(m)) if m.conversation_id == conv => return m,
                Some(_) => {}
                None => std::future::pending().await,
            }
        }
    })
    .await;
    assert!(leaked.is_err(), "a removed member got {:?}", leaked.map(|m| text(&m)));
}

/// Broken or hostile envelopes on `chat:fanout` (a nudge to `u64::MAX`, a
/// message far past the stored head, garbage), even sealed with the cluster
/// secret, neither close sessions nor stop later deliveries; what is not
/// sealed with it (a client of Redis that is not a node) is dropped and
/// counted, whatever it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_fanouts_never_close_sessions() {
    let c = Cluster::start().await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    let (_bob, mut b_ev) = c.connect("bob", "advocate", 1).await;
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 0).await;
    alice.send_text(conv, "one").await.unwrap();
    assert_eq!(text(&messages(&mut b_ev, conv, 1).await[0]), "one");
    let port = c.redis_port();
    let fake = bytes::Bytes::from_static(b"\x00\x00\x00\x02\x0a\x00");
    let sealed = |head, seq| chat_server::cluster::sealed_forged_fanout(CLUSTER_SECRET, "evil", conv, head, seq);
    publish_raw(port, "chat:fanout", &sealed(u64::MAX, None));
    publish_raw(port, "chat:fanout", &sealed(0, Some((u64::MAX, fake.clone()))));
    publish_raw(port, "chat:fanout", &sealed(0, Some((1_000_000, fake.clone()))));
    // Not sealed, or sealed with another secret: dropped by every node.
    let rejected = |c: &Cluster| c.nodes.iter().flatten().filter_map(|n| n.cluster_rejected()).sum::<u64>();
    let before = rejected(&c);
    publish_raw(port, "chat:fanout", &chat_server::cluster::forged_fanout("evil", conv, 0, Some((2, fake.clone()))));
    let other = "a secret that is not the cluster's, 32 bytes";
    publish_raw(
        port,
        "chat:fanout",
        &chat_server::cluster::sealed_forged_fanout(other, "evil", conv, 0, Some((2, fake))),
    );
    publish_raw(port, "chat:fanout", b"\xff\xff\xffgarbage");
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.send_text(conv, "two").await.unwrap();
    let got = next_where(&mut b_ev, |e| match e {
        Event::Disconnected { reason, .. } => panic!("bob's session was closed: {reason}"),
        Event::Message(m) if m.conversation_id == conv => Some(m),
        _ => None,
    })
    .await;
    assert_eq!((got.seq, text(&got).as_str()), (2, "two"));
    // The garbage and the two forgeries, at each of the nodes.
    assert!(rejected(&c) >= before + 3 * 3, "{} rejected", rejected(&c) - before);
}

/// Two live nodes never share a node id: the second refuses to start and
/// says why. A crashed node's id is free again after `node_ttl_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_in_use_is_refused() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = shared_store(dir.path()).await;
    let first = start_node("twin", &redis.url(), &store, &dir.path().join("a"));
    let e = try_start_node("twin", &redis.url(), &store, &dir.path().join("b")).err().expect("refused");
    assert!(format!("{e:#}").contains("already uses node id \"twin\""), "{e:#}");
    tokio::task::spawn_blocking(move || first.kill()).await.unwrap();
    // The crashed node's claim expires: a restart with its id goes through.
    let again = try_start_node("twin", &redis.url(), &store, &dir.path().join("c")).expect("restarted");
    again.shutdown();
    store.close();
}

/// Split owners again: the conversation is archived through one sequencer
/// while the other still holds it open. The other's next send hits the seq
/// fence, reloads, and must see the archive: nothing is stored after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_send_rechecks_archive_and_membership() {
    let p = SplitPair::start().await;
    let (alice, _a_ev) = p.connect(0, "alice").await;
    let (bob, _b_ev) = p.connect(1, "bob").await;
    let conv = create(&alice, ConversationKind::Group, &["bob"]).await;
    // Both sequencers load the conversation, then alice's (fenced once) moves past bob's.
    bob.send_text(conv, "b1").await.unwrap();
    alice.send_text(conv, "a1").await.unwrap();
    alice.archive(conv, false).await.unwrap();
    let r = bob.send_text(conv, "b2").await;
    assert!(r.is_err(), "a send to an archived conversation was stored: {r:?}");
    let range = Range { after: 0, before: u64::MAX, limit: 1_000_000, direction: Direction::Forward };
    let texts: Vec<String> = p
        .store
        .read_range(conv, range)
        .await
        .unwrap()
        .iter()
        .map(|(_, b)| {
            use prost::Message as _;
            text(&v1::Message::decode(b.as_ref()).unwrap())
        })
        .collect();
    assert!(!texts.contains(&"b2".to_string()), "{texts:?}");
    drop((alice, bob));
    p.stop().await;
}

/// Carol (node C) and Alice (node A) share a conversation; Alice goes offline
/// and comes back, and Carol has seen both. Returns both clients.
async fn alice_back_online_for_carol(c: &Cluster) -> (Client, Events, Client, Events) {
    let (carol, mut c_ev) = c.connect("carol", "advocate", 2).await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    // A group carol made: alice is shown to its members (a private conversation
    // from carol would show her only once she answered).
    create(&carol, ConversationKind::Group, &["alice"]).await;
    alice.close().await;
    presence_change(&mut c_ev, "alice", false).await;
    let (alice, a_ev) = c.connect("alice", "advocate", 0).await;
    presence_change(&mut c_ev, "alice", true).await;
    (carol, c_ev, alice, a_ev)
}

/// A lost "offline" (the count 0 of a user's last device on another node)
/// keeps nobody online: the periodic presence resync (every 30 heartbeats)
/// reads the presence keys again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_offline_is_corrected_by_the_presence_resync() {
    let c = Cluster::start().await;
    let (carol, mut c_ev, alice, _a_ev) = alice_back_online_for_carol(&c).await;
    // Her "offline" is lost on the way to node C.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = cut_subscribers_until(c.redis_port(), stop.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    alice.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(cutter.join().unwrap() > 0);
    let started = std::time::Instant::now();
    presence_change(&mut c_ev, "alice", false).await;
    assert!(started.elapsed() < Duration::from_millis(30 * HEARTBEAT_MS + 2_000), "{:?}", started.elapsed());
    let p = carol.get_presence(vec!["alice".into()]).await.unwrap();
    assert!(!p[0].online, "{p:?}");
}

/// A node that drops out of the others' live sets for a while (its heartbeat
/// entry aged out: a slow node, a partition from Redis) has its users shown
/// offline there; when it is back, its users are online again without any of
/// them reconnecting (the nodes publish their counts again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_node_back_in_the_live_set_are_online_again() {
    let c = Cluster::start().await;
    let (_carol, mut c_ev, _alice, _a_ev) = alice_back_online_for_carol(&c).await;
    // Node A's heartbeat entry keeps being aged out, as if it had been silent.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ager = {
        let (stop, port) = (stop.clone(), c.redis_port());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = redis_server::command(port, &["ZADD", "chat:nodes", "0", NODE_IDS[0]]);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    presence_change(&mut c_ev, "alice", false).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ager.join().unwrap();
    presence_change(&mut c_ev, "alice", true).await;
}
