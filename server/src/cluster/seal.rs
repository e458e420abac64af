//! Sealed envelopes: every message a node publishes on Redis carries an
//! HMAC-SHA256 tag made with the cluster's shared secret
//! (`cluster.secret`) and the time it was sent, so a client of Redis that
//! is not a node cannot forge a caller, a message or a fan-out, and cannot
//! replay an old one past [`MAX_AGE`]. The layout is
//! `b"S1" | sent_at_ms (8, big-endian) | tag (32) | envelope`, the tag over
//! everything before it and the envelope. It does not encode envelopes
//! (`wire` does) nor publish them (the bridge does).

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

/// The layout's version, first on the wire.
const MAGIC: &[u8; 2] = b"S1";
/// Bytes before the envelope.
const HEADER: usize = 2 + 8 + 32;
/// The oldest (or furthest in the future: clocks differ) a sealed envelope
/// may be when it is opened. Pub/sub delivers in milliseconds; this leaves
/// room for nodes' clocks being apart.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Why a message was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsealed {
    /// Not a sealed envelope of this version (unsigned, or garbage).
    #[error("not a sealed envelope")]
    NotSealed,
    /// The tag does not match: made with another secret, or altered.
    #[error("the tag does not match the cluster secret")]
    BadTag,
    /// Sent longer than [`MAX_AGE`] ago (or ahead): a replay, or a clock far off.
    #[error("sent {0} ms away from now")]
    Stale(i64),
}

/// The cluster secret's key.
pub struct Seal {
    key: ring::hmac::Key,
}

impl Seal {
    /// The seal of `secret` (the same on every node).
    pub fn new(secret: &[u8]) -> Self {
        Self { key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret) }
    }

    /// `envelope`, sealed at `now_ms`.
    pub fn seal(&self, envelope: &[u8], now_ms: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER + envelope.len());
        out.put_slice(MAGIC);
        out.put_u64(now_ms);
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(&out[..10]);
        ctx.update(envelope);
        out.put_slice(ctx.sign().as_ref());
        out.put_slice(envelope);
        out.freeze()
    }

    /// The envelope inside `sealed`, if its tag is this secret's and it is recent at `now_ms`.
    pub fn open<'a>(&self, sealed: &'a [u8], now_ms: u64) -> Result<&'a [u8], Unsealed> {
        if sealed.len() < HEADER || &sealed[..2] != MAGIC {
            return Err(Unsealed::NotSealed);
        }
        let (head, rest) = sealed.split_at(10);
        let (tag, envelope) = rest.split_at(32);
        let mut signed = Vec::with_capacity(10 + envelope.len());
        signed.extend_from_slice(head);
        signed.extend_from_slice(envelope);
        ring::hmac::verify(&self.key, &signed, tag).map_err(|_| Unsealed::BadTag)?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&head[2..10]);
        let age = now_ms as i64 - u64::from_be_bytes(at) as i64;
        if age.unsigned_abs() > MAX_AGE.as_millis() as u64 {
            return Err(Unsealed::Stale(age));
        }
        Ok(envelope)
    }
}

/// The wall clock in unix ms.
pub fn now_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_opens_and_only_while_fresh() {
        let seal = Seal::new(b"the cluster secret, 32 bytes or more");
        let sealed = seal.seal(b"envelope", 1_000_000);
        assert_eq!(seal.open(&sealed, 1_000_500), Ok(&b"envelope"[..]));
        assert_eq!(seal.open(&sealed, 999_000), Ok(&b"envelope"[..]), "a clock a little behind");
        let other = Seal::new(b"another secret, also 32 bytes long");
        assert_eq!(other.open(&sealed, 1_000_000), Err(Unsealed::BadTag));
        let mut altered = sealed.to_vec();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(seal.open(&altered, 1_000_000), Err(Unsealed::BadTag));
        let mut redated = sealed.to_vec();
        redated[9] ^= 1;
        assert_eq!(seal.open(&redated, 1_000_000), Err(Unsealed::BadTag), "the time is signed too");
        assert_eq!(seal.open(&sealed, 1_000_000 + 31_000), Err(Unsealed::Stale(31_000)), "a replay");
        assert_eq!(seal.open(b"envelope", 1_000_000), Err(Unsealed::NotSealed));
        assert_eq!(seal.open(b"", 1_000_000), Err(Unsealed::NotSealed));
    }
}
