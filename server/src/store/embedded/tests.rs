//! Unit tests of the embedded store: the writer, group commit, keys, reopening.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::db::Ks;
use super::*;
use crate::store::{Direction, MemberRecord, MessageStore, NewMessage, Range, StoreError, StoreResult, UserRecord};

fn message(conv: u64, seq: u64) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        seq,
        sender_id: "u".into(),
        client_msg_id: format!("c{seq}"),
        encoded: Bytes::from(format!("{conv}/{seq}")),
        target: None,
    }
}

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir, EmbeddedConfig::default()).expect("open")
}

#[tokio::test]
async fn seq_checks_hold_with_the_head_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append((1..=3).map(|s| message(7, s)).collect()).await.unwrap();
    store.close();
    drop(store);
    // A new writer knows no head: it learns it from the store.
    let store = open(dir.path());
    let taken = |r: StoreResult<()>| matches!(r, Err(StoreError::SeqTaken { .. }));
    assert!(taken(store.append(vec![message(7, 3)]).await), "below the head, after a reopen");
    store.append(vec![message(7, 4)]).await.unwrap();
    store.append(vec![message(7, 10)]).await.unwrap();
    store.append(vec![message(7, 7)]).await.unwrap();
    assert!(taken(store.append(vec![message(7, 7)]).await), "in a gap below the head, once filled");
    assert!(taken(store.append(vec![message(7, 10)]).await), "the head itself");
    assert!(taken(store.append(vec![message(7, 11), message(7, 11)]).await), "twice in one call");
    assert_eq!(store.last_seq(7).await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let before = store.stats();
    let tasks: Vec<_> = (0..1_000u64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(vec![message(i % 50, i / 50 + 1)]).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("append");
    }
    let stats = store.stats();
    let (commits, requests) = (stats.commits - before.commits, stats.requests - before.requests);
    assert_eq!(requests, 1_000);
    assert!(commits < 200, "{commits} commits for 1,000 concurrent appends");
    for conv in 0..50 {
        assert_eq!(store.last_seq(conv).await.expect("last_seq"), 20);
    }
}

#[tokio::test]
async fn a_failing_request_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.append(vec![message(1, 1)]).await.expect("append");
    // Queued together from one task, so they usually meet in one batch;
    // the outcome must be the same either way.
    let (a, b, c) = tokio::join!(
        store.append(vec![message(1, 2)]),
        store.append(vec![message(1, 3), message(1, 1)]),
        store.append(vec![message(1, 4)]),
    );
    a.expect("a");
    assert!(matches!(b, Err(StoreError::SeqTaken { conversation_id: 1, seq: 1 })), "{b:?}");
    c.expect("c");
    let seqs: Vec<u64> = store
        .read_range(1, Range { after: 0, before: u64::MAX, limit: 10, direction: Direction::Forward })
        .await
        .expect("read")
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(seqs, [1, 2, 4]);
}

#[tokio::test]
async fn close_flushes_then_refuses_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.append(vec![message(1, 1)]).await.expect("append");
    store.close();
    assert!(matches!(store.append(vec![message(1, 2)]).await, Err(StoreError::Closed)));
    assert!(matches!(
        store.upsert_user(&UserRecord { id: "u".into(), ..UserRecord::default() }).await,
        Err(StoreError::Closed)
    ));
    // Reads still work; close is idempotent.
    assert_eq!(store.last_seq(1).await.expect("last_seq"), 1);
    store.close();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.last_seq(1).await.expect("last_seq"), 1);
}

#[tokio::test]
async fn close_applies_writes_already_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let writers: Vec<_> = (1..=100u64).map(|seq| store.append(vec![message(7, seq)])).collect();
    let all = futures_util::future::join_all(writers);
    // Get them queued, then close while they are in flight.
    let closer = async {
        tokio::task::yield_now().await;
        store.close();
    };
    let (results, ()) = tokio::join!(all, closer);
    let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
    for r in &results {
        assert!(matches!(r, Ok(()) | Err(StoreError::Closed)), "{r:?}");
    }
    // Every acknowledged write is there, and nothing else.
    let stored = store
        .read_range(7, Range { after: 0, before: u64::MAX, limit: 1_000, direction: Direction::Forward })
        .await
        .expect("read");
    assert_eq!(stored.len() as u64, ok);
    assert!(ok > 0, "the queued writes were flushed");
}

#[tokio::test]
async fn epoch_is_hex_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let epoch = open(dir.path()).epoch().to_owned();
    assert_eq!(epoch.len(), 32);
    assert!(epoch.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(dir.path().join(DB_NAME).is_dir());
    assert_eq!(open(dir.path()).epoch(), epoch);
}

