//! Cluster-wide rates, the bridge's Redis effects: every [`super::rate::RATE_FLUSH`]
//! the counts waiting in [`super::rate::Rates`] go to Redis as one pipeline
//! of `INCRBY` + `PEXPIRE`, and what the other nodes counted goes on to whoever
//! decides: a user's home shard (messages) or the node's connection windows.

use super::bridge::Bridge;
use super::keys::rate_key;
use crate::shard::broker::RateKey;
use crate::shard::window::WINDOW_MS;
use crate::shard::{ShardMsg, UserRate, user_shard};
use fred::prelude::*;
use std::rc::Rc;

impl Bridge {
    /// Sends the waiting counts (one pipeline) and hands what comes back on.
    pub(super) fn flush_rates(self: &Rc<Self>, client: &Client) {
        let batch = self.rates.borrow_mut().take(super::seal::now_ms());
        if batch.is_empty() {
            return;
        }
        let (me, client) = (self.clone(), client.clone());
        tokio::task::spawn_local(async move {
            let pipe = client.pipeline();
            for ((key, window), n) in &batch {
                let k = rate_key(key, *window);
                let _: Result<(), Error> = pipe.incr_by(k.clone(), *n as i64).await;
                let _: Result<(), Error> = pipe.pexpire(k, 2 * WINDOW_MS as i64, None).await;
            }
            let replies: Vec<Value> = match pipe.all().await {
                Ok(r) => r,
                Err(e) => {
                    // Logged now and then: every flush fails alike while Redis is down.
                    let n = me.rates.borrow().failures.get();
                    me.rates.borrow().failures.set(n + 1);
                    if n.is_multiple_of(100) {
                        tracing::warn!(error = %e, failures = n + 1, "cluster-wide rate counts not sent; nodes count alone");
                    }
                    return;
                }
            };
            let now = super::seal::now_ms();
            for (((key, window), n), total) in batch.iter().zip(replies.iter().step_by(2)) {
                let Some(total) = total.as_u64() else { continue };
                let others = me.rates.borrow_mut().others(key, *window, *n, total, now);
                me.learn_rate(key, *window, others, now);
            }
        });
    }

    /// The others' count of `key` in `window`, to whoever decides on it.
    fn learn_rate(&self, key: &RateKey, window: u64, others: u64, now_ms: u64) {
        match key {
            RateKey::Messages(user) | RateKey::UserConnections(user) => {
                let kind = match key {
                    RateKey::Messages(_) => UserRate::Messages,
                    _ => UserRate::Connections,
                };
                let shard = user_shard(user, self.mesh.len());
                let _ = self.mesh.try_send(shard, ShardMsg::RateTotal { user: user.clone(), kind, window, others });
            }
            RateKey::Connections(ip) => {
                if let Ok(mut w) = self.rates.borrow().conns.lock() {
                    w.learn(ip, window, others, now_ms);
                }
            }
        }
    }
}
