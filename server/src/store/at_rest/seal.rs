//! The sealed form of a stored message, sans-IO: the content fields of an
//! encoded `chat.v1.Message` (`body`, `attachments`) are taken out, sealed
//! with AES-256-GCM under the conversation's data key, and kept in a field
//! of their own ([`SEALED_FIELD`], never sent on the wire); the rest (ids,
//! seqs, sender, times, kind, reactions) stays readable, so the backends can
//! still find a message's idempotency record when they purge it. Opening
//! puts the content fields back. Each ciphertext is bound to its place
//! (conversation, seq, and for a kept version the event's seq) by the AEAD's
//! associated data, so a sealed body moved to another row does not open.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce};

use super::error::AtRestError;

/// The field number that holds the sealed content in a stored message.
/// Not in `chat.proto`: decoders skip it, and the store removes it before a
/// message leaves.
pub const SEALED_FIELD: u64 = 1000;

/// The content fields of `chat.v1.Message`: `body` (5) and `attachments` (15).
const CONTENT_FIELDS: [u64; 2] = [5, 15];

/// The sealed payload's format version.
const FORMAT: u8 = 1;

/// Where a sealed content lives, bound into its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The message at this seq (its first state, or its latest).
    Message(u64),
    /// The version of message `target` kept by the event at `event`.
    Version {
        /// The changed message's seq.
        target: u64,
        /// The changing event's seq.
        event: u64,
    },
}

/// Who writes a sealed content, which makes its nonce: a message written at
/// its own seq, a target's latest state written by an event, or the version
/// an event keeps. Each `(writer, position)` writes once, so nonces never
/// repeat under a key; 32 random bits separate a slot written again after a
/// failed append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A message at its own seq.
    Append(u64),
    /// The latest state of a target, written by the event at this seq.
    Latest(u64),
    /// A kept version, written by the event at this seq.
    Version(u64),
}

fn nonce(writer: Writer) -> [u8; NONCE_LEN] {
    let (tag, position) = match writer {
        Writer::Append(p) => (1u8, p),
        Writer::Latest(p) => (2, p),
        Writer::Version(p) => (3, p),
    };
    let mut n = [0u8; NONCE_LEN];
    n[0] = tag;
    n[1..8].copy_from_slice(&position.to_be_bytes()[1..]);
    n[8..].copy_from_slice(&rand::random::<[u8; 4]>());
    n
}

fn aad(conversation_id: u64, slot: Slot) -> [u8; 25] {
    let (tag, a, b) = match slot {
        Slot::Message(seq) => (b'm', seq, 0),
        Slot::Version { target, event } => (b'v', target, event),
    };
    let mut out = [0u8; 25];
    out[0] = tag;
    out[1..9].copy_from_slice(&conversation_id.to_be_bytes());
    out[9..17].copy_from_slice(&a.to_be_bytes());
    out[17..].copy_from_slice(&b.to_be_bytes());
    out
}

/// One top-level field of an encoded message: its number and its bytes
/// (tag included).
struct Field<'a> {
    number: u64,
    raw: &'a [u8],
    /// The payload of a length-delimited field.
    payload: &'a [u8],
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, AtRestError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or_else(|| AtRestError::corrupt("a varint runs past the end"))?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(AtRestError::corrupt("a varint is too long"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The top-level fields of an encoded message, in order.
fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, AtRestError> {
    let mut out = Vec::with_capacity(12);
    let mut at = 0;
    while at < buf.len() {
        let start = at;
        let tag = varint(buf, &mut at)?;
        let (number, payload_at) = (tag >> 3, at);
        let end = match tag & 7 {
            0 => {
                varint(buf, &mut at)?;
                at
            }
            1 => at + 8,
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).map_err(|_| AtRestError::corrupt("a length"))?;
                at.checked_add(len).ok_or_else(|| AtRestError::corrupt("a length overflows"))?
            }
            5 => at + 4,
            w => return Err(AtRestError::corrupt(format!("wire type {w} of field {number}"))),
        };
        if end > buf.len() {
            return Err(AtRestError::corrupt(format!("field {number} runs past the end")));
        }
        let payload = if tag & 7 == 2 { &buf[at..end] } else { &buf[payload_at..end] };
        out.push(Field { number, raw: &buf[start..end], payload });
        at = end;
    }
    Ok(out)
}

