//! Attachment records in ScyllaDB: the `attachments` table (partition
//! `conversation_id`, clustering `id`), the record itself kept as JSON in
//! one column so that later fields need no schema change. It does not touch
//! any other table.

use super::rows::id_to_db;
use super::{ScyllaStore, StoreResult};
use crate::store::StoreError;
use crate::store::attachments::{AttachmentRecord, AttachmentStore};

impl AttachmentStore for ScyllaStore {
    async fn put_attachment(&self, rec: &AttachmentRecord) -> StoreResult<()> {
        const OP: &str = "put_attachment";
        let json = serde_json::to_string(rec).map_err(|e| StoreError::Backend { op: OP, source: Box::new(e) })?;
        let (conv, id) = (id_to_db(rec.conversation_id), rec.id.clone());
        self.call(OP, true, move |i| async move {
            i.exec(OP, &i.st.insert_attachment, (conv, id, json), None).await.map(|_| ())
        })
        .await
    }

    async fn attachment(&self, conversation_id: u64, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        const OP: &str = "attachment";
        let id = id.to_owned();
        let row: Option<(String,)> = self
            .call(OP, false, move |i| async move {
                i.one(OP, &i.st.select_attachment, (id_to_db(conversation_id), id), None).await
            })
            .await?;
        row.map(|(json,)| decode(&json)).transpose()
    }

    async fn attachments_page(
        &self,
        conversation_id: u64,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        const OP: &str = "attachments_page";
        let (after, limit) = (after.to_owned(), i32::try_from(limit).unwrap_or(i32::MAX));
        let rows: Vec<(String,)> = self
            .call(OP, false, move |i| async move {
                i.rows(OP, &i.st.select_attachments_after, (id_to_db(conversation_id), after, limit), None).await
            })
            .await?;
        rows.iter().map(|(json,)| decode(json)).collect()
    }

    async fn all_attachments_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        const OP: &str = "all_attachments_page";
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows: Vec<(String,)> = self
            .call(OP, false, move |i| async move {
                let Some((conv, id)) = after else {
                    return i.rows(OP, &i.st.select_attachments_first, (limit,), None).await;
                };
                // The rest of `after`'s partition, then the partitions after it by token.
                let conv = id_to_db(conv);
                let mut rows: Vec<(String,)> =
                    i.rows(OP, &i.st.select_attachments_after, (conv, id, limit), None).await?;
                let rest = limit - rows.len() as i32;
                if rest > 0 {
                    rows.extend(i.rows(OP, &i.st.select_attachments_token_after, (conv, rest), None).await?);
                }
                Ok(rows)
            })
            .await?;
        rows.iter().map(|(json,)| decode(json)).collect()
    }
}

/// A record's JSON.
fn decode(json: &str) -> StoreResult<AttachmentRecord> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt { table: "attachments", detail: format!("a record does not decode: {e}") })
}
