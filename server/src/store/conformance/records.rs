//! Conformance cases of records other than messages: conversations,
//! members and their index, watermarks, users, the
//! epoch, and everything kept across a reopen.

use chat_protocol::v1::{MemberRole, Role, SupportState};
use futures_util::future::join_all;

use super::harness::{
    ConformanceFactory, all, append_ok, expected, group, member, member_ids, msg, msgs, read, support, user_convs,
};
use crate::store::{ConversationRecord, Created, MemberRecord, MessageStore, NewMessage, StoreError, UserRecord};

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

/// `conversation_ids` names every conversation once, members or not.
pub async fn conversation_ids_lists_every_conversation<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    assert_eq!(store.conversation_ids().await.expect("ids"), Vec::<u64>::new());
    // One id above i64::MAX: a backend storing signed ids must give it back as is.
    for conv in [90, 7, (1 << 63) + 5] {
        store.create_conversation(&group(conv), &[member(conv, "alice")]).await.expect("create");
    }
    store.create_conversation(&group(91), &[]).await.expect("create without members");
    let mut ids = store.conversation_ids().await.expect("ids");
    ids.sort_unstable();
    assert_eq!(ids, [7, 90, 91, (1 << 63) + 5]);
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

/// Users are upserted; lookups skip unknown ids.
pub async fn users_upsert_and_get<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    let user = |id: &str, name: &str, role: Role| UserRecord {
        id: id.into(),
        display_name: name.into(),
        role: role as i32,
        ..UserRecord::default()
    };
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

/// The directory keeps each user's flags, and pages through every user once,
/// in the same order on every call.
pub async fn users_directory_pages<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    assert_eq!(store.users_page(None, 10).await.expect("page"), vec![]);
    let ids: Vec<String> = (0..25).map(|i| format!("user-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let rec = UserRecord {
            id: id.clone(),
            display_name: format!("Name {i}"),
            role: Role::Client as i32,
            disabled: i % 3 == 0,
            provisioned: i % 2 == 0,
        };
        store.upsert_user(&rec).await.expect("upsert");
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.users_page(after.clone(), 10).await.expect("page");
        assert!(page.len() <= 10, "a page holds at most its limit");
        let again = store.users_page(after.clone(), 10).await.expect("page again");
        assert_eq!(page, again, "the same page twice");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page);
    }
    seen.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(seen.iter().map(|u| u.id.clone()).collect::<Vec<_>>(), ids, "every user once");
    let u3 = &seen[3];
    assert!(u3.disabled && !u3.provisioned, "flags kept: {u3:?}");
    let u4 = &seen[4];
    assert!(!u4.disabled && u4.provisioned, "flags kept: {u4:?}");
    let got = store.get_users(&["user-03".to_string()]).await.expect("get");
    assert_eq!(got, vec![u3.clone()]);
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
    let user = UserRecord {
        id: "alice".into(),
        display_name: "Alice".into(),
        role: Role::Client as i32,
        disabled: true,
        provisioned: true,
    };
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
    let queue = store.support_queue(None, 10).await.expect("queue");
    assert_eq!(queue, [(1_000, 301)]);
    assert_eq!(store.conversation_activity(300).await.expect("activity"), Some(group(300).created_at_ms));
    let alices = store.user_conversations_page("alice", None, 10).await.expect("list");
    assert_eq!(alices, [(group(300).created_at_ms, 300), (1_000, 301)], "lists kept");
    assert_eq!(store.get_users(&["alice".to_string()]).await.expect("get"), vec![user]);

    // And it keeps working: the clash check sees the old data.
    assert!(matches!(store.append(msgs(300, [20])).await, Err(StoreError::SeqTaken { .. })));
    append_ok(&store, msgs(300, [21])).await;
    assert_eq!(store.last_seq(300).await.expect("last_seq"), 21);
}
