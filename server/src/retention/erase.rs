//! The rules of a GDPR erasure, sans-IO: the request checked (a user id
//! and a reason), which of a user's conversations a legal hold keeps (the
//! retention [`Holds`] decide, so a hold keeps the same things from the
//! purge job and from an erasure), which stored messages are the user's and
//! still need a tombstone, and the pseudonymised directory entry. The
//! effects (tombstones through each conversation's owner, records removed,
//! sessions closed) are `crate::command::gdpr`'s.

use super::rules::Holds;
use crate::store::UserRecord;
use crate::store::retention::HoldScope;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, MessageKind};

/// Longest reason an erasure carries, bytes.
pub const MAX_REASON: usize = 500;

/// What happens to one conversation of the erased user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Their messages there are erased.
    Erase,
    /// A legal hold keeps them: its scope and target.
    Keep(HoldScope, String),
}

/// An erasure request, checked: the user id well-formed, a reason given
/// (ERASE_REASON_REQUIRED) and not too long.
pub fn check_request(user_id: &str, reason: &str) -> Result<(), WireError> {
    chat_protocol::limits::check_user_id(user_id).map_err(|e| e.to_wire())?;
    check_reason(reason)
}

/// An erasure's reason: present (ERASE_REASON_REQUIRED) and not too long.
pub fn check_reason(reason: &str) -> Result<(), WireError> {
    if reason.trim().is_empty() {
        return Err(WireError::new(ErrorCode::EraseReasonRequired, "an erasure needs a reason (for the audit trail)"));
    }
    if reason.len() > MAX_REASON {
        return Err(WireError::new(ErrorCode::InvalidArgument, format!("reason: at most {MAX_REASON} bytes")));
    }
    Ok(())
}

/// Whether the conversation `conv` (of case `case_id`, with `members`) is
/// erased or kept, and by which hold.
pub fn decide<'a>(holds: &Holds, conv: u64, case_id: &str, members: impl IntoIterator<Item = &'a str>) -> Decision {
    match holds.holder(conv, case_id, members) {
        Some((scope, target)) => Decision::Keep(scope, target),
        None => Decision::Erase,
    }
}

/// Whether a stored message is one `user` sent (a user's message, not an
/// edit, delete or reaction event nor a system line).
pub fn is_theirs(m: &v1::Message, user: &str) -> bool {
    m.kind == MessageKind::User as i32 && m.sender_id == user
}

/// Whether a stored entry is an EDIT event of `user`'s (it carries the text
/// they edited to, which an erasure strips).
pub fn is_their_edit(m: &v1::Message, user: &str) -> bool {
    m.kind == MessageKind::Edit as i32 && m.sender_id == user
}

/// Whether a message of theirs still needs its tombstone (an erasure cut
/// off midway, or run again, skips the ones it already made).
pub fn needs_tombstone(m: &v1::Message) -> bool {
    !m.deleted
}

/// The client message id of the tombstone of `seq`: the same on every
/// attempt, so an erasure retried is answered as the first one was.
pub fn tombstone_id(seq: u64) -> String {
    format!("gdpr-erase-{seq}")
}

/// The name an erased user shows: "Erased user " and the first 8 hex
/// digits of the SHA-256 of their id (stable, and not the id).
pub fn pseudonym(user_id: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, user_id.as_bytes());
    format!("Erased user {}", hex::encode(&d.as_ref()[..4]))
}

/// The directory entry after an erasure: the id stays (it keys their
/// tombstones), the name is the pseudonym, provisioned (so a token's
/// claims do not bring the name back) and disabled (so they cannot sign in).
pub fn pseudonymise(rec: &UserRecord) -> UserRecord {
    UserRecord {
        id: rec.id.clone(),
        display_name: pseudonym(&rec.id),
        role: rec.role,
        disabled: true,
        provisioned: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::retention::HoldRecord;

    fn hold(scope: HoldScope, target: &str) -> HoldRecord {
        HoldRecord { scope, target: target.into(), reason: "r".into(), set_by: "root".into(), set_at_ms: 0 }
    }

    #[test]
    fn a_request_needs_a_user_and_a_reason() {
        assert!(check_request("ann", "art. 17 request").is_ok());
        assert_eq!(check_request("ann", "").unwrap_err().code, ErrorCode::EraseReasonRequired);
        assert_eq!(check_request("ann", "  ").unwrap_err().code, ErrorCode::EraseReasonRequired);
        assert_eq!(check_request("ann", &"x".repeat(501)).unwrap_err().code, ErrorCode::InvalidArgument);
        assert!(check_request("", "why").is_err());
    }

    #[test]
    fn holds_keep_a_conversation_and_say_which() {
        let holds = Holds::new(&[
            hold(HoldScope::Conversation, "5"),
            hold(HoldScope::Case, "AZ-1"),
            hold(HoldScope::User, "bob"),
        ]);
        assert_eq!(decide(&holds, 5, "", ["ann"]), Decision::Keep(HoldScope::Conversation, "5".into()));
        assert_eq!(decide(&holds, 6, "AZ-1", ["ann"]), Decision::Keep(HoldScope::Case, "AZ-1".into()));
        assert_eq!(decide(&holds, 7, "", ["ann", "bob"]), Decision::Keep(HoldScope::User, "bob".into()));
        assert_eq!(decide(&holds, 8, "AZ-2", ["ann", "carol"]), Decision::Erase);
        assert_eq!(decide(&Holds::default(), 5, "AZ-1", ["bob"]), Decision::Erase, "no hold: erased");
        let on_them = Holds::new(&[hold(HoldScope::User, "ann")]);
        assert_eq!(decide(&on_them, 9, "", ["ann"]), Decision::Keep(HoldScope::User, "ann".into()));
    }

    #[test]
    fn only_their_own_live_messages_get_tombstones() {
        let msg = |kind: MessageKind, sender: &str, deleted: bool| v1::Message {
            kind: kind as i32,
            sender_id: sender.into(),
            deleted,
            ..Default::default()
        };
        assert!(is_theirs(&msg(MessageKind::User, "ann", false), "ann"));
        assert!(!is_theirs(&msg(MessageKind::User, "bob", false), "ann"), "another's");
        assert!(!is_theirs(&msg(MessageKind::Edit, "ann", false), "ann"), "an event, not a message");
        assert!(!is_theirs(&msg(MessageKind::System, "ann", false), "ann"));
        assert!(needs_tombstone(&msg(MessageKind::User, "ann", false)));
        assert!(!needs_tombstone(&msg(MessageKind::User, "ann", true)), "erased already");
        assert_eq!(tombstone_id(7), tombstone_id(7), "stable across attempts");
    }

    #[test]
    fn the_profile_is_pseudonymised_disabled_and_keeps_its_id() {
        let rec = UserRecord {
            id: "ann".into(),
            display_name: "Ann Advocate".into(),
            role: v1::Role::Admin as i32,
            disabled: false,
            provisioned: false,
        };
        let p = pseudonymise(&rec);
        assert_eq!(p.id, "ann");
        assert!(p.display_name.starts_with("Erased user ") && p.display_name.len() == "Erased user ".len() + 8);
        assert!(!p.display_name.contains("Ann"));
        assert!(p.disabled && p.provisioned);
        assert_eq!(p.role, rec.role, "the role stays (disabled, it grants nothing)");
        assert_eq!(pseudonymise(&p), p, "erasing twice changes nothing");
        assert_ne!(pseudonym("ann"), pseudonym("bob"));
    }
}
