//! Cluster-wide search, the bridge's side: a shard's query goes to every
//! other live node (`chat:node:<id>`, one request id each, waited for in
//! [`super::pending::Pending`]); a query another node sends here runs on
//! this node's index on the blocking pool, at most [`MAX_REMOTE_SEARCHES`]
//! at once, and its answer goes back sealed. What the bytes mean is
//! [`super::search_wire`]; merging the answers is the asking shard's
//! ([`crate::search::merge`]).

use super::bridge::{Bridge, publish};
use super::keys::node_channel;
use super::pending::Waits;
use super::search_wire;
use crate::ids::NodeId;
use crate::search::{IndexQuery, SearchError};
use chat_protocol::cluster::v1::{SearchAnswer, SearchRequest};
use fred::prelude::Client;
use std::rc::Rc;
use tokio::sync::oneshot;

/// Most queries of other nodes this node runs at once; more are answered
/// with an error at once (the asker's user retries).
pub(super) const MAX_REMOTE_SEARCHES: usize = 8;

impl Bridge {
    /// Sends `query` to every other live node; hands back what to wait for.
    pub(super) fn send_search(&self, client: &Client, query: &IndexQuery, reply: oneshot::Sender<Waits>) {
        let live = self.live.borrow().clone();
        let mut waits = Vec::with_capacity(live.len());
        for node in live.iter().filter(|n| **n != self.node_id) {
            let (tx, rx) = oneshot::channel();
            let req_id = self.searches.insert(node.clone(), tx);
            publish(client, node_channel(node), self.sealed(&search_wire::request(&self.node_id, req_id, query)));
            waits.push((node.clone(), rx));
        }
        let _ = reply.send(waits);
    }

    /// A query `from` asks of this node's index: run off the bridge's thread, answered when done.
    pub(super) fn search_asked(self: &Rc<Self>, client: &Client, from: NodeId, r: SearchRequest) {
        let req_id = r.req_id;
        let answer = |me: &Self, result: Result<_, String>| {
            let payload = me.sealed(&search_wire::answer(&me.node_id, req_id, result));
            publish(client, node_channel(&from), payload);
        };
        let q = match search_wire::query(r) {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(from = %from, error = %e, "search request refused");
                return answer(self, Err(e.to_string()));
            }
        };
        let Some(index) = self.search_index.clone() else {
            return answer(self, Err(format!("search is turned off on node {}", self.node_id)));
        };
        if self.searches_running.get() >= MAX_REMOTE_SEARCHES {
            let why = format!("node {} is running {MAX_REMOTE_SEARCHES} searches already", self.node_id);
            return answer(self, Err(why));
        }
        self.searches_running.set(self.searches_running.get() + 1);
        let me = self.clone();
        let client = client.clone();
        tokio::task::spawn_local(async move {
            let found = tokio::task::spawn_blocking(move || index.query(&q)).await;
            me.searches_running.set(me.searches_running.get() - 1);
            let result = match found {
                Ok(Ok(hits)) => Ok(hits),
                Ok(Err(SearchError::Malformed(why))) => Err(format!("the query does not parse: {why}")),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "search query of another node failed");
                    Err(format!("the search index of node {} failed", me.node_id))
                }
                Err(_) => Err(format!("the search on node {} stopped", me.node_id)),
            };
            publish(&client, node_channel(&from), me.sealed(&search_wire::answer(&me.node_id, req_id, result)));
        });
    }

    /// A node's answer to a search of ours: to whoever still waits for it.
    pub(super) fn search_answered(&self, from: &NodeId, a: SearchAnswer) {
        let Some(tx) = self.searches.take(a.req_id) else { return };
        let answer = search_wire::answered(a);
        if let Err(why) = &answer {
            tracing::warn!(from = %from, error = %why, "search answer with an error");
        }
        let _ = tx.send(answer);
    }
}
