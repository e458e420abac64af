//! Session control in a cluster: 3 real nodes in this process sharing one
//! store and a real `redis-server`, clients through the real SDK over QUIC.
//! An admin on one node revokes or disables a user whose sessions live on
//! the other nodes: they are closed there at once, with the precise code.

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
