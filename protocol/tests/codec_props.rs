//! Properties of the frame codec: round trips, arbitrary split points,
//! arbitrary input, oversize frames and the command-id peek.

use bytes::{Bytes, BytesMut};
use chat_protocol::v1::{
    self, ClientFrame, Command, E2eCiphertext, Hello, MessageBody, MessageEvent, Push, SendMessage, ServerFrame,
    client_frame, command, message_body, push, server_frame,
};
use chat_protocol::{FrameDecoder, FrameError, encode_frame, encode_frame_to_vec, peek_command_id};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use prost::Message;

// ------------------------------------------------------------------ strategies

/// Any Unicode string (not only ASCII), up to `max` chars.
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

fn message_body() -> impl Strategy<Value = MessageBody> {
    let content = prop_oneof![
        text(200).prop_map(message_body::Content::Text),
        (any::<u64>(), vec(any::<u8>(), 0..200), any::<bool>()).prop_map(|(epoch, b, commit)| {
            message_body::Content::Ciphertext(E2eCiphertext {
                epoch,
                mls: Bytes::from(b),
                commit,
                ..Default::default()
            })
        }),
    ];
    option::of(content).prop_map(|content| MessageBody { content })
}

fn send_message(max_chars: usize) -> impl Strategy<Value = SendMessage> {
    (
        any::<u64>(),
        text(max_chars),
        option::of(text(max_chars).prop_map(|t| MessageBody { content: Some(message_body::Content::Text(t)) })),
        any::<u64>(),
    )
        .prop_map(|(conversation_id, client_msg_id, body, reply_to)| SendMessage {
            conversation_id,
            client_msg_id,
            body,
            reply_to,
            attachment_ids: Vec::new(),
        })
}

fn command_frame(id: u64, body: Option<command::Body>) -> ClientFrame {
    ClientFrame { kind: Some(client_frame::Kind::Command(Command { id, body })) }
}

/// `ClientFrame { command { id, send_message } }` with arbitrary fields.
fn client_frame() -> impl Strategy<Value = ClientFrame> {
    (any::<u64>(), send_message(64), message_body()).prop_map(|(id, mut m, body)| {
        // Half the time use the richer body strategy (ciphertext, empty content).
        if id % 2 == 0 {
            m.body = Some(body);
        }
        command_frame(id, Some(command::Body::SendMessage(m)))
    })
}

/// A small `ClientFrame` whose encoding stays under 200 bytes.
fn small_client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u64>(), send_message(8)).prop_map(|(id, m)| command_frame(id, Some(command::Body::SendMessage(m)))),
        any::<u64>().prop_map(|id| command_frame(id, Some(command::Body::Ping(v1::Ping {})))),
        text(8).prop_map(|token| ClientFrame {
            kind: Some(client_frame::Kind::Hello(Hello { token, ..Hello::default() }))
        }),
        Just(ClientFrame::default()),
    ]
}

/// `ServerFrame { push { message } }` with arbitrary fields.
fn server_frame() -> impl Strategy<Value = ServerFrame> {
    (
        (any::<u64>(), any::<u64>(), text(32), text(64)),
        (option::of(message_body()), any::<u64>(), any::<u64>(), any::<i32>()),
    )
        .prop_map(|((conversation_id, seq, sender_id, client_msg_id), (body, server_time_ms, reply_to, kind))| {
            let message = v1::Message {
                conversation_id,
                seq,
                sender_id,
                client_msg_id,
                body,
                server_time_ms,
                reply_to,
                kind,
                ..Default::default()
            };
            ServerFrame {
                kind: Some(server_frame::Kind::Push(Push {
                    event: Some(push::Event::Message(MessageEvent { message: Some(message) })),
                })),
            }
        })
}

/// Splits `data` at `cuts` (arbitrary positions, clamped and sorted) into pieces.
fn split_at_points(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.push(0);
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| data[w[0]..w[1]].to_vec()).collect()
}

/// Feeds `pieces` one at a time to one decoder, decoding after each piece
/// until it needs more bytes. Returns every outcome in order.
fn feed(limit: usize, pieces: &[Vec<u8>]) -> (Vec<Result<Bytes, FrameError>>, BytesMut) {
    let mut dec = FrameDecoder::new(limit);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
    }
    (out, buf)
}