/// Seals the content of `encoded` for `slot` of `conversation_id`: the
/// message with its content fields replaced by one [`SEALED_FIELD`]. None: it
/// has no content (nothing to seal; store it as it is).
pub fn seal(
    key: &LessSafeKey,
    conversation_id: u64,
    slot: Slot,
    writer: Writer,
    encoded: &[u8],
) -> Result<Option<Vec<u8>>, AtRestError> {
    let all = fields(encoded)?;
    if all.iter().any(|f| f.number == SEALED_FIELD) {
        return Err(AtRestError::corrupt("a message to seal is sealed already"));
    }
    let (content, rest): (Vec<_>, Vec<_>) = all.iter().partition(|f| CONTENT_FIELDS.contains(&f.number));
    if content.is_empty() {
        return Ok(None);
    }
    let nonce = nonce(writer);
    let mut sealed = Vec::with_capacity(encoded.len() + 1 + NONCE_LEN + 16);
    sealed.push(FORMAT);
    sealed.extend_from_slice(&nonce);
    let plain_at = sealed.len();
    for f in &content {
        sealed.extend_from_slice(f.raw);
    }
    let mut tail = sealed.split_off(plain_at);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(conversation_id, slot)), &mut tail)
        .map_err(|_| AtRestError::corrupt("sealing failed"))?;
    sealed.extend_from_slice(&tail);
    let mut out = Vec::with_capacity(encoded.len() + sealed.len());
    for f in &rest {
        out.extend_from_slice(f.raw);
    }
    put_varint(&mut out, (SEALED_FIELD << 3) | 2);
    put_varint(&mut out, sealed.len() as u64);
    out.extend_from_slice(&sealed);
    Ok(Some(out))
}

/// Whether a stored message holds sealed content (and so needs its
/// conversation's data key to open).
pub fn is_sealed(stored: &[u8]) -> Result<bool, AtRestError> {
    Ok(fields(stored)?.iter().any(|f| f.number == SEALED_FIELD))
}

/// Opens a stored message: the content fields back in place of the
/// [`SEALED_FIELD`]. A message with none is returned as it is.
pub fn open(key: &LessSafeKey, conversation_id: u64, slot: Slot, stored: &[u8]) -> Result<Vec<u8>, AtRestError> {
    let all = fields(stored)?;
    let Some(sealed) = all.iter().find(|f| f.number == SEALED_FIELD) else { return Ok(stored.to_vec()) };
    let p = sealed.payload;
    if p.len() < 1 + NONCE_LEN + 16 || p[0] != FORMAT {
        return Err(AtRestError::corrupt("a sealed content has an unknown format"));
    }
    let nonce = Nonce::try_assume_unique_for_key(&p[1..1 + NONCE_LEN]).expect("nonce length checked");
    let mut buf = p[1 + NONCE_LEN..].to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad(conversation_id, slot)), &mut buf)
        .map_err(|_| AtRestError::Unopenable { conversation_id })?;
    let mut out = Vec::with_capacity(stored.len());
    for f in all.iter().filter(|f| f.number != SEALED_FIELD) {
        out.extend_from_slice(f.raw);
    }
    out.extend_from_slice(plain);
    Ok(out)
}

/// Drops the sealed content of a stored message whose key is gone
/// (crypto-shredded): what is left is its metadata.
pub fn strip(stored: &[u8]) -> Result<Vec<u8>, AtRestError> {
    let mut out = Vec::with_capacity(stored.len());
    for f in fields(stored)?.iter().filter(|f| f.number != SEALED_FIELD) {
        out.extend_from_slice(f.raw);
    }
    Ok(out)
}

/// A stored message without its content, sealed or not (the content
/// fields and the sealed field gone): what is left is its metadata.
pub fn without_content(stored: &[u8]) -> Result<Vec<u8>, AtRestError> {
    let mut out = Vec::with_capacity(stored.len());
    for f in fields(stored)?.iter().filter(|f| f.number != SEALED_FIELD && !CONTENT_FIELDS.contains(&f.number)) {
        out.extend_from_slice(f.raw);
    }
    Ok(out)
}

/// A random AES-256-GCM key and its bytes.
pub fn new_key() -> ([u8; 32], LessSafeKey) {
    let bytes = rand::random::<[u8; 32]>();
    (bytes, key_of(&bytes))
}

