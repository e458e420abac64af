//! Reads of messages: the head of a conversation (`last_seq`), history
//! pages over the buckets it has written (`read_range`), and client message
//! ids, answered only where the message at the recorded seq is that sender's
//! (`find_client_msg`, and the batched check an append runs first). It writes
//! nothing.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::future::try_join_all;

use super::append::{BUCKET_SIZE, bucket_of};
use super::rows::{ClientId, id_from_db, id_to_db, seq_from_db, seq_to_db};
use super::{FAN_OUT, Inner, StoreResult};
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

/// Client ids per IN list at most: ScyllaDB refuses more than 100 partition
/// keys in one read (`max_partition_key_restrictions_per_query`).
pub(super) const MAX_IN_LIST: usize = 100;

/// The reads of some client ids: per conversation and sender (in order of
/// first appearance), the indexes of its ids, at most [`MAX_IN_LIST`] a read.
pub(super) fn id_reads<'a>(ids: &[ClientId<'a>]) -> Vec<((u64, &'a str), Vec<usize>)> {
    let mut groups: Vec<((u64, &str), Vec<usize>)> = Vec::new();
    let mut index = HashMap::new();
    for (i, &(conv, sender, _)) in ids.iter().enumerate() {
        let g = *index.entry((conv, sender)).or_insert_with(|| {
            groups.push(((conv, sender), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    groups
        .into_iter()
        .flat_map(|(key, all)| all.chunks(MAX_IN_LIST).map(|c| (key, c.to_vec())).collect::<Vec<_>>())
        .collect()
}

impl Inner {
    /// The seq stored for each client id (in the order given), where the
    /// message stored at that seq really is that sender's with that id: a
    /// record is written before its message and may point at a seq the
    /// message then lost (see `deploy/CLUSTER.md`). One read of the records
    /// per conversation and sender (at most [`MAX_IN_LIST`] ids each, all at
    /// once), then one serial read per record found.
    pub(super) async fn stored_client_msgs(
        &self,
        op: &'static str,
        ids: &[ClientId<'_>],
    ) -> StoreResult<Vec<Option<u64>>> {
        let mut recorded: Vec<Option<u64>> = vec![None; ids.len()];
        let reads = id_reads(ids);
        for batch in reads.chunks(FAN_OUT) {
            let rows = try_join_all(batch.iter().map(|((conv, sender), group)| {
                let cmids: Vec<&str> = group.iter().map(|&i| ids[i].2).collect();
                let values = (id_to_db(*conv), *sender, cmids);
                self.rows::<(String, i64)>(op, &self.st.select_idempotency_in, values, None)
            }))
            .await?;
            for ((_, group), rows) in batch.iter().zip(rows) {
                for (cmid, seq) in rows {
                    for &i in group.iter().filter(|&&i| ids[i].2 == cmid) {
                        recorded[i] = Some(seq_from_db(seq));
                    }
                }
            }
        }
        let found: Vec<(usize, u64)> = recorded.iter().enumerate().filter_map(|(i, s)| s.map(|s| (i, s))).collect();
        let mut stored = vec![None; ids.len()];
        for batch in found.chunks(FAN_OUT) {
            let held = try_join_all(batch.iter().map(|&(i, seq)| self.holds(op, ids[i], seq))).await?;
            for (&(i, seq), held) in batch.iter().zip(held) {
                stored[i] = held.then_some(seq);
            }
        }
        Ok(stored)
    }

    /// Whether the message stored at `seq` is this client id's. Serial: it
    /// settles a transaction of that message still in flight (or whose outcome
    /// its writer could not tell), so the answer is final.
    async fn holds(&self, op: &'static str, (conv, sender, cmid): ClientId<'_>, seq: u64) -> StoreResult<bool> {
        let key = (id_to_db(conv), id_to_db(bucket_of(seq)), seq_to_db(seq));
        let stored: Option<(Option<String>, Option<String>)> =
            self.one(op, &self.st.select_message_sender, key, Some(self.serial())).await?;
        Ok(holds_client_msg(stored, sender, cmid))
    }

    /// The seq stored for a client message id, if its message is stored there.
    pub(super) async fn find_client_msg(&self, conv: u64, sender: String, cmid: String) -> StoreResult<Option<u64>> {
        let stored = self.stored_client_msgs("find_client_msg", &[(conv, &sender, &cmid)]).await?;
        Ok(stored.into_iter().next().flatten())
    }
    pub(super) async fn last_seq(&self, conv: u64) -> StoreResult<u64> {
        let buckets: Vec<(i64,)> = self.rows("last_seq", &self.st.select_buckets_desc, (id_to_db(conv),), None).await?;
        for (bucket,) in buckets {
            let last: Option<(i64,)> =
                self.one("last_seq", &self.st.select_last_seq, (id_to_db(conv), bucket), None).await?;
            if let Some((seq,)) = last {
                return Ok(seq_from_db(seq).max(self.mark("last_seq", conv).await?));
            }
        }
        // Purged messages keep their seqs taken.
        self.mark("last_seq", conv).await
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
