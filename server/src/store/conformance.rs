//! The conformance suite every [`MessageStore`] backend must pass.
//!
//! Written against the trait only. A backend provides a [`ConformanceFactory`]
//! and invokes [`conformance_tests!`](crate::conformance_tests) with it in an
//! integration test; that expands to one `#[tokio::test]` per case, so each
//! case is reported on its own:
//!
//! ```ignore
//! mod embedded {
//!     chat_server::conformance_tests!(crate::EmbeddedFactory::default());
//! }
//! ```
//!
//! Each case takes the factory and makes the stores it needs; the cases panic
//! (as tests do) when the backend breaks the contract.

use bytes::Bytes;
use chat_protocol::v1::{ConversationKind, MemberRole, Role, SupportState};
use futures_util::future::join_all;

use super::{
    ConversationRecord, Created, Direction, MemberRecord, MessageStore, NewMessage, Range, StoreError, UserRecord,
};

/// Makes stores for the suite.
#[allow(async_fn_in_trait)]
pub trait ConformanceFactory {
    /// The backend under test.
    type Store: MessageStore;

    /// A new, empty store with an epoch of its own.
    async fn fresh(&mut self) -> Self::Store;

    /// Closes `store` and opens the same data again (as after a restart).
    async fn reopen(&mut self, store: Self::Store) -> Self::Store;

    /// Why the suite cannot run here (e.g. no server to test against), if it
    /// cannot; each case then says so on stderr and passes without running.
    fn skip(&self) -> Option<String> {
        None
    }
}

/// Tells, past the test harness's output capture, that a case was skipped.
pub fn report_skip(case: &str, why: &str) {
    use std::io::Write;
    // Written to the stream directly: libtest captures only `print!`-family output.
    let _ = writeln!(std::io::stderr(), "{case}: skipped: {why}");
}

/// Expands to one `#[tokio::test]` per conformance case, each run against a
/// store made by the given factory expression (a [`ConformanceFactory`]).
///
/// The invoking crate needs `tokio` with the `macros` and `rt-multi-thread`
/// features.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            append_then_read_back,
            read_forward_pages,
            read_backward_pages,
            read_range_bounds,
            last_seq_follows_appends,
            seq_taken_writes_nothing,
            idempotency_lookup,
            idempotency_answers_only_stored_messages,
            concurrent_appends_all_land,
            concurrent_duplicate_seq_one_wins,
            create_if_absent,
            update_conversation_replaces,
            member_indexes_in_step,
            watermarks_only_move_forward,
            append_moves_sender_watermarks,
            support_queue_follows_state,
            users_upsert_and_get,
            epoch_per_store,
            reopen_keeps_everything,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let mut factory = $factory;
                if let Some(why) = $crate::store::conformance::ConformanceFactory::skip(&factory) {
                    $crate::store::conformance::report_skip(stringify!($case), &why);
                    return;
                }
                $crate::store::conformance::$case(&mut factory).await;
            }
        )+
    };
}

// ---------------------------------------------------------------- helpers

/// The payload of message `seq` in conversation `conv`: binary, varied in
/// length, unique per (conv, seq).
fn payload(conv: u64, seq: u64) -> Bytes {
    let mut bytes = format!("conv {conv} seq {seq} ").into_bytes();
    bytes.extend_from_slice(&[0x00, 0xff, 0x0a, 0x80]);
    bytes.extend((0..(seq % 37)).map(|i| (i as u8).wrapping_mul(31) ^ conv as u8));
    Bytes::from(bytes)
}

fn msg(conv: u64, seq: u64) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        seq,
        sender_id: format!("user-{}", seq % 3),
        client_msg_id: format!("cmid-{conv}-{seq}"),
        encoded: payload(conv, seq),
    }
}

fn msgs(conv: u64, seqs: impl IntoIterator<Item = u64>) -> Vec<NewMessage> {
    seqs.into_iter().map(|seq| msg(conv, seq)).collect()
}

fn expected(conv: u64, seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Bytes)> {
    seqs.into_iter().map(|seq| (seq, payload(conv, seq))).collect()
}

