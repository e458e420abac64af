//! Conformance cases of client message ids: the lookup, records that
//! point at a lost seq, and duplicates the append refuses.

use futures_util::future::join_all;

use super::harness::{ConformanceFactory, all, append_ok, expected, msg, msgs, read};
use crate::store::{MessageStore, NewMessage, StoreError};

/// A client id whose append lost its seq is not found (a backend that writes
/// the record before the message must check the message at that seq), and
/// is found at its seq once stored under another.
pub async fn idempotency_answers_only_stored_messages<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(45, 1..=3)).await;
    let mine = |seq| NewMessage { sender_id: "zed".into(), client_msg_id: "z-1".into(), ..msg(45, seq) };
    match store.append(vec![mine(3)]).await {
        Err(StoreError::SeqTaken { conversation_id: 45, seq: 3 }) => {}
        other => panic!("expected SeqTaken(45, 3), got {other:?}"),
    }
    assert_eq!(store.find_client_msg(45, "zed", "z-1").await.expect("find"), None, "seq 3 holds another message");
    let m3 = msg(45, 3);
    assert_eq!(store.find_client_msg(45, &m3.sender_id, &m3.client_msg_id).await.expect("find"), Some(3));
    append_ok(&store, vec![mine(4)]).await;
    assert_eq!(store.find_client_msg(45, "zed", "z-1").await.expect("find"), Some(4), "sequenced again");
    assert_eq!(read(&store, 45, all()).await.len(), 4);
}

/// The idempotency record maps (conversation, sender, client id) to a seq.
pub async fn idempotency_lookup<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    let with = |conv, seq, sender: &str, cmid: &str| NewMessage {
        sender_id: sender.into(),
        client_msg_id: cmid.into(),
        ..msg(conv, seq)
    };
    append_ok(
        &store,
        vec![
            with(40, 1, "alice", "a-1"),
            with(40, 2, "bob", "a-1"),
            with(40, 3, "alice", "a-2"),
            with(40, 4, "sys", ""),
        ],
    )
    .await;
    append_ok(&store, vec![with(41, 1, "alice", "a-3")]).await;

    let find = |conv, sender: &'static str, cmid: &'static str| {
        let store = &store;
        async move { store.find_client_msg(conv, sender, cmid).await.expect("find_client_msg") }
    };
    assert_eq!(find(40, "alice", "a-1").await, Some(1));
    assert_eq!(find(40, "bob", "a-1").await, Some(2), "same client id, other sender");
    assert_eq!(find(40, "alice", "a-2").await, Some(3));
    assert_eq!(find(41, "alice", "a-3").await, Some(1));
    assert_eq!(find(40, "alice", "a-3").await, None, "other conversation");
    assert_eq!(find(41, "alice", "a-1").await, None, "other conversation");
    assert_eq!(find(40, "carol", "a-1").await, None, "other sender");
    assert_eq!(find(40, "alice", "nope").await, None);
    assert_eq!(find(40, "sys", "").await, None, "no record for an empty client id");
    assert_eq!(find(42, "alice", "a-1").await, None);
}

