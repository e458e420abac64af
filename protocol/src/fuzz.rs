//! Checks shared by the fuzz targets in `protocol/fuzz/` and the tests that
//! replay their seeds on stable. Not part of the protocol API.

use crate::v1::ClientFrame;
use crate::{FrameDecoder, FrameError};
use bytes::BytesMut;
use prost::Message;

/// The frame limit the `decode` fuzz target runs with.
pub const DECODE_LIMIT: usize = 4096;

/// The `decode` target: `data[0]` is a chunk size (0 counts as 1), the rest a
/// byte stream fed to one [`FrameDecoder`] in chunks of that size. Every frame
/// must be within the limit; every frame that decodes as a `ClientFrame` must
/// re-encode to bytes that decode to the same value. Panics when a check fails.
pub fn decode_stream(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let mut dec = FrameDecoder::new(DECODE_LIMIT);
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(usize::from(first.max(1))) {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= DECODE_LIMIT, "frame over the limit");
                    if let Ok(msg) = ClientFrame::decode(frame) {
                        let bytes = msg.encode_to_vec();
                        let again = ClientFrame::decode(bytes.as_slice()).expect("re-encoded frame decodes");
                        assert_eq!(again, msg, "re-encoded frame decodes to another value");
                    }
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max, .. }) => assert!(len > max as u64),
                Err(FrameError::BadPrefix) => return,
            }
        }
        assert!(buf.len() < DECODE_LIMIT + 5, "decoder holds more than one frame");
    }
}
