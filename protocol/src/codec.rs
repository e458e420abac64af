//! Length-delimited frames: a varint length prefix, then one protobuf message.
//!
//! The decoder enforces its size limit itself: a frame whose announced length
//! is over the limit is never buffered; its bytes are skipped as they arrive
//! and the caller gets [`FrameError::TooLarge`] once, with the command id when
//! the frame's first bytes carried one. "Not enough bytes yet" is `Ok(None)`,
//! not an error.

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;

/// Longest varint length prefix we accept (a u32 fits in 5 bytes).
const MAX_PREFIX: usize = 5;

/// How many bytes of an oversize frame we look at to find its command id.
const PEEK_BYTES: usize = 24;

/// Why a frame could not be taken from the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announced more than the limit. The frame's bytes are
    /// being skipped; the stream stays usable.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The decoder's limit.
        max: usize,
        /// The command id read from the frame's first bytes, if any.
        command_id: Option<u64>,
    },
    /// The length prefix is not a valid varint. The stream cannot be re-synchronised.
    #[error("invalid frame length prefix")]
    BadPrefix,
}

/// Incremental decoder of length-delimited frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
    /// Bytes of an oversize frame still to drop.
    skipping: u64,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame, skipping: 0 }
    }

    /// The limit this decoder enforces.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes the next whole frame out of `buf`, if there is one.
    ///
    /// Returns `Ok(None)` when more bytes are needed. Never allocates: the
    /// returned frame is split off `buf`, and `buf` is never grown here, so
    /// memory follows the bytes that actually arrived, not what a length
    /// prefix announces. While a frame is incomplete `buf` holds at most its
    /// prefix and `max_frame - 1` bytes of it (or, for an oversize frame, its
    /// first few bytes until the command id can be read).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if self.skipping > 0 {
            let n = self.skipping.min(buf.len() as u64);
            buf.advance(n as usize);
            self.skipping -= n;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        let Some((len, prefix)) = read_varint(buf)? else {
            return Ok(None);
        };
        if len > self.max_frame as u64 {
            // Wait for the frame's first bytes (at most PEEK_BYTES), so that
            // the command id does not depend on where the stream was split;
            // never look past the frame's own end.
            let peek = len.min(PEEK_BYTES as u64) as usize;
            if buf.len() < prefix + peek {
                return Ok(None);
            }
            buf.advance(prefix);
            let command_id = peek_command_id(&buf[..peek]);
            let n = len.min(buf.len() as u64);
            buf.advance(n as usize);
            self.skipping = len - n;
            return Err(FrameError::TooLarge { len, max: self.max_frame, command_id });
        }
        let len = len as usize;
        if buf.len() < prefix + len {
            return Ok(None);
        }
        buf.advance(prefix);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Reads a varint length prefix without consuming it: `(value, prefix_len)`.
fn read_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().take(MAX_PREFIX).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= MAX_PREFIX { Err(FrameError::BadPrefix) } else { Ok(None) }
}

/// Appends `msg` to `dst` as one frame.
pub fn encode_frame<M: Message>(msg: &M, dst: &mut BytesMut) {
    let len = msg.encoded_len();
    dst.reserve(len + MAX_PREFIX);
    // Cannot fail: we reserved enough capacity above.
    msg.encode_length_delimited(dst).expect("reserved capacity");
}

/// Encodes `msg` as one frame in a fresh buffer.
pub fn encode_frame_to_vec<M: Message>(msg: &M) -> Vec<u8> {
    msg.encode_length_delimited_to_vec()
}

/// Reads the command id from the first bytes of an encoded `ClientFrame`
/// (`command` = field 2, its `id` = field 1), so that an error about a frame
/// that cannot be decoded can still name the request. Works on a prefix.
pub fn peek_command_id(frame: &[u8]) -> Option<u64> {
    let mut b = frame;
    // ClientFrame.command: tag (2 << 3 | 2) = 0x12, then a length varint.
    if b.first() != Some(&0x12) {
        return None;
    }
    b = &b[1..];
    let (_, n) = read_varint(b).ok().flatten()?;
    b = &b[n..];
    // Command.id: tag (1 << 3 | 0) = 0x08, then the id varint.
    if b.first() != Some(&0x08) {
        return None;
    }
    b = &b[1..];
    let mut value: u64 = 0;
    for (i, &byte) in b.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