/// A call holding client ids already stored writes nothing and names exactly
/// those messages, in call order, each with the seq it is stored at; the same
/// call without them then goes through. A taken seq is answered first.
pub async fn duplicates_write_nothing_and_are_named<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(46, 1..=3)).await;
    // A retry of stored message `of`, sequenced anew at `seq` (the owner forgot it).
    let retry = |of, seq| NewMessage { seq, ..msg(46, of) };
    let fresh = |seq, cmid: &str| NewMessage { client_msg_id: cmid.into(), ..msg(46, seq) };
    let call = vec![fresh(4, "new-4"), retry(2, 5), fresh(6, "new-6")];
    match store.append(call).await {
        Err(StoreError::Duplicates(pairs)) => assert_eq!(pairs, [(5, 2)], "exactly the retried message"),
        other => panic!("expected Duplicates([(5, 2)]), got {other:?}"),
    }
    assert_eq!(read(&store, 46, all()).await, expected(46, 1..=3), "nothing of the call");
    let sender4 = fresh(4, "new-4").sender_id;
    assert_eq!(store.find_client_msg(46, &sender4, "new-4").await.expect("find"), None, "no record either");

    // The same call without the duplicate, sequenced again.
    append_ok(&store, vec![fresh(4, "new-4"), fresh(5, "new-6")]).await;
    assert_eq!(read(&store, 46, all()).await, expected(46, 1..=5));
    let sender5 = fresh(5, "new-6").sender_id;
    assert_eq!(store.find_client_msg(46, &sender5, "new-6").await.expect("find"), Some(5));

    // Every duplicate of a call is named; the same client id of another sender is none.
    let elsewhere = NewMessage { sender_id: "someone-else".into(), ..retry(2, 8) };
    match store.append(vec![retry(1, 6), retry(3, 7), elsewhere.clone()]).await {
        Err(StoreError::Duplicates(pairs)) => assert_eq!(pairs, [(6, 1), (7, 3)]),
        other => panic!("expected Duplicates([(6, 1), (7, 3)]), got {other:?}"),
    }
    append_ok(&store, vec![NewMessage { seq: 6, ..elsewhere }]).await;
    assert_eq!(store.last_seq(46).await.expect("last_seq"), 6);

    // A taken seq wins over a stored client id (the owner's fencing path answers both).
    match store.append(vec![retry(1, 6)]).await {
        Err(StoreError::SeqTaken { conversation_id: 46, seq: 6 }) => {}
        other => panic!("expected SeqTaken(46, 6), got {other:?}"),
    }
}

/// Client ids of a call that lost a seq (`SeqTaken`) are not duplicates: the
/// messages are sequenced again and stored (a backend that wrote their
/// records before the messages finds records pointing at nothing, or at
/// another message, and must not count them).
pub async fn a_lost_seq_leaves_no_duplicate<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(47, 1..=3)).await;
    let fresh = |seq, cmid: &str| NewMessage { client_msg_id: cmid.into(), ..msg(47, seq) };
    match store.append(vec![fresh(4, "n-4"), fresh(5, "n-5"), fresh(3, "n-3")]).await {
        Err(StoreError::SeqTaken { conversation_id: 47, seq: 3 }) => {}
        other => panic!("expected SeqTaken(47, 3), got {other:?}"),
    }
    append_ok(&store, vec![fresh(4, "n-4"), fresh(5, "n-5"), fresh(6, "n-3")]).await;
    assert_eq!(read(&store, 47, all()).await, expected(47, 1..=6));
    for (seq, cmid) in [(4, "n-4"), (5, "n-5"), (6, "n-3")] {
        let sender = fresh(seq, cmid).sender_id;
        assert_eq!(store.find_client_msg(47, &sender, cmid).await.expect("find"), Some(seq), "{cmid}");
    }
}

/// A duplicate fails its own call only: appends of other conversations made
/// at the same time (on a group-committing backend, likely in the same
/// commit) are stored.
pub async fn a_duplicate_fails_only_its_call<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(48, 1..=2)).await;
    let mut calls: Vec<Vec<NewMessage>> = (1..=16).map(|conv| msgs(600 + conv, 1..=2)).collect();
    calls.insert(8, vec![NewMessage { seq: 3, ..msg(48, 1) }, msg(48, 4)]);
    let results = join_all(calls.into_iter().map(|call| store.append(call))).await;
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (8, Err(StoreError::Duplicates(pairs))) => assert_eq!(pairs, &[(3, 1)]),
            (8, other) => panic!("expected Duplicates([(3, 1)]), got {other:?}"),
            (_, r) => assert!(r.is_ok(), "call {i} of another conversation failed: {r:?}"),
        }
    }
    assert_eq!(read(&store, 48, all()).await, expected(48, 1..=2), "nothing of the failed call");
    for conv in 1..=16 {
        assert_eq!(read(&store, 600 + conv, all()).await, expected(600 + conv, 1..=2));
    }
}
