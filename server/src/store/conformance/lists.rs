//! Conformance cases of the ordered lists that page in the store: each
//! user's conversations by activity, most recent first, and the support queue
//! by creation, oldest first.

use chat_protocol::v1::SupportState;

use super::harness::{ConformanceFactory, group, member, support};
use crate::store::{ConversationRecord, ListKey, MessageStore};

/// The whole support queue's ids, read one page of 2 at a time.
async fn queue<S: MessageStore>(store: &S) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.support_queue(after, 2).await.expect("support_queue");
        assert!(page.len() <= 2, "a page holds at most its limit");
        let Some(&last) = page.last() else { return out };
        out.extend(page.iter().map(|(_, id)| *id));
        after = Some(last);
    }
}

/// A user's whole list, read `per_page` at a time, checking every page.
async fn list<S: MessageStore>(store: &S, user: &str, per_page: usize) -> Vec<ListKey> {
    let mut out: Vec<ListKey> = Vec::new();
    let mut after = None;
    loop {
        let page = store.user_conversations_page(user, after, per_page).await.expect("user_conversations_page");
        assert!(page.len() <= per_page, "a page holds at most its limit");
        let Some(&last) = page.last() else { return out };
        out.extend(page);
        after = Some(last);
    }
}

/// Just the ids of a user's list, most recent first.
async fn list_ids<S: MessageStore>(store: &S, user: &str) -> Vec<u64> {
    list(store, user, 2).await.into_iter().map(|(_, id)| id).collect()
}

/// The support queue holds exactly the WAITING support conversations,
/// oldest first.
pub async fn support_queue_follows_state<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    assert_eq!(queue(&store).await, Vec::<u64>::new());

    store.create_conversation(&support(201, 3_000, SupportState::Waiting), &[]).await.expect("create");
    store.create_conversation(&support(202, 1_000, SupportState::Waiting), &[]).await.expect("create");
    store.create_conversation(&support(203, 2_000, SupportState::Waiting), &[]).await.expect("create");
    store.create_conversation(&support(204, 500, SupportState::Assigned), &[]).await.expect("create");
    store.create_conversation(&group(205), &[]).await.expect("create");
    assert_eq!(queue(&store).await, [202, 203, 201], "oldest first");

    // A create-if-absent of an existing one does not add it twice.
    store.create_conversation(&support(202, 1_000, SupportState::Waiting), &[]).await.expect("create");
    assert_eq!(queue(&store).await, [202, 203, 201]);

    store.update_conversation(&support(203, 2_000, SupportState::Assigned)).await.expect("update");
    assert_eq!(queue(&store).await, [202, 201]);

    // Updating a waiting one with other changes keeps it once.
    let retitled = ConversationRecord { title: "still waiting".into(), ..support(201, 3_000, SupportState::Waiting) };
    store.update_conversation(&retitled).await.expect("update");
    assert_eq!(queue(&store).await, [202, 201]);

    store.update_conversation(&support(204, 500, SupportState::Waiting)).await.expect("update");
    store.update_conversation(&support(203, 2_000, SupportState::Waiting)).await.expect("update");
    assert_eq!(queue(&store).await, [204, 202, 203, 201]);

    store.update_conversation(&support(202, 1_000, SupportState::Unspecified)).await.expect("update");
    let archived = ConversationRecord { archived_at_ms: 9_000, ..support(201, 3_000, SupportState::Assigned) };
    store.update_conversation(&archived).await.expect("update");
    assert_eq!(queue(&store).await, [204, 203]);
}

