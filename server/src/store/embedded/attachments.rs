//! Attachment records in the embedded store: the `attachments` keyspace's
//! keys (`conversation(8) | id`, so one conversation's records are one
//! range in id order) and the [`AttachmentStore`] impl (reads on a
//! snapshot, writes queued to the writer like every other write).

use super::EmbeddedStore;
use super::db::{Ks, backend, decode, encode};
use super::key;
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::StoreResult;
use crate::store::attachments::{AttachmentRecord, AttachmentStore};
use fjall::Readable;
use std::ops::Bound;

impl AttachmentStore for EmbeddedStore {
    async fn put_attachment(&self, rec: &AttachmentRecord) -> StoreResult<()> {
        self.submit_unit(Op::PutAttachment(Box::new(rec.clone()))).await
    }

    async fn attachment(&self, conversation_id: u64, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        const OP: &str = "attachment";
        self.get(OP, Ks::Attachments, &key::attachment(conversation_id, id))?
            .map(|v| decode(Ks::Attachments, &v))
            .transpose()
    }

    async fn attachments_page(
        &self,
        conversation_id: u64,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        const OP: &str = "attachments_page";
        let first = key::attachment(conversation_id, after);
        let start = if after.is_empty() { Bound::Included(first) } else { Bound::Excluded(first) };
        let end = match conversation_id.checked_add(1) {
            Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.attachments_in(OP, (start, end), limit)
    }

    async fn all_attachments_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        let start = match after {
            None => Bound::Unbounded,
            Some((conv, id)) => Bound::Excluded(key::attachment(conv, &id)),
        };
        self.attachments_in("all_attachments_page", (start, Bound::Unbounded), limit)
    }
}

impl EmbeddedStore {
    /// Up to `limit` records with keys in `range`, in key order.
    fn attachments_in(
        &self,
        op: &'static str,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        let snapshot = self.snapshot();
        let rows = snapshot.range(self.db.ks(Ks::Attachments), range).take(limit);
        rows.map(|guard| {
            let (_, value) = guard.into_inner().map_err(backend(op))?;
            decode(Ks::Attachments, &value)
        })
        .collect()
    }
}

impl Txn<'_> {
    /// Stages an attachment record.
    pub(super) fn put_attachment(&mut self, rec: &AttachmentRecord) -> StoreResult<Done> {
        let value = encode("put_attachment", rec)?;
        self.put(Ks::Attachments, &key::attachment(rec.conversation_id, &rec.id), value);
        Ok(Done::Unit)
    }
}