fn forward(after: u64, before: u64, limit: usize) -> Range {
    Range { after, before, limit, direction: Direction::Forward }
}

fn backward(after: u64, before: u64, limit: usize) -> Range {
    Range { after, before, limit, direction: Direction::Backward }
}

fn all() -> Range {
    forward(0, u64::MAX, usize::MAX)
}

fn conversation(
    id: u64,
    kind: ConversationKind,
    created_at_ms: u64,
    support_state: SupportState,
) -> ConversationRecord {
    ConversationRecord {
        id,
        kind: kind as i32,
        title: format!("conversation {id}"),
        case_id: String::new(),
        created_by: "creator".into(),
        created_at_ms,
        archived_at_ms: 0,
        support_state: support_state as i32,
        e2e: false,
        retention_days: 0,
        legal_hold: false,
    }
}

fn group(id: u64) -> ConversationRecord {
    conversation(id, ConversationKind::Group, 1_700_000_000_000 + id, SupportState::Unspecified)
}

fn support(id: u64, created_at_ms: u64, state: SupportState) -> ConversationRecord {
    conversation(id, ConversationKind::Support, created_at_ms, state)
}

fn member(conv: u64, user: &str) -> MemberRecord {
    MemberRecord {
        conversation_id: conv,
        user_id: user.into(),
        role: MemberRole::Member as i32,
        joined_at_ms: 1_700_000_000_000,
        delivered_seq: 0,
        read_seq: 0,
    }
}

async fn append_ok<S: MessageStore>(store: &S, batch: Vec<NewMessage>) {
    let what = batch.iter().map(|m| (m.conversation_id, m.seq)).collect::<Vec<_>>();
    if let Err(e) = store.append(batch).await {
        panic!("append of {what:?} failed: {e}");
    }
}

async fn read<S: MessageStore>(store: &S, conv: u64, range: Range) -> Vec<(u64, Bytes)> {
    match store.read_range(conv, range).await {
        Ok(page) => page,
        Err(e) => panic!("read_range({conv}, {range:?}) failed: {e}"),
    }
}

async fn member_ids<S: MessageStore>(store: &S, conv: u64) -> Vec<String> {
    let mut ids: Vec<String> = store.members(conv).await.expect("members").into_iter().map(|m| m.user_id).collect();
    ids.sort();
    ids
}

async fn user_convs<S: MessageStore>(store: &S, user: &str) -> Vec<u64> {
    let mut ids = store.user_conversations(user).await.expect("user_conversations");
    ids.sort_unstable();
    ids
}

// ---------------------------------------------------------------- cases

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

/// `create_conversation` is create-if-absent: an existing id is returned as
/// is and nothing of the second call is written.
pub async fn create_if_absent<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    let first = group(60);
    let created = store.create_conversation(&first, &[member(60, "alice"), member(60, "bob")]).await;
    assert_eq!(created.expect("create"), Created::New);
    assert_eq!(store.get_conversation(60).await.expect("get"), Some(first.clone()));
    assert_eq!(member_ids(&store, 60).await, ["alice", "bob"]);
    assert_eq!(user_convs(&store, "alice").await, [60]);

    let second = ConversationRecord { title: "other".into(), created_by: "mallory".into(), ..group(60) };
    let again = store.create_conversation(&second, &[member(60, "mallory")]).await.expect("create again");
    assert_eq!(again, Created::Existing(first.clone()));
    assert_eq!(store.get_conversation(60).await.expect("get"), Some(first), "not overwritten");
    assert_eq!(member_ids(&store, 60).await, ["alice", "bob"], "no members added");
    assert_eq!(user_convs(&store, "mallory").await, Vec::<u64>::new());

    assert_eq!(store.get_conversation(61).await.expect("get"), None);
    let empty = group(61);
    assert_eq!(store.create_conversation(&empty, &[]).await.expect("create"), Created::New);
    assert_eq!(store.get_conversation(61).await.expect("get"), Some(empty));
    assert_eq!(store.members(61).await.expect("members"), vec![]);
}