/// A user's list is ordered by activity, most recent first, and pages
/// without gaps or repeats; a new conversation enters at its creation.
pub async fn lists_page_by_activity<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    assert_eq!(list_ids(&store, "alice").await, Vec::<u64>::new());
    for (id, at) in [(301, 5_000), (302, 1_000), (303, 3_000), (304, 3_000), (305, 9_000)] {
        let rec = ConversationRecord { created_at_ms: at, ..group(id) };
        store.create_conversation(&rec, &[member(id, "alice"), member(id, "bob")]).await.expect("create");
        assert_eq!(store.conversation_activity(id).await.expect("activity"), Some(at), "activity starts at creation");
    }
    let whole = list(&store, "alice", 500).await;
    assert_eq!(whole, [(9_000, 305), (5_000, 301), (3_000, 304), (3_000, 303), (1_000, 302)]);
    for per_page in [1, 2, 3] {
        assert_eq!(list(&store, "alice", per_page).await, whole, "pages of {per_page}");
    }
    // Below a key that is not in the list: what is below it.
    let below = store.user_conversations_page("alice", Some((4_000, 1)), 10).await.expect("page");
    assert_eq!(below, [(3_000, 304), (3_000, 303), (1_000, 302)]);
    assert_eq!(store.user_conversations_page("alice", None, 0).await.expect("page"), []);
    assert_eq!(list_ids(&store, "carol").await, Vec::<u64>::new(), "lists are per user");
    assert_eq!(store.conversation_activity(399).await.expect("activity"), None);
}

/// A touch moves the conversation to the top of every member's list, only
/// forward; members added later enter at its activity and keep their place
/// when their record is replaced; removed members lose it.
pub async fn touch_moves_every_members_list<F: ConformanceFactory>(factory: &mut F) {
    let store = factory.fresh().await;
    for (id, at) in [(401, 1_000), (402, 2_000), (403, 3_000)] {
        let rec = ConversationRecord { created_at_ms: at, ..group(id) };
        store.create_conversation(&rec, &[member(id, "alice"), member(id, "bob")]).await.expect("create");
    }
    assert_eq!(list_ids(&store, "alice").await, [403, 402, 401]);
    store.touch_conversation(401, 4_000).await.expect("touch");
    assert_eq!(store.conversation_activity(401).await.expect("activity"), Some(4_000));
    assert_eq!(list(&store, "alice", 10).await, [(4_000, 401), (3_000, 403), (2_000, 402)]);
    assert_eq!(list_ids(&store, "bob").await, [401, 403, 402], "every member's list moves");

    store.touch_conversation(401, 3_500).await.expect("an older touch");
    assert_eq!(store.conversation_activity(401).await.expect("activity"), Some(4_000), "never back");
    assert_eq!(list(&store, "alice", 10).await, [(4_000, 401), (3_000, 403), (2_000, 402)]);
    store.touch_conversation(499, 9_000).await.expect("an unknown conversation is not an error");
    assert_eq!(store.conversation_activity(499).await.expect("activity"), None);

    // Carol joins 402: she sees it at its activity; a role change keeps it there.
    store.put_member(&member(402, "carol")).await.expect("put");
    assert_eq!(list(&store, "carol", 10).await, [(2_000, 402)]);
    store.touch_conversation(402, 5_000).await.expect("touch");
    assert_eq!(list(&store, "carol", 10).await, [(5_000, 402)]);
    let moderator =
        crate::store::MemberRecord { role: chat_protocol::v1::MemberRole::Moderator as i32, ..member(402, "carol") };
    store.put_member(&moderator).await.expect("put again");
    assert_eq!(list(&store, "carol", 10).await, [(5_000, 402)], "one entry, in place");
    assert_eq!(list_ids(&store, "alice").await, [402, 401, 403]);

    // Bob leaves 401: gone from his list only, and later touches leave him out.
    store.remove_member(401, "bob").await.expect("remove");
    store.touch_conversation(401, 6_000).await.expect("touch");
    assert_eq!(list_ids(&store, "bob").await, [402, 403]);
    assert_eq!(list_ids(&store, "alice").await, [401, 402, 403]);
    store.remove_member(401, "bob").await.expect("removing again is a no-op");
    assert_eq!(list_ids(&store, "bob").await, [402, 403]);
}
