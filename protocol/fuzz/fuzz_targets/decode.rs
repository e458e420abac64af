//! The frame decoder on arbitrary input split at arbitrary points; see
//! `chat_protocol::fuzz::decode_stream` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_protocol::fuzz::decode_stream(data));