/// Appends `chunk`, growing the buffer to exactly what it must hold when it is
/// full (unlike `extend_from_slice`, which may double it), so that any
/// capacity past that bound comes from the decoder.
fn push_exact(buf: &mut BytesMut, chunk: &[u8]) {
    if buf.capacity() - buf.len() < chunk.len() {
        let mut grown = BytesMut::with_capacity(buf.len() + chunk.len());
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(chunk);
}

fn encoded_len_of_varint(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

// ------------------------------------------------------------------ (a) round trips

/// Encodes, decodes and re-encodes one frame: the same value and the same bytes.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(frame: &M) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    encode_frame(frame, &mut buf);
    let bytes = buf.to_vec();
    prop_assert_eq!(&bytes, &encode_frame_to_vec(frame));

    let mut dec = FrameDecoder::new(1 << 20);
    let body = dec.decode(&mut buf).unwrap().expect("a whole frame");
    prop_assert!(buf.is_empty(), "decoder left {} bytes", buf.len());
    let back = M::decode(body).unwrap();
    prop_assert_eq!(&back, frame);
    prop_assert_eq!(encode_frame_to_vec(&back), bytes);
    Ok(())
}

proptest! {
    #[test]
    fn client_frame_round_trips(frame in client_frame()) {
        round_trip(&frame)?;
    }

    #[test]
    fn server_frame_round_trips(frame in server_frame()) {
        round_trip(&frame)?;
    }
}

// ------------------------------------------------------------------ (b) split points

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn split_stream_yields_the_same_frames(
        frames in vec(client_frame(), 1..24),
        cuts in vec(any::<usize>(), 0..64),
    ) {
        let mut stream = Vec::new();
        let mut expected_bodies = Vec::new();
        for f in &frames {
            stream.extend_from_slice(&encode_frame_to_vec(f));
            expected_bodies.push(f.encode_to_vec());
        }
        let (out, rest) = feed(1 << 20, &split_at_points(&stream, &cuts));
        prop_assert!(rest.is_empty(), "{} bytes left over", rest.len());
        let bodies: Vec<Vec<u8>> = out.into_iter().map(|r| r.unwrap().to_vec()).collect();
        prop_assert_eq!(&bodies, &expected_bodies);
        let decoded: Vec<ClientFrame> =
            bodies.iter().map(|b| ClientFrame::decode(b.as_slice()).unwrap()).collect();
        prop_assert_eq!(decoded, frames);
    }
}

