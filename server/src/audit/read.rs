//! The trail read back from a store: a filtered page across every chain
//! ([`page`]), an export of everything a filter passes ([`export`]), and the
//! walk of every chain against its checkpoints ([`verify`]). The rules are
//! `super::query` and `super::chain`; this only scans, in bounded pages.

use std::io::Write;

use super::AuditError;
use super::chain::{Fault, Verified, Verifier};
use super::query::{Cursor, Filter, Format};
use crate::store::StoreError;
use crate::store::audit::{AuditRecord, AuditStore};

/// Entries read from the store per scan step.
const SCAN: usize = 512;

/// A page of entries that pass `filter`, after `cursor`: at most `limit`,
/// having scanned at most `budget` entries (a sparse filter answers a short
/// page with a cursor rather than scan everything at once). The cursor is
/// None when the trail is exhausted.
pub async fn page<S: AuditStore>(
    store: &S,
    filter: &Filter,
    cursor: Option<Cursor>,
    limit: usize,
    budget: usize,
) -> Result<(Vec<AuditRecord>, Option<Cursor>), StoreError> {
    let chains = store.audit_chains().await?;
    let mut out = Vec::new();
    let mut scanned = 0;
    let start = cursor.as_ref().map_or(0, |c| chains.partition_point(|ch| *ch < c.chain));
    for chain in &chains[start..] {
        let mut after = cursor.as_ref().filter(|c| c.chain == *chain).map_or(0, |c| c.seq);
        loop {
            let batch = store.audit_entries(chain, after, SCAN.min(budget - scanned).max(1)).await?;
            let full = batch.len() == SCAN;
            for e in batch {
                scanned += 1;
                after = e.seq;
                if filter.matches(&e) {
                    out.push(e);
                }
                if out.len() == limit || scanned >= budget {
                    return Ok((out, Some(Cursor { chain: chain.clone(), seq: after })));
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok((out, None))
}

/// Writes every entry that passes `filter` to `out` in `format`; returns how many.
pub async fn export<S: AuditStore>(
    store: &S,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, AuditError> {
    out.write_all(format.header().as_bytes())?;
    let (mut cursor, mut n) = (None, 0u64);
    loop {
        let (entries, next) = page(store, filter, cursor, SCAN, SCAN * 4).await?;
        for e in &entries {
            out.write_all(format.line(e).as_bytes())?;
            n += 1;
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(n),
        }
    }
}

/// Walks every chain in the store; the first fault found, or each chain's
/// summary. With `trusted` = `(chain, key hex)`, that chain's checkpoints
/// must be signed by that key.
pub async fn verify<S: AuditStore>(
    store: &S,
    trusted: Option<(&str, &str)>,
) -> Result<Result<Vec<Verified>, Fault>, StoreError> {
    let mut done = Vec::new();
    for chain in store.audit_chains().await? {
        let key = trusted.filter(|(c, _)| *c == chain).map(|(_, k)| k.to_owned());
        let mut v = Verifier::new(&chain, store.audit_checkpoints(&chain).await?, key);
        let mut after = 0;
        loop {
            let batch = store.audit_entries(&chain, after, SCAN).await?;
            for e in &batch {
                if let Err(f) = v.push(e) {
                    return Ok(Err(f));
                }
            }
            if batch.len() < SCAN {
                break;
            }
            // The next page starts after the highest seq read (stored values may be out of order).
            after = batch.iter().map(|e| e.seq).max().unwrap_or(after).max(after);
        }
        match v.finish() {
            Ok(s) => done.push(s),
            Err(f) => return Ok(Err(f)),
        }
    }
    Ok(Ok(done))
}
