//! Attachment records in the embedded store: the `attachments` keyspace's
//! keys (`conversation(8) | id`) and the [`AttachmentStore`] impl (reads on
//! a snapshot, writes queued to the writer like every other write).

use super::EmbeddedStore;
use super::db::{Ks, decode, encode};
use super::key;
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::StoreResult;
use crate::store::attachments::{AttachmentRecord, AttachmentStore};

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
}

impl Txn<'_> {
    /// Stages an attachment record.
    pub(super) fn put_attachment(&mut self, rec: &AttachmentRecord) -> StoreResult<Done> {
        let value = encode("put_attachment", rec)?;
        self.put(Ks::Attachments, &key::attachment(rec.conversation_id, &rec.id), value);
        Ok(Done::Unit)
    }
}
