//! Frame encode/decode of a typical `SendMessage`.
#![allow(missing_docs)]

use bytes::BytesMut;
use chat_protocol::v1::{self, client_frame, command, message_body};
use chat_protocol::{FrameDecoder, encode_frame};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use std::time::Duration;

fn send_frame(text_len: usize) -> v1::ClientFrame {
    v1::ClientFrame {
        kind: Some(client_frame::Kind::Command(v1::Command {
            id: 42,
            body: Some(command::Body::SendMessage(v1::SendMessage {
                conversation_id: 0x1234_5678_9abc_def0,
                client_msg_id: "0190a5b2-7c1e-7000-8000-000000000001".into(),
                body: Some(v1::MessageBody { content: Some(message_body::Content::Text("x".repeat(text_len))) }),
                reply_to: 0,
                attachment_ids: Vec::new(),
            })),
        })),
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    for len in [64usize, 1024, 10 * 1024] {
        let frame = send_frame(len);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("encode_send_{len}B"), |b| {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            b.iter(|| {
                buf.clear();
                encode_frame(&frame, &mut buf);
            })
        });
        let mut bytes = BytesMut::new();
        encode_frame(&frame, &mut bytes);
        let bytes = bytes.freeze();
        g.bench_function(format!("decode_send_{len}B"), |b| {
            let mut dec = FrameDecoder::new(64 * 1024);
            b.iter(|| {
                let mut buf = BytesMut::from(&bytes[..]);
                let f = dec.decode(&mut buf).unwrap().unwrap();
                v1::ClientFrame::decode(f).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
