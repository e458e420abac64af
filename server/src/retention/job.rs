//! The purge job: on shard 0 of each node, every
//! `retention.purge_interval_secs` (and, for tests, whenever asked with a
//! given "now", see [`PurgeRequest`]), it walks the conversations this node
//! owns and removes what expired by [`rules::plan`](super::rules::plan).
//!
//! Per conversation it pages forward from the purge mark by message time,
//! and for each expired run: tells the owner (which then refuses changes
//! of those messages and forgets its copies), removes their attachment
//! records and search entries, and only then has the store remove the
//! messages with their versions and move the mark. A restart resumes from
//! the mark; repeating a step is harmless. Batches are at most
//! [`BATCH`] messages and the job sleeps after each so that it removes at
//! most `retention.max_purged_per_sec`. It performs effects only; every
//! decision is in [`rules`](super::rules).
//!
//! Attachment bytes (blobs) are content-addressed and may be shared by
//! other attachments, of this or other conversations: the job removes the
//! records (so nobody can fetch them through the purged message), and the
//! records of uploads whose every possible message has expired (an upload
//! is sent within `blobs.send_within_secs` or never, so never-sent ones go
//! too); after the pass the [`sweep`](super::sweep) removes bytes no record
//! names any more (in a cluster one node sweeps the shared blobs: the one
//! that would own conversation [`SWEEPER`]; should two sweep at once while
//! ownership moves, the removals are conditional, so that is redundant work,
//! never a conflict).

use std::rc::Rc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use super::audit;
use super::rules::{self, Holds, Step};
use crate::shard::{ConvMsg, ShardCtx};
use crate::store::attachments::{AttachmentRecord, AttachmentStore};
use crate::store::retention::RetentionStore;
use crate::store::{Direction, MessageStore, Range, StoreError};
use chat_protocol::v1;

/// The conversation id whose owner node sweeps the blobs (any id would do:
/// ownership spreads ids over the live nodes, and this picks one node).
pub const SWEEPER: u64 = 1;

/// Messages looked at (and purged) per step at most.
pub const BATCH: usize = 256;

/// Why a conversation's purge stopped (it resumes from its mark next pass).
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// A store read or write failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index did not take the removals.
    #[error("search index: {0}")]
    Search(String),
}

/// A request to run one pass now, as if the time were `now_ms` (tests).
#[derive(Debug)]
pub struct PurgeRequest {
    /// The time the pass takes as now, ms since the Unix epoch.
    pub now_ms: u64,
    /// Answered with what the pass did.
    pub reply: oneshot::Sender<PassReport>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Conversations looked at (owned by this node).
    pub conversations: u64,
    /// Messages purged, over all of them.
    pub messages: u64,
    /// Attachment records removed.
    pub attachments: u64,
    /// Conversations with expired messages kept by a legal hold.
    pub held: u64,
    /// Conversations whose purge failed (retried next pass), and a failed sweep.
    pub failed: u64,
    /// Attachment files removed by the sweep: named by no record any more.
    pub blobs: u64,
}

