//! An attachment record as the wire shows it (`chat.v1.Attachment`).

use crate::store::attachments::AttachmentRecord;
use chat_protocol::v1;

/// The wire form of a stored attachment.
pub fn to_proto(rec: AttachmentRecord) -> v1::Attachment {
    v1::Attachment {
        attachment_id: rec.id,
        name: rec.name,
        size: rec.size,
        media_type: rec.media_type,
        sha256: rec.sha256,
        thumbnail: rec.thumbnail.map(|t| v1::AttachmentThumbnail {
            sha256: t.sha256,
            size: t.size,
            width: t.width,
            height: t.height,
            media_type: t.media_type,
        }),
        conversation_id: rec.conversation_id,
        uploader_id: rec.uploader,
        uploaded_at_ms: rec.uploaded_at_ms,
    }
}
