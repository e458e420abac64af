//! The disruptions of `crash`, `storm` and `cluster --disrupt`, and the look
//! at what went missing.
//!
//! [`disrupt`] performs one: `crash` sends SIGKILL to the chatd this process
//! started, waits, and starts it again on the same data directory and ports
//! (the clients' SDKs find out from the new process's stateless resets, or
//! their idle timeout, and resume); `storm` tells every receiver to drop its
//! connection at once and resume; a node loss kills one in-process cluster
//! node for good (its clients move to the others' addresses); a Redis restart
//! kills the cluster's Redis and starts it again empty. [`probe`] asks the server, after the run,
//! whether each owed delivery that never came is stored at all: a message in
//! the store that a member lacks was not delivered (in time); one missing
//! from the store was acknowledged and then lost.

use crate::checker::Missing;
use crate::driver::{Ctl, Run};
use crate::population::Connector;
use crate::recovery::Times;
use crate::scenario::Disruption;
use crate::server::{LocalCluster, Spawned};
use anyhow::Context;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most distinct messages [`probe`] asks about.
const PROBE_LIMIT: usize = 500;

/// Performs `d` now; its times, and for `crash` and a Redis restart how long
/// the process was down (s).
pub async fn disrupt(
    d: Disruption,
    spawned: Option<&Spawned>,
    cluster: Option<&LocalCluster>,
    run: &Run,
    ctls: &[mpsc::Sender<Ctl>],
) -> anyhow::Result<(Times, Option<f64>)> {
    run.disrupted_us.store(run.now_us(), Relaxed);
    match d {
        Disruption::Kill { down } => {
            let s = spawned.context("crash needs a chatd of its own")?;
            let killed = run.now_us();
            run.down_from_us.store(killed, Relaxed);
            tokio::task::block_in_place(|| s.kill9())?;
            tracing::info!(at_us = killed, "chatd killed");
            eprintln!("crash: chatd killed with SIGKILL; restarting it in {down:?}");
            tokio::time::sleep(down).await;
            tokio::task::block_in_place(|| s.restart())?;
            let up = run.now_us();
            run.down_until_us.store(up, Relaxed);
            eprintln!("crash: chatd listening again after {:.2} s", (up - killed) as f64 / 1e6);
            Ok((Times { disrupted_us: killed, reference_us: up }, Some((up - killed) as f64 / 1e6)))
        }
        Disruption::Storm => {
            let at = run.now_us();
            for c in ctls {
                // Capacity 4 and nothing else queued: this does not wait.
                let _ = c.send(Ctl::Reconnect).await;
            }
            eprintln!("storm: all {} clients told to drop and resume", ctls.len());
            Ok((Times { disrupted_us: at, reference_us: at }, None))
        }
        Disruption::NodeLoss { node } => {
            let c = cluster.context("a node loss needs the in-process cluster (drop --server)")?;
            let at = run.now_us();
            tokio::task::block_in_place(|| c.kill_node(node))?;
            eprintln!("node loss: node {node} killed at {:.1} s; it stays down", at as f64 / 1e6);
            Ok((Times { disrupted_us: at, reference_us: at }, None))
        }
        Disruption::RedisRestart { down } => {
            let c = cluster.context("a Redis restart needs the in-process cluster (drop --server)")?;
            let killed = run.now_us();
            tokio::task::block_in_place(|| c.restart_redis(down))?;
            let up = run.now_us();
            eprintln!("redis restart: Redis down {:.2} s, back empty", (up - killed) as f64 / 1e6);
            Ok((Times { disrupted_us: killed, reference_us: up }, Some((up - killed) as f64 / 1e6)))
        }
    }
}

/// Owed deliveries that never came, sorted out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MissingReport {
    /// Owed deliveries missing at the end (the checker's `lost`).
    pub missing: u64,
    /// ...of which the member had nothing later in that conversation (still
    /// catching up, or stuck, when the drain stopped waiting).
    pub behind: u64,
    /// ...of which the member had later messages (a skipped message).
    pub holes: u64,
    /// Distinct messages asked about with GetHistory.
    pub probed: u64,
    /// ...found in the store.
    pub stored: u64,
    /// ...not in the store: acknowledged, then lost.
    pub not_stored: u64,
    /// Whether the drain ended at its deadline with deliveries still owed.
    pub drain_timed_out: bool,
}

impl MissingReport {
    /// The table's line.
    pub fn line(&self) -> String {
        format!(
            "missing deliveries: {} ({} behind: nothing later delivered, {} holes); of {} distinct messages \
             probed with GetHistory {} are stored, {} are not; drain {}\n",
            self.missing,
            self.behind,
            self.holes,
            self.probed,
            self.stored,
            self.not_stored,
            if self.drain_timed_out { "timed out" } else { "ended quiet" }
        )
    }
}

/// Sorts out `missing` and asks the server (through a fresh connection of a
/// member of each conversation) whether each message is stored.
pub async fn probe(missing: &[Missing], connector: &Connector, drain_timed_out: bool) -> MissingReport {
    let mut r = MissingReport {
        missing: missing.len() as u64,
        behind: missing.iter().filter(|m| m.behind).count() as u64,
        drain_timed_out,
        ..Default::default()
    };
    r.holes = r.missing - r.behind;
    // Distinct messages by conversation, with a member to ask as.
    let mut by_conv: BTreeMap<u64, (usize, BTreeSet<u64>)> = BTreeMap::new();
    for m in missing {
        by_conv.entry(m.conv).or_insert_with(|| (m.member, BTreeSet::new())).1.insert(m.seq);
    }
    let mut left = PROBE_LIMIT;
    for (conv, (member, seqs)) in by_conv {
        if left == 0 {
            break;
        }
        let client = match connector.config(member) {
            Ok(cfg) => match connector.connect(cfg).await {
                Ok((c, _events)) => c,
                Err(e) => {
                    tracing::warn!(conv, error = %format!("{e:#}"), "probe: cannot connect");
                    continue;
                }
            },
            Err(_) => continue,
        };
        for seq in seqs.into_iter().take(left) {
            left -= 1;
            r.probed += 1;
            let page =
                tokio::time::timeout(Duration::from_secs(10), client.history(conv, 0, seq.saturating_sub(1), 1)).await;
            match page {
                Ok(Ok(h)) if h.messages.first().is_some_and(|m| m.seq == seq) => r.stored += 1,
                Ok(Ok(_)) => r.not_stored += 1,
                other => {
                    r.probed -= 1;
                    tracing::warn!(conv, seq, result = ?other.map(|r| r.map(|_| ())), "probe: history failed");
                }
            }
        }
        client.close().await;
    }
    r
}
