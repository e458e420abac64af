//! Message validation on the sender's session: `Limits::check_text` (size,
//! blank, forbidden characters) on short and maximal ASCII and multibyte text,
//! `Limits::check_body` around it, and `check_client_msg_id`.
#![allow(missing_docs)]

use chat_protocol::Limits;
use chat_protocol::limits::check_client_msg_id;
use chat_protocol::v1::{self, message_body};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

/// `len` bytes of text made of `unit` repeated (then padded with ASCII to the exact length).
fn text(unit: &str, len: usize) -> String {
    let mut s = unit.repeat(len / unit.len());
    s.push_str(&"x".repeat(len - s.len()));
    assert_eq!(s.len(), len);
    s
}

fn validation(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("validation");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    // ASCII, and multibyte text mixing 2-, 3- and 4-byte characters (Cyrillic, CJK, emoji).
    let cases = [
        ("ascii_64B", text("The quick brown fox jumps over the lazy dog. ", 64)),
        ("ascii_10KiB", text("The quick brown fox jumps over the lazy dog. ", 10 * 1024)),
        ("multibyte_64B", text("Привет 你好 👋 ", 64)),
        ("multibyte_10KiB", text("Привет 你好 👋 ", 10 * 1024)),
    ];
    for (name, t) in &cases {
        assert!(limits.check_text(t).is_ok(), "{name} must be valid");
        g.throughput(Throughput::Bytes(t.len() as u64));
        g.bench_function(format!("check_text_{name}"), |b| b.iter(|| limits.check_text(black_box(t))));
    }
    let body = v1::MessageBody { content: Some(message_body::Content::Text(cases[0].1.clone())) };
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_body_ascii_64B", |b| b.iter(|| limits.check_body(black_box(Some(&body)))));
    let id = "0190a5b2-7c1e-7000-8000-000000000001";
    assert!(check_client_msg_id(id).is_ok());
    g.bench_function("check_client_msg_id", |b| b.iter(|| check_client_msg_id(black_box(id))));
    g.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