/// `update_conversation` replaces the stored record.
pub async fn update_conversation_replaces<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    let conv = group(70);
    store.create_conversation(&conv, &[member(70, "alice")]).await.expect("create");
    let archived = ConversationRecord {
        archived_at_ms: 1_800_000_000_000,
        title: "renamed".into(),
        retention_days: 30,
        legal_hold: true,
        ..conv
    };
    store.update_conversation(&archived).await.expect("update");
    assert_eq!(store.get_conversation(70).await.expect("get"), Some(archived));
    assert_eq!(member_ids(&store, 70).await, ["alice"], "members untouched");
}

/// Members and the user -> conversations index stay in step.
pub async fn member_indexes_in_step<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    for conv in [80, 81, 82] {
        store.create_conversation(&group(conv), &[member(conv, "alice")]).await.expect("create");
    }
    store.put_member(&member(81, "bob")).await.expect("put");
    store.put_member(&member(82, "bob")).await.expect("put");
    assert_eq!(member_ids(&store, 81).await, ["alice", "bob"]);
    assert_eq!(user_convs(&store, "alice").await, [80, 81, 82]);
    assert_eq!(user_convs(&store, "bob").await, [81, 82]);
    assert_eq!(user_convs(&store, "carol").await, Vec::<u64>::new());
    assert_eq!(store.member(81, "bob").await.expect("member"), Some(member(81, "bob")));
    assert_eq!(store.member(80, "bob").await.expect("member"), None);

    // Replacing keeps one entry in each index.
    let moderator = MemberRecord { role: MemberRole::Moderator as i32, ..member(81, "bob") };
    store.put_member(&moderator).await.expect("put again");
    assert_eq!(store.members(81).await.expect("members").len(), 2);
    assert_eq!(store.member(81, "bob").await.expect("member"), Some(moderator));
    assert_eq!(user_convs(&store, "bob").await, [81, 82]);

    // User ids that are prefixes of each other stay apart.
    store.put_member(&member(81, "bo")).await.expect("put");
    store.put_member(&member(81, "bobby")).await.expect("put");
    assert_eq!(member_ids(&store, 81).await, ["alice", "bo", "bob", "bobby"]);
    assert_eq!(user_convs(&store, "bo").await, [81]);
    assert_eq!(user_convs(&store, "bob").await, [81, 82]);

    store.remove_member(81, "bob").await.expect("remove");
    assert_eq!(member_ids(&store, 81).await, ["alice", "bo", "bobby"]);
    assert_eq!(store.member(81, "bob").await.expect("member"), None);
    assert_eq!(user_convs(&store, "bob").await, [82]);
    assert_eq!(user_convs(&store, "alice").await, [80, 81, 82], "others untouched");

    // Removing what is absent is not an error.
    store.remove_member(81, "bob").await.expect("remove again");
    store.remove_member(999, "nobody").await.expect("remove unknown");
    assert_eq!(store.members(999).await.expect("members"), vec![]);
}

/// An append moves its senders' watermarks to their last message, never back,
/// and touches nobody else (nor non-members, nor system lines).
pub async fn append_moves_sender_watermarks<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    store.create_conversation(&group(95), &[member(95, "alice"), member(95, "bob")]).await.expect("create");
    let by = |seq: u64, sender: &str| NewMessage { sender_id: sender.into(), ..msg(95, seq) };
    append_ok(&store, vec![by(1, "alice"), by(2, "bob"), by(3, "alice")]).await;
    let marks = |user: &'static str| {
        let store = &store;
        async move {
            let m = store.member(95, user).await.expect("member").expect("is a member");
            (m.delivered_seq, m.read_seq)
        }
    };
    assert_eq!(marks("alice").await, (3, 3));
    assert_eq!(marks("bob").await, (2, 2));
    store.advance_watermarks(95, "bob", 9, 9).await.expect("advance");
    append_ok(&store, vec![by(4, "bob")]).await;
    assert_eq!(marks("bob").await, (9, 9), "never back");
    let system = NewMessage { sender_id: "alice".into(), client_msg_id: String::new(), ..msg(95, 5) };
    append_ok(&store, vec![system, by(6, "mallory")]).await;
    assert_eq!(marks("alice").await, (3, 3), "a system line is nobody's read");
    assert_eq!(store.member(95, "mallory").await.expect("member"), None, "no membership appears");
}

