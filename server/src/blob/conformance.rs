//! The conformance suite every [`BlobStore`] backend must pass, written
//! against the trait only. A backend provides a [`BlobFactory`] and invokes
//! [`blob_conformance_tests!`](crate::blob_conformance_tests) with it in an
//! integration test (`server/tests/blob_conformance.rs`); that expands to one
//! `#[tokio::test]` per case. The cases panic (as tests do) when the backend
//! breaks the contract: round trips across chunk borders, deduplication,
//! byte ranges and their refusals, the size cap, aborted, dropped and
//! crashed uploads leaving nothing, deletion, reopening.

use std::time::Duration;

use bytes::Bytes;

use super::contract::{BlobError, BlobHash, BlobMeta, BlobStore, BlobWriter, MAX_READ_BYTES};

pub use crate::store::conformance::report_skip;

/// Makes blob stores for the suite.
#[allow(async_fn_in_trait)]
pub trait BlobFactory {
    /// The backend under test.
    type Store: BlobStore;

    /// A new, empty store.
    async fn fresh(&mut self) -> Self::Store;

    /// Closes `store` and opens the same data again (as after a restart),
    /// which sweeps what uploads cut off by a crash left.
    async fn reopen(&mut self, store: Self::Store) -> Self::Store;

    /// How many pieces of uncommitted uploads the backend holds (temporary
    /// files, upload records, chunks no blob refers to).
    async fn leftovers(&mut self, store: &Self::Store) -> usize;

    /// Why the suite cannot run here, if it cannot; each case then says so
    /// on stderr and passes without running.
    fn skip(&self) -> Option<String> {
        None
    }

    /// Removes what the case left behind on a shared server. Default: nothing.
    async fn cleanup(&mut self) {}
}

/// Expands to one `#[tokio::test]` per case, each run against stores made
/// by the given [`BlobFactory`] expression.
#[macro_export]
macro_rules! blob_conformance_tests {
    ($factory:expr) => {
        $crate::blob_conformance_tests!(@cases $factory;
            blob_round_trip_across_chunks,
            blob_same_content_is_stored_once,
            blob_ranges_are_cut_at_the_end_and_the_read_cap,
            blob_range_beyond_the_end_is_refused,
            blob_past_the_size_cap_keeps_nothing,
            blob_aborted_and_dropped_uploads_keep_nothing,
            blob_cut_off_by_a_crash_is_swept_at_open,
            blob_delete_and_absent_blobs,
            blob_empty_blob,
            blob_concurrent_uploads_of_one_content,
            blob_reopen_keeps_committed,
            blob_listing_walks_every_blob_once,
            blob_sweep_spares_a_blob_touched_since,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let mut factory = $factory;
                if let Some(why) = $crate::blob::conformance::BlobFactory::skip(&factory) {
                    $crate::blob::conformance::report_skip(stringify!($case), &why);
                    return;
                }
                $crate::blob::conformance::$case(&mut factory).await;
                $crate::blob::conformance::BlobFactory::cleanup(&mut factory).await;
            }
        )+
    };
}

// ---------------------------------------------------------------- helpers

/// `len` bytes, varied, different per `seed`.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + i / 251) as u8) ^ seed).collect()
}

/// Writes `bytes` in chunks of `chunk` and commits.
async fn put<S: BlobStore>(store: &S, bytes: &[u8], chunk: usize) -> BlobMeta {
    let mut w = store.begin(bytes.len() as u64 + 1).await.expect("begin");
    for part in bytes.chunks(chunk) {
        w.write(part).await.expect("write");
    }
    assert_eq!(w.written(), bytes.len() as u64);
    w.commit().await.expect("commit")
}

/// The whole blob, read range by range.
async fn read_all<S: BlobStore>(store: &S, hash: &BlobHash) -> Vec<u8> {
    let size = store.stat(hash).await.expect("stat").expect("stored").size;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let part = store.read_range(hash, out.len() as u64, u64::MAX).await.expect("read_range");
        assert!(!part.is_empty() && part.len() as u64 <= MAX_READ_BYTES);
        out.extend_from_slice(&part);
    }
    out
}

