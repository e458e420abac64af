//! Fixed malformed inputs, each with exactly one expected outcome.

use bytes::{Bytes, BytesMut};
use chat_protocol::v1::{ClientFrame, Command, SendMessage, client_frame, command};
use chat_protocol::{FrameDecoder, FrameError, encode_frame_to_vec};
use prost::Message;

const LIMIT: usize = 64 * 1024;

fn decode_once(bytes: &[u8]) -> (Result<Option<Bytes>, FrameError>, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    let r = FrameDecoder::new(LIMIT).decode(&mut buf);
    (r, buf)
}

/// `ClientFrame { command { id: 7, send_message { .. } } }` built by hand, so
/// that the inner bytes can be anything.
fn command_with_send_message(send_message: &[u8]) -> Vec<u8> {
    let mut cmd = vec![0x08, 0x07, 0x52, send_message.len() as u8]; // id = 7; field 10
    cmd.extend_from_slice(send_message);
    let mut frame = vec![0x12, cmd.len() as u8]; // ClientFrame.command = 2
    frame.extend_from_slice(&cmd);
    frame
}

#[test]
fn six_continuation_bytes_are_a_bad_prefix() {
    let (r, _) = decode_once(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80]);
    assert_eq!(r, Err(FrameError::BadPrefix));
}

#[test]
fn a_terminated_six_byte_prefix_is_still_bad() {
    // Longer than the 5 bytes a u32 needs, even though it ends.
    let (r, _) = decode_once(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0xaa]);
    assert_eq!(r, Err(FrameError::BadPrefix));
}

#[test]
fn four_continuation_bytes_wait_for_more() {
    let (r, buf) = decode_once(&[0x80, 0x80, 0x80, 0x80]);
    assert_eq!(r, Ok(None));
    assert_eq!(buf.len(), 4, "an unfinished prefix stays in the buffer");
}

#[test]
fn a_truncated_frame_waits_for_more() {
    let frame = ClientFrame { kind: Some(client_frame::Kind::Command(Command { id: 9, body: None })) };
    let mut bytes = encode_frame_to_vec(&frame);
    bytes.pop();
    let (r, buf) = decode_once(&bytes);
    assert_eq!(r, Ok(None));
    assert_eq!(&buf[..], &bytes[..], "nothing is consumed");
}

#[test]
fn a_zero_length_frame_is_a_default_client_frame() {
    let (r, buf) = decode_once(&[0x00]);
    let body = r.unwrap().expect("a frame");
    assert!(body.is_empty());
    assert!(buf.is_empty());
    assert_eq!(ClientFrame::decode(body).unwrap(), ClientFrame::default());
}

#[test]
fn a_body_that_is_not_protobuf_fails_to_decode() {
    // A whole frame (the codec does not look inside), whose `command` field
    // announces 5 bytes and carries 1.
    let (r, _) = decode_once(&[0x03, 0x12, 0x05, 0x08]);
    let body = r.unwrap().expect("a frame");
    let err = ClientFrame::decode(body).unwrap_err();
    assert_eq!(err.to_string(), "failed to decode Protobuf message: ClientFrame.kind: buffer underflow");
}

#[test]
fn a_wire_type_that_does_not_exist_fails_to_decode() {
    // Key 0x0f: field 1, wire type 7.
    let err = ClientFrame::decode(&[0x0f, 0x00][..]).unwrap_err();
    assert_eq!(err.to_string(), "failed to decode Protobuf message: invalid wire type value: 7");
}

#[test]
fn invalid_utf8_in_a_string_fails_to_decode() {
    // SendMessage.client_msg_id (field 2) = ff fe.
    let bytes = command_with_send_message(&[0x12, 0x02, 0xff, 0xfe]);
    let err = ClientFrame::decode(bytes.as_slice()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to decode Protobuf message: SendMessage.client_msg_id: Command.body: \
         ClientFrame.kind: invalid string value: data is not UTF-8 encoded"
    );
}

#[test]
fn invalid_utf8_in_message_text_fails_to_decode() {
    // SendMessage.body (3) = MessageBody { text (1) = "a" + lone continuation byte }.
    let bytes = command_with_send_message(&[0x1a, 0x04, 0x0a, 0x02, b'a', 0x80]);
    let err = ClientFrame::decode(bytes.as_slice()).unwrap_err();
    assert!(err.to_string().ends_with("invalid string value: data is not UTF-8 encoded"), "{err}");
    assert!(err.to_string().contains("MessageBody.content"), "{err}");
}

#[test]
fn unknown_fields_are_ignored() {
    let known = command_with_send_message(&[0x08, 0x2a]); // conversation_id = 42
    // The same with an unknown varint field 1000 and an unknown
    // length-delimited field 1001 at every level (numbers no schema uses:
    // 40-99 are taken by later features one by one).
    let unknown = [0xc0, 0x3e, 0x01, 0xca, 0x3e, 0x02, 0xde, 0xad];
    let mut send = vec![0x08, 0x2a];
    send.extend_from_slice(&unknown);
    let mut cmd = vec![0x08, 0x07, 0x52, send.len() as u8];
    cmd.extend_from_slice(&send);
    cmd.extend_from_slice(&unknown);
    let mut frame = unknown.to_vec();
    frame.extend_from_slice(&[0x12, cmd.len() as u8]);
    frame.extend_from_slice(&cmd);
    frame.extend_from_slice(&unknown);

    let decoded = ClientFrame::decode(frame.as_slice()).unwrap();
    let expected = ClientFrame {
        kind: Some(client_frame::Kind::Command(Command {
            id: 7,
            body: Some(command::Body::SendMessage(SendMessage { conversation_id: 42, ..SendMessage::default() })),
        })),
    };
    assert_eq!(decoded, expected);
    assert_eq!(decoded, ClientFrame::decode(known.as_slice()).unwrap());
    // Unknown fields are dropped, not carried along.
    assert_eq!(decoded.encode_to_vec(), known);
}

#[test]
fn an_unknown_command_decodes_without_a_body() {
    // Command { id = 7, field 35 (a later command) = { field 1 = 1 } }.
    let cmd = [0x08, 0x07, 0x9a, 0x02, 0x02, 0x08, 0x01];
    let mut frame = vec![0x12, cmd.len() as u8];
    frame.extend_from_slice(&cmd);
    let decoded = ClientFrame::decode(frame.as_slice()).unwrap();
    assert_eq!(decoded, ClientFrame { kind: Some(client_frame::Kind::Command(Command { id: 7, body: None })) });
}

#[test]
fn an_oversize_frame_is_not_read_past_its_end() {
    // Limit 4; a 5-byte frame whose body starts like a command with an
    // unfinished id, then a 1-byte frame. The id must not be completed with
    // the next frame's bytes.
    let stream = [0x05, 0x12, 0x05, 0x08, 0x80, 0x80, 0x01, 0x00];
    let mut buf = BytesMut::from(&stream[..]);
    let mut dec = FrameDecoder::new(4);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLarge { len: 5, max: 4, command_id: None }));
    assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(&[0x00]))));
    assert_eq!(dec.decode(&mut buf), Ok(None));
}