// ------------------------------------------------------------------ (c) arbitrary input

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Never panics; frames are within the limit; the buffer never holds more
    /// than one frame plus its prefix, and `decode` never grows it.
    #[test]
    fn arbitrary_bytes_in_arbitrary_pieces(
        limit in 24usize..300,
        data in vec(any::<u8>(), 0..3000),
        sizes in vec(1usize..64, 1..16),
    ) {
        let max_chunk = *sizes.iter().max().unwrap();
        let mut dec = FrameDecoder::new(limit);
        let mut buf = BytesMut::new();
        let mut rest = data.as_slice();
        let mut i = 0;
        'feed: while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            i += 1;
            push_exact(&mut buf, &rest[..n]);
            rest = &rest[n..];
            prop_assert!(buf.capacity() <= limit + max_chunk + 16,
                "capacity {} after a push (limit {limit}, chunk {max_chunk})", buf.capacity());
            loop {
                let before = buf.capacity();
                let r = dec.decode(&mut buf);
                prop_assert!(buf.capacity() <= before,
                    "decode grew the buffer from {before} to {} bytes", buf.capacity());
                match r {
                    Ok(Some(frame)) => prop_assert!(frame.len() <= limit),
                    Ok(None) => {
                        // Whatever is held back is one unfinished frame and its prefix.
                        prop_assert!(buf.len() < limit + 5, "holding {} bytes", buf.len());
                        break;
                    }
                    Err(FrameError::TooLarge { len, max, .. }) => {
                        prop_assert_eq!(max, limit);
                        prop_assert!(len > limit as u64);
                    }
                    Err(FrameError::BadPrefix) => {
                        // Five bytes that cannot start a valid prefix are in the buffer.
                        prop_assert!(buf.len() >= 5);
                        prop_assert!(buf[..5].iter().all(|b| b & 0x80 != 0));
                        break 'feed;
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ (d) oversize frames

#[derive(Debug, Clone)]
enum Item {
    Normal(ClientFrame),
    /// An oversize frame: a `SendMessage` command with this id, or (None) a `Hello`.
    Oversize(Option<u64>, usize),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => small_client_frame().prop_map(Item::Normal),
        1 => (option::of(any::<u64>()), 1usize..3000).prop_map(|(id, extra)| Item::Oversize(id, extra)),
    ]
}

fn oversize_frame(id: Option<u64>, len: usize) -> ClientFrame {
    let text = "x".repeat(len);
    match id {
        Some(id) => command_frame(
            id,
            Some(command::Body::SendMessage(SendMessage {
                conversation_id: 1,
                client_msg_id: "c".into(),
                body: Some(MessageBody { content: Some(message_body::Content::Text(text)) }),
                reply_to: 0,
                attachment_ids: Vec::new(),
            })),
        ),
        None => ClientFrame { kind: Some(client_frame::Kind::Hello(Hello { token: text, ..Hello::default() })) },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn oversize_frames_are_reported_once_and_skipped(
        limit in 200usize..400,
        items in vec(item(), 1..10),
        oversize_at in any::<prop::sample::Index>(),
        oversize_extra in 1usize..5000,
        cuts in vec(any::<usize>(), 0..64),
    ) {
        let mut items = items;
        // At least one oversize frame, somewhere.
        let at = oversize_at.index(items.len() + 1);
        items.insert(at, Item::Oversize(Some(u64::MAX - at as u64), oversize_extra));

        let mut stream = Vec::new();
        let mut expected: Vec<Result<Vec<u8>, FrameError>> = Vec::new();
        for it in &items {
            match it {
                Item::Normal(f) => {
                    let body = f.encode_to_vec();
                    prop_assert!(body.len() <= limit, "a normal frame must fit the limit");
                    stream.extend_from_slice(&encode_frame_to_vec(f));
                    expected.push(Ok(body));
                }
                Item::Oversize(id, extra) => {
                    let f = oversize_frame(*id, limit + extra);
                    let body = f.encode_to_vec();
                    prop_assert!(body.len() > limit);
                    stream.extend_from_slice(&encode_frame_to_vec(&f));
                    expected.push(Err(FrameError::TooLarge {
                        len: body.len() as u64,
                        max: limit,
                        // Ids of 0 are not on the wire (proto3 default).
                        command_id: id.filter(|&i| i != 0),
                    }));
                }
            }
        }
        let (out, rest) = feed(limit, &split_at_points(&stream, &cuts));
        prop_assert!(rest.is_empty(), "{} bytes left over", rest.len());
        let out: Vec<Result<Vec<u8>, FrameError>> =
            out.into_iter().map(|r| r.map(|b| b.to_vec())).collect();
        prop_assert_eq!(out, expected);
    }
}

// ------------------------------------------------------------------ (e) command id peek

fn any_command_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        client_frame(),
        (any::<u64>(), send_message(4000)).prop_map(|(id, m)| command_frame(id, Some(command::Body::SendMessage(m)))),
        any::<u64>().prop_map(|id| command_frame(id, Some(command::Body::Ping(v1::Ping {})))),
        any::<u64>().prop_map(|id| command_frame(id, None)),
        (0u64..300).prop_map(|id| command_frame(id, Some(command::Body::Ping(v1::Ping {})))),
    ]
}

proptest! {
    #[test]
    fn peek_finds_the_command_id(frame in any_command_frame()) {
        let Some(client_frame::Kind::Command(cmd)) = &frame.kind else { unreachable!() };
        let id = cmd.id;
        let body = frame.encode_to_vec();
        // tag, command length, tag, id.
        let need = 1 + encoded_len_of_varint(cmd.encoded_len() as u64) + 1 + encoded_len_of_varint(id);
        for k in 0..=body.len().min(40) {
            let got = peek_command_id(&body[..k]);
            if id == 0 {
                // proto3 leaves a zero id off the wire: nothing to find.
                prop_assert_eq!(got, None);
            } else if k >= need {
                prop_assert_eq!(got, Some(id), "prefix of {} bytes", k);
            } else {
                // Too short: no id, and never a wrong one.
                prop_assert_eq!(got, None, "prefix of {} bytes", k);
            }
        }
        // The brief's rule of thumb: 12 bytes suffice for ids below 2^63 in
        // commands shorter than 128 bytes.
        if id != 0 && id < 1 << 63 && cmd.encoded_len() < 128 && body.len() >= 12 {
            prop_assert_eq!(peek_command_id(&body[..12]), Some(id));
        }
        // And the bytes after the length prefix of a whole frame are what it reads.
        let framed = encode_frame_to_vec(&frame);
        let skip = framed.len() - body.len();
        prop_assert_eq!(peek_command_id(&framed[skip..]), (id != 0).then_some(id));
    }

    #[test]
    fn peek_finds_nothing_in_other_frames(token in text(40)) {
        let hello = ClientFrame { kind: Some(client_frame::Kind::Hello(Hello { token, ..Hello::default() })) };
        prop_assert_eq!(peek_command_id(&hello.encode_to_vec()), None);
    }
}
