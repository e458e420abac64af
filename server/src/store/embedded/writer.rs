//! The writer thread: one thread fed by a bounded queue takes a request,
//! drains whatever else is queued (up to `max_batch`), applies each as a
//! [`Txn`](super::txn::Txn) into one in-memory write set (a failing request
//! fails alone), commits that set as ONE atomic fjall batch with one journal
//! fsync (group commit), then answers every request. It does not serve reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fjall::PersistMode;
use tokio::sync::mpsc;

use super::db::{Db, Ks};
use super::ops::{Op, Reply, Request, Shared, WriteSet};
use super::txn::Txn;
use crate::store::StoreError;

/// A group commit's failure, shared by every request of the group.
#[derive(Debug, Clone)]
struct CommitFailed(Arc<fjall::Error>);

impl std::fmt::Display for CommitFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group commit failed: {}", self.0)
    }
}

impl std::error::Error for CommitFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    db: Arc<Db>,
    rx: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    fsync: bool,
    /// The highest seq stored or staged per conversation, for the conversations
    /// this writer has appended to: a seq above it is free without a lookup
    /// (owners append in order, so that is every append). Cleared when a
    /// commit fails or it grows past [`MAX_HEADS`].
    heads: HashMap<u64, u64>,
}

/// Conversations whose head the writer remembers at most.
const MAX_HEADS: usize = 1 << 20;

impl Writer {
    /// A writer of `db` that takes its requests from `rx`.
    pub(super) fn new(db: Arc<Db>, rx: mpsc::Receiver<Request>, shared: Arc<Shared>, fsync: bool) -> Self {
        Self { db, rx, shared, fsync, heads: HashMap::new() }
    }

    /// Serves the queue until the store closes, then applies what is queued.
    pub(super) fn run(mut self, max_batch: usize) {
        let mut batch: Vec<(Op, Reply)> = Vec::with_capacity(max_batch.min(1024));
        while let Some(first) = self.rx.blocking_recv() {
            if let Request::Write(op, reply) = first {
                batch.push((op, reply));
            }
            self.drain_into(&mut batch, max_batch);
            self.commit_batch(&mut batch);
            if self.shared.closed.load(Ordering::Acquire) {
                break;
            }
        }
        // Take nothing new, but apply everything already queued.
        self.rx.close();
        loop {
            self.drain_into(&mut batch, max_batch);
            if batch.is_empty() {
                break;
            }
            self.commit_batch(&mut batch);
        }
        // With fsync off the journal reached the OS only: make it durable now.
        if let Err(e) = self.db.db.persist(PersistMode::SyncAll) {
            tracing::error!(error = %e, "store: final journal sync failed");
        }
    }

    /// Moves queued writes into `batch` until it is full or the queue is empty.
    fn drain_into(&mut self, batch: &mut Vec<(Op, Reply)>, max_batch: usize) {
        while batch.len() < max_batch {
            match self.rx.try_recv() {
                Ok(Request::Write(op, reply)) => batch.push((op, reply)),
                Ok(Request::Wake) => {}
                Err(_) => break,
            }
        }
    }

    /// Applies `batch` (emptying it) into one write set, commits that once and
    /// durably, then answers every request.
    fn commit_batch(&mut self, batch: &mut Vec<(Op, Reply)>) {
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let mut group = WriteSet::new();
        let mut results = Vec::with_capacity(batch.len());
        if self.heads.len() > MAX_HEADS {
            self.heads.clear();
        }
        for (op, _) in batch.iter() {
            let mut txn = Txn::new(&self.db, &group, op.name(), &self.heads);
            let result = txn.apply(op);
            if result.is_ok() {
                let (local, new_heads) = txn.into_writes();
                group.extend(local);
                for (conv, seq) in new_heads {
                    let h = self.heads.entry(conv).or_insert(0);
                    *h = (*h).max(seq);
                }
            }
            results.push(result);
        }
        if !group.is_empty()
            && let Err(e) = self.commit(group)
        {
            let name = match batch.as_slice() {
                [(op, _)] => op.name(),
                _ => "write_batch",
            };
            tracing::error!(error = %e, size = batch.len(), "store: group commit failed");
            // What was staged is not stored: forget the heads it moved.
            self.heads.clear();
            let e = CommitFailed(Arc::new(e));
            for result in results.iter_mut().filter(|r| r.is_ok()) {
                *result = Err(StoreError::Backend { op: name, source: Box::new(e.clone()) });
            }
        }
        self.shared.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(m) = self.shared.metrics.get() {
            m.commit(batch.len(), started.elapsed());
        }
        for ((_, reply), result) in batch.drain(..).zip(results) {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(result);
        }
    }

    /// Commits a group's write set as one atomic batch, journaled and (with
    /// fsync on) fsync'd before it becomes visible.
    fn commit(&self, group: WriteSet) -> fjall::Result<()> {
        let mode = if self.fsync { PersistMode::SyncAll } else { PersistMode::Buffer };
        let mut wb = fjall::OwnedWriteBatch::with_capacity(self.db.db.clone(), group.len()).durability(Some(mode));
        for (staged, value) in group {
            let Some((ks, key)) = staged.split_first().and_then(|(tag, key)| Some((Ks::from_tag(*tag)?, key))) else {
                continue; // Never happens: every staged key starts with a tag.
            };
            let ks = self.db.ks(ks);
            match value {
                Some(value) => wb.insert(ks, key, value),
                None => wb.remove(ks, key),
            }
        }
        wb.commit()?;
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
