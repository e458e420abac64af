//! The blob sweep: removes attachment bytes that no attachment record names
//! any more, once nobody has touched them for
//! `retention.orphan_blob_grace_secs`. Blobs are content-addressed and
//! shared by every upload of the same bytes, so the purge job and the GDPR
//! erasure remove attachment records and leave the bytes to this sweep;
//! it also removes uploads whose record was never written.
//!
//! A round lists blobs (pages of [`PAGE`]) and keeps those untouched since
//! the cutoff, up to [`CANDIDATES`]; then it walks every attachment record
//! and drops the candidates a record names (content or thumbnail); what is
//! left is removed with [`BlobStore::delete_untouched`], which spares a
//! blob an upload touched meanwhile. The grace covers the other race: an
//! upload's record is written moments after its blob's commit, so a record
//! missing from the walk belongs to a blob touched after the cutoff. Rounds
//! go on from the last blob listed until the listing ends. The decisions
//! are [`Round`]'s (sans-IO); [`sweep`] only performs them.

use std::collections::BTreeSet;

use crate::blob::{BlobError, BlobHash, BlobStore, Listed};
use crate::store::StoreError;
use crate::store::attachments::{AttachmentRecord, AttachmentStore};

/// Blobs listed per page.
pub const PAGE: usize = 1_000;

/// Most candidates one round holds (its memory: 32 bytes each).
pub const CANDIDATES: usize = 10_000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blobs looked at.
    pub listed: u64,
    /// Blobs removed: named by no record, untouched for the grace.
    pub removed: u64,
}

/// Why a sweep stopped (the next one starts over).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Listing or removing blobs failed.
    #[error("blob store: {0}")]
    Blobs(#[from] BlobError),
    /// Reading attachment records failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One round's decisions: which listed blobs are old enough to go, less
/// those a record still names.
#[derive(Debug)]
pub struct Round {
    cutoff_ms: u64,
    candidates: BTreeSet<BlobHash>,
}

impl Round {
    /// A round at `now_ms` that spares blobs touched within `grace_secs`.
    pub fn new(now_ms: u64, grace_secs: u64) -> Self {
        Self { cutoff_ms: now_ms.saturating_sub(grace_secs.saturating_mul(1000)), candidates: BTreeSet::new() }
    }

    /// Blobs touched at or after this are spared, ms since the Unix epoch.
    pub fn cutoff_ms(&self) -> u64 {
        self.cutoff_ms
    }

    /// Takes in a listed blob; whether the round is full (list no more).
    pub fn listed(&mut self, blob: &Listed) -> bool {
        if blob.touched_ms < self.cutoff_ms {
            self.candidates.insert(blob.hash);
        }
        self.candidates.len() >= CANDIDATES
    }

    /// Whether any listed blob may go (else the records need no walk).
    pub fn has_candidates(&self) -> bool {
        !self.candidates.is_empty()
    }

    /// A record names its content and its thumbnail: they stay.
    pub fn named_by(&mut self, rec: &AttachmentRecord) {
        let thumbnail = rec.thumbnail.as_ref().map(|t| t.sha256.as_str());
        for hex in std::iter::once(rec.sha256.as_str()).chain(thumbnail) {
            if let Ok(hash) = BlobHash::from_hex(hex) {
                self.candidates.remove(&hash);
            }
        }
    }

    /// The blobs to remove.
    pub fn orphans(self) -> BTreeSet<BlobHash> {
        self.candidates
    }
}

/// Removes the blobs of `blobs` that no record of `store` names and that
/// went untouched for `grace_secs` before `now_ms`.
pub async fn sweep(
    store: &impl AttachmentStore,
    blobs: &impl BlobStore,
    now_ms: u64,
    grace_secs: u64,
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    let mut after = None;
    loop {
        let mut round = Round::new(now_ms, grace_secs);
        let listed_all = 'listing: loop {
            let page = blobs.list_page(after, PAGE).await?;
            for blob in &page {
                report.listed += 1;
                after = Some(blob.hash);
                if round.listed(blob) {
                    // Full: the next round lists on from here.
                    break 'listing false;
                }
            }
            if page.len() < PAGE {
                break true;
            }
        };
        if round.has_candidates() {
            let mut at = None;
            loop {
                let page = store.all_attachments_page(at, PAGE).await?;
                page.iter().for_each(|r| round.named_by(r));
                if page.len() < PAGE {
                    break;
                }
                at = page.last().map(|r| (r.conversation_id, r.id.clone()));
            }
            let cutoff = round.cutoff_ms();
            for hash in round.orphans() {
                report.removed += u64::from(blobs.delete_untouched(&hash, cutoff).await?);
            }
        }
        if listed_all {
            return Ok(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::attachments::ThumbnailRecord;

    const DAY: u64 = 86_400;
    const NOW: u64 = 100 * DAY * 1000;

    fn listed(seed: &[u8], touched_ms: u64) -> Listed {
        Listed { hash: BlobHash::of(seed), touched_ms }
    }

    fn record(content: &[u8], thumbnail: Option<&[u8]>) -> AttachmentRecord {
        AttachmentRecord {
            sha256: BlobHash::of(content).to_hex(),
            thumbnail: thumbnail.map(|t| ThumbnailRecord { sha256: BlobHash::of(t).to_hex(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn only_blobs_untouched_for_the_grace_and_named_by_no_record_go() {
        let mut round = Round::new(NOW, DAY);
        assert_eq!(round.cutoff_ms(), NOW - DAY * 1000);
        for blob in [
            listed(b"orphan", NOW - 2 * DAY * 1000),
            listed(b"young orphan", NOW - DAY * 1000),
            listed(b"named", NOW - 3 * DAY * 1000),
            listed(b"a thumbnail", NOW - 3 * DAY * 1000),
        ] {
            assert!(!round.listed(&blob));
        }
        assert!(round.has_candidates());
        round.named_by(&record(b"named", Some(b"a thumbnail")));
        round.named_by(&AttachmentRecord { sha256: "not a hash".into(), ..Default::default() });
        assert_eq!(round.orphans(), BTreeSet::from([BlobHash::of(b"orphan")]));
    }

    #[test]
    fn a_round_is_full_at_its_bound() {
        let mut round = Round::new(NOW, 0);
        for k in 0..CANDIDATES as u32 - 1 {
            assert!(!round.listed(&listed(&k.to_be_bytes(), 0)));
        }
        assert!(!round.listed(&listed(b"young", NOW)), "a young blob takes no room");
        assert!(round.listed(&listed(b"last", 0)));
    }

    #[test]
    fn nothing_old_needs_no_walk_of_the_records() {
        let mut round = Round::new(NOW, DAY);
        round.listed(&listed(b"young", NOW - 1));
        assert!(!round.has_candidates());
        assert_eq!(Round::new(5, DAY).cutoff_ms(), 0, "a clock before the grace spares everything");
    }
}
