//! Conformance cases of attachment records: a record reads back whole (with
//! and without a thumbnail) under its conversation and id only, a second put
//! of a key replaces it, and everything is kept across a reopen.

use super::harness::ConformanceFactory;
use crate::store::attachments::{AttachmentRecord, AttachmentStore, ThumbnailRecord};

fn record(conv: u64, id: &str, thumbnail: bool) -> AttachmentRecord {
    AttachmentRecord {
        conversation_id: conv,
        id: id.into(),
        uploader: "alice".into(),
        name: "Schriftsatz \u{e9}.pdf".into(),
        size: 52_428_800,
        media_type: if thumbnail { "image/png" } else { "application/pdf" }.into(),
        sha256: "ab".repeat(32),
        thumbnail: thumbnail.then(|| ThumbnailRecord {
            sha256: "cd".repeat(32),
            size: 1_234,
            width: 320,
            height: 200,
            media_type: "image/png".into(),
        }),
        uploaded_at_ms: 1_700_000_000_000,
    }
}

/// Records read back by `(conversation, id)` and no other key; a put of the
/// same key replaces; a reopen keeps them.
pub async fn attachments_by_conversation_and_id<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: AttachmentStore,
{
    let store = factory.fresh().await;
    let pdf = record(7, "0123456789abcdef0123456789abcdef", false);
    let png = record(7, "fedcba9876543210fedcba9876543210", true);
    store.put_attachment(&pdf).await.expect("put pdf");
    store.put_attachment(&png).await.expect("put png");
    assert_eq!(store.attachment(7, &pdf.id).await.expect("get"), Some(pdf.clone()));
    assert_eq!(store.attachment(7, &png.id).await.expect("get"), Some(png.clone()));
    assert_eq!(store.attachment(8, &pdf.id).await.expect("get"), None, "another conversation does not see it");
    assert_eq!(store.attachment(7, "0123456789abcdef").await.expect("get"), None, "a prefix of an id is no id");
    assert_eq!(store.attachment(7, "").await.expect("get"), None);
    let renamed = AttachmentRecord { name: "renamed.pdf".into(), ..pdf.clone() };
    store.put_attachment(&renamed).await.expect("put again");
    assert_eq!(store.attachment(7, &pdf.id).await.expect("get"), Some(renamed.clone()));
    let store = factory.reopen(store).await;
    assert_eq!(store.attachment(7, &pdf.id).await.expect("get"), Some(renamed), "kept across a reopen");
    assert_eq!(store.attachment(7, &png.id).await.expect("get"), Some(png));
}