#[tokio::test]
async fn corrupt_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let members = store.db.ks(Ks::Members);
    members.insert(key::member("test", 5, "x").expect("key"), b"not json".as_slice()).expect("insert");
    store.db.ks(Ks::Conversations).insert(5u64.to_be_bytes(), b"\xff".as_slice()).expect("insert");
    let mut long_key = key::pair(6, 1).to_vec();
    long_key.push(0);
    store.db.ks(Ks::Messages).insert(long_key, b"m".as_slice()).expect("insert");
    assert!(matches!(store.member(5, "x").await, Err(StoreError::Corrupt { table: "members", .. })));
    assert!(matches!(store.members(5).await, Err(StoreError::Corrupt { .. })));
    assert!(matches!(store.get_conversation(5).await, Err(StoreError::Corrupt { .. })));
    // A write that must read the bad record fails alone; the writer lives on.
    assert!(matches!(store.advance_watermarks(5, "x", 1, 1).await, Err(StoreError::Corrupt { .. })));
    store.append(vec![message(5, 1)]).await.expect("append after a failure");
    // A key of the wrong shape is corrupt too.
    let all = Range { after: 0, before: u64::MAX, limit: 10, direction: Direction::Forward };
    assert!(matches!(store.read_range(6, all).await, Err(StoreError::Corrupt { table: "messages", .. })));
    assert!(matches!(store.last_seq(6).await, Err(StoreError::Corrupt { table: "messages", .. })));
    assert_eq!(store.read_range(5, all).await.expect("read").len(), 1);
}

#[tokio::test]
async fn fsync_off_still_persists_on_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EmbeddedConfig { fsync: false, max_batch: 2, queue: 1, append_run: None };
    let store = EmbeddedStore::open(dir.path(), cfg.clone()).expect("open");
    for seq in 1..=10 {
        store.append(vec![message(3, seq)]).await.expect("append");
    }
    drop(store);
    let store = EmbeddedStore::open(dir.path(), cfg).expect("reopen");
    assert_eq!(store.last_seq(3).await.expect("last_seq"), 10);
}

#[tokio::test]
async fn keys_round_trip_and_do_not_collide() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    // A user id that is a prefix of another, and one with a NUL in it.
    for (conv, user) in [(1, "a"), (2, "a\0b"), (3, "ab"), (4, "")] {
        let member = MemberRecord {
            conversation_id: conv,
            user_id: user.into(),
            role: 0,
            joined_at_ms: 0,
            delivered_seq: 0,
            read_seq: 0,
        };
        store.put_member(&member).await.expect("put_member");
    }
    assert_eq!(store.user_conversations("a").await.expect("a"), [1]);
    assert_eq!(store.user_conversations("a\0b").await.expect("a0b"), [2]);
    assert_eq!(store.user_conversations("ab").await.expect("ab"), [3]);
    assert_eq!(store.user_conversations("").await.expect("empty"), [4]);
    // Idempotency: (sender "ab", id "c") is not (sender "a", id "bc").
    let mut m = message(9, 1);
    m.sender_id = "ab".into();
    m.client_msg_id = "c".into();
    store.append(vec![m]).await.expect("append");
    assert_eq!(store.find_client_msg(9, "ab", "c").await.expect("find"), Some(1));
    assert_eq!(store.find_client_msg(9, "a", "bc").await.expect("find"), None);
    // Seqs order numerically across byte boundaries, backward pages ascend.
    store.append((250..=260).map(|seq| message(8, seq)).collect()).await.expect("append");
    assert_eq!(store.last_seq(8).await.expect("last_seq"), 260);
    let page = store
        .read_range(8, Range { after: 0, before: 260, limit: 4, direction: Direction::Backward })
        .await
        .expect("read");
    assert_eq!(page.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [256, 257, 258, 259]);
    assert_eq!(page[0].1, Bytes::from("8/256"));
}

#[tokio::test]
async fn backward_pages_step_over_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let seqs = (1..=5).chain(10..=12).chain([20]);
    store.append(seqs.map(|seq| message(4, seq)).collect()).await.expect("append");
    store.append(vec![message(3, 100), message(5, 1)]).await.expect("neighbours");
    let page = |after, before, limit| {
        let store = &store;
        async move {
            let range = Range { after, before, limit, direction: Direction::Backward };
            store.read_range(4, range).await.expect("read").into_iter().map(|(seq, _)| seq).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(0, u64::MAX, 4).await, [10, 11, 12, 20]);
    assert_eq!(page(0, u64::MAX, 1).await, [20]);
    assert_eq!(page(0, 20, 2).await, [11, 12]);
    assert_eq!(page(3, 11, 10).await, [4, 5, 10]);
    assert_eq!(page(0, u64::MAX, 100).await, [1, 2, 3, 4, 5, 10, 11, 12, 20]);
    assert_eq!(page(12, 20, 5).await, Vec::<u64>::new());
    assert_eq!(page(0, u64::MAX, usize::MAX).await.len(), 9);
}

