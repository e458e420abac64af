//! The seed corpus of the `decode` fuzz target (`protocol/fuzz/seeds/decode/`):
//! generated here, checked to match what is committed, and replayed through
//! the target's checks on stable. Regenerate with
//! `CHAT_WRITE_FUZZ_SEEDS=1 cargo test -p chat-protocol --test fuzz_seeds`.

use bytes::Bytes;
use chat_protocol::v1::{
    ClientFrame, Command, Cursor, E2eCiphertext, GetHistory, Hello, MessageBody, Ping, SendMessage, client_frame,
    command, message_body,
};
use chat_protocol::{encode_frame_to_vec, fuzz};
use std::path::PathBuf;

fn command(id: u64, body: command::Body) -> ClientFrame {
    ClientFrame { kind: Some(client_frame::Kind::Command(Command { id, body: Some(body) })) }
}

fn send(id: u64, content: message_body::Content) -> ClientFrame {
    command(
        id,
        command::Body::SendMessage(SendMessage {
            conversation_id: 42,
            client_msg_id: format!("0190a5b2-7c1e-7000-8000-{id:012}"),
            body: Some(MessageBody { content: Some(content) }),
            reply_to: 0,
            attachment_ids: Vec::new(),
        }),
    )
}

/// A seed: its chunk size byte, then the frames.
fn seed(chunk: u8, frames: &[ClientFrame]) -> Vec<u8> {
    let mut out = vec![chunk];
    for f in frames {
        out.extend_from_slice(&encode_frame_to_vec(f));
    }
    out
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let hello = ClientFrame {
        kind: Some(client_frame::Kind::Hello(Hello {
            token: "eyJhbGciOiJIUzI1NiJ9.e30.sig".into(),
            client: "chat-client/0.1.0".into(),
            epoch: "e1".into(),
            cursors: vec![Cursor { conversation_id: 42, seq: 7 }],
            resume: true,
            protocol_version: chat_protocol::PROTOCOL_VERSION,
        })),
    };
    let text = send(1, message_body::Content::Text("hello, **world** ✓".into()));
    let cipher = send(
        2,
        message_body::Content::Ciphertext(E2eCiphertext {
            epoch: 3,
            mls: Bytes::from_static(&[0, 1, 2, 0xff]),
            ..E2eCiphertext::default()
        }),
    );
    let history = command(
        3,
        command::Body::GetHistory(GetHistory { conversation_id: 42, before_seq: 100, ..GetHistory::default() }),
    );
    let ping = command(4, command::Body::Ping(Ping {}));
    let oversize = send(5, message_body::Content::Text("x".repeat(fuzz::DECODE_LIMIT)));
    vec![
        ("hello", seed(255, std::slice::from_ref(&hello))),
        ("send-text", seed(7, std::slice::from_ref(&text))),
        ("send-ciphertext", seed(1, &[cipher])),
        ("session", seed(3, &[hello, text, history, ping.clone()])),
        ("empty-frame", seed(2, &[ClientFrame::default(), ping.clone()])),
        ("oversize-then-ping", seed(200, &[oversize, ping])),
    ]
}

#[test]
fn seeds_are_committed_and_pass_the_target() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    let write = std::env::var_os("CHAT_WRITE_FUZZ_SEEDS").is_some();
    for (name, bytes) in seeds() {
        fuzz::decode_stream(&bytes);
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (regenerate with CHAT_WRITE_FUZZ_SEEDS=1)", path.display()));
            assert_eq!(committed, bytes, "{} is stale (regenerate with CHAT_WRITE_FUZZ_SEEDS=1)", path.display());
        }
    }
}

#[test]
fn seeds_cover_frames_and_the_skip_path() {
    // Decoded outcomes per seed: frames, and oversize frames reported.
    for (name, bytes) in seeds() {
        let mut dec = chat_protocol::FrameDecoder::new(fuzz::DECODE_LIMIT);
        let mut buf = bytes::BytesMut::from(&bytes[1..]);
        let (mut frames, mut too_large) = (0, Vec::new());
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => {
                    <ClientFrame as prost::Message>::decode(f).unwrap();
                    frames += 1;
                }
                Ok(None) => break,
                Err(e) => too_large.push(e),
            }
        }
        assert!(buf.is_empty(), "{name}: trailing bytes");
        assert!(frames >= 1, "{name}: no frame");
        if name == "oversize-then-ping" {
            assert!(matches!(too_large.as_slice(), [chat_protocol::FrameError::TooLarge { command_id: Some(5), .. }]));
        } else {
            assert!(too_large.is_empty(), "{name}: {too_large:?}");
        }
    }
}
