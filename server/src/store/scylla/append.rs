//! Appends: a call's messages grouped into `(conversation, bucket)`
//! partitions, each written with one conditional batch (`INSERT ... IF NOT
//! EXISTS`), the fence between nodes that race on a seq; a call over several
//! partitions checked first; an unknown outcome settled by a serial read of
//! the rows' writer tags; the idempotency records written before the messages
//! and the stored client ids checked before anything (`reads`); the senders'
//! watermarks moved after. It does not read history.

use std::collections::{HashMap, HashSet};

use scylla::statement::Consistency;
use scylla::value::CqlValue;

use super::records::APPEND_WATERMARK_ROUNDS;
use super::rows::{ClientId, id_to_db, seq_from_db, seq_to_db};
use super::statements::Unsettled;
use super::{FAN_OUT, Inner, NewMessage, StoreError, StoreResult};

/// Messages per `(conversation_id, bucket)` partition (see `deploy/CLUSTER.md`).
pub const BUCKET_SIZE: u64 = 4096;

/// `(conversation, bucket)` pairs this process has listed, remembered at most.
const MAX_LISTED: usize = 1 << 20;

/// The bucket (partition) of a seq.
pub fn bucket_of(seq: u64) -> u64 {
    seq / BUCKET_SIZE
}

/// The seqs from `next_seq` to the end of its bucket (at least 1): the most
/// messages one append of a conversation may carry and stay in one partition.
pub fn run_limit(next_seq: u64) -> usize {
    usize::try_from(BUCKET_SIZE - next_seq % BUCKET_SIZE).unwrap_or(usize::MAX)
}

/// A call's messages grouped by partition, partitions in order of first
/// appearance, messages in call order.
pub fn partitions(msgs: &[NewMessage]) -> Vec<((u64, u64), Vec<&NewMessage>)> {
    let mut out: Vec<((u64, u64), Vec<&NewMessage>)> = Vec::new();
    let mut index = HashMap::new();
    for m in msgs {
        let key = (m.conversation_id, bucket_of(m.seq));
        let i = *index.entry(key).or_insert_with(|| {
            out.push((key, Vec::new()));
            out.len() - 1
        });
        out[i].1.push(m);
    }
    out
}

/// The lowest and highest seq of some messages, `None` for none.
pub fn seq_span(msgs: &[&NewMessage]) -> Option<(u64, u64)> {
    let lo = msgs.iter().map(|m| m.seq).min()?;
    let hi = msgs.iter().map(|m| m.seq).max()?;
    Some((lo, hi))
}

