//! Fan-out only where members are: 3 real `chatd` nodes in this process on
//! one shared store and a real `redis-server` (the harness of
//! `cluster.rs`, `common::cluster`), clients through the real SDK over QUIC.
//! A node with no member of a conversation connected receives none of its
//! fan-outs; a member who connects there gets every message from then on,
//! live, none missing and none twice.

mod common;
use chat_client::{Client, Event, Events};
use chat_protocol::v1::ConversationKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::*;

/// Fan-outs `node` received from the other nodes so far.
fn received(c: &Cluster, node: usize) -> u64 {
    c.nodes[node].as_ref().unwrap().cluster_fanouts_received().unwrap()
}

/// A group of alice (node A, which owns it) and `others`, bob connected on
/// node B; returns once bob knows the conversation.
async fn group_on_a_and_b(c: &Cluster, others: &[&str]) -> (Client, Client, Events, u64) {
    let (alice, _) = c.connect("alice", "advocate", 0).await;
    let (bob, mut b_ev) = c.connect("bob", "advocate", 1).await;
    let conv = c.create_owned_by(&alice, ConversationKind::Group, others, 0).await;
    next_where(&mut b_ev, |e| match e {
        Event::Conversation(s) if s.conversation.as_ref().is_some_and(|x| x.id == conv) => Some(()),
        _ => None,
    })
    .await;
    (alice, bob, b_ev, conv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_members_receives_none_of_the_fanouts() {
    let c = Cluster::start().await;
    let (alice, bob, mut b_ev, conv) = group_on_a_and_b(&c, &["bob", "carol"]).await;
    let (c_before, b_before) = (received(&c, 2), received(&c, 1));
    // Messages both ways, typing and a read receipt: all of it crosses Redis
    // from A to B only.
    for k in 0..20 {
        alice.send_text(conv, &format!("a{k}")).await.unwrap();
    }
    assert_eq!(messages(&mut b_ev, conv, 20).await.len(), 20);
    let ok = bob.send_text(conv, "b").await.unwrap();
    alice.set_typing(conv, true).await.unwrap();
    alice.mark_read(conv, ok.seq).await.unwrap();
    // The owner nudges recently active heads each second for 3 s: those too.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(received(&c, 1) >= b_before + 20, "B, where bob is, received the fan-outs");
    assert_eq!(received(&c, 2), c_before, "C, where no member is connected, received none of them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_connecting_on_a_new_node_gets_every_message_at_once() {
    let c = Cluster::start().await;
    let (alice, _bob, _b_ev, conv) = group_on_a_and_b(&c, &["bob", "carol"]).await;
    let c_before = received(&c, 2);
    // Alice sends all along, from node A; each send's start and ack are kept.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (alice, stop) = (alice.clone(), stop.clone());
        tokio::spawn(async move {
            let mut log = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = alice.send_text(conv, &format!("m{k}")).await.unwrap();
                log.push((ok.seq, started, Instant::now()));
                k += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            log
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received(&c, 2), c_before, "C receives nothing before carol connects");
    let (_carol, mut ev) = c.connect("carol", "advocate", 2).await;
    let connected = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(3), ev.next()).await {
                Ok(Some(Event::Message(m))) if m.conversation_id == conv => got.push((m.seq, Instant::now())),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return got,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let log = sender.await.unwrap();
    let got = receiver.await.unwrap();
    let last = log.last().unwrap().0;
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    let first = *seqs.first().expect("carol received messages");
    assert_eq!(
        seqs,
        (first..=last).collect::<Vec<_>>(),
        "carol: from where she started to the last, each once, in order"
    );
    // She started where the store was when she connected: everything sent
    // after she connected is hers.
    let first_after = log.iter().find(|(_, started, _)| *started > connected).expect("sends after connect").0;
    assert!(first <= first_after, "carol starts at {first}, after {first_after} which was sent after she connected");
    // Live, not filled later: each within a second of its ack (a node that
    // was never told would hear only at its next whole list or fill).
    for (seq, at) in &got {
        let acked = log.iter().find(|(s, _, _)| s == seq).expect("alice's message").2;
        let late = at.saturating_duration_since(acked);
        assert!(late < Duration::from_secs(1), "seq {seq} reached carol {late:?} after its ack");
    }
}
