//! Requests this node forwarded and waits for: the pending map, request ids
//! that never repeat across incarnations, and the answer a caller awaits (a
//! retryable `TIMEOUT` when none comes, or at once when the node it went to
//! leaves the live set); the same map, by answer type, waits for remote
//! search answers. A leaf: no other cluster file.

use crate::ids::{LiveSet, NodeId};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, reply};
use futures_util::future::LocalBoxFuture;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::oneshot;

/// One node's answer to a search: its hits, or why it has none.
pub(super) type NodeAnswer = Result<crate::search::merge::Answer, String>;

/// The answers to wait for, one per other live node.
pub(super) type Waits = Vec<(NodeId, oneshot::Receiver<NodeAnswer>)>;

/// Requests this node sent and waits an answer of type `T` for, by request
/// id, with the node each went to (forwarded commands: a `reply::Result`).
pub(super) struct Pending<T = reply::Result> {
    waiting: RefCell<HashMap<u64, (NodeId, oneshot::Sender<T>)>>,
    next: Cell<u64>,
}

impl<T> Pending<T> {
    /// An empty map whose ids start at random: a late answer to the previous
    /// incarnation's request N must not answer this one's N.
    pub(super) fn new() -> Self {
        Self::starting_at((rand::random::<u64>() >> 1) | 1)
    }

    fn starting_at(first: u64) -> Self {
        Self { waiting: RefCell::new(HashMap::new()), next: Cell::new(first) }
    }

    /// Waits for `to`'s answer on `reply`; the request id to send (never 0, "no answer wanted").
    pub(super) fn insert(&self, to: NodeId, reply: oneshot::Sender<T>) -> u64 {
        let id = self.next.get();
        self.next.set(id.checked_add(1).unwrap_or(1));
        self.waiting.borrow_mut().insert(id, (to, reply));
        id
    }

    /// The waiting caller of request `req_id`, if still waiting here.
    pub(super) fn take(&self, req_id: u64) -> Option<oneshot::Sender<T>> {
        self.waiting.borrow_mut().remove(&req_id).map(|(_, tx)| tx)
    }

    /// Forgets answers that never came: the asker gave up (timed out) already.
    pub(super) fn forget_abandoned(&self) {
        self.waiting.borrow_mut().retain(|_, (_, tx)| !tx.is_closed());
    }

    /// Answers at once, with `gone(node)`, every request that went to a
    /// node no longer in `live`: that node will not answer. How many were answered.
    pub(super) fn fail_gone_with(&self, live: &LiveSet, gone: impl Fn(&NodeId) -> T) -> usize {
        let ids: Vec<u64> =
            self.waiting.borrow().iter().filter(|(_, (to, _))| !live.contains(to)).map(|(&id, _)| id).collect();
        for id in &ids {
            if let Some((to, tx)) = self.waiting.borrow_mut().remove(id) {
                let _ = tx.send(gone(&to));
            }
        }
        ids.len()
    }

    /// How many are waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.borrow().len()
    }
}

impl Pending {
    /// Answers at once, retryably, every forwarded request that went to a
    /// node no longer in `live`: the caller's retry goes to the
    /// conversation's new owner instead of waiting out the forward timeout.
    /// How many were answered.
    pub(super) fn fail_gone(&self, live: &LiveSet) -> usize {
        self.fail_gone_with(live, |to| {
            reply::Result::Error(timeout_error(&format!("node {to} left the cluster")).to_proto())
        })
    }
}

/// A retryable `TIMEOUT`: the owner node did not answer, and why.
fn timeout_error(why: &str) -> WireError {
    WireError::limited(
        ErrorCode::Timeout,
        "forward_timeout_ms",
        format!("the conversation's owner node did not answer ({why}); retry"),
        Some(Duration::from_millis(200)),
    )
}

/// The answer to a forwarded request: `Ok` when none is wanted, else what
/// comes on `rx` within `timeout`, else a retryable `TIMEOUT`. `rx` None: the
/// request never reached the bridge.
pub(super) fn answer(
    rx: Option<oneshot::Receiver<reply::Result>>,
    want_reply: bool,
    timeout: Duration,
) -> LocalBoxFuture<'static, reply::Result> {
    Box::pin(async move {
        let Some(rx) = rx else {
            return reply::Result::Error(timeout_error("cluster bridge stopped").to_proto());
        };
        if !want_reply {
            return reply::Result::Ok(v1::Empty {});
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => reply::Result::Error(timeout_error("request dropped").to_proto()),
            Err(_) => reply::Result::Error(timeout_error("timed out").to_proto()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_never_zero_and_abandoned_ones_are_forgotten() {
        let p = Pending::starting_at(u64::MAX);
        let (tx, rx) = oneshot::channel();
        assert_eq!(p.insert(NodeId::from("a"), tx), u64::MAX);
        let (tx, _abandoned) = oneshot::channel();
        assert_eq!(p.insert(NodeId::from("a"), tx), 1, "wraps past 0");
        drop(_abandoned);
        p.forget_abandoned();
        assert_eq!(p.len(), 1);
        p.take(u64::MAX).unwrap().send(reply::Result::Ok(v1::Empty {})).unwrap();
        assert_eq!(rx.blocking_recv().unwrap(), reply::Result::Ok(v1::Empty {}));
        assert!(p.take(u64::MAX).is_none(), "answered once");
    }

    #[test]
    fn requests_to_a_node_that_left_are_answered_at_once_retryably() {
        let p = Pending::starting_at(1);
        let (to_a, mut a) = oneshot::channel();
        let (to_b, mut b) = oneshot::channel();
        p.insert(NodeId::from("a"), to_a);
        let id_b = p.insert(NodeId::from("b"), to_b);
        let live: LiveSet = vec![NodeId::from("a"), NodeId::from("c")].into();
        assert_eq!(p.fail_gone(&live), 1);
        assert!(a.try_recv().is_err(), "a is live: still waiting");
        let Ok(reply::Result::Error(e)) = b.try_recv() else { panic!("b answered") };
        assert_eq!(e.code, ErrorCode::Timeout as i32, "retryable");
        assert!(e.message.contains("node b left the cluster"), "{}", e.message);
        assert!(p.take(id_b).is_none() && p.len() == 1);
    }

    #[tokio::test]
    async fn an_unanswered_request_times_out_retryably() {
        let (_tx, rx) = oneshot::channel();
        let r = answer(Some(rx), true, Duration::from_millis(50)).await;
        let reply::Result::Error(e) = r else { panic!("{r:?}") };
        assert_eq!(e.code, ErrorCode::Timeout as i32);
        assert!(e.message.contains("timed out"), "{}", e.message);
        let r = answer(None, false, Duration::from_millis(50)).await;
        assert!(matches!(r, reply::Result::Error(e) if e.message.contains("bridge stopped")));
        let (_tx, rx) = oneshot::channel();
        assert_eq!(answer(Some(rx), false, Duration::ZERO).await, reply::Result::Ok(v1::Empty {}));
    }
}
