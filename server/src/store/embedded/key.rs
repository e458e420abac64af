//! Key encodings of the keyspaces listed in the `embedded` module docs:
//! fixed-width big-endian integers, length-prefixed strings, and the checks
//! that keep a key within fjall's 65,535 bytes. It does not read or write the
//! database.

use super::db::Ks;
use crate::store::{StoreError, StoreResult};

/// The longest key fjall takes.
const MAX_KEY: usize = u16::MAX as usize;

/// `key` if fjall takes it, else a [`StoreError::Backend`] of `op`.
fn checked(op: &'static str, key: Vec<u8>) -> StoreResult<Vec<u8>> {
    if key.len() > MAX_KEY {
        let detail = format!("key of {} bytes is over the limit of {MAX_KEY}", key.len());
        return Err(StoreError::Backend {
            op,
            source: Box::new(std::io::Error::new(std::io::ErrorKind::InvalidInput, detail)),
        });
    }
    Ok(key)
}

/// `len(s) as u16 | s`, or a [`StoreError::Backend`] if `s` is too long.
fn push_prefixed(op: &'static str, key: &mut Vec<u8>, s: &str) -> StoreResult<()> {
    let len = u16::try_from(s.len()).map_err(|_| StoreError::Backend {
        op,
        source: Box::new(std::io::Error::new(std::io::ErrorKind::InvalidInput, "id over 65,535 bytes")),
    })?;
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(s.as_bytes());
    Ok(())
}

/// `tag(1) | len(s)(2) | s`: the prefix of a partition named by a tag and a
/// string (templates: scope and owner; the audit trail: record kind and chain).
pub(super) fn tagged(op: &'static str, tag: u8, s: &str) -> StoreResult<Vec<u8>> {
    let mut key = Vec::with_capacity(11 + s.len());
    key.push(tag);
    push_prefixed(op, &mut key, s)?;
    Ok(key)
}

/// `a(8) | b(8)`: messages and the support queue.
/// `(conversation, target seq, event seq)`: a message version's key.
pub(super) fn triple(a: u64, b: u64, c: u64) -> [u8; 24] {
    let mut key = [0; 24];
    key[..16].copy_from_slice(&pair(a, b));
    key[16..].copy_from_slice(&c.to_be_bytes());
    key
}

pub(super) fn pair(a: u64, b: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&a.to_be_bytes());
    key[8..].copy_from_slice(&b.to_be_bytes());
    key
}

/// `conversation(8) | len(sender)(2) | sender | client_msg_id`.
pub(super) fn idempotency(op: &'static str, conv: u64, sender: &str, client_msg_id: &str) -> StoreResult<Vec<u8>> {
    let mut key = Vec::with_capacity(10 + sender.len() + client_msg_id.len());
    key.extend_from_slice(&conv.to_be_bytes());
    push_prefixed(op, &mut key, sender)?;
    key.extend_from_slice(client_msg_id.as_bytes());
    checked(op, key)
}

/// `conversation(8) | user`.
pub(super) fn member(op: &'static str, conv: u64, user: &str) -> StoreResult<Vec<u8>> {
    let mut key = Vec::with_capacity(8 + user.len());
    key.extend_from_slice(&conv.to_be_bytes());
    key.extend_from_slice(user.as_bytes());
    checked(op, key)
}

/// `len(user)(2) | user`: the prefix of a user's `user_convs` keys.
pub(super) fn user_convs_prefix(op: &'static str, user: &str) -> StoreResult<Vec<u8>> {
    let mut key = Vec::with_capacity(10 + user.len());
    push_prefixed(op, &mut key, user)?;
    Ok(key)
}

/// `len(user)(2) | user | conversation(8)`.
pub(super) fn user_conv(op: &'static str, user: &str, conv: u64) -> StoreResult<Vec<u8>> {
    let mut key = user_convs_prefix(op, user)?;
    key.extend_from_slice(&conv.to_be_bytes());
    checked(op, key)
}

/// `len(user)(2) | user | activity_ms(8) | conversation(8)`: a user's list,
/// most recent last in key order.
pub(super) fn user_activity(op: &'static str, user: &str, at_ms: u64, conv: u64) -> StoreResult<Vec<u8>> {
    let mut key = user_convs_prefix(op, user)?;
    key.extend_from_slice(&pair(at_ms, conv));
    checked(op, key)
}

/// `conversation(8) | id`: an attachment record.
pub(super) fn attachment(conversation_id: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&conversation_id.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// `id`.
pub(super) fn user(op: &'static str, id: &str) -> StoreResult<Vec<u8>> {
    checked(op, id.as_bytes().to_vec())
}

/// The big-endian `u64` at `key[at..at + 8]`, the key being exactly `len` long.
pub(super) fn u64_at(ks: Ks, key: &[u8], len: usize, at: usize) -> StoreResult<u64> {
    match key.get(at..at + 8) {
        Some(bytes) if key.len() == len => {
            let mut be = [0; 8];
            be.copy_from_slice(bytes);
            Ok(u64::from_be_bytes(be))
        }
        _ => Err(StoreError::Corrupt { table: ks.name(), detail: format!("key of {} bytes", key.len()) }),
    }
}
