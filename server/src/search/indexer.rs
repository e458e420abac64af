//! The node's search service: the index and the one indexer thread that
//! feeds it. Owners hand it each committed batch (shared buffers, nothing
//! decoded on their thread) after the store
//! acknowledged it ([`Search::committed`]), through a bounded queue,
//! without waiting: the thread takes what gathered in each
//! `search.commit_interval_ms`, applies it and commits the index once.
//!
//! A full queue drops the batch rather than block: an owner runs on its
//! shard's one thread, and waiting there for the indexer would stall every
//! conversation and connection of that shard. A dropped batch is counted
//! (`chatd_search_dropped_total`) and logged; `chatd reindex` rebuilds the
//! index from the store, which holds every message.

use super::{Committed, SearchIndex, SearchResult, ops_of_commit};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// The index and the way to its indexer.
pub struct Search {
    index: Arc<dyn SearchIndex>,
    tx: SyncSender<Vec<Committed>>,
    dropped: metrics::Counter,
    /// The indexer thread, joined by [`Search::stop`].
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Search {
    /// Starts the indexer thread over `index` with a queue of `bound` batches.
    pub fn start(
        index: Arc<dyn SearchIndex>,
        commit_every: Duration,
        bound: usize,
        dropped: metrics::Counter,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(bound);
        let idx = index.clone();
        let thread =
            std::thread::Builder::new().name("search-indexer".into()).spawn(move || run(&*idx, &rx, commit_every))?;
        Ok(Self { index, tx, dropped, thread: std::sync::Mutex::new(Some(thread)) })
    }

    /// Commits what is queued, stops the indexer and releases the index's
    /// writer (and its lock on the directory), so that the node can start
    /// again on it in this process. Blocks until done; batches handed in
    /// later are dropped (counted). Call it once the shards have stopped.
    pub fn stop(&self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            // An empty batch is the stop sign (`committed` never sends one).
            let _ = self.tx.send(Vec::new());
            let _ = thread.join();
        }
        report(self.index.close());
    }

    /// The index, for queries.
    pub fn index(&self) -> Arc<dyn SearchIndex> {
        self.index.clone()
    }

    /// Queues a batch the store has committed; never waits.
    pub fn committed(&self, batch: Vec<Committed>) {
        if batch.is_empty() {
            return;
        }
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch)) => {
                self.dropped.increment(1);
                tracing::warn!(
                    messages = batch.len(),
                    "search indexer queue full: batch not indexed (run `chatd reindex`)"
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.increment(1);
                tracing::warn!("search indexer stopped: batch not indexed");
            }
        }
    }
}

/// The indexer loop: once a batch arrives, let the interval's batches
/// gather in the queue (the thread sleeps, so owners' hand-offs wake no
/// one), then apply them all and commit; commit what is left at the stop
/// sign or when every sender is gone.
fn run(index: &dyn SearchIndex, rx: &Receiver<Vec<Committed>>, every: Duration) {
    loop {
        let Ok(first) = rx.recv() else { return };
        let mut done = first.is_empty();
        if !done {
            std::thread::sleep(every);
        }
        let mut pending = 0usize;
        for batch in std::iter::once(first).chain(rx.try_iter()) {
            if batch.is_empty() {
                done = true;
                continue;
            }
            // Decoded here, off the owner's thread.
            let ops = ops_of_commit(&batch);
            pending += ops.len();
            report(index.apply(ops));
        }
        if pending > 0 {
            report(index.commit());
        }
        if done {
            return;
        }
    }
}

fn report(r: SearchResult<()>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "search index write failed");
    }
}