/// Watermarks only move forward; 0 leaves one as is; non-members are ignored.
pub async fn watermarks_only_move_forward<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    store.create_conversation(&group(90), &[member(90, "alice"), member(90, "bob")]).await.expect("create");
    let marks = |user: &'static str| {
        let store = &store;
        async move {
            let m = store.member(90, user).await.expect("member").expect("is a member");
            (m.delivered_seq, m.read_seq)
        }
    };

    store.advance_watermarks(90, "alice", 5, 3).await.expect("advance");
    assert_eq!(marks("alice").await, (5, 3));
    store.advance_watermarks(90, "alice", 4, 6).await.expect("advance");
    assert_eq!(marks("alice").await, (5, 6), "delivered never goes back");
    store.advance_watermarks(90, "alice", 0, 0).await.expect("advance");
    assert_eq!(marks("alice").await, (5, 6));
    store.advance_watermarks(90, "alice", 9, 0).await.expect("advance");
    assert_eq!(marks("alice").await, (9, 6), "0 leaves read as is");
    store.advance_watermarks(90, "alice", 0, 8).await.expect("advance");
    assert_eq!(marks("alice").await, (9, 8), "0 leaves delivered as is");
    assert_eq!(marks("bob").await, (0, 0), "other members untouched");

    // Concurrent advances end at the maximum.
    let advances = (1..=20u64).rev().map(|n| store.advance_watermarks(90, "bob", n, n / 2));
    for r in join_all(advances).await {
        r.expect("advance");
    }
    assert_eq!(marks("bob").await, (20, 10));

    store.advance_watermarks(90, "carol", 5, 5).await.expect("non-member is a no-op");
    assert_eq!(store.member(90, "carol").await.expect("member"), None);
    store.advance_watermarks(91, "alice", 5, 5).await.expect("unknown conversation is a no-op");
    assert_eq!(store.member(91, "alice").await.expect("member"), None);
    assert_eq!(user_convs(&store, "carol").await, Vec::<u64>::new());

    // The rest of the record is kept.
    let alice = store.member(90, "alice").await.expect("member").expect("member");
    assert_eq!(alice, MemberRecord { delivered_seq: 9, read_seq: 8, ..member(90, "alice") });
}

/// The support queue holds exactly the WAITING support conversations,
/// oldest first.
pub async fn support_queue_follows_state<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    assert_eq!(store.support_queue().await.expect("queue"), Vec::<u64>::new());

    store.create_conversation(&support(201, 3_000, SupportState::Waiting), &[]).await.expect("create");
    store.create_conversation(&support(202, 1_000, SupportState::Waiting), &[]).await.expect("create");
    store.create_conversation(&support(203, 2_000, SupportState::Waiting), &[]).await.expect("create");
    store.create_conversation(&support(204, 500, SupportState::Assigned), &[]).await.expect("create");
    store.create_conversation(&group(205), &[]).await.expect("create");
    assert_eq!(store.support_queue().await.expect("queue"), [202, 203, 201], "oldest first");

    // A create-if-absent of an existing one does not add it twice.
    store.create_conversation(&support(202, 1_000, SupportState::Waiting), &[]).await.expect("create");
    assert_eq!(store.support_queue().await.expect("queue"), [202, 203, 201]);

    store.update_conversation(&support(203, 2_000, SupportState::Assigned)).await.expect("update");
    assert_eq!(store.support_queue().await.expect("queue"), [202, 201]);

    // Updating a waiting one with other changes keeps it once.
    let retitled = ConversationRecord { title: "still waiting".into(), ..support(201, 3_000, SupportState::Waiting) };
    store.update_conversation(&retitled).await.expect("update");
    assert_eq!(store.support_queue().await.expect("queue"), [202, 201]);

    store.update_conversation(&support(204, 500, SupportState::Waiting)).await.expect("update");
    store.update_conversation(&support(203, 2_000, SupportState::Waiting)).await.expect("update");
    assert_eq!(store.support_queue().await.expect("queue"), [204, 202, 203, 201]);

    store.update_conversation(&support(202, 1_000, SupportState::Unspecified)).await.expect("update");
    let archived = ConversationRecord { archived_at_ms: 9_000, ..support(201, 3_000, SupportState::Assigned) };
    store.update_conversation(&archived).await.expect("update");
    assert_eq!(store.support_queue().await.expect("queue"), [204, 203]);
}