/// Waits (up to 10 s: a dropped writer may clean up in the background) until
/// the backend holds nothing of uncommitted uploads.
async fn assert_no_leftovers<F: BlobFactory>(f: &mut F, store: &F::Store, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = f.leftovers(store).await;
        if n == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {n} pieces of uncommitted uploads remain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- cases

/// A blob larger than a read and than a ScyllaDB chunk, written in odd
/// chunks, reads back whole under its SHA-256.
pub async fn blob_round_trip_across_chunks<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let bytes = data(1, 2 * MAX_READ_BYTES as usize + 300_001);
    let meta = put(&store, &bytes, 77_777).await;
    assert_eq!(meta, BlobMeta { hash: BlobHash::of(&bytes), size: bytes.len() as u64 });
    assert_eq!(store.stat(&meta.hash).await.unwrap(), Some(meta));
    assert!(store.exists(&meta.hash).await.unwrap());
    assert!(read_all(&store, &meta.hash).await == bytes, "the bytes read back are the bytes written");
    assert_no_leftovers(f, &store, "after a commit").await;
}

/// The same bytes uploaded twice are one blob.
pub async fn blob_same_content_is_stored_once<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let bytes = data(2, 300_000);
    let a = put(&store, &bytes, 65_536).await;
    let b = put(&store, &bytes, 1_000).await;
    assert_eq!(a, b);
    assert_no_leftovers(f, &store, "after a deduplicated commit").await;
    assert!(store.delete(&a.hash).await.unwrap());
    assert!(!store.exists(&a.hash).await.unwrap(), "one copy: one delete removes it");
}

/// Ranges inside, across chunk borders, cut at the end and at the read cap.
pub async fn blob_ranges_are_cut_at_the_end_and_the_read_cap<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let bytes = data(3, MAX_READ_BYTES as usize + 700_000);
    let meta = put(&store, &bytes, 100_000).await;
    let size = bytes.len() as u64;
    let chunk = 256 * 1024u64;
    for (start, len) in
        [(0, 1), (5, 10), (chunk - 3, 6), (chunk, chunk), (2 * chunk - 1, chunk + 2), (size - 1, 1), (size - 10, 100)]
    {
        let got = store.read_range(&meta.hash, start, len).await.unwrap();
        let end = (start + len).min(size) as usize;
        assert!(got == Bytes::copy_from_slice(&bytes[start as usize..end]), "range {start}+{len}");
    }
    let capped = store.read_range(&meta.hash, 1, u64::MAX).await.unwrap();
    assert_eq!(capped.len() as u64, MAX_READ_BYTES, "one read returns at most MAX_READ_BYTES");
    assert!(store.read_range(&meta.hash, 7, 0).await.unwrap().is_empty(), "an empty range");
}

/// A range that starts at or past the end is refused with the blob's size.
pub async fn blob_range_beyond_the_end_is_refused<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let meta = put(&store, &data(4, 1000), 300).await;
    for start in [1000, 1001, u64::MAX] {
        match store.read_range(&meta.hash, start, 10).await {
            Err(BlobError::RangeNotSatisfiable { start: s, size: 1000 }) => assert_eq!(s, start),
            other => panic!("read from {start} of 1000 bytes: {other:?}"),
        }
    }
    let e = store.read_range(&meta.hash, 2000, 1).await.unwrap_err();
    assert_eq!(e.to_string(), "range starting at byte 2000 is beyond the end of a blob of 1000 bytes");
}

