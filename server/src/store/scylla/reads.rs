//! Reads of messages: the head of a conversation (`last_seq`), history
//! pages over the buckets it has written (`read_range`), and client message
//! ids, answered only where the message at the recorded seq is that sender's
//! (`find_client_msg`, and the batched check an append runs first). It writes
//! nothing.

use bytes::Bytes;

use super::append::{BUCKET_SIZE, bucket_of};
use super::rows::{id_from_db, id_to_db, seq_from_db, seq_to_db};
use super::{Inner, StoreResult};
use crate::store::{Direction, Range};

/// The inclusive seq bounds a read covers, `None` when it covers nothing.
pub fn seq_bounds(range: &Range) -> Option<(u64, u64)> {
    if range.limit == 0 {
        return None;
    }
    let lo = range.after.checked_add(1)?;
    let hi = range.before.checked_sub(1)?;
    (lo <= hi).then_some((lo, hi))
}

/// The inclusive seq bounds of `bucket` clipped to `lo..=hi`.
pub fn bucket_bounds(bucket: u64, lo: u64, hi: u64) -> (u64, u64) {
    let first = bucket.saturating_mul(BUCKET_SIZE);
    let last = first.saturating_add(BUCKET_SIZE - 1);
    (lo.max(first), hi.min(last))
}

/// Whether a stored message's `(sender_id, client_msg_id)` columns are these.
pub(super) fn holds_client_msg(
    stored: Option<(Option<String>, Option<String>)>,
    sender: &str,
    client_msg_id: &str,
) -> bool {
    matches!(stored, Some((Some(s), Some(c))) if s == sender && c == client_msg_id)
}

impl Inner {
    /// The seq stored for a client message id, if the message stored at that
    /// seq really is that sender's message with that id (see `Inner::append`).
    pub(super) async fn find_client_msg(
        &self,
        conv: u64,
        sender: String,
        client_msg_id: String,
    ) -> StoreResult<Option<u64>> {
        const OP: &str = "find_client_msg";
        let values = (id_to_db(conv), &sender, &client_msg_id);
        let Some((seq,)) = self.one::<(i64,)>(OP, &self.st.select_idempotency, values, None).await? else {
            return Ok(None);
        };
        let seq = seq_from_db(seq);
        // Serial: settles a transaction of that message still in flight (or
        // whose outcome its writer could not tell), so the answer is final.
        let key = (id_to_db(conv), id_to_db(bucket_of(seq)), seq_to_db(seq));
        let stored: Option<(Option<String>, Option<String>)> =
            self.one(OP, &self.st.select_message_sender, key, Some(self.serial())).await?;
        Ok(holds_client_msg(stored, &sender, &client_msg_id).then_some(seq))
    }

    pub(super) async fn last_seq(&self, conv: u64) -> StoreResult<u64> {
        let buckets: Vec<(i64,)> = self.rows("last_seq", &self.st.select_buckets_desc, (id_to_db(conv),), None).await?;
        for (bucket,) in buckets {
            let last: Option<(i64,)> =
                self.one("last_seq", &self.st.select_last_seq, (id_to_db(conv), bucket), None).await?;
            if let Some((seq,)) = last {
                return Ok(seq_from_db(seq));
            }
        }
        Ok(0)
    }

    pub(super) async fn read_range(&self, conv: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>> {
        let Some((lo, hi)) = seq_bounds(&range) else { return Ok(Vec::new()) };
        let forward = range.direction == Direction::Forward;
        let span = (id_to_db(conv), id_to_db(bucket_of(lo)), id_to_db(bucket_of(hi)));
        let buckets_stmt =
            if forward { &self.st.select_buckets_between_asc } else { &self.st.select_buckets_between_desc };
        let buckets: Vec<(i64,)> = self.rows("read_range", buckets_stmt, span, None).await?;
        let stmt = if forward { &self.st.select_messages_asc } else { &self.st.select_messages_desc };
        let mut out: Vec<(u64, Bytes)> = Vec::new();
        for (bucket,) in buckets {
            let remaining = range.limit - out.len();
            if remaining == 0 {
                break;
            }
            let (first, last) = bucket_bounds(id_from_db(bucket), lo, hi);
            let limit = i32::try_from(remaining).unwrap_or(i32::MAX);
            let values = (id_to_db(conv), bucket, seq_to_db(first), seq_to_db(last), limit);
            let rows: Vec<(i64, Bytes)> = self.rows("read_range", stmt, values, None).await?;
            out.extend(rows.into_iter().take(remaining).map(|(seq, body)| (seq_from_db(seq), body)));
        }
        if !forward {
            out.reverse();
        }
        Ok(out)
    }
}
