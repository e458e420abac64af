//! Events' writes beyond the event row: the version a change replaces, kept
//! in `message_versions` (partition `(conversation_id, target_seq)`, one row
//! per event) before the event is stored, and the changed message's latest
//! state written over its row once the event is. Not atomic with the event's
//! conditional insert (another partition, and a conditional batch cannot
//! span partitions): a version row carries the append's writer tag, and a
//! read keeps only those whose event row has the same tag (a row of an
//! append that was fenced or failed is never an answer); the latest-state
//! write is retried before the append fails.

use super::append::bucket_of;
use super::rows::{id_to_db, seq_from_db, seq_to_db};
use super::{Inner, MessageVersion, NewMessage, StoreError, StoreResult};

/// Tries of the latest-state write of one target.
const TARGET_TRIES: u32 = 3;

impl Inner {
    /// Keeps the version each event of the call replaces.
    pub(super) async fn insert_versions(&self, msgs: &[NewMessage], writer: i64) -> StoreResult<()> {
        for t in msgs.iter().filter_map(|m| m.target.as_deref()) {
            let v = &t.version;
            let values = (
                id_to_db(v.conversation_id),
                seq_to_db(v.target_seq),
                seq_to_db(v.event_seq),
                &v.changed_by,
                id_to_db(v.changed_at_ms),
                v.kind,
                &v.prior,
                writer,
            );
            self.exec("append", &self.st.insert_version, values, None).await?;
        }
        Ok(())
    }

    /// Writes each changed message's latest state, in call order (a later
    /// event of the call on the same message comes later).
    pub(super) async fn update_targets(&self, msgs: &[NewMessage]) -> StoreResult<()> {
        for m in msgs {
            let Some(t) = m.target.as_deref() else { continue };
            let values = (&t.latest, id_to_db(m.conversation_id), id_to_db(bucket_of(t.seq)), seq_to_db(t.seq));
            let mut attempt = 0;
            loop {
                attempt += 1;
                let stmt = &self.st.update_message_body;
                match self.exec("append", stmt, values, None).await.and_then(|r| self.applied("append", stmt, r)) {
                    Ok(true) => break,
                    Ok(false) => {
                        return Err(StoreError::Corrupt {
                            table: "messages",
                            detail: format!("conversation {} has no message {} to change", m.conversation_id, t.seq),
                        });
                    }
                    Err(e) if attempt < TARGET_TRIES => {
                        tracing::warn!(conv = m.conversation_id, seq = t.seq, error = %e, "store: latest state not written; retrying");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Every version of one message whose event is stored, oldest first.
    pub(super) async fn message_versions(&self, conv: u64, seq: u64) -> StoreResult<Vec<MessageVersion>> {
        type Row = (i64, String, i64, i32, Vec<u8>, i64);
        let rows: Vec<Row> =
            self.rows("message_versions", &self.st.select_versions, (id_to_db(conv), seq_to_db(seq)), None).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (event_seq, changed_by, at, kind, prior, writer) in rows {
            let event_seq = seq_from_db(event_seq);
            let values = (id_to_db(conv), id_to_db(bucket_of(event_seq)), seq_to_db(event_seq), seq_to_db(event_seq));
            let stored: Vec<(i64, Option<i64>)> =
                self.rows("message_versions", &self.st.select_seqs_between, values, None).await?;
            if stored.first().and_then(|(_, w)| *w) != Some(writer) {
                continue;
            }
            let changed_at_ms = super::rows::id_from_db(at);
            out.push(MessageVersion {
                conversation_id: conv,
                target_seq: seq,
                event_seq,
                changed_by,
                changed_at_ms,
                kind,
                prior,
            });
        }
        Ok(out)
    }
}