/// Past the cap the write fails with the limit, the writer is done and
/// nothing of the upload is kept.
pub async fn blob_past_the_size_cap_keeps_nothing<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let bytes = data(5, 400_000);
    let mut w = store.begin(300_000).await.unwrap();
    w.write(&bytes[..200_000]).await.unwrap();
    match w.write(&bytes[200_000..]).await {
        Err(BlobError::TooLarge { limit: 300_000 }) => {}
        other => panic!("a write past the cap: {other:?}"),
    }
    assert!(matches!(w.write(b"more").await, Err(BlobError::WriterFinished)), "the writer is done");
    assert!(matches!(w.commit().await, Err(BlobError::WriterFinished)), "and cannot commit");
    assert_no_leftovers(f, &store, "after a write past the cap").await;
    for held in [&bytes[..200_000], &bytes[..]] {
        assert!(!store.exists(&BlobHash::of(held)).await.unwrap());
    }
    // Exactly at the cap is fine.
    let mut w = store.begin(300_000).await.unwrap();
    w.write(&bytes[..300_000]).await.unwrap();
    assert_eq!(w.commit().await.unwrap().size, 300_000);
}

/// An abort, and a writer dropped uncommitted, keep nothing.
pub async fn blob_aborted_and_dropped_uploads_keep_nothing<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let bytes = data(6, 600_000);
    let mut w = store.begin(1 << 20).await.unwrap();
    w.write(&bytes).await.unwrap();
    w.abort().await.unwrap();
    assert_no_leftovers(f, &store, "after an abort").await;
    let mut w = store.begin(1 << 20).await.unwrap();
    w.write(&bytes).await.unwrap();
    drop(w);
    assert_no_leftovers(f, &store, "after a drop").await;
    assert!(!store.exists(&BlobHash::of(&bytes)).await.unwrap());
}

/// An upload cut off by a crash (its writer never finished nor dropped) is
/// gone once the store is opened again; committed blobs stay.
pub async fn blob_cut_off_by_a_crash_is_swept_at_open<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let kept = put(&store, &data(7, 5000), 999).await;
    let bytes = data(8, 700_000);
    let mut w = store.begin(1 << 20).await.unwrap();
    w.write(&bytes).await.unwrap();
    std::mem::forget(w);
    assert!(f.leftovers(&store).await > 0, "the cut-off upload is there before the restart");
    let store = f.reopen(store).await;
    assert_no_leftovers(f, &store, "after reopening").await;
    assert!(!store.exists(&BlobHash::of(&bytes)).await.unwrap());
    assert!(read_all(&store, &kept.hash).await == data(7, 5000));
}

/// Delete says whether it removed something; absent blobs are not found.
pub async fn blob_delete_and_absent_blobs<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let a = put(&store, &data(9, 300_000), 50_000).await;
    let b = put(&store, &data(10, 10), 10).await;
    assert!(store.delete(&a.hash).await.unwrap());
    assert!(!store.delete(&a.hash).await.unwrap(), "a second delete finds nothing");
    assert_eq!(store.stat(&a.hash).await.unwrap(), None);
    assert!(matches!(store.read_range(&a.hash, 0, 1).await, Err(BlobError::NotFound { hash }) if hash == a.hash));
    assert_eq!(read_all(&store, &b.hash).await, data(10, 10), "other blobs stay");
    let absent = BlobHash::of(b"never stored");
    assert!(matches!(store.read_range(&absent, 0, 1).await, Err(BlobError::NotFound { .. })));
    assert!(!store.exists(&absent).await.unwrap());
}

/// A blob of no bytes: stored, with no range to read.
pub async fn blob_empty_blob<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let w = store.begin(10).await.unwrap();
    let meta = w.commit().await.unwrap();
    assert_eq!(meta, BlobMeta { hash: BlobHash::of(b""), size: 0 });
    assert_eq!(store.stat(&meta.hash).await.unwrap(), Some(meta));
    assert!(matches!(
        store.read_range(&meta.hash, 0, 10).await,
        Err(BlobError::RangeNotSatisfiable { start: 0, size: 0 })
    ));
}