/// Runs the job until shutdown: a pass every interval (none if it is 0), and
/// one whenever `requests` asks.
pub async fn run(ctx: Rc<ShardCtx>, mut requests: mpsc::Receiver<PurgeRequest>) {
    let every = ctx.shared.cfg.retention.purge_interval_secs;
    let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = tick.tick(), if every > 0 => {
                let now = chat_protocol::unix_ms(std::time::SystemTime::now());
                let report = pass(&ctx, now).await;
                tracing::debug!(?report, "retention pass");
            }
            req = requests.recv() => {
                let Some(req) = req else { break };
                let report = pass(&ctx, req.now_ms).await;
                let _ = req.reply.send(report);
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// One pass over the conversations this node owns, at `now_ms`.
pub async fn pass(ctx: &ShardCtx, now_ms: u64) -> PassReport {
    let mut report = PassReport::default();
    let store = &ctx.shared.store;
    let (ids, holds) = match (store.conversation_ids().await, store.holds().await) {
        (Ok(ids), Ok(holds)) => (ids, Holds::new(&holds)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "retention pass: cannot list conversations or holds");
            report.failed += 1;
            return report;
        }
    };
    for conv in ids {
        if ctx.remote_owner(conv).is_some() {
            continue;
        }
        report.conversations += 1;
        if let Err(e) = purge_conversation(ctx, conv, now_ms, &holds, &mut report).await {
            tracing::warn!(conversation_id = conv, error = %e, "retention purge failed; retried next pass");
            report.failed += 1;
        }
    }
    if ctx.remote_owner(SWEEPER).is_some() {
        return report;
    }
    let grace = ctx.shared.cfg.retention.orphan_blob_grace_secs;
    match super::sweep::sweep(&**store, &*ctx.shared.blobs, now_ms, grace).await {
        Ok(swept) => {
            tracing::debug!(listed = swept.listed, removed = swept.removed, "blob sweep");
            report.blobs = swept.removed;
            if swept.removed > 0 {
                let _ = ctx.shared.audit.record(audit::swept(swept.removed)).await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "blob sweep failed; retried next pass");
            report.failed += 1;
        }
    }
    report
}

/// A stored message as the job sees it: seq, server time, attachment ids.
fn entry(seq: u64, encoded: &[u8]) -> (u64, u64, Vec<String>) {
    match v1::Message::decode(encoded) {
        Ok(m) => (seq, m.server_time_ms, m.attachments.into_iter().map(|a| a.attachment_id).collect()),
        // A message that does not decode has no known age: kept (and so is all after it).
        Err(_) => (seq, u64::MAX, Vec::new()),
    }
}

/// The next [`BATCH`] messages after the purge mark, as the job sees them.
async fn next_batch(store: &crate::store::Store, conv: u64) -> Result<Vec<(u64, u64, Vec<String>)>, StoreError> {
    let mark = store.purged_through(conv).await?;
    let range = Range { after: mark, before: u64::MAX, limit: BATCH, direction: Direction::Forward };
    Ok(store.read_range(conv, range).await?.iter().map(|(s, b)| entry(*s, b)).collect())
}

/// Purges what expired in one conversation, batch by batch.
async fn purge_conversation(
    ctx: &ShardCtx,
    conv: u64,
    now_ms: u64,
    holds: &Holds,
    report: &mut PassReport,
) -> Result<(), PurgeError> {
    let store = &ctx.shared.store;
    let Some(rec) = store.get_conversation(conv).await? else { return Ok(()) };
    if rec.retention_days == 0 {
        return Ok(());
    }
    let members = store.members(conv).await?;
    let hold = holds.covering(conv, &rec.case_id, members.iter().map(|m| m.user_id.as_str()));
    loop {
        let page = next_batch(store, conv).await?;
        let times: Vec<(u64, u64)> = page.iter().map(|(s, t, _)| (*s, *t)).collect();
        let (through, more) = match rules::plan(now_ms, rec.retention_days, hold, &times, page.len() == BATCH) {
            Step::Purge { through, more } => (through, more),
            Step::Keep(rules::Keep::Held(_)) => {
                let expired = rules::cutoff_ms(now_ms, rec.retention_days)
                    .is_some_and(|c| times.first().is_some_and(|f| f.1 < c));
                report.held += u64::from(expired);
                break;
            }
            Step::Keep(rules::Keep::Forever) | Step::Nothing => break,
        };
        let (n, attachments) = purge_batch(ctx, conv, &page, through).await?;
        report.messages += n;
        report.attachments += attachments;
        let _ = ctx.shared.audit.record(audit::purged(conv, through, n, attachments)).await;
        let rate = u64::from(ctx.shared.cfg.retention.max_purged_per_sec.max(1));
        tokio::time::sleep(Duration::from_millis(n * 1000 / rate)).await;
        if !more {
            break;
        }
    }
    if hold.is_none() {
        let expired = expire_uploads(ctx, conv, now_ms, rec.retention_days).await?;
        report.attachments += expired;
        if expired > 0 {
            let mark = store.purged_through(conv).await?;
            let _ = ctx.shared.audit.record(audit::purged(conv, mark, 0, expired)).await;
        }
    }
    Ok(())
}

/// Removes the records of uploads whose every possible message has expired
/// (sent or never sent: `rules::upload_expired`); how many.
async fn expire_uploads(ctx: &ShardCtx, conv: u64, now_ms: u64, days: u32) -> Result<u64, PurgeError> {
    let within = ctx.shared.cfg.blobs.send_within_secs;
    remove_records(&ctx.shared.store, conv, |rec| rules::upload_expired(rec.uploaded_at_ms, now_ms, days, within)).await
}

/// Removes the attachment records of `conv` that `gone` picks; how many.
async fn remove_records(
    store: &crate::store::Store,
    conv: u64,
    gone: impl Fn(&AttachmentRecord) -> bool,
) -> Result<u64, PurgeError> {
    let (mut after, mut removed) = (String::new(), 0);
    loop {
        let page = store.attachments_page(conv, &after, BATCH).await?;
        for rec in page.iter().filter(|r| gone(r)) {
            store.delete_attachment(conv, &rec.id).await?;
            removed += 1;
        }
        match page.last() {
            Some(last) if page.len() == BATCH => after = last.id.clone(),
            _ => return Ok(removed),
        }
    }
}

/// Removes the messages of `page` up to `through` (the owner told first,
/// so it refuses changes of them from now on), their attachment records
/// and search entries, then moves the purge mark; how many messages and
/// attachment records went.
async fn purge_batch(
    ctx: &ShardCtx,
    conv: u64,
    page: &[(u64, u64, Vec<String>)],
    through: u64,
) -> Result<(u64, u64), PurgeError> {
    let store = &ctx.shared.store;
    tell_owner(ctx, conv, through, false).await;
    let gone: Vec<_> = page.iter().filter(|(s, ..)| *s <= through).collect();
    let mut attachments = 0;
    for (_, _, ids) in &gone {
        for id in ids {
            store.delete_attachment(conv, id).await?;
            attachments += 1;
        }
    }
    unindex(ctx, gone.iter().map(|(s, ..)| *s).collect(), conv).await?;
    store.purge_through(conv, through).await?;
    tell_owner(ctx, conv, through, true).await;
    Ok((gone.len() as u64, attachments))
}

/// Tells the owner the messages up to `through` are being purged (it
/// refuses changes of them from then on) or, `done`, are gone (it tells
/// the members). An owner that is gone has nothing of them in memory.
async fn tell_owner(ctx: &ShardCtx, conv: u64, through: u64, done: bool) {
    let (tx, rx) = oneshot::channel();
    if ctx.shared.mesh.to_owner(conv, ConvMsg::Purged { through, done, reply: tx }).await.is_ok() {
        let _ = rx.await;
    }
}

/// Purges every message of a conversation, whatever its retention (its
/// erasure, on the node that owns it), and every attachment record of it,
/// sent or not; how many messages and records went. Idempotent.
pub async fn purge_all(ctx: &ShardCtx, conv: u64) -> Result<(u64, u64), PurgeError> {
    let store = &ctx.shared.store;
    let (mut messages, mut attachments) = (0, 0);
    loop {
        let page = next_batch(store, conv).await?;
        let Some(&(through, ..)) = page.last() else { break };
        let (n, a) = purge_batch(ctx, conv, &page, through).await?;
        messages += n;
        attachments += a;
    }
    attachments += remove_records(store, conv, |_| true).await?;
    Ok((messages, attachments))
}

/// Takes the purged seqs out of this node's search index (if it has one)
/// and commits, off the shard's thread.
async fn unindex(ctx: &ShardCtx, seqs: Vec<u64>, conv: u64) -> Result<(), PurgeError> {
    let Some(search) = ctx.shared.search.clone() else { return Ok(()) };
    let ops = seqs.into_iter().map(|seq| crate::search::IndexOp::Remove { conversation_id: conv, seq }).collect();
    let index = search.index();
    match tokio::task::spawn_blocking(move || index.apply(ops).and_then(|()| index.commit())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PurgeError::Search(e.to_string())),
        Err(e) => Err(PurgeError::Search(e.to_string())),
    }
}