/// The AES-256-GCM key of 32 bytes.
pub fn key_of(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(ring::aead::UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::v1::{Attachment, Message, MessageBody, Reaction};
    use prost::Message as _;

    fn message() -> Message {
        Message {
            conversation_id: 7,
            seq: 3,
            sender_id: "ann".into(),
            client_msg_id: "c-1".into(),
            body: Some(MessageBody {
                content: Some(chat_protocol::v1::message_body::Content::Text("the settlement is 2.4 million".into())),
            }),
            server_time_ms: 1_700_000_000_000,
            attachments: vec![Attachment { name: "offer-letter.pdf".into(), ..Default::default() }],
            reactions: vec![Reaction { emoji: "👍".into(), user_ids: vec!["ben".into()] }],
            ..Default::default()
        }
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn sealed_content_is_unreadable_and_opens_to_the_same_message() {
        let (_, key) = new_key();
        let m = message();
        let stored = seal(&key, 7, Slot::Message(3), Writer::Append(3), &m.encode_to_vec()).unwrap().unwrap();
        assert!(!contains(&stored, "settlement") && !contains(&stored, "offer-letter"), "content is sealed");
        assert!(is_sealed(&stored).unwrap());
        let meta = Message::decode(&*stored).unwrap();
        assert_eq!((meta.sender_id.as_str(), meta.client_msg_id.as_str(), meta.seq), ("ann", "c-1", 3));
        assert!(meta.body.is_none() && meta.attachments.is_empty(), "the rest decodes without the content");
        let opened = open(&key, 7, Slot::Message(3), &stored).unwrap();
        assert_eq!(Message::decode(&*opened).unwrap(), m);
    }

    #[test]
    fn a_message_without_content_is_left_as_it_is() {
        let (_, key) = new_key();
        let m = Message { conversation_id: 7, seq: 4, sender_id: "ann".into(), ..Default::default() };
        assert_eq!(seal(&key, 7, Slot::Message(4), Writer::Append(4), &m.encode_to_vec()).unwrap(), None);
        assert_eq!(open(&key, 7, Slot::Message(4), &m.encode_to_vec()).unwrap(), m.encode_to_vec());
    }

    #[test]
    fn a_sealed_content_opens_only_in_its_place_and_under_its_key() {
        let (_, key) = new_key();
        let (_, other) = new_key();
        let stored = seal(&key, 7, Slot::Message(3), Writer::Append(3), &message().encode_to_vec()).unwrap().unwrap();
        for (k, conv, slot) in [
            (&other, 7, Slot::Message(3)),
            (&key, 8, Slot::Message(3)),
            (&key, 7, Slot::Message(4)),
            (&key, 7, Slot::Version { target: 3, event: 9 }),
        ] {
            assert!(matches!(open(k, conv, slot, &stored), Err(AtRestError::Unopenable { .. })), "{conv} {slot:?}");
        }
        let mut flipped = stored.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(open(&key, 7, Slot::Message(3), &flipped), Err(AtRestError::Unopenable { .. })));
    }

    #[test]
    fn nonces_differ_by_writer_and_position() {
        let a = nonce(Writer::Append(5));
        assert_eq!(&a[..8], &[1, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&nonce(Writer::Latest(5))[..8], &[2, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&nonce(Writer::Version(6))[..8], &[3, 0, 0, 0, 0, 0, 0, 6]);
        assert_ne!(a, nonce(Writer::Append(5)), "a slot written again gets other random bits");
    }

    #[test]
    fn stripping_keeps_the_metadata_and_garbage_is_refused() {
        let (_, key) = new_key();
        let stored = seal(&key, 7, Slot::Message(3), Writer::Append(3), &message().encode_to_vec()).unwrap().unwrap();
        let left = Message::decode(&*strip(&stored).unwrap()).unwrap();
        assert_eq!((left.sender_id.as_str(), left.body), ("ann", None));
        for bytes in [stored.clone(), message().encode_to_vec()] {
            let bare = Message::decode(&*without_content(&bytes).unwrap()).unwrap();
            assert_eq!((bare.sender_id.as_str(), bare.body, bare.attachments.len()), ("ann", None, 0));
            assert_eq!(bare.reactions, message().reactions, "metadata stays, sealed or not");
        }
        assert!(matches!(is_sealed(&[0x2a, 0x05, 1]), Err(AtRestError::Corrupt(_))), "a length past the end");
        assert!(matches!(is_sealed(&[0x0b]), Err(AtRestError::Corrupt(_))), "a group wire type");
        let sealed_twice = seal(&key, 7, Slot::Message(3), Writer::Append(3), &stored);
        assert!(matches!(sealed_twice, Err(AtRestError::Corrupt(_))));
    }
}
