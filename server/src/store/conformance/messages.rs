//! Conformance cases of messages: appends read back, pages both ways,
//! bounds, the head, taken seqs, and concurrent appends.

use bytes::Bytes;
use futures_util::future::join_all;

use super::harness::{ConformanceFactory, all, append_ok, backward, expected, forward, msg, msgs, read};
use crate::store::{MessageStore, NewMessage, StoreError};

/// Appended messages read back in seq order, byte for byte, per conversation.
pub async fn append_then_read_back<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(1, 1..=3)).await;
    append_ok(&store, msgs(2, 1..=2)).await;
    append_ok(&store, msgs(1, 4..=4)).await;
    // One call may span conversations.
    append_ok(&store, vec![msg(1, 5), msg(2, 3)]).await;
    // A large payload survives intact.
    let big = Bytes::from((0..256 * 1024).map(|i: u32| (i % 251) as u8).collect::<Vec<u8>>());
    append_ok(&store, vec![NewMessage { encoded: big.clone(), ..msg(3, 1) }]).await;

    assert_eq!(read(&store, 1, all()).await, expected(1, 1..=5));
    assert_eq!(read(&store, 2, all()).await, expected(2, 1..=3));
    assert_eq!(read(&store, 3, all()).await, vec![(1, big)]);
    assert_eq!(read(&store, 4, all()).await, vec![], "unknown conversation reads empty");
}

/// Forward pages with an exclusive `after` cursor give every message once.
pub async fn read_forward_pages<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(7, 1..=25)).await;
    append_ok(&store, msgs(8, 1..=5)).await;

    let mut got = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = read(&store, 7, forward(after, u64::MAX, 7)).await;
        assert!(page.len() <= 7, "page over the limit: {}", page.len());
        let Some(&(last, _)) = page.last() else { break };
        assert!(page.windows(2).all(|w| w[0].0 < w[1].0), "page not ascending");
        assert!(page[0].0 > after, "cursor is exclusive");
        after = last;
        got.extend(page);
        pages += 1;
        assert!(pages <= 10, "paging does not end");
    }
    assert_eq!(pages, 4);
    assert_eq!(got, expected(7, 1..=25));

    // With an upper bound too.
    assert_eq!(read(&store, 7, forward(10, 15, 100)).await, expected(7, 11..=14));
    assert_eq!(read(&store, 7, forward(10, 15, 2)).await, expected(7, 11..=12));
}

/// Backward pages (cursor `before`) come newest first but each page ascends.
pub async fn read_backward_pages<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(9, 1..=25)).await;
    append_ok(&store, msgs(10, 1..=5)).await;

    assert_eq!(read(&store, 9, backward(0, u64::MAX, 3)).await, expected(9, 23..=25), "newest 3, ascending");

    let mut pages: Vec<Vec<(u64, Bytes)>> = Vec::new();
    let mut before = u64::MAX;
    loop {
        let page = read(&store, 9, backward(0, before, 7)).await;
        assert!(page.len() <= 7, "page over the limit: {}", page.len());
        let Some(&(first, _)) = page.first() else {
            break;
        };
        assert!(page.windows(2).all(|w| w[0].0 < w[1].0), "page not ascending");
        assert!(page.last().map(|p| p.0) < Some(before), "cursor is exclusive");
        before = first;
        pages.push(page);
        assert!(pages.len() <= 10, "paging does not end");
    }
    assert_eq!(pages.len(), 4);
    assert_eq!(pages[0], expected(9, 19..=25));
    assert_eq!(pages[3], expected(9, 1..=4));
    let got: Vec<_> = pages.into_iter().rev().flatten().collect();
    assert_eq!(got, expected(9, 1..=25));

    // With a lower bound too.
    assert_eq!(read(&store, 9, backward(10, 15, 2)).await, expected(9, 13..=14));
    assert_eq!(read(&store, 9, backward(10, 15, 100)).await, expected(9, 11..=14));
}

