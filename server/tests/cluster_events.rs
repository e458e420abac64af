//! Edits, deletes and reactions in a cluster: 3 real nodes in this process
//! sharing one store (ScyllaDB with `CHAT_SCYLLA_NODES`, else one embedded
//! handle) and a real `redis-server`, clients through the real SDK over QUIC.
//! A change made on a node that does not own the conversation is forwarded
//! to the owner, and reaches members on the other nodes in order. A user's
//! GDPR export, asked on any node, holds their entries of conversations
//! homed on every node, edited ones with their earlier text (on the CQL
//! node too: this file runs there in `scripts/test.sh`).

mod common;
use chat_client::{ClientError, Event, MessageView};
use chat_protocol::v1::{ConversationKind, ErrorCode, MessageKind};
use chat_server::store::MessageStore;
use common::archive::{json_lines, untar};
use common::cluster::*;
use common::text;
use prost::Message as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_forwarded_to_the_owner_reach_other_nodes_and_the_store() {
    let c = Cluster::start().await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 1).await;
    let (bob, mut b_ev) = c.connect("bob", "client", 2).await;
    let m = alice.send_text(conv, "helo").await.unwrap().seq;
    alice.edit(conv, m, "hello").await.unwrap();
    alice.react(conv, m, "👍", true).await.unwrap();
    match bob.edit(conv, m, "mine now").await {
        Err(ClientError::Server(w)) => {
            assert_eq!(w.code(), Some(ErrorCode::NotYourMessage), "the precise code crosses nodes")
        }
        other => panic!("{other:?}"),
    }
    let mut view = MessageView::new();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let e = next_where(&mut b_ev, |e| match &e {
            Event::Message(x) | Event::Changed(x) if x.conversation_id == conv => Some(e),
            _ => None,
        })
        .await;
        view.apply_event(&e);
        if let Event::Message(x) | Event::Changed(x) = e {
            kinds.push((x.seq, x.kind));
        }
    }
    let k = |k: MessageKind| k as i32;
    assert_eq!(kinds, [(m, k(MessageKind::User)), (m + 1, k(MessageKind::Edit)), (m + 2, k(MessageKind::Reaction))]);
    assert_eq!(text(view.get(conv, m).unwrap()), "hello");
    // The store: the latest state in place, both earlier versions kept.
    let stored = c.stored(conv).await;
    assert_eq!(text(&stored[0]), "hello");
    assert_eq!(stored[0].reactions.len(), 1);
    let versions = c.store.message_versions(conv, m).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| (v.event_seq, v.changed_by.as_str())).collect::<Vec<_>>(),
        [(m + 1, "alice"), (m + 2, "alice")]
    );
    let original = chat_protocol::v1::Message::decode(&versions[0].prior[..]).unwrap();
    assert_eq!(text(&original), "helo", "the original text is kept for the audit trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_from_any_node_holds_the_users_entries_of_every_nodes_conversations() {
    let c = Cluster::start().await;
    let (alice, _a_ev) = c.connect("alice", "advocate", 0).await;
    let (bob, _b_ev) = c.connect("bob", "client", 2).await;
    let mut convs = Vec::new();
    for owner in 0..3 {
        let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], owner).await;
        let m = bob.send_text(conv, &format!("draft {owner}")).await.unwrap().seq;
        bob.edit(conv, m, &format!("final {owner}")).await.unwrap();
        alice.send_text(conv, "alice's words").await.unwrap();
        convs.push((conv, m));
    }
    let export = bob.export_user_data("").await.expect("bob's export on node C");
    // (create_owned_by makes conversations until one is homed on the node asked for.)
    assert!(export.ok.conversations >= 3, "{:?}", export.ok);
    assert_eq!(export.ok.messages, 6, "3 messages and 3 edits: {:?}", export.ok);
    let files: std::collections::BTreeMap<_, _> =
        untar(&export.bytes().await.expect("the archive")).into_iter().collect();
    let msgs = json_lines(&files["messages.jsonl"]);
    for (owner, (conv, m)) in convs.iter().enumerate() {
        let edited = msgs.iter().find(|x| x["conversation_id"] == *conv && x["seq"] == *m).expect("his message");
        assert_eq!(edited["body"]["text"], format!("final {owner}"), "owner {}", c.owner_of(*conv));
        assert_eq!(edited["earlier_versions"][0]["body"]["text"], format!("draft {owner}"));
    }
    assert!(!msgs.iter().any(|x| x["body"]["text"] == "alice's words"), "never another's words");
}
