//! Building server frames once, to be written to many connections.

use crate::ids::Frame;
use bytes::{BufMut, Bytes, BytesMut};
use chat_protocol::v1::{self, push, reply, server_frame};
use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint};

fn server_push(event: push::Event) -> v1::ServerFrame {
    v1::ServerFrame { kind: Some(server_frame::Kind::Push(v1::Push { event: Some(event) })) }
}

/// A framed `ServerFrame{push}`.
pub fn push(event: push::Event) -> Frame {
    Bytes::from(server_push(event).encode_length_delimited_to_vec())
}

/// An unprefixed `ServerFrame{push}`, for a datagram.
pub fn push_datagram(event: push::Event) -> Bytes {
    Bytes::from(server_push(event).encode_to_vec())
}

/// A framed `ServerFrame{reply}`.
pub fn reply(id: u64, result: reply::Result) -> Frame {
    let f = v1::ServerFrame { kind: Some(server_frame::Kind::Reply(v1::Reply { id, result: Some(result) })) };
    Bytes::from(f.encode_length_delimited_to_vec())
}

/// A framed error reply.
pub fn error_reply(id: u64, e: &chat_protocol::WireError) -> Frame {
    reply(id, reply::Result::Error(e.to_proto()))
}

/// The framed `ServerFrame{push{message{<encoded>}}}` around an already
/// encoded `Message`, without decoding or re-encoding it: what the store holds
/// is what goes on the wire.
pub fn message_push(encoded: &[u8]) -> Frame {
    let l1 = 1 + encoded_len_varint(encoded.len() as u64) + encoded.len(); // MessageEvent
    let l2 = 1 + encoded_len_varint(l1 as u64) + l1; // Push
    let l3 = 1 + encoded_len_varint(l2 as u64) + l2; // ServerFrame
    let mut b = BytesMut::with_capacity(l3 + encoded_len_varint(l3 as u64));
    encode_varint(l3 as u64, &mut b);
    b.put_u8(3 << 3 | 2); // ServerFrame.push
    encode_varint(l2 as u64, &mut b);
    b.put_u8(1 << 3 | 2); // Push.message
    encode_varint(l1 as u64, &mut b);
    b.put_u8(1 << 3 | 2); // MessageEvent.message
    encode_varint(encoded.len() as u64, &mut b);
    b.put_slice(encoded);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_push_is_the_encoded_push() {
        let m =
            v1::Message { conversation_id: 9, seq: 3, sender_id: "a".into(), server_time_ms: 5, ..Default::default() };
        let by_hand = message_push(&m.encode_to_vec());
        let by_prost = push(push::Event::Message(v1::MessageEvent { message: Some(m.clone()) }));
        assert_eq!(by_hand, by_prost);
        let big = v1::Message {
            body: Some(v1::MessageBody { content: Some(v1::message_body::Content::Text("x".repeat(300))) }),
            ..m
        };
        assert_eq!(
            message_push(&big.encode_to_vec()),
            push(push::Event::Message(v1::MessageEvent { message: Some(big) }))
        );
    }
}
