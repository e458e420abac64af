//! Rows: how numbers and records are stored. Seqs are `bigint`s with the
//! sign bit flipped ([`seq_to_db`]) so that CQL's signed order is the numeric
//! order of the whole `u64` range; ids and times are the same 64 bits. The
//! row types and value lists of the conversation, member and queue tables.
//! It runs no statements.

use chat_protocol::v1::SupportState;
use scylla::value::CqlValue;

use super::{ConversationRecord, MemberRecord};

/// The `support_queue` partition of waiting conversations.
pub(super) const WAITING: &str = "waiting";

/// A seq as stored: the sign bit flipped, so CQL's signed order is `u64` order.
pub fn seq_to_db(seq: u64) -> i64 {
    (seq ^ (1 << 63)) as i64
}

/// The seq a stored `bigint` stands for (inverse of [`seq_to_db`]).
pub fn seq_from_db(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// An id or time as stored: the same 64 bits.
pub(super) fn id_to_db(id: u64) -> i64 {
    id as i64
}

/// The id or time a stored `bigint` stands for.
pub(super) fn id_from_db(v: i64) -> u64 {
    v as u64
}

/// `conversations` columns, in statement order.
pub(super) type ConvRow = (i64, i32, String, String, String, i64, i64, i32, bool, i32, bool);
/// `members_by_conversation` columns, in statement order.
pub(super) type MemberRow = (String, i32, i64, i64, i64);

pub(super) fn conv_values(c: &ConversationRecord) -> ConvRow {
    (
        id_to_db(c.id),
        c.kind,
        c.title.clone(),
        c.case_id.clone(),
        c.created_by.clone(),
        id_to_db(c.created_at_ms),
        id_to_db(c.archived_at_ms),
        c.support_state,
        c.e2e,
        c.retention_days as i32,
        c.legal_hold,
    )
}

pub(super) fn conv_from_row(r: ConvRow) -> ConversationRecord {
    ConversationRecord {
        id: id_from_db(r.0),
        kind: r.1,
        title: r.2,
        case_id: r.3,
        created_by: r.4,
        created_at_ms: id_from_db(r.5),
        archived_at_ms: id_from_db(r.6),
        support_state: r.7,
        e2e: r.8,
        retention_days: r.9 as u32,
        legal_hold: r.10,
    }
}

pub(super) fn member_from_row(conversation_id: u64, r: MemberRow) -> MemberRecord {
    MemberRecord {
        conversation_id,
        user_id: r.0,
        role: r.1,
        joined_at_ms: id_from_db(r.2),
        delivered_seq: seq_from_db(r.3),
        read_seq: seq_from_db(r.4),
    }
}

pub(super) fn member_values(m: &MemberRecord) -> Vec<CqlValue> {
    vec![
        CqlValue::BigInt(id_to_db(m.conversation_id)),
        CqlValue::Text(m.user_id.clone()),
        CqlValue::Int(m.role),
        CqlValue::BigInt(id_to_db(m.joined_at_ms)),
        CqlValue::BigInt(seq_to_db(m.delivered_seq)),
        CqlValue::BigInt(seq_to_db(m.read_seq)),
    ]
}

pub(super) fn user_conv_values(user: &str, conv: u64) -> Vec<CqlValue> {
    vec![CqlValue::Text(user.to_owned()), CqlValue::BigInt(id_to_db(conv))]
}

pub(super) fn queue_values(c: &ConversationRecord) -> Vec<CqlValue> {
    vec![CqlValue::Text(WAITING.into()), CqlValue::BigInt(id_to_db(c.created_at_ms)), CqlValue::BigInt(id_to_db(c.id))]
}

pub(super) fn is_waiting(c: &ConversationRecord) -> bool {
    c.support_state == SupportState::Waiting as i32
}

/// A client message id: `(conversation, sender, client_msg_id)`.
pub(super) type ClientId<'a> = (u64, &'a str, &'a str);
