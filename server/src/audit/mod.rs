//! The tamper-evident audit trail: security-relevant events (sessions,
//! conversations, membership, edits and deletes, files, exports, holds,
//! purges, admin actions, configuration at start) appended to this node's
//! hash chain with periodic Ed25519-signed checkpoints, in whichever store
//! backend runs.
//!
//! Producers call [`Audit::record`]: a bounded send to the node's one writer
//! (a thread of its own that owns the chain head), awaited, so an event is
//! never dropped: a full queue makes its producer wait. The writer appends
//! what gathered in one store write, signs a checkpoint when one is due, and
//! retries a failed write (logged, counted in `chatd_audit_write_errors_total`)
//! from the head as stored. Plain sends are never audited; nothing here is on
//! the message path.
//!
//! Parts: [`event`] (the kinds and the event), [`chain`] (hashing, head,
//! cadence, verification; sans-IO), [`query`] (filters, cursors, export
//! formats; sans-IO), [`read`] (paged reads, export and `verify` against a
//! store), [`keys`] (chain id and signing key). It does not decide who may
//! read the trail (that is `crate::command::audit`).

pub mod chain;
pub mod event;
pub mod keys;
pub mod query;
pub mod read;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::signature::Ed25519KeyPair;
use tokio::sync::{mpsc, oneshot};

pub use event::{AuditEvent, EventKind};
pub use keys::AuditError;

use crate::config::Config;
use crate::metrics::AuditMetrics;
use crate::store::Store;
use crate::store::audit::{AuditRecord, AuditStore};
use chain::{Cadence, Head};

/// Events taken into one store write at most.
const BATCH: usize = 256;

/// Tries of one write while the node stops (it then gives up, logged).
const CLOSING_TRIES: u32 = 3;

/// The longest wait between retries of a failed write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum Msg {
    Event(Box<AuditEvent>, u64),
    /// Answered once everything queued before it is durable.
    Flush(oneshot::Sender<()>),
    /// Write what is queued, sign it, answer, stop.
    Close(oneshot::Sender<()>),
}

/// The node's audit trail: a handle on its writer. Cheap to share.
pub struct Audit {
    sender: mpsc::Sender<Msg>,
    chain: String,
    public_key: String,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn now_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

impl Audit {
    /// Starts the writer of this node's chain (id and key from `cfg`, see
    /// [`keys`]) on `store`, after reading the chain's head from it.
    pub fn start(cfg: &Config, store: Arc<Store>, metrics: AuditMetrics) -> Result<Audit, AuditError> {
        let chain = keys::chain_id(cfg)?;
        let key = keys::signing_key(&keys::key_path(cfg))?;
        let public_key = keys::public_hex(&key);
        let cadence = Cadence {
            every: cfg.audit.checkpoint_every,
            interval_ms: cfg.audit.checkpoint_interval_secs.saturating_mul(1000),
        };
        let (sender, rx) = mpsc::channel(cfg.audit.queue_bound.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let writer = Writer { store, key, cadence, metrics, chain: chain.clone() };
        let thread = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(AuditError::File { path: "runtime".into(), source: e }))),
                };
                rt.block_on(writer.run(rx, ready_tx));
            })
            .map_err(|source| AuditError::File { path: "audit thread".into(), source })?;
        ready_rx.recv().map_err(|_| AuditError::Stopped)??;
        Ok(Audit { sender, chain, public_key, thread: Mutex::new(Some(thread)) })
    }

    /// This node's chain id.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The public key that signs this chain's checkpoints, hex.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Records an event: waits for room in the writer's queue (backpressure,
    /// never a drop). Returns once queued; [`flush`](Self::flush) waits for
    /// durability. Fails only when the writer has stopped (logged).
    pub async fn record(&self, ev: AuditEvent) -> Result<(), AuditError> {
        let kind = ev.kind;
        let r = self.sender.send(Msg::Event(Box::new(ev), now_ms())).await.map_err(|_| AuditError::Stopped);
        if r.is_err() {
            tracing::error!(kind = kind.as_str(), "audit event not recorded: the audit writer has stopped");
        }
        r
    }

    /// Records an event without waiting (at start, when the queue is empty);
    /// fails if the queue is full or the writer has stopped.
    pub fn record_now(&self, ev: AuditEvent) -> Result<(), AuditError> {
        self.sender.try_send(Msg::Event(Box::new(ev), now_ms())).map_err(|_| AuditError::Stopped)
    }

    /// Waits until every event recorded before the call is durable.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.sender.send(Msg::Flush(tx)).await.map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)
    }

    /// Writes what is queued, signs a last checkpoint and stops the writer.
    /// Blocking (from any thread, in a runtime or not); later events are
    /// refused. Call it before the store closes.
    pub fn close(&self) {
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let sender = self.sender.clone();
        // A thread of its own: blocking calls may not run on a runtime's thread.
        let asked = std::thread::spawn(move || {
            let (tx, rx) = oneshot::channel();
            if sender.blocking_send(Msg::Close(tx)).is_ok() {
                let _ = rx.blocking_recv();
            }
        });
        let _ = asked.join();
        let _ = thread.join();
    }
}

