//! How a conversation looks to one user: its summary (with the last message),
//! its wire form, and the one "no access" answer. Used by the owner and by
//! sessions; owns no state and decides no rule.

use crate::ids::ConvId;
use crate::store::{ConversationRecord, MemberRecord, MessageStore};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode};
use prost::Message;

/// The one answer for "does not exist" and "not a member": telling them apart
/// would let anyone probe which conversations exist (private ids are derived
/// from the pair, so that would reveal who talks privately with whom).
pub fn no_access(conv: ConvId) -> WireError {
    WireError::new(ErrorCode::NotFound, format!("conversation {conv} does not exist or you are not a member"))
}

/// A conversation summary for one member (or a non-member, for staff).
pub async fn summary(
    store: &crate::store::Store,
    rec: &ConversationRecord,
    member_count: usize,
    last_seq: u64,
    me: Option<&MemberRecord>,
) -> v1::ConversationSummary {
    let last_message = last_message(store, rec.id, last_seq).await;
    build(rec, member_count, last_seq, me, last_message)
}

/// The message at `last_seq`, read from the store (None: no message yet, or the read failed).
pub async fn last_message(store: &crate::store::Store, conv: ConvId, last_seq: u64) -> Option<v1::Message> {
    if last_seq == 0 {
        return None;
    }
    let range = crate::store::Range {
        after: last_seq - 1,
        before: last_seq + 1,
        limit: 1,
        direction: crate::store::Direction::Forward,
    };
    match store.read_range(conv, range).await {
        Ok(v) => v.first().and_then(|(_, b)| v1::Message::decode(b.as_ref()).ok()),
        Err(_) => None,
    }
}

/// A conversation summary from what is known: no I/O.
pub fn build(
    rec: &ConversationRecord,
    member_count: usize,
    last_seq: u64,
    me: Option<&MemberRecord>,
    last_message: Option<v1::Message>,
) -> v1::ConversationSummary {
    let read_seq = me.map_or(0, |m| m.read_seq);
    v1::ConversationSummary {
        conversation: Some(conversation_proto(rec, last_seq, member_count)),
        last_message,
        unread_count: last_seq.saturating_sub(read_seq),
        read_seq,
        my_role: me.map_or(0, |m| m.role),
        purged_through: 0,
    }
}

/// The wire form of a conversation record.
pub fn conversation_proto(rec: &ConversationRecord, last_seq: u64, member_count: usize) -> v1::Conversation {
    v1::Conversation {
        id: rec.id,
        kind: rec.kind,
        title: rec.title.clone(),
        case_id: rec.case_id.clone(),
        created_by: rec.created_by.clone(),
        created_at_ms: rec.created_at_ms,
        archived_at_ms: rec.archived_at_ms,
        support_state: rec.support_state,
        last_seq,
        member_count: member_count as u32,
        e2e: rec.e2e,
        retention_days: rec.retention_days,
        legal_hold: rec.legal_hold,
    }
}
