//! Criterion benches of the hot paths live in `benches/`; this library holds
//! the fixtures they share.

use bytes::Bytes;
use chat_protocol::v1::{self, message_body};
use prost::Message;

/// Sender of every benched message.
pub const SENDER: &str = "alice.smith@firm-1";

/// The `client_msg_id` of the `n`th benched message (a UUIDv7-shaped string, as the SDK makes).
pub fn client_msg_id(n: u64) -> String {
    format!("0190a5b2-7c1e-7000-8000-{n:012x}")
}

/// A user message as the conversation's owner stores it: a `chat.v1.Message`
/// with `text_len` bytes of text, encoded (about `text_len + 70` bytes).
pub fn encoded_message(conversation_id: u64, seq: u64, text_len: usize) -> Bytes {
    v1::Message {
        conversation_id,
        seq,
        sender_id: SENDER.into(),
        client_msg_id: client_msg_id(seq),
        body: Some(v1::MessageBody { content: Some(message_body::Content::Text("x".repeat(text_len))) }),
        server_time_ms: 1_750_000_000_000,
        reply_to: 0,
        kind: v1::MessageKind::User as i32,
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}
