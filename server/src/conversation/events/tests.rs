//! Each rule of [`super::apply`] and each refusal, with the clock in the test's hands.

use super::*;

const T0: u64 = 1_700_000_000_000;

fn text(s: &str) -> Option<v1::MessageBody> {
    Some(v1::MessageBody { content: Some(v1::message_body::Content::Text(s.into())) })
}

fn msg(seq: u64, sender: &str) -> v1::Message {
    v1::Message {
        conversation_id: 7,
        seq,
        sender_id: sender.into(),
        client_msg_id: format!("c{seq}"),
        body: text("helo"),
        server_time_ms: T0,
        kind: MessageKind::User as i32,
        ..Default::default()
    }
}

fn edit(seq: u64, body: &str) -> Change {
    Change::Edit(v1::EditMessage { conversation_id: 7, seq, body: text(body), client_msg_id: "e".into() })
}

fn delete(seq: u64) -> Change {
    Change::Delete(v1::DeleteMessage { conversation_id: 7, seq, client_msg_id: "d".into() })
}

fn react(seq: u64, emoji: &str, on: bool) -> Change {
    Change::React(v1::React { conversation_id: 7, seq, emoji: emoji.into(), on, client_msg_id: "r".into() })
}

fn code(r: Result<Option<Applied>, WireError>) -> ErrorCode {
    r.expect_err("refused").code
}

const M: MemberRole = MemberRole::Member;

#[test]
fn the_sender_edits_their_text_and_the_edit_names_its_target() {
    let a = apply(&Rules::default(), &msg(3, "ann"), "ann", M, &edit(3, "hello"), T0 + 5).unwrap().unwrap();
    assert_eq!(a.latest.body, text("hello"));
    assert_eq!(a.latest.edited_at_ms, T0 + 5);
    assert_eq!((a.latest.seq, a.latest.sender_id.as_str()), (3, "ann"));
    assert_eq!(a.event.kind, MessageKind::Edit as i32);
    assert_eq!((a.event.target_seq, a.event.sender_id.as_str(), a.event.client_msg_id.as_str()), (3, "ann", "e"));
    assert_eq!(a.event.body, text("hello"));
}

#[test]
fn another_member_may_not_edit() {
    assert_eq!(code(apply(&Rules::default(), &msg(3, "ann"), "bob", M, &edit(3, "x"), T0)), ErrorCode::NotYourMessage);
    // Not even an admin.
    let admin = MemberRole::Admin;
    assert_eq!(
        code(apply(&Rules::default(), &msg(3, "ann"), "bob", admin, &edit(3, "x"), T0)),
        ErrorCode::NotYourMessage
    );
}

#[test]
fn the_edit_window_closes_when_configured_and_is_open_by_default() {
    let day = 86_400_000;
    assert!(apply(&Rules::default(), &msg(3, "ann"), "ann", M, &edit(3, "x"), T0 + 365 * day).is_ok());
    let rules = Rules { edit_window_ms: 60_000, ..Rules::default() };
    assert!(apply(&rules, &msg(3, "ann"), "ann", M, &edit(3, "x"), T0 + 60_000).is_ok());
    let e = apply(&rules, &msg(3, "ann"), "ann", M, &edit(3, "x"), T0 + 60_001).unwrap_err();
    assert_eq!((e.code, e.limit), (ErrorCode::EditWindowClosed, Some("edit_window_secs")));
}

#[test]
fn system_lines_events_and_ciphertext_are_not_edited() {
    let mut sys = msg(3, "ann");
    sys.kind = MessageKind::System as i32;
    assert_eq!(code(apply(&Rules::default(), &sys, "ann", M, &edit(3, "x"), T0)), ErrorCode::NotEditable);
    assert_eq!(code(apply(&Rules::default(), &sys, "ann", M, &react(3, "👍", true), T0)), ErrorCode::NotEditable);
    let mut ev = msg(3, "ann");
    ev.kind = MessageKind::Reaction as i32;
    assert_eq!(code(apply(&Rules::default(), &ev, "ann", M, &delete(3), T0)), ErrorCode::NotEditable);
    let mut sealed = msg(3, "ann");
    let ct = v1::E2eCiphertext { mls: vec![1].into(), ..Default::default() };
    sealed.body = Some(v1::MessageBody { content: Some(v1::message_body::Content::Ciphertext(ct)) });
    assert_eq!(code(apply(&Rules::default(), &sealed, "ann", M, &edit(3, "x"), T0)), ErrorCode::NotEditable);
}

