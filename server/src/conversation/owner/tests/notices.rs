//! Offline notices: everyone but the sender, once per debounce per member,
//! with unread counts; none in big rooms; the text only when configured.
//! Webhooks: messages of case conversations a service account is in, its
//! own as system messages; never an offline notice to a service account.

use super::*;

fn rules(content: bool, max_members: usize) -> OwnerConfig {
    let notice = NoticeRules { debounce: Duration::from_secs(30), max_members, include_content: content };
    OwnerConfig { shards: 2, notice: Some(notice), ..OwnerConfig::default() }
}

fn stored(h: &mut Harness, user: &str, cmid: &str) -> Out {
    h.send(user, cmid);
    let _ = h.out();
    h.commit(Ok(()))
}

fn recipients(n: &Notice) -> Vec<(String, u64)> {
    let mut r: Vec<_> = n.recipients.iter().map(|(u, c)| (u.to_string(), *c)).collect();
    r.sort();
    r
}

#[test]
fn members_but_the_sender_are_noticed_once_per_debounce_with_unread_counts() {
    let mut h = Harness::with(rules(false, 50), 0);
    let out = stored(&mut h, "alice", "a1");
    assert_eq!(out.notices.len(), 1);
    let n = &out.notices[0];
    assert_eq!((n.seq, &*n.sender, n.text.as_deref()), (1, "alice", None), "no content by default");
    assert_eq!(recipients(n), [("bob".into(), 1), ("carol".into(), 1)]);
    // Within the debounce nobody is noticed again, however many messages.
    h.advance(Duration::from_secs(10));
    assert!(stored(&mut h, "alice", "a2").notices.is_empty());
    // Bob answers: alice is noticed (her first), bob and carol are not yet.
    let out = stored(&mut h, "bob", "b1");
    assert_eq!(recipients(&out.notices[0]), [("alice".into(), 1)], "she read up to her own message: one unread");
    // Past the debounce: carol again, with all three unread; bob's read mark moved when he wrote.
    h.advance(Duration::from_secs(21));
    let out = stored(&mut h, "alice", "a3");
    assert_eq!(recipients(&out.notices[0]), [("bob".into(), 1), ("carol".into(), 4)]);
}

#[test]
fn big_rooms_notice_nobody_and_content_goes_only_when_configured() {
    let mut h = Harness::with(rules(true, 2), 0);
    assert!(stored(&mut h, "alice", "a1").notices.is_empty(), "three members, over the bound of two");
    let mut h = Harness::with(rules(true, 50), 0);
    let out = stored(&mut h, "alice", "a1");
    assert_eq!(out.notices[0].text.as_deref(), Some("from alice"));
    let mut h = Harness::new(0);
    assert!(stored(&mut h, "alice", "a1").notices.is_empty(), "off unless configured");
}

#[test]
fn case_conversations_with_a_service_account_hand_messages_to_its_webhooks() {
    let with = |kind, users: &[&str]| {
        let members = members(users, 0);
        let h = Owner::new(rules(false, 50), record(kind), members, (0, None), Instant::now(), WALL);
        Harness { owner: h, t0: Instant::now(), now: Instant::now(), next: 0 }
    };
    let mut h = with(ConversationKind::Case, &["alice", "bob", "svc:cms"]);
    let out = stored(&mut h, "alice", "a1");
    assert_eq!(out.hooks.len(), 1);
    assert_eq!((out.hooks[0].seq, out.hooks[0].kind), (1, v1::MessageKind::User as i32));
    assert_eq!(recipients(&out.notices[0]), [("bob".into(), 1)], "no offline notice to a service account");
    let out = stored(&mut h, "svc:cms", "s1");
    assert_eq!(out.hooks[0].kind, v1::MessageKind::System as i32, "a service account's message is a system message");
    assert_eq!((out.hooks[0].seq, out.hooks[0].sender_id.as_str()), (2, "svc:cms"));
    assert!(stored(&mut with(ConversationKind::Case, &["alice", "bob"]), "alice", "a").hooks.is_empty(), "no service");
    let group = &mut with(ConversationKind::Group, &["alice", "svc:cms"]);
    assert!(stored(group, "alice", "a").hooks.is_empty(), "not a case conversation");
}