#[tokio::test]
async fn an_oversized_key_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let huge = "x".repeat(70_000);
    let user = UserRecord { id: huge.clone(), ..UserRecord::default() };
    assert!(matches!(store.upsert_user(&user).await, Err(StoreError::Backend { .. })));
    let mut m = message(1, 1);
    m.sender_id = huge;
    assert!(matches!(store.append(vec![m]).await, Err(StoreError::Backend { .. })));
    assert_eq!(store.last_seq(1).await.expect("last_seq"), 0, "the failed append wrote nothing");
    store.append(vec![message(1, 1)]).await.expect("append");
}

#[tokio::test]
async fn refuses_a_directory_with_only_a_redb_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(REDB_FILE_NAME), b"redb").expect("write");
    assert!(matches!(EmbeddedStore::open(dir.path(), EmbeddedConfig::default()), Err(StoreError::Open { .. })));
}

/// A store of the first layout (no activities) is brought up to date on open:
/// each conversation's activity is its last message's server time (its
/// creation if it has none), and every member's list is ordered by it.
#[tokio::test]
async fn a_first_layout_store_gets_its_lists_on_open() {
    use crate::store::ConversationRecord;
    use prost::Message as _;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (id, created) in [(1u64, 1_000u64), (2, 2_000), (3, 3_000)] {
        let rec = ConversationRecord { id, created_at_ms: created, kind: 2, ..Default::default() };
        let member = MemberRecord { conversation_id: id, user_id: "ann".into(), ..Default::default() };
        store.create_conversation(&rec, &[member]).await.unwrap();
    }
    // Conversation 1 was written in last.
    let body = chat_protocol::v1::Message { conversation_id: 1, seq: 1, server_time_ms: 9_000, ..Default::default() };
    let msg = NewMessage { encoded: Bytes::from(body.encode_to_vec()), ..message(1, 1) };
    store.append(vec![msg]).await.unwrap();
    store.close();
    drop(store);
    {
        // Back to the first layout: no activities, no lists.
        let db = Db::open(&dir.path().join(DB_NAME)).unwrap();
        db.ks(Ks::Meta).insert("layout", "fjall-1").unwrap();
        for ks in [Ks::Activity, Ks::UserActivity] {
            let keys: Vec<_> = db.ks(ks).iter().map(|g| g.key().unwrap()).collect();
            for k in keys {
                db.ks(ks).remove(k).unwrap();
            }
        }
        db.db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let store = open(dir.path());
    let list = store.user_conversations_page("ann", None, 10).await.unwrap();
    assert_eq!(list, [(9_000, 1), (3_000, 3), (2_000, 2)]);
    assert_eq!(store.conversation_activity(2).await.unwrap(), Some(2_000));
}

/// A store made before templates existed (no `templates` keyspace) opens as
/// it was, its data intact, and takes templates from then on.
#[tokio::test]
async fn a_store_made_before_templates_opens_and_takes_them() {
    use crate::store::ConversationRecord;
    use crate::store::templates::{TemplateRecord, TemplateStore};
    let dir = tempfile::tempdir().unwrap();
    {
        // The keyspaces of the layout before templates, written by fjall alone.
        let db = fjall::Database::builder(dir.path().join(DB_NAME)).open().unwrap();
        let old = [
            "messages",
            "idempotency",
            "conversations",
            "members",
            "user_convs",
            "support_queue",
            "users",
            "meta",
            "activity",
            "user_activity",
        ];
        for name in old {
            db.keyspace(name, fjall::KeyspaceCreateOptions::default).unwrap();
        }
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).unwrap();
        meta.insert("layout", "fjall-2").unwrap();
        meta.insert("epoch", "0123456789abcdef0123456789abcdef").unwrap();
        let conv = ConversationRecord { id: 5, kind: 2, title: "old".into(), ..Default::default() };
        let convs = db.keyspace("conversations", fjall::KeyspaceCreateOptions::default).unwrap();
        convs.insert(5u64.to_be_bytes(), serde_json::to_vec(&conv).unwrap()).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
        assert!(!db.list_keyspace_names().iter().any(|n| &**n == "templates"), "made without templates");
    }
    let store = open(dir.path());
    assert_eq!(store.epoch(), "0123456789abcdef0123456789abcdef", "the epoch is kept");
    assert_eq!(store.get_conversation(5).await.unwrap().map(|c| c.title), Some("old".to_string()));
    assert_eq!(store.templates(1, "ann").await.unwrap(), vec![]);
    let t = TemplateRecord { id: 9, scope: 1, owner: "ann".into(), name: "hi".into(), ..Default::default() };
    assert!(store.put_template(&t, None).await.unwrap());
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.templates(1, "ann").await.unwrap(), vec![t]);
}
