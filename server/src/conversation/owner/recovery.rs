//! What the owner does when an append does not go through: a store failure
//! (refuse, pause sends, re-read the head), messages the store already holds
//! under their client ids (answer them, sequence the rest again), and a fence
//! (reload, check again, sequence again or give up). The append itself and
//! its success are in the parent module.

use super::{Effect, Handles, MAX_RESEQUENCE, Owner, Reloaded, StoreOp, unavailable};
use crate::store::StoreError;
use chat_protocol::WireError;
use chat_protocol::v1::ErrorCode;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl<R: Handles> Owner<R> {
    /// Nothing of the batch was written: refuse it and what waits, pause
    /// sends, and re-read the head so the next seq follows what is stored.
    pub(super) fn append_failed(&mut self, now: Instant, e: &StoreError) {
        tracing::error!(conv = self.id(), error = %e, "append failed");
        for p in std::mem::take(&mut self.inflight) {
            self.drop_message(p, unavailable());
        }
        self.fail_pending(now);
        self.store_op = StoreOp::ReadingHead;
        self.effects.push_back(Effect::ReadHead);
    }

    /// The store found messages of the batch already stored under their
    /// client ids (retries older than the window): nothing was written. Those
    /// are answered with their stored seq; the rest goes again, in order,
    /// ahead of what is pending.
    pub(super) fn duplicates(&mut self, now: Instant, mut stored: Vec<(u64, u64)>) {
        stored.sort_unstable();
        let known = |seq: u64| stored.binary_search_by_key(&seq, |&(s, _)| s).ok().map(|i| stored[i].1);
        if !self.inflight.iter().any(|p| known(p.msg.seq).is_some()) {
            let e = StoreError::Corrupt { table: "append", detail: format!("duplicates {stored:?} not in the batch") };
            return self.append_failed(now, &e);
        }
        let mut again = Vec::new();
        for mut p in std::mem::take(&mut self.inflight) {
            self.recent.forget(&p.sender, &mut p.msg.client_msg_id);
            match known(p.msg.seq) {
                Some(seq) => {
                    self.recent.remember((p.sender.clone(), p.msg.client_msg_id.clone()), seq);
                    let ok = self.ok(seq, true, now);
                    self.answer(p, Ok(ok));
                }
                // A change is checked again when it is sent again.
                None if p.change.is_some() => self.drop_message(p, unavailable()),
                None => {
                    p.msg.seq = 0;
                    p.msg.server_time_ms = 0;
                    again.push(p);
                }
            }
        }
        self.abandon_changes();
        for p in again.into_iter().rev() {
            self.pending.push_front(p);
        }
    }

    /// The reload asked for after a fence returned. Another sequencer stored
    /// a seq first: in a cluster, another node that also believes it owns this
    /// conversation (membership views differ for up to a heartbeat) or that
    /// owned it a moment ago. The store's uniqueness of `(conversation, seq)`
    /// is the fence: nothing of the batch was written (a batch never exceeds
    /// the store's `append_run_limit`, within which an append is
    /// all-or-nothing). The batch is checked again against what was reloaded
    /// and sequenced again (never acked, so nobody saw those seqs); what the
    /// other node stored meanwhile under the same client id comes back from
    /// the next append as [`StoreError::Duplicates`]. A message fenced
    /// [`MAX_RESEQUENCE`] times is answered with a retryable `TIMEOUT`.
    pub fn handle_reloaded(&mut self, now: Instant, res: Result<Reloaded, StoreError>) {
        debug_assert_eq!(self.store_op, StoreOp::Reloading);
        self.store_op = StoreOp::Idle;
        let batch = std::mem::take(&mut self.inflight);
        let r = match res {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(conv = self.id(), error = %e, "reload after a fence failed");
                for p in batch {
                    self.drop_message(p, unavailable());
                }
                self.fail_pending(now);
                return self.settle(now);
            }
        };
        self.committed = r.last;
        self.mls_epoch = r.mls_epoch;
        self.members = r.members.into_iter().map(|m| (Arc::from(m.user_id.as_str()), m)).collect();
        if let Some(rec) = r.rec {
            self.rec = rec;
        }
        let mut again = VecDeque::with_capacity(batch.len() + self.pending.len());
        for mut p in batch {
            self.recent.forget(&p.sender, &mut p.msg.client_msg_id);
            // The other sequencer may have removed the sender or archived the
            // conversation meanwhile: checked again against what was reloaded.
            if let Some(e) = self.unpostable(&p) {
                self.answer(p, Err(e));
            } else if p.change.is_some() {
                // A change is checked again when it is sent again.
                self.drop_message(p, unavailable());
            } else if p.resequenced < MAX_RESEQUENCE {
                p.resequenced += 1;
                p.msg.seq = 0;
                again.push_back(p);
            } else {
                // Still contended: ownership is moving. TIMEOUT makes the SDK
                // send it again (same client id) after a pause.
                let e = WireError::limited(
                    ErrorCode::Timeout,
                    "forward_timeout_ms",
                    "another node is sequencing this conversation; retry",
                    Some(Duration::from_millis(200)),
                );
                self.answer(p, Err(e));
            }
        }
        // What is pending was checked against the old state too.
        self.abandon_changes();
        for p in std::mem::take(&mut self.pending) {
            match self.unpostable(&p) {
                Some(e) => self.drop_message(p, e),
                None => again.push_back(p),
            }
        }
        // The fenced batch first, in its order: it arrived before what is pending.
        self.pending = again;
        self.settle(now);
    }

    /// The head read asked for after a store failure returned.
    pub fn handle_head(&mut self, now: Instant, res: Result<u64, StoreError>) {
        debug_assert_eq!(self.store_op, StoreOp::ReadingHead);
        self.store_op = StoreOp::Idle;
        match res {
            Ok(last) => self.committed = last,
            Err(e) => tracing::warn!(conv = self.id(), error = %e, "head not re-read after a store failure"),
        }
        self.settle(now);
    }
}
