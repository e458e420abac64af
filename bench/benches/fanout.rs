//! Fan-out on one shard: a `Fanout::Messages` of one message handed to every
//! local session subscribed to the conversation, as the shard loop does
//! (`LocalSessions::of_conv` then `SessionHandle::deliver`: an `Arc` clone and
//! a `try_send` per subscriber, no allocation), for 10, 1,000 and 10,000
//! subscribers. The inboxes are drained outside the timed part, so none ever
//! fills (a full one would take the slower lagged path; checked at the end).
#![allow(missing_docs)]

use bench::encoded_message;
use chat_server::frames::message_push;
use chat_server::shard::sessions::{LocalSessions, SessionHandle, SessionMsg};
use chat_server::shard::{Fanout, Pushed};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const CONV: u64 = 42;
/// Inbox capacity, and the most deliveries timed between two drains.
const INBOX: usize = 32;

fn subscribers(n: usize) -> (LocalSessions, Vec<mpsc::Receiver<SessionMsg>>) {
    let mut sessions = LocalSessions::default();
    let mut inboxes = Vec::with_capacity(n);
    for id in 0..n as u64 {
        let (tx, rx) = mpsc::channel(INBOX);
        let handle = Rc::new(SessionHandle::new(id, Arc::from(format!("user-{id}")), tx));
        sessions.add_user(&handle);
        sessions.subscribe(CONV, &handle);
        inboxes.push(rx);
    }
    (sessions, inboxes)
}

fn fanout(c: &mut Criterion) {
    let frame = message_push(&encoded_message(CONV, 1, 130));
    let msgs =
        Fanout::Messages(Arc::from(vec![Pushed { seq: 1, frame, origin: 0, committed: std::time::Instant::now() }]));
    let mut g = c.benchmark_group("fanout");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for n in [10usize, 1_000, 10_000] {
        let (sessions, mut inboxes) = subscribers(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("subscribers_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(INBOX as u64);
                    let t = Instant::now();
                    for _ in 0..k {
                        for s in sessions.of_conv(black_box(CONV)) {
                            s.deliver(CONV, &msgs);
                        }
                    }
                    spent += t.elapsed();
                    left -= k;
                    for rx in &mut inboxes {
                        while rx.try_recv().is_ok() {}
                    }
                }
                spent
            })
        });
        assert!(sessions.of_conv(CONV).iter().all(|s| s.lagged.borrow().is_empty()), "an inbox filled up");
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