/// The highest seq of each `(conversation, sender)` among some messages.
pub(super) fn sender_marks<'a>(msgs: &[&'a NewMessage]) -> Vec<((u64, &'a str), u64)> {
    let mut marks: HashMap<(u64, &str), u64> = HashMap::new();
    for m in msgs {
        let seq = marks.entry((m.conversation_id, m.sender_id.as_str())).or_insert(0);
        *seq = (*seq).max(m.seq);
    }
    let mut marks: Vec<_> = marks.into_iter().collect();
    marks.sort_unstable();
    marks
}

/// The first `(conversation, seq)` that occurs twice in a call.
pub(super) fn first_duplicate(msgs: &[NewMessage]) -> Option<(u64, u64)> {
    let mut seen = HashSet::with_capacity(msgs.len());
    msgs.iter().map(|m| (m.conversation_id, m.seq)).find(|&key| !seen.insert(key))
}

impl Inner {
    /// Lists `(conversation, bucket)` in `message_buckets` unless known to be there.
    pub(super) async fn list_buckets(&self, keys: &[(u64, u64)]) -> StoreResult<()> {
        let missing: Vec<(u64, u64)> = {
            let listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter().copied().filter(|k| !listed.contains(k)).collect()
        };
        for (conv, bucket) in missing {
            self.exec("append", &self.st.insert_bucket, (id_to_db(conv), id_to_db(bucket)), None).await?;
            let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            if listed.len() >= MAX_LISTED {
                listed.clear();
            }
            listed.insert((conv, bucket));
        }
        Ok(())
    }

    /// The stored `(seq, writer)` of `seqs` in one partition.
    pub(super) async fn stored_seqs(
        &self,
        (conv, bucket): (u64, u64),
        seqs: &[&NewMessage],
        consistency: Option<Consistency>,
    ) -> StoreResult<HashMap<u64, i64>> {
        // A range, not `seq IN ?`: ScyllaDB refuses IN lists of more than 100
        // clustering keys (max_clustering_key_restrictions_per_query), and an
        // owner's seqs in one partition are contiguous, so the range reads
        // nothing else (anything else in it is kept out below all the same).
        let Some((lo, hi)) = seq_span(seqs) else { return Ok(HashMap::new()) };
        let values = (id_to_db(conv), id_to_db(bucket), seq_to_db(lo), seq_to_db(hi));
        let rows: Vec<(i64, Option<i64>)> =
            self.rows("append", &self.st.select_seqs_between, values, consistency).await?;
        let wanted: HashSet<u64> = seqs.iter().map(|m| m.seq).collect();
        Ok(rows
            .into_iter()
            .map(|(seq, writer)| (seq_from_db(seq), writer.unwrap_or(0)))
            .filter(|(seq, _)| wanted.contains(seq))
            .collect())
    }

    /// The first message of `msgs` (call order) found in `stored`.
    pub(super) fn first_taken(msgs: &[&NewMessage], stored: &HashMap<u64, i64>) -> Option<StoreError> {
        msgs.iter()
            .find(|m| stored.contains_key(&m.seq))
            .map(|m| StoreError::SeqTaken { conversation_id: m.conversation_id, seq: m.seq })
    }

    /// Writes one partition's messages with one conditional statement or batch.
    pub(super) async fn insert_partition(&self, key: (u64, u64), msgs: &[&NewMessage], writer: i64) -> StoreResult<()> {
        let row = |m: &NewMessage| {
            vec![
                CqlValue::BigInt(id_to_db(m.conversation_id)),
                CqlValue::BigInt(id_to_db(bucket_of(m.seq))),
                CqlValue::BigInt(seq_to_db(m.seq)),
                CqlValue::Blob(m.encoded.to_vec()),
                CqlValue::Text(m.sender_id.clone()),
                CqlValue::Text(m.client_msg_id.clone()),
                CqlValue::BigInt(writer),
            ]
        };
        let stmt = &self.st.insert_message;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match msgs {
                [one] => {
                    let m = *one;
                    let values = (
                        id_to_db(m.conversation_id),
                        id_to_db(bucket_of(m.seq)),
                        seq_to_db(m.seq),
                        &m.encoded,
                        &m.sender_id,
                        &m.client_msg_id,
                        writer,
                    );
                    self.exec("append", stmt, values, None).await
                }
                _ => {
                    let values = msgs.iter().map(|m| row(m)).collect();
                    self.batch("append", "insert_message_batch", vec![stmt; msgs.len()], values).await
                }
            };
            let error = match result.and_then(|r| self.applied("append", stmt, r)) {
                Ok(true) => return Ok(()),
                Ok(false) => None,
                // Sent but unanswered, or failed after the Paxos round began
                // (a timeout under contention): settled by the serial read below.
                Err(e) => Some(e),
            };
            let stored = match self.stored_seqs(key, msgs, Some(self.serial())).await {
                Ok(stored) => stored,
                Err(again) => {
                    return Err(match error {
                        Some(e) => StoreError::Backend { op: "append", source: Box::new(Unsettled(e, again)) },
                        None => again,
                    });
                }
            };
            if msgs.iter().all(|m| stored.get(&m.seq) == Some(&writer)) {
                if let Some(e) = error {
                    tracing::warn!(error = %e, "store: append outcome was unknown; read back: it was written");
                }
                return Ok(());
            }
            if let Some(m) = msgs.iter().find(|m| stored.get(&m.seq).is_some_and(|w| *w != writer)) {
                return Err(StoreError::SeqTaken { conversation_id: m.conversation_id, seq: m.seq });
            }
            match error {
                // Nothing of ours or anyone's is stored, and the serial read has
                // settled our attempt (it can no longer apply): try again.
                Some(e) if attempt < 3 => {
                    tracing::warn!(error = %e, attempt, "store: append not applied, nothing stored; retrying");
                }
                Some(e) => return Err(e),
                None => {
                    return Err(StoreError::Corrupt {
                        table: "messages",
                        detail: format!(
                            "conversation {} bucket {}: a conditional insert was not applied, yet none of its \
                             seqs reads back",
                            key.0, key.1
                        ),
                    });
                }
            }
        }
    }

    /// `(seq in the call, stored seq)` of each message whose client id is
    /// stored, in call order.
    async fn duplicates(&self, users: &[&NewMessage]) -> StoreResult<Vec<(u64, u64)>> {
        let ids: Vec<ClientId> =
            users.iter().map(|m| (m.conversation_id, m.sender_id.as_str(), m.client_msg_id.as_str())).collect();
        let stored = self.stored_client_msgs("append", &ids).await?;
        Ok(users.iter().zip(stored).filter_map(|(m, s)| s.map(|s| (m.seq, s))).collect())
    }

    /// Fails with the first taken seq of each partition, partition by
    /// partition (a plain read, at the configured consistency).
    async fn check_seqs_free(&self, parts: &[((u64, u64), Vec<&NewMessage>)]) -> StoreResult<()> {
        for (key, part) in parts {
            let stored = self.stored_seqs(*key, part, None).await?;
            if let Some(taken) = Self::first_taken(part, &stored) {
                return Err(taken);
            }
        }
        Ok(())
    }

    /// Appends a call: see the module docs and `deploy/CLUSTER.md`.
    pub(super) async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        if let Some((conversation_id, seq)) = first_duplicate(&msgs) {
            return Err(StoreError::SeqTaken { conversation_id, seq });
        }
        let parts = partitions(&msgs);
        let users: Vec<&NewMessage> = msgs.iter().filter(|m| !m.client_msg_id.is_empty()).collect();
        // Client ids already stored (retries the owner no longer knew): nothing
        // is written. A taken seq is answered first, as on every backend.
        let duplicates = self.duplicates(&users).await?;
        if !duplicates.is_empty() {
            self.check_seqs_free(&parts).await?;
            return Err(StoreError::Duplicates(duplicates));
        }
        let keys: Vec<(u64, u64)> = parts.iter().map(|(k, _)| *k).collect();
        self.list_buckets(&keys).await?;
        if parts.len() > 1 {
            // Not atomic across partitions: check them all before writing any.
            self.check_seqs_free(&parts).await?;
        }
        // The idempotency records first, so that a stored message always has
        // one (a retry after a failure or crash finds it by client id, and so
        // does a fenced owner whose retry went to another node). A record whose
        // message then fails to store points at a seq that holds nothing or
        // another message, which `stored_client_msgs` checks.
        for chunk in users.chunks(FAN_OUT) {
            let writes = chunk.iter().map(|m| {
                let values = (id_to_db(m.conversation_id), &m.sender_id, &m.client_msg_id, seq_to_db(m.seq));
                self.exec("append", &self.st.insert_idempotency, values, None)
            });
            // Every write runs to its end (none is dropped in flight), then the first error fails the call.
            for r in futures_util::future::join_all(writes).await {
                r?;
            }
        }
        // The versions events replace, before the events (see `versions`).
        let writer = rand::random::<i64>();
        self.insert_versions(&msgs, writer).await?;
        for (key, part) in &parts {
            self.insert_partition(*key, part, writer).await?;
        }
        // The changed messages' latest states, once their events are stored.
        self.update_targets(&msgs).await?;
        // The messages are stored: from here nothing fails the call. The
        // senders' watermarks are hints that only move up (receipts move them
        // too), so a failure is logged and left to the next advance.
        let marks = sender_marks(&users);
        for chunk in marks.chunks(FAN_OUT) {
            let moves = chunk.iter().map(|&((conv, sender), seq)| {
                self.advance_watermarks("append", (conv, sender), seq, seq, APPEND_WATERMARK_ROUNDS)
            });
            for (r, ((conv, sender), seq)) in futures_util::future::join_all(moves).await.into_iter().zip(chunk) {
                if let Err(e) = r {
                    tracing::warn!(conv, sender, seq, error = %e, "store: sender watermark not moved after an append");
                }
            }
        }
        Ok(())
    }
}
