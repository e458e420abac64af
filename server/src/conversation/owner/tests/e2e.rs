//! End-to-end encrypted conversations at the owner: the body rules and the
//! group epoch through sends, store failures and fences.

use super::*;

/// An E2E group of alice, bob and carol, empty (the group at epoch 0).
fn e2e() -> Harness {
    e2e_with(OwnerConfig { shards: 2, ..OwnerConfig::default() })
}

fn e2e_with(cfg: OwnerConfig) -> Harness {
    let t0 = Instant::now();
    let rec = ConversationRecord { e2e: true, ..record(ConversationKind::Group) };
    let owner = Owner::new(cfg, rec, members(&["alice", "bob", "carol"], 0), (0, Some(0)), t0, WALL);
    Harness { owner, t0, now: t0, next: 0 }
}

fn ct(epoch: u64, commit: bool) -> v1::message_body::Content {
    let mls = format!("mls {epoch} {commit}").into_bytes().into();
    v1::message_body::Content::Ciphertext(v1::E2eCiphertext { epoch, commit, mls, ..Default::default() })
}

fn stamps(out: &Out) -> Vec<(u64, u64)> {
    let decoded = out.appends[0].iter().map(|m| v1::Message::decode(m.encoded.as_ref()).unwrap());
    decoded.map(|m| (m.seq, m.mls_epoch)).collect()
}

#[test]
fn plaintext_is_refused_and_ciphertext_only_here() {
    let mut h = e2e();
    let a = h.send("alice", "plain");
    assert_eq!(h.out().refused(a), ErrorCode::E2eRequired);
    let mut plain = Harness::new(0);
    let b = plain.send_body("alice", "ct", 0, ct(0, false));
    assert_eq!(plain.out().refused(b), ErrorCode::NotE2e);
}

#[test]
fn the_first_commit_of_an_epoch_wins_and_what_follows_is_made_in_the_next() {
    let mut h = e2e();
    let a = h.send_body("alice", "c0", 0, ct(0, true));
    assert_eq!(stamps(&h.out()), [(1, 1)], "a commit's entry carries the epoch it starts");
    // While it is stored: another commit of epoch 0 loses, a message of epoch 1 waits.
    let b = h.send_body("bob", "c0-bob", 0, ct(0, true));
    let out = h.out();
    assert_eq!(out.refused(b), ErrorCode::StaleEpoch);
    let c = h.send_body("carol", "m1", 0, ct(1, false));
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(a), (1, false));
    assert_eq!(stamps(&out), [(2, 1)]);
    assert_eq!(h.commit(Ok(())).acked(c), (2, false));
}

#[test]
fn a_commit_that_fails_to_store_moves_nothing() {
    let mut h = e2e();
    let a = h.send_body("alice", "c0", 0, ct(0, true));
    h.out();
    let b = h.send_body("bob", "m1", 0, ct(1, false));
    let out = h.commit(Err(backend()));
    assert_eq!((out.refused(a), out.refused(b)), (ErrorCode::Unavailable, ErrorCode::Unavailable));
    h.owner.handle_head(h.now, Ok(0));
    h.out();
    h.advance(FAILURE_PAUSE);
    // The group is still at epoch 0: a message of epoch 1 would be stale.
    let c = h.send_body("bob", "m1-again", 0, ct(1, false));
    assert_eq!(h.out().refused(c), ErrorCode::StaleEpoch);
    h.send_body("alice", "c0-again", 0, ct(0, true));
    assert_eq!(stamps(&h.out()), [(1, 1)]);
}

#[test]
fn after_a_fence_the_reloaded_epoch_decides() {
    let mut h = e2e();
    let a = h.send_body("alice", "m0", 0, ct(0, false));
    h.out();
    h.commit(Err(seq_taken(1)));
    // The other sequencer stored a commit: the group moved to epoch 1.
    let reloaded = Reloaded { last: 1, members: members(&["alice", "bob", "carol"], 0), rec: None, mls_epoch: Some(1) };
    h.owner.handle_reloaded(h.now, Ok(reloaded));
    assert_eq!(h.out().refused(a), ErrorCode::StaleEpoch, "made for the epoch before the commit");
    h.send_body("alice", "m1", 0, ct(1, false));
    assert_eq!(stamps(&h.out()), [(2, 1)]);
}

#[test]
fn a_commit_tells_nobody_offline_and_a_message_is_told_without_content() {
    let notice = NoticeRules { debounce: Duration::ZERO, max_members: 50, include_content: true };
    let mut h = e2e_with(OwnerConfig { shards: 2, notice: Some(notice), ..OwnerConfig::default() });
    h.send_body("alice", "c0", 0, ct(0, true));
    h.out();
    assert!(h.commit(Ok(())).notices.is_empty(), "group bookkeeping is nobody's news");
    h.send_body("alice", "m1", 0, ct(1, false));
    h.out();
    let out = h.commit(Ok(()));
    assert_eq!(out.notices.len(), 1);
    assert_eq!(out.notices[0].text, None, "the server cannot read it, and says nothing of it");
}
