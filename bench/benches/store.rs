//! The embedded store (fjall) with fsync on, in a temporary directory:
//! - `store_append`: one `append` of a batch of 1, 16, 256 or 1,024 messages
//!   (~200 bytes each) = one fsync'd commit; throughput in messages. Every
//!   message has a client id of its own, so each costs the writer's
//!   idempotency lookup (a miss) as a user's message does;
//! - `store_group_commit`: 64 concurrent appends of one message each (64
//!   conversation owners committing at once), which the writer batches into
//!   few commits;
//! - `store_history`: a backward page of 50 or 200 messages from the head of
//!   a conversation of 10,000.
#![allow(missing_docs)]

use bench::{SENDER, client_msg_id, encoded_message};
use chat_server::store::embedded::{EmbeddedConfig, EmbeddedStore};
use chat_server::store::{Direction, MessageStore, NewMessage, Range};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Text bytes per message: encoded, a message is ~200 bytes.
const TEXT_LEN: usize = 130;

/// A durable store in a directory of its own (the store is closed before the directory goes).
struct Fixture {
    store: Arc<EmbeddedStore>,
    _dir: TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), EmbeddedConfig { fsync: true, ..EmbeddedConfig::default() })
        .expect("open store");
    Fixture { store: Arc::new(store), _dir: dir }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime")
}

/// Messages `first..first + n` of a conversation, as its owner hands them to the store.
fn batch(conversation_id: u64, first: u64, n: u64) -> Vec<NewMessage> {
    (first..first + n)
        .map(|seq| NewMessage {
            conversation_id,
            seq,
            sender_id: SENDER.into(),
            client_msg_id: client_msg_id(seq),
            encoded: encoded_message(conversation_id, seq, TEXT_LEN),
            target: None,
        })
        .collect()
}

fn store_append(c: &mut Criterion) {
    assert!((190..=210).contains(&encoded_message(1, 1, TEXT_LEN).len()));
    let rt = runtime();
    let fx = fixture();
    let mut g = c.benchmark_group("store_append");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for n in [1u64, 16, 256, 1024] {
        // One conversation per batch size; seqs go on from run to run.
        let conv = n;
        let mut next = 1;
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("batch_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let msgs = batch(conv, next, n);
                    next += n;
                    let t = Instant::now();
                    rt.block_on(fx.store.append(msgs)).expect("append");
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
}

fn store_group_commit(c: &mut Criterion) {
    const WRITERS: u64 = 64;
    let rt = runtime();
    let fx = fixture();
    let before = fx.store.stats();
    let mut g = c.benchmark_group("store_group_commit");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(WRITERS));
    let mut next = 1;
    g.bench_function(format!("concurrent_{WRITERS}x1"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // 64 owners of 64 conversations, each committing one message.
                let msgs: Vec<_> = (0..WRITERS).map(|conv| batch(1000 + conv, next, 1)).collect();
                next += 1;
                let t = Instant::now();
                rt.block_on(async {
                    let mut tasks = JoinSet::new();
                    for m in msgs {
                        let store = Arc::clone(&fx.store);
                        tasks.spawn(async move { store.append(m).await });
                    }
                    while let Some(r) = tasks.join_next().await {
                        r.expect("task").expect("append");
                    }
                });
                spent += t.elapsed();
            }
            spent
        })
    });
    g.finish();
    let after = fx.store.stats();
    let (requests, commits) = (after.requests - before.requests, after.commits - before.commits);
    eprintln!(
        "store_group_commit: {requests} appends in {commits} commits ({:.1} appends per commit)",
        requests as f64 / commits.max(1) as f64
    );
}

fn store_history(c: &mut Criterion) {
    const CONV: u64 = 7;
    const LEN: u64 = 10_000;
    let rt = runtime();
    let fx = fixture();
    rt.block_on(async {
        for first in (1..=LEN).step_by(1000) {
            fx.store.append(batch(CONV, first, 1000)).await.expect("fill");
        }
    });
    let mut g = c.benchmark_group("store_history");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    for limit in [50usize, 200] {
        let range = Range { after: 0, before: u64::MAX, limit, direction: Direction::Backward };
        let page = rt.block_on(fx.store.read_range(CONV, range)).expect("read");
        assert_eq!(page.len(), limit);
        assert_eq!(page.last().map(|m| m.0), Some(LEN));
        g.throughput(Throughput::Elements(limit as u64));
        g.bench_function(format!("backward_{limit}_of_10000"), |b| {
            b.iter(|| rt.block_on(fx.store.read_range(CONV, range)).expect("read"))
        });
    }
    g.finish();
}

criterion_group!(benches, store_append, store_group_commit, store_history);
criterion_main!(benches);