/// Bounds are exclusive; empty and inverted ranges read nothing.
pub async fn read_range_bounds<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(11, 1..=10)).await;

    assert_eq!(read(&store, 11, forward(5, 10, 100)).await, expected(11, 6..=9));
    assert_eq!(read(&store, 11, forward(0, 2, 100)).await, expected(11, 1..=1));
    assert_eq!(read(&store, 11, forward(9, u64::MAX, 100)).await, expected(11, 10..=10));
    assert_eq!(read(&store, 11, forward(10, u64::MAX, 100)).await, vec![]);
    assert_eq!(read(&store, 11, forward(5, 6, 100)).await, vec![], "nothing strictly between");
    assert_eq!(read(&store, 11, forward(5, 5, 100)).await, vec![]);
    assert_eq!(read(&store, 11, forward(8, 3, 100)).await, vec![], "inverted range");
    assert_eq!(read(&store, 11, backward(8, 3, 100)).await, vec![], "inverted range");
    assert_eq!(read(&store, 11, forward(0, u64::MAX, 0)).await, vec![], "limit 0");
    assert_eq!(read(&store, 11, backward(0, u64::MAX, 0)).await, vec![], "limit 0");
    assert_eq!(read(&store, 11, forward(u64::MAX, u64::MAX, 10)).await, vec![]);
    assert_eq!(read(&store, 11, backward(0, u64::MAX, usize::MAX)).await, expected(11, 1..=10));
    assert_eq!(read(&store, 12, backward(0, u64::MAX, 10)).await, vec![], "unknown conversation");

    // Sparse seqs and extreme values are ordinary keys.
    append_ok(&store, msgs(13, [1, 5, 1 << 40, u64::MAX - 1])).await;
    assert_eq!(read(&store, 13, all()).await, expected(13, [1, 5, 1 << 40, u64::MAX - 1]));
    assert_eq!(read(&store, 13, backward(1, u64::MAX, 2)).await, expected(13, [1 << 40, u64::MAX - 1]));
    assert_eq!(read(&store, 13, forward(5, u64::MAX - 1, 10)).await, expected(13, [1 << 40]));
    // Neighbouring conversations do not bleed into each other.
    append_ok(&store, msgs(14, 1..=2)).await;
    assert_eq!(read(&store, 13, forward(0, 3, 10)).await, expected(13, [1]));
}

/// `last_seq` is the highest stored seq, 0 for an unknown conversation.
pub async fn last_seq_follows_appends<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    assert_eq!(store.last_seq(20).await.expect("last_seq"), 0);
    append_ok(&store, msgs(20, 1..=3)).await;
    assert_eq!(store.last_seq(20).await.expect("last_seq"), 3);
    append_ok(&store, msgs(20, 4..=9)).await;
    assert_eq!(store.last_seq(20).await.expect("last_seq"), 9);
    append_ok(&store, msgs(21, 1..=2)).await;
    assert_eq!(store.last_seq(20).await.expect("last_seq"), 9, "other conversation unaffected");
    assert_eq!(store.last_seq(21).await.expect("last_seq"), 2);
    assert_eq!(store.last_seq(19).await.expect("last_seq"), 0);
    assert_eq!(store.last_seq(22).await.expect("last_seq"), 0);
    append_ok(&store, msgs(u64::MAX, [u64::MAX])).await;
    assert_eq!(store.last_seq(u64::MAX).await.expect("last_seq"), u64::MAX);
}

