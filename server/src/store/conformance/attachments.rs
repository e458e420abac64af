//! Conformance cases of attachment records: a record reads back whole (with
//! and without a thumbnail) under its conversation and id only, a second put
//! of a key replaces it, and everything is kept across a reopen; a
//! conversation's records page in id order, never another's.

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

/// A conversation's records page in id order from "" and after a given id,
/// never reaching into the next conversation (nor the one before).
pub async fn attachments_page_by_conversation<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: AttachmentStore,
{
    let store = factory.fresh().await;
    let ids: Vec<String> = (0..5).map(|k| format!("{k:x}{}", "0".repeat(31))).collect();
    for id in ids.iter().rev() {
        store.put_attachment(&record(9, id, false)).await.expect("put");
    }
    store.put_attachment(&record(8, &"f".repeat(32), false)).await.expect("put the one before");
    store.put_attachment(&record(10, &"0".repeat(32), false)).await.expect("put the one after");
    let page = |after: String, limit| {
        let store = &store;
        async move {
            let got = store.attachments_page(9, &after, limit).await.expect("page");
            got.into_iter().map(|r| (r.conversation_id, r.id)).collect::<Vec<_>>()
        }
    };
    let all: Vec<_> = ids.iter().map(|id| (9, id.clone())).collect();
    assert_eq!(page(String::new(), 100).await, all, "all of them, in id order, only conversation 9's");
    assert_eq!(page(String::new(), 2).await, all[..2]);
    assert_eq!(page(ids[1].clone(), 2).await, all[2..4], "after an id, that id excluded");
    assert_eq!(page(ids[4].clone(), 2).await, [], "past the last");
    assert_eq!(store.attachments_page(11, "", 10).await.expect("page"), [], "a conversation without any");
}

/// A walk of [`AttachmentStore::all_attachments_page`] sees every record of
/// every conversation once, whatever the page size.
pub async fn attachments_walk_of_every_conversation<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: AttachmentStore,
{
    let store = factory.fresh().await;
    assert_eq!(store.all_attachments_page(None, 10).await.expect("page"), [], "none stored");
    let mut stored = std::collections::BTreeSet::new();
    for conv in [3u64, 40, 41, u64::MAX >> 1] {
        for k in 0..(conv % 4 + 1) {
            let id = format!("{k:x}{}", "a".repeat(31));
            store.put_attachment(&record(conv, &id, k % 2 == 0)).await.expect("put");
            stored.insert((conv, id));
        }
    }
    for limit in [1, 2, 3, 100] {
        let (mut walked, mut after) = (Vec::new(), None);
        loop {
            let page = store.all_attachments_page(after.clone(), limit).await.expect("page");
            assert!(page.len() <= limit);
            let last = page.len() < limit;
            after = page.last().map(|r| (r.conversation_id, r.id.clone()));
            walked.extend(page.into_iter().map(|r| (r.conversation_id, r.id)));
            if last {
                break;
            }
        }
        assert_eq!(walked.len(), stored.len(), "pages of {limit}: each record once: {walked:?}");
        assert_eq!(walked.into_iter().collect::<std::collections::BTreeSet<_>>(), stored, "pages of {limit}");
    }
}
