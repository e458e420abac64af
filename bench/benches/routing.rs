//! Routing to shards: a conversation's owner (`home_shard`, on every message)
//! and a user's presence shard (`user_shard`, on every connect and disconnect).
#![allow(missing_docs)]

use chat_server::shard::{home_shard, user_shard};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    let shards = 8;
    g.bench_function("home_shard", |b| b.iter(|| home_shard(black_box(0x1234_5678_9abc_def0), black_box(shards))));
    g.bench_function("user_shard", |b| b.iter(|| user_shard(black_box("alice.smith@firm-1"), black_box(shards))));
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
