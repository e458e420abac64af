//! The Rust SDK's outbox file (`ClientConfig::outbox_file`): sends made
//! while the server is away survive the application quitting, and go out
//! once, with their original client message ids, when it starts again.
//! Real server, real SDK over QUIC on loopback.

mod common;
use chat_client::{Client, ClientError, Transport};
use chat_protocol::v1::{self, ConversationKind};
use common::server::*;
use common::text;
use std::time::Duration;

fn send(conv: u64, id: &str, words: &str) -> v1::SendMessage {
    let body = v1::MessageBody { content: Some(v1::message_body::Content::Text(words.into())) };
    v1::SendMessage { conversation_id: conv, client_msg_id: id.into(), body: Some(body), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_messages_outlive_the_app_and_go_out_once_with_their_ids() {
    let mut s = Server::start();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("alice.outbox");
    let (_bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let alice_cfg = s.client_config("alice", "advocate", Transport::Quic).outbox_file(&path);
    let (alice, _a_ev) = Client::connect(alice_cfg.clone()).await.unwrap();
    let conv = create(&alice, ConversationKind::Private, "", "", &["bob"]).await;
    alice.send(send(conv, "first", "m0")).await.unwrap();
    assert_eq!(text(&messages(&mut b_ev, conv, 1).await[0]), "m0");

    // The server goes away; alice writes two more, then quits.
    let h = s.handle.take().unwrap();
    let addr = h.addr();
    tokio::task::spawn_blocking(move || h.shutdown()).await.unwrap();
    let mut pending = Vec::new();
    for (i, (id, words)) in [("keep-1", "m1"), ("keep-2", "m2")].into_iter().enumerate() {
        let a = alice.clone();
        pending.push(tokio::spawn(async move { a.send(send(conv, id, words)).await }));
        // In the file (and so queued) before the next is written.
        let on_disk = async {
            while std::fs::read(&path).unwrap_or_default().windows(5).filter(|w| *w == b"keep-").count() <= i {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), on_disk).await.expect("the send is on disk, unacked");
    }
    alice.close().await;
    for p in pending {
        assert_eq!(p.await.unwrap().unwrap_err(), ClientError::Closed, "the quitting app's waits end");
    }

    // The server is back; the app starts again with the same file.
    s.cfg.listen = addr;
    s.handle = Some(chat_server::start(s.cfg.clone()).unwrap());
    let (alice, _a_ev) = Client::connect(alice_cfg.clone()).await.unwrap();
    let got = messages(&mut b_ev, conv, 2).await;
    let seen: Vec<_> = got.iter().map(|m| (m.seq, m.client_msg_id.as_str(), text(m))).collect();
    assert_eq!(seen, vec![(2, "keep-1", "m1".to_string()), (3, "keep-2", "m2".to_string())]);
    // Acked: a third start sends nothing again.
    alice.close().await;
    let (alice, _a_ev) = Client::connect(alice_cfg).await.unwrap();
    assert_quiet(&mut b_ev, conv, Duration::from_millis(500)).await;
    let h = alice.history(conv, 0, 0, 10).await.unwrap();
    assert_eq!(h.messages.iter().map(text).collect::<Vec<_>>(), ["m0", "m1", "m2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_file_that_cannot_be_used_fails_the_connect_precisely() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // A folder where the file should be: it cannot be opened as one.
    let cfg = s.client_config("alice", "advocate", Transport::Quic).outbox_file(dir.path());
    match Client::connect(cfg).await {
        Err(ClientError::OutboxFile(e)) => assert!(e.contains("directory"), "{e}"),
        Err(e) => panic!("another error: {e:?}"),
        Ok(_) => panic!("connected with an outbox file it cannot use"),
    }
}