/// A taken seq fails the whole call with `SeqTaken`; none of it is written.
pub async fn seq_taken_writes_nothing<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    append_ok(&store, msgs(30, 1..=3)).await;

    let clash = vec![msg(30, 4), msg(30, 5), msg(30, 2), msg(31, 1), msg(30, 6)];
    match store.append(clash).await {
        Err(StoreError::SeqTaken { conversation_id: 30, seq: 2 }) => {}
        other => panic!("expected SeqTaken(30, 2), got {other:?}"),
    }
    assert_eq!(read(&store, 30, all()).await, expected(30, 1..=3), "nothing of the failed call");
    assert_eq!(read(&store, 31, all()).await, vec![], "nothing of the failed call");
    assert_eq!(store.last_seq(30).await.expect("last_seq"), 3);
    let m4 = msg(30, 4);
    assert_eq!(store.find_client_msg(30, &m4.sender_id, &m4.client_msg_id).await.expect("find"), None);

    // The stored message is untouched.
    let replaced = NewMessage { encoded: Bytes::from_static(b"other bytes"), ..msg(30, 3) };
    assert!(matches!(store.append(vec![replaced]).await, Err(StoreError::SeqTaken { conversation_id: 30, seq: 3 })));
    assert_eq!(read(&store, 30, forward(2, 4, 10)).await, expected(30, [3]));

    // The same seq twice within one call is a clash too.
    match store.append(vec![msg(30, 7), msg(30, 7)]).await {
        Err(StoreError::SeqTaken { conversation_id: 30, seq: 7 }) => {}
        other => panic!("expected SeqTaken(30, 7), got {other:?}"),
    }
    assert_eq!(store.last_seq(30).await.expect("last_seq"), 3);

    // The store still takes the next seqs.
    append_ok(&store, msgs(30, 4..=6)).await;
    assert_eq!(read(&store, 30, all()).await, expected(30, 1..=6));
}

/// 8 concurrent writers x 200 appends on distinct conversations all land.
pub async fn concurrent_appends_all_land<F: ConformanceFactory>(factory: &mut F) {
    const WRITERS: u64 = 8;
    const PER_WRITER: u64 = 200;
    let store = factory.fresh().await;
    let writers = (0..WRITERS).map(|w| {
        let store = &store;
        async move {
            let conv = 100 + w;
            for seq in 1..=PER_WRITER {
                append_ok(store, vec![msg(conv, seq)]).await;
            }
        }
    });
    // Plus a writer of two-message calls on a shared-nothing conversation.
    let pairs = async {
        for i in 0..50 {
            append_ok(&store, msgs(199, [2 * i + 1, 2 * i + 2])).await;
        }
    };
    tokio::join!(join_all(writers), pairs);

    for w in 0..WRITERS {
        let conv = 100 + w;
        assert_eq!(store.last_seq(conv).await.expect("last_seq"), PER_WRITER);
        assert_eq!(read(&store, conv, all()).await, expected(conv, 1..=PER_WRITER));
        let m = msg(conv, PER_WRITER / 2);
        assert_eq!(
            store.find_client_msg(conv, &m.sender_id, &m.client_msg_id).await.expect("find"),
            Some(PER_WRITER / 2)
        );
    }
    assert_eq!(read(&store, 199, all()).await, expected(199, 1..=100));
}

/// Concurrent appends of the same seq: exactly one wins; the others fail
/// alone with `SeqTaken` and do not sink the unrelated appends beside them.
pub async fn concurrent_duplicate_seq_one_wins<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    let contenders = (0..16u8).map(|i| {
        let store = &store;
        async move {
            let m = NewMessage { encoded: Bytes::from(vec![i; 8]), ..msg(50, 1) };
            store.append(vec![m]).await
        }
    });
    let bystanders = (1..=16).map(|conv| {
        let store = &store;
        async move { store.append(msgs(500 + conv, [1])).await }
    });
    let (results, others) = tokio::join!(join_all(contenders), join_all(bystanders));

    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one append of seq 1 wins: {results:?}");
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(StoreError::SeqTaken { conversation_id: 50, seq: 1 })),
            "losers get SeqTaken: {r:?}"
        );
    }
    let stored = read(&store, 50, all()).await;
    assert_eq!(stored, vec![(1, Bytes::from(vec![winners[0] as u8; 8]))], "the winner's bytes");
    for (conv, r) in (1..=16).zip(&others) {
        assert!(r.is_ok(), "unrelated append failed: {r:?}");
        assert_eq!(read(&store, 500 + conv, all()).await, expected(500 + conv, [1]));
    }
}
