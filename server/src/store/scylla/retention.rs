//! Purge marks and legal holds in ScyllaDB: the `retention` table
//! (`conversation_id` -> `purged_through`) and the `legal_holds` table
//! (partition `scope`, clustering `target`, the record as JSON), and the
//! purge of a conversation's messages: versions and idempotency records
//! first, then the messages (one transaction each), then the mark, so that a purge
//! cut off midway is finished by the next one. It touches no other table.

use prost::Message as _;

use super::append::bucket_of;
use super::rows::{id_to_db, seq_to_db};
use super::{Inner, ScyllaStore, StoreResult};
use crate::store::retention::{HoldRecord, HoldScope, RetentionStore};
use crate::store::{Direction, MessageStore, Range, StoreError};

/// Messages read per step of a purge.
const PURGE_PAGE: usize = 500;

impl Inner {
    /// The purge mark (0: none).
    pub(super) async fn mark(&self, op: &'static str, conv: u64) -> StoreResult<u64> {
        let row: Option<(i64,)> = self.one(op, &self.st.select_purged, (id_to_db(conv),), None).await?;
        Ok(row.map_or(0, |(v,)| v as u64))
    }

    async fn purge(&self, conv: u64, through: u64) -> StoreResult<()> {
        const OP: &str = "purge_through";
        let mark = self.mark(OP, conv).await?;
        if through <= mark {
            return Ok(());
        }
        let mut after = mark;
        while after < through {
            let range = Range { after, before: through + 1, limit: PURGE_PAGE, direction: Direction::Forward };
            let rows = self.read_range(conv, range).await?;
            let Some(&(last, _)) = rows.last() else { break };
            for (seq, body) in &rows {
                self.exec(OP, &self.st.delete_versions_of, (id_to_db(conv), seq_to_db(*seq)), None).await?;
                if let Ok(m) = chat_protocol::v1::Message::decode(body.as_ref())
                    && !m.client_msg_id.is_empty()
                {
                    let key = (id_to_db(conv), m.sender_id, m.client_msg_id);
                    self.exec(OP, &self.st.delete_idempotency, key, None).await?;
                }
            }
            // One transaction per message: the messages table is written by
            // transactions only (see the schema tests).
            for (seq, _) in &rows {
                let key = (id_to_db(conv), id_to_db(bucket_of(*seq)), seq_to_db(*seq));
                self.exec(OP, &self.st.delete_message_if_exists, key, None).await?;
            }
            after = last;
        }
        self.exec(OP, &self.st.upsert_purged, (through as i64, id_to_db(conv)), None).await.map(|_| ())
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt { table: "legal_holds", detail: format!("a record does not decode: {e}") }
}

impl RetentionStore for ScyllaStore {
    async fn purged_through(&self, conversation_id: u64) -> StoreResult<u64> {
        self.call("purged_through", false, move |i| async move { i.mark("purged_through", conversation_id).await })
            .await
    }

    async fn purge_through(&self, conversation_id: u64, through: u64) -> StoreResult<()> {
        self.call("purge_through", true, move |i| async move { i.purge(conversation_id, through).await }).await
    }

    async fn forget_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<()> {
        const OP: &str = "forget_versions";
        self.call(OP, true, move |i| async move {
            let key = (id_to_db(conversation_id), seq_to_db(seq));
            i.exec(OP, &i.st.delete_versions_of, key, None).await.map(|_| ())
        })
        .await
    }

    async fn strip_message(&self, conversation_id: u64, seq: u64) -> StoreResult<bool> {
        const OP: &str = "strip_message";
        let range = Range { after: seq.saturating_sub(1), before: seq + 1, limit: 1, direction: Direction::Forward };
        let Some((_, stored)) = self.read_range(conversation_id, range).await?.pop() else { return Ok(false) };
        let bare = crate::store::at_rest::seal::without_content(&stored)?;
        self.call(OP, true, move |i| async move {
            let stmt = &i.st.update_message_body;
            let key = (bare, id_to_db(conversation_id), id_to_db(bucket_of(seq)), seq_to_db(seq));
            let result = i.exec(OP, stmt, key, None).await?;
            i.applied(OP, stmt, result)
        })
        .await
    }

    async fn delete_attachment(&self, conversation_id: u64, id: &str) -> StoreResult<()> {
        const OP: &str = "delete_attachment";
        let id = id.to_owned();
        self.call(OP, true, move |i| async move {
            i.exec(OP, &i.st.delete_attachment, (id_to_db(conversation_id), id), None).await.map(|_| ())
        })
        .await
    }

    async fn put_hold(&self, hold: &HoldRecord) -> StoreResult<()> {
        const OP: &str = "put_hold";
        let json = serde_json::to_string(hold).map_err(|e| StoreError::Backend { op: OP, source: Box::new(e) })?;
        let (scope, target) = (i32::from(hold.scope.tag()), hold.target.clone());
        self.call(OP, true, move |i| async move {
            i.exec(OP, &i.st.insert_hold, (scope, target, json), None).await.map(|_| ())
        })
        .await
    }

    async fn remove_hold(&self, scope: HoldScope, target: &str) -> StoreResult<bool> {
        const OP: &str = "remove_hold";
        let target = target.to_owned();
        self.call(OP, true, move |i| async move {
            let stmt = &i.st.delete_hold_if_exists;
            let result = i.exec(OP, stmt, (i32::from(scope.tag()), target), None).await?;
            i.applied(OP, stmt, result)
        })
        .await
    }

    async fn holds(&self) -> StoreResult<Vec<HoldRecord>> {
        const OP: &str = "holds";
        self.call(OP, false, move |i| async move {
            let mut out = Vec::new();
            for scope in [HoldScope::Conversation, HoldScope::User, HoldScope::Case] {
                let rows: Vec<(String,)> =
                    i.rows(OP, &i.st.select_holds_of_scope, (i32::from(scope.tag()),), None).await?;
                for (json,) in rows {
                    out.push(serde_json::from_str(&json).map_err(corrupt)?);
                }
            }
            Ok(out)
        })
        .await
    }
}