/// The writer's state, on its thread.
struct Writer {
    store: Arc<Store>,
    key: Ed25519KeyPair,
    cadence: Cadence,
    metrics: AuditMetrics,
    chain: String,
}

impl Writer {
    async fn head(&self) -> Result<Head, AuditError> {
        let last = self.store.audit_last(&self.chain).await?;
        Ok(Head::new(&self.chain, last.as_ref(), now_ms()))
    }

    async fn run(self, mut rx: mpsc::Receiver<Msg>, ready: std::sync::mpsc::Sender<Result<(), AuditError>>) {
        let mut head = match self.head().await {
            Ok(h) => h,
            Err(e) => return drop(ready.send(Err(e))),
        };
        let _ = ready.send(Ok(()));
        let tick = Duration::from_millis(self.cadence.interval_ms.clamp(100, 60_000));
        let mut closing = None;
        while closing.is_none() {
            let first = tokio::select! {
                m = rx.recv() => m,
                () = tokio::time::sleep(tick) => {
                    self.write(&mut head, Vec::new(), false).await;
                    continue;
                }
            };
            let Some(first) = first else { break };
            let (mut events, mut flushes) = (Vec::new(), Vec::new());
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Msg::Event(ev, at) => events.push((ev, at)),
                    Msg::Flush(tx) => flushes.push(tx),
                    Msg::Close(tx) => closing = Some(tx),
                }
                if events.len() < BATCH || closing.is_some() {
                    next = rx.try_recv().ok();
                }
            }
            self.write(&mut head, events, closing.is_some()).await;
            for f in flushes {
                let _ = f.send(());
            }
        }
        rx.close();
        // Sign what is left unsigned, then say so.
        self.write(&mut head, Vec::new(), true).await;
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Appends `events` after the head with a checkpoint if one is due
    /// (`last`: whatever is unsigned), retrying a failed write from the head
    /// as stored: until it succeeds, or (`last`, the node stopping)
    /// [`CLOSING_TRIES`] times, so that a dead store cannot hold a shutdown.
    async fn write(&self, head: &mut Head, events: Vec<(Box<AuditEvent>, u64)>, last: bool) {
        let mut backoff = Duration::from_millis(100);
        for tries in 1.. {
            let mut next = head.clone();
            let entries: Vec<AuditRecord> = events.iter().map(|(ev, at)| next.append(ev, *at)).collect();
            let now = now_ms();
            let cadence = if last { Cadence { every: 1, interval_ms: 0 } } else { self.cadence };
            let due = next.checkpoint_due(cadence, now);
            if entries.is_empty() && !due {
                return;
            }
            let cp = due.then(|| next.checkpoint(&self.key, now));
            match self.store.append_audit(&entries, cp.as_ref()).await {
                Ok(()) => {
                    self.metrics.entries.increment(entries.len() as u64);
                    *head = next;
                    return;
                }
                Err(e) => {
                    self.metrics.write_errors.increment(1);
                    tracing::error!(chain = %self.chain, error = %e, entries = entries.len(), "audit write failed; retrying");
                    if matches!(e, crate::store::StoreError::Closed) || (last && tries >= CLOSING_TRIES) {
                        tracing::error!(chain = %self.chain, entries = entries.len(), "audit entries lost: the node stops and the store does not take them");
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    // Whatever reached the store is the truth: chain after it.
                    if let Ok(h) = self.head().await {
                        *head = h;
                    }
                }
            }
        }
    }
}