#[test]
fn a_delete_takes_the_body_and_reactions_and_says_who() {
    let mut m = msg(3, "ann");
    m.reactions.push(v1::Reaction { emoji: "👍".into(), user_ids: vec!["bob".into()] });
    let a = apply(&Rules::default(), &m, "ann", M, &delete(3), T0).unwrap().unwrap();
    assert!(a.latest.deleted);
    assert_eq!((a.latest.body.as_ref(), a.latest.deleted_by.as_str()), (None, "ann"));
    assert!(a.latest.reactions.is_empty());
    assert_eq!((a.event.kind, a.event.target_seq), (MessageKind::Delete as i32, 3));
}

#[test]
fn moderators_delete_others_messages_unless_configured_off() {
    let m = msg(3, "ann");
    assert_eq!(code(apply(&Rules::default(), &m, "bob", M, &delete(3), T0)), ErrorCode::NotYourMessage);
    for role in [MemberRole::Moderator, MemberRole::Admin] {
        let a = apply(&Rules::default(), &m, "bob", role, &delete(3), T0).unwrap().unwrap();
        assert_eq!(a.latest.deleted_by, "bob");
    }
    let off = Rules { moderators_delete: false, ..Rules::default() };
    assert_eq!(code(apply(&off, &m, "bob", MemberRole::Admin, &delete(3), T0)), ErrorCode::NotYourMessage);
}

#[test]
fn a_deleted_message_takes_no_edit_delete_or_reaction() {
    let gone = apply(&Rules::default(), &msg(3, "ann"), "ann", M, &delete(3), T0).unwrap().unwrap().latest;
    for c in [edit(3, "x"), delete(3), react(3, "👍", true)] {
        assert_eq!(code(apply(&Rules::default(), &gone, "ann", M, &c, T0)), ErrorCode::MessageDeleted);
    }
}

#[test]
fn reactions_toggle_per_user_with_counts_and_who() {
    let r = Rules::default();
    let m = msg(3, "ann");
    let m = apply(&r, &m, "bob", M, &react(3, "👍", true), T0).unwrap().unwrap().latest;
    let a = apply(&r, &m, "cat", M, &react(3, "👍", true), T0).unwrap().unwrap();
    assert_eq!(a.event.reaction, Some(v1::ReactionChange { emoji: "👍".into(), on: true }));
    assert_eq!(
        a.latest.reactions,
        vec![v1::Reaction { emoji: "👍".into(), user_ids: vec!["bob".into(), "cat".into()] }]
    );
    // The same again changes nothing; taking away one they lack neither.
    assert_eq!(apply(&r, &a.latest, "cat", M, &react(3, "👍", true), T0), Ok(None));
    assert_eq!(apply(&r, &a.latest, "cat", M, &react(3, "🎉", false), T0), Ok(None));
    let m = apply(&r, &a.latest, "bob", M, &react(3, "👍", false), T0).unwrap().unwrap().latest;
    let m = apply(&r, &m, "cat", M, &react(3, "👍", false), T0).unwrap().unwrap().latest;
    assert!(m.reactions.is_empty(), "an emoji nobody has is gone");
}

#[test]
fn reactions_are_bounded_per_message_and_per_user() {
    let r = Rules { max_reaction_emoji: 2, max_reactions_per_user: 2, ..Rules::default() };
    let mut m = msg(3, "ann");
    for e in ["👍", "🎉"] {
        m = apply(&r, &m, "bob", M, &react(3, e, true), T0).unwrap().unwrap().latest;
    }
    let e = apply(&r, &m, "bob", M, &react(3, "❤️", true), T0).unwrap_err();
    assert_eq!((e.code, e.limit), (ErrorCode::TooManyReactions, Some("max_reactions_per_user")));
    // Another user may join an emoji that is there, not add a third.
    assert!(apply(&r, &m, "cat", M, &react(3, "👍", true), T0).unwrap().is_some());
    let e = apply(&r, &m, "cat", M, &react(3, "❤️", true), T0).unwrap_err();
    assert_eq!((e.code, e.limit), (ErrorCode::TooManyReactions, Some("max_reaction_emoji")));
}
