//! Session control in a cluster: 3 real nodes in this process sharing one
//! store and a real `redis-server`, clients through the real SDK over QUIC.
//! An admin on one node revokes or disables a user whose sessions live on
//! the other nodes: they are closed there at once, with the precise code.
//! Erasures asked on one node reach conversations other nodes own.

mod common;
use chat_client::{Client, Event, Events};
use chat_protocol::v1::ErrorCode;
use common::cluster::*;

/// The error code a client's connection ended with, and whether it retries.
async fn disconnected(ev: &mut Events) -> (Option<i32>, bool) {
    next_where(ev, |e| match e {
        Event::Disconnected { error, will_retry, .. } => Some((error.map(|e| e.code), will_retry)),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_and_disable_close_sessions_on_the_other_nodes() {
    let c = Cluster::start().await;
    let (admin, _ad) = c.connect("root", "admin", 0).await;
    let (_phone, mut p_ev) = c.connect("bob", "client", 1).await;
    let (_laptop, mut l_ev) = c.connect("bob", "client", 2).await;
    admin.revoke_sessions("bob", "stolen laptop").await.unwrap();
    for ev in [&mut p_ev, &mut l_ev] {
        assert_eq!(disconnected(ev).await, (Some(ErrorCode::SessionRevoked as i32), false));
    }
    // Signed in again on node 2, then disabled from node 0: closed there, refused on node 1.
    let (_bob, mut b_ev) = c.connect("bob", "client", 2).await;
    admin.disable_user("bob", "offboarding").await.unwrap();
    assert_eq!(disconnected(&mut b_ev).await, (Some(ErrorCode::UserDisabled as i32), false));
    let mut cfg = c.client_config("bob", "client", 1);
    cfg.fallback_addrs.clear();
    match Client::connect(cfg).await {
        Err(chat_client::ClientError::Server(w)) => assert_eq!(w.code(), Some(ErrorCode::UserDisabled)),
        other => panic!("bob was not refused: {:?}", other.map(|_| ())),
    }
}

/// A GDPR erasure asked on one node tombstones the user's messages in
/// conversations other nodes own: one the user left and one archived (the
/// erasure travels to the owner as an erasure, not a client's delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_reaches_conversations_other_nodes_own_the_user_left_or_archived() {
    use chat_protocol::v1::ConversationKind;
    let c = Cluster::start().await;
    let (admin, _ad) = c.connect("root", "admin", 0).await;
    let (alice, _a) = c.connect("alice", "advocate", 0).await;
    let (bob, _b) = c.connect("bob", "client", 0).await;
    let left = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 1).await;
    let archived = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 2).await;
    let mut seqs = Vec::new();
    for conv in [left, archived] {
        seqs.push((conv, bob.send_text(conv, "bob's private words").await.expect("send").seq));
    }
    bob.leave(left).await.expect("leave");
    alice.archive(archived, false).await.expect("archive");
    let result = admin.erase_user("bob", "art. 17").await.expect("erase");
    assert_eq!((result.messages_erased, result.messages_failed), (2, 0), "{result:?}");
    for (conv, seq) in seqs {
        let history = alice.history(conv, 0, 0, 50).await.expect("history").messages;
        let m = history.iter().find(|m| m.seq == seq).expect("a tombstone");
        assert!(m.deleted && m.body.is_none(), "{m:?}");
    }
}

/// A conversation's erasure asked on one node runs at the node that owns
/// the conversation: emptied and archived there, and its members on a
/// third node see it archived and empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversations_erasure_runs_at_the_node_that_owns_it() {
    use chat_protocol::v1::ConversationKind;
    let c = Cluster::start().await;
    let (admin, _ad) = c.connect("root", "admin", 0).await;
    let (alice, _a) = c.connect("alice", "advocate", 2).await;
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 1).await;
    let last = alice.send_text(conv, "the settlement figure").await.expect("send").seq;
    let done = admin.erase_conversation(conv, "matter closed").await.expect("erase");
    assert_eq!((done.conversation_id, done.messages), (conv, last), "{done:?}");
    let h = alice.history(conv, 0, 0, 50).await.expect("history");
    assert!(h.messages.is_empty() && h.purged_through == last, "{h:?}");
    match alice.send_text(conv, "still there?").await {
        Err(chat_client::ClientError::Server(w)) => assert_eq!(w.code(), Some(ErrorCode::Archived)),
        other => panic!("a send to an erased conversation: {:?}", other.map(|ok| ok.seq)),
    }
}