/// Uploads of the same bytes at once both commit, to one blob.
pub async fn blob_concurrent_uploads_of_one_content<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let bytes = data(11, 400_000);
    let (a, b) = tokio::join!(put(&store, &bytes, 30_000), put(&store, &bytes, 70_000));
    assert_eq!(a, b);
    assert!(read_all(&store, &a.hash).await == bytes);
    assert_no_leftovers(f, &store, "after racing commits").await;
}

/// Committed blobs survive a restart.
pub async fn blob_reopen_keeps_committed<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let metas = [put(&store, &data(12, 1), 1).await, put(&store, &data(13, 270_000), 4096).await];
    let store = f.reopen(store).await;
    for (m, seed) in metas.iter().zip([12u8, 13]) {
        assert_eq!(store.stat(&m.hash).await.unwrap(), Some(*m));
        assert!(read_all(&store, &m.hash).await == data(seed, m.size as usize));
    }
}

fn now_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

/// A walk of pages lists every stored blob once, with when it was written.
pub async fn blob_listing_walks_every_blob_once<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    assert!(store.list_page(None, 10).await.unwrap().is_empty(), "an empty store lists nothing");
    let before = now_ms();
    let mut stored = std::collections::BTreeSet::new();
    for seed in 0..7u8 {
        stored.insert(put(&store, &data(20 + seed, 1000 + seed as usize), 500).await.hash);
    }
    let after = now_ms();
    let (mut walked, mut cursor) = (Vec::new(), None);
    loop {
        let page = store.list_page(cursor, 3).await.expect("list_page");
        assert!(page.len() <= 3, "a page holds at most its limit");
        cursor = page.last().map(|l| l.hash);
        let last = page.len() < 3;
        walked.extend(page);
        if last {
            break;
        }
    }
    let hashes: Vec<BlobHash> = walked.iter().map(|l| l.hash).collect();
    assert_eq!(hashes.iter().copied().collect::<std::collections::BTreeSet<_>>(), stored, "every blob is listed");
    assert_eq!(hashes.len(), stored.len(), "and none twice: {hashes:?}");
    for l in &walked {
        // File times may be a few ms coarser than the clock read around them.
        assert!(l.touched_ms + 50 >= before && l.touched_ms <= after + 50, "{l:?} not in {before}..{after}");
    }
}

/// A sweep removes a blob only if nothing touched it since its cutoff: a
/// deduplicated upload of the same bytes touches it.
pub async fn blob_sweep_spares_a_blob_touched_since<F: BlobFactory>(f: &mut F) {
    let store = f.fresh().await;
    let bytes = data(30, 300_000);
    let other = put(&store, &data(31, 10), 10).await;
    let first = put(&store, &bytes, 65_536).await;
    assert!(!store.delete_untouched(&first.hash, now_ms() - 60_000).await.unwrap(), "written after the cutoff");
    assert!(store.exists(&first.hash).await.unwrap());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(put(&store, &bytes, 1_000).await, first, "uploaded again: deduplicated");
    assert!(!store.delete_untouched(&first.hash, cutoff).await.unwrap(), "the second upload touched it");
    assert!(read_all(&store, &first.hash).await == bytes, "and it is whole");
    assert_no_leftovers(f, &store, "after a deduplicated commit").await;

    assert!(store.delete_untouched(&first.hash, now_ms() + 1_000).await.unwrap(), "untouched since: removed");
    assert!(!store.exists(&first.hash).await.unwrap());
    assert!(!store.delete_untouched(&first.hash, now_ms() + 1_000).await.unwrap(), "a second sweep finds nothing");
    let listed: Vec<BlobHash> = store.list_page(None, 10).await.unwrap().iter().map(|l| l.hash).collect();
    assert_eq!(listed, vec![other.hash], "only the other blob is left");
    assert_eq!(read_all(&store, &other.hash).await, data(31, 10));
    // Its bytes went with it: the same content uploaded again is whole.
    assert_eq!(put(&store, &bytes, 4_096).await, first);
    assert!(read_all(&store, &first.hash).await == bytes);
    assert_no_leftovers(f, &store, "after a sweep").await;
}
