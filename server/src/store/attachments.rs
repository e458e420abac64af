//! Attachments as stored: the [`AttachmentRecord`] (a file uploaded to one
//! conversation: who, what, its content hash and thumbnail) and the
//! [`AttachmentStore`] contract every backend implements (embedded: the
//! `attachments` keyspace; ScyllaDB: the `attachments` table), with
//! [`Store`] choosing the configured one. The bytes live in the blob store;
//! this is only the record that gives members access to them by
//! conversation and attachment id. It does not decide who may upload.

use super::{Store, StoreResult};

/// An attachment's server-made preview image.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThumbnailRecord {
    /// SHA-256 of the preview (a blob), hex.
    pub sha256: String,
    /// Its size, bytes.
    pub size: u64,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Its media type.
    pub media_type: String,
}

/// A file uploaded to a conversation. `(conversation_id, id)` is its key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttachmentRecord {
    /// The conversation it was uploaded to.
    pub conversation_id: u64,
    /// Server-made id, unique within the conversation.
    pub id: String,
    /// Who uploaded it.
    pub uploader: String,
    /// File name as given.
    pub name: String,
    /// Size, bytes.
    pub size: u64,
    /// Media type, as checked from the bytes.
    pub media_type: String,
    /// SHA-256 of the content (the blob's address), hex.
    pub sha256: String,
    /// The preview, for images.
    pub thumbnail: Option<ThumbnailRecord>,
    /// When the upload completed, ms since the Unix epoch.
    pub uploaded_at_ms: u64,
}

/// Storage of attachment records. Every write is durable on return.
#[allow(async_fn_in_trait)]
pub trait AttachmentStore: Send + Sync + 'static {
    /// Records an attachment (a second put of the same key replaces it).
    async fn put_attachment(&self, rec: &AttachmentRecord) -> StoreResult<()>;

    /// The attachment `id` of conversation `conversation_id`.
    async fn attachment(&self, conversation_id: u64, id: &str) -> StoreResult<Option<AttachmentRecord>>;

    /// Up to `limit` records of `conversation_id` with ids after `after`
    /// ("": from the first), in id order: a page of all its uploads, sent
    /// in a message or not.
    async fn attachments_page(
        &self,
        conversation_id: u64,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>>;

    /// Up to `limit` records of every conversation after the record keyed
    /// `after` (None: from the first), in the backend's own order; a walk
    /// of pages sees every record stored throughout it once, and a page
    /// shorter than `limit` is the last. For sweeps, not the message path.
    async fn all_attachments_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>>;
}

impl AttachmentStore for Store {
    async fn put_attachment(&self, rec: &AttachmentRecord) -> StoreResult<()> {
        super::delegate!(self, s => s.put_attachment(rec).await)
    }

    async fn attachment(&self, conversation_id: u64, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        super::delegate!(self, s => s.attachment(conversation_id, id).await)
    }

    async fn attachments_page(
        &self,
        conversation_id: u64,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        super::delegate!(self, s => s.attachments_page(conversation_id, after, limit).await)
    }

    async fn all_attachments_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        super::delegate!(self, s => s.all_attachments_page(after, limit).await)
    }
}

/// Records read per page by [`uploads_of`].
const UPLOADS_PAGE: usize = 256;

/// Every record of `user`'s uploads to `conversation_id`, sent in a message
/// or not (paging through the conversation's records).
pub async fn uploads_of(
    store: &impl AttachmentStore,
    conversation_id: u64,
    user: &str,
) -> StoreResult<Vec<AttachmentRecord>> {
    let (mut after, mut theirs) = (String::new(), Vec::new());
    loop {
        let page = store.attachments_page(conversation_id, &after, UPLOADS_PAGE).await?;
        let full = page.len() == UPLOADS_PAGE;
        after = page.last().map(|r| r.id.clone()).unwrap_or_default();
        theirs.extend(page.into_iter().filter(|r| r.uploader == user));
        if !full {
            return Ok(theirs);
        }
    }
}