/// Users are upserted; lookups skip unknown ids.
pub async fn users_upsert_and_get<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    let user =
        |id: &str, name: &str, role: Role| UserRecord { id: id.into(), display_name: name.into(), role: role as i32 };
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let sorted = |mut users: Vec<UserRecord>| {
        users.sort_by(|a, b| a.id.cmp(&b.id));
        users
    };

    assert_eq!(store.get_users(&ids(&["alice"])).await.expect("get"), vec![]);
    store.upsert_user(&user("alice", "Alice", Role::Client)).await.expect("upsert");
    store.upsert_user(&user("bob", "Bob", Role::Advocate)).await.expect("upsert");
    let got = store.get_users(&ids(&["bob", "nobody", "alice"])).await.expect("get");
    assert_eq!(sorted(got), vec![user("alice", "Alice", Role::Client), user("bob", "Bob", Role::Advocate)]);

    store.upsert_user(&user("alice", "Alice Smith", Role::Admin)).await.expect("upsert again");
    assert_eq!(store.get_users(&ids(&["alice"])).await.expect("get"), vec![user("alice", "Alice Smith", Role::Admin)]);
    assert_eq!(store.get_users(&[]).await.expect("get"), vec![]);
    assert_eq!(store.get_users(&ids(&["", "carol"])).await.expect("get"), vec![]);
}

/// Every store has a non-empty epoch of its own.
pub async fn epoch_per_store<F: ConformanceFactory>(factory: &mut F) {
    let a = factory.fresh().await;
    let b = factory.fresh().await;
    assert!(!a.epoch().is_empty(), "epoch is empty");
    assert_ne!(a.epoch(), b.epoch(), "two stores share an epoch");
}

/// Reopening keeps every record and the epoch.
pub async fn reopen_keeps_everything<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    let epoch = store.epoch().to_owned();
    append_ok(&store, msgs(300, 1..=20)).await;
    let waiting = support(301, 1_000, SupportState::Waiting);
    store.create_conversation(&waiting, &[member(301, "alice")]).await.expect("create");
    store.create_conversation(&group(300), &[member(300, "alice"), member(300, "bob")]).await.expect("create");
    store.advance_watermarks(300, "bob", 20, 7).await.expect("advance");
    let user = UserRecord { id: "alice".into(), display_name: "Alice".into(), role: Role::Client as i32 };
    store.upsert_user(&user).await.expect("upsert");
    let m = msg(300, 12);

    let store = factory.reopen(store).await;
    assert_eq!(store.epoch(), epoch, "epoch kept");
    assert_eq!(read(&store, 300, all()).await, expected(300, 1..=20));
    assert_eq!(store.last_seq(300).await.expect("last_seq"), 20);
    assert_eq!(store.find_client_msg(300, &m.sender_id, &m.client_msg_id).await.expect("find"), Some(12));
    assert_eq!(store.get_conversation(301).await.expect("get"), Some(waiting));
    assert_eq!(store.get_conversation(300).await.expect("get"), Some(group(300)));
    assert_eq!(member_ids(&store, 300).await, ["alice", "bob"]);
    assert_eq!(user_convs(&store, "alice").await, [300, 301]);
    let bob = store.member(300, "bob").await.expect("member").expect("member");
    assert_eq!((bob.delivered_seq, bob.read_seq), (20, 7));
    assert_eq!(store.support_queue().await.expect("queue"), [301]);
    assert_eq!(store.get_users(&["alice".to_string()]).await.expect("get"), vec![user]);

    // And it keeps working: the clash check sees the old data.
    assert!(matches!(store.append(msgs(300, [20])).await, Err(StoreError::SeqTaken { .. })));
    append_ok(&store, msgs(300, [21])).await;
    assert_eq!(store.last_seq(300).await.expect("last_seq"), 21);
}
