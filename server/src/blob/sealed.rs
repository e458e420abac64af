//! The sealed form of a blob at rest, sans-IO: a header (a magic, then a
//! random per-blob key wrapped by the blob key-encryption key), then the
//! plaintext in chunks of [`CHUNK`] bytes, each sealed with AES-256-GCM under
//! the blob's key (the STREAM construction: the nonce is the chunk's index
//! and whether it is the last, so chunks cannot be reordered, dropped or the
//! blob cut short unseen). Sizes and byte ranges map between the plaintext
//! and the stored form, so ranged reads stay ranged. The key-encryption key
//! is a data key of the store (`crate::store::at_rest`), re-wrapped with it
//! by a master key rotation.

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

/// Plaintext bytes per sealed chunk.
pub const CHUNK: u64 = 64 * 1024;

/// The AEAD tag after each chunk.
const TAG: u64 = 16;

/// What a sealed blob starts with (a plaintext blob stored before
/// encryption was turned on does not).
const MAGIC: &[u8; 9] = b"chatdEB1\x01";

/// The header: magic, the wrapping nonce, the wrapped key and its tag.
pub const HEADER: u64 = MAGIC.len() as u64 + NONCE_LEN as u64 + 32 + TAG;

/// The associated data of a wrapped blob key.
const KEY_AAD: &[u8] = b"chatd blob key";

/// How many chunks hold `plain` bytes (an empty blob has one, empty).
fn chunks(plain: u64) -> u64 {
    plain.div_ceil(CHUNK).max(1)
}

/// The stored size of a blob of `plain` bytes.
pub fn stored_size(plain: u64) -> u64 {
    HEADER + plain + TAG * chunks(plain)
}

/// The plaintext size of a sealed blob of `stored` bytes (None: no sealed
/// blob has that size).
pub fn plain_size(stored: u64) -> Option<u64> {
    let body = stored.checked_sub(HEADER)?;
    let n = body.div_ceil(CHUNK + TAG).max(1);
    let plain = body.checked_sub(TAG * n)?;
    (chunks(plain) == n).then_some(plain)
}

/// Whether stored bytes start like a sealed blob.
pub fn is_sealed(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[8] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Seals one blob's chunks in order.
pub struct Sealer {
    key: LessSafeKey,
    next: u64,
}

impl Sealer {
    /// A new blob: its header (to store first) and its sealer.
    pub fn new(kek: &LessSafeKey) -> (Vec<u8>, Self) {
        let (bytes, key) = crate::store::at_rest::seal::new_key();
        let wrap_nonce = rand::random::<[u8; NONCE_LEN]>();
        let mut wrapped = bytes.to_vec();
        kek.seal_in_place_append_tag(Nonce::assume_unique_for_key(wrap_nonce), Aad::from(KEY_AAD), &mut wrapped)
            .expect("sealing 32 bytes cannot fail");
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&wrap_nonce);
        header.extend_from_slice(&wrapped);
        (header, Self { key, next: 0 })
    }

    /// The next chunk sealed (`CHUNK` bytes, or fewer when `last`).
    pub fn seal(&mut self, chunk: &[u8], last: bool) -> Vec<u8> {
        let mut out = chunk.to_vec();
        self.key
            .seal_in_place_append_tag(nonce(self.next, last), Aad::empty(), &mut out)
            .expect("a chunk is far below the AEAD's limit");
        self.next += 1;
        out
    }
}

/// A sealed blob's key, from its header (None: altered, or another KEK).
pub fn open_header(kek: &LessSafeKey, header: &[u8]) -> Option<LessSafeKey> {
    let rest = header.strip_prefix(MAGIC.as_slice())?;
    if rest.len() != HEADER as usize - MAGIC.len() {
        return None;
    }
    let (wrap_nonce, wrapped) = rest.split_at(NONCE_LEN);
    let mut buf = wrapped.to_vec();
    let n = Nonce::try_assume_unique_for_key(wrap_nonce).ok()?;
    let bytes: [u8; 32] = kek.open_in_place(n, Aad::from(KEY_AAD), &mut buf).ok()?.try_into().ok()?;
    Some(crate::store::at_rest::seal::key_of(&bytes))
}

/// Where plaintext bytes `start..start + n` of a blob of `plain` bytes lie
/// in its stored form: `(stored offset, stored length, first chunk index)`,
/// whole chunks.
pub fn span(plain: u64, start: u64, n: u64) -> (u64, u64, u64) {
    let (first, last) = (start / CHUNK, (start + n.max(1) - 1) / CHUNK);
    let offset = HEADER + first * (CHUNK + TAG);
    let end = (HEADER + (last + 1) * (CHUNK + TAG)).min(stored_size(plain));
    (offset, end - offset, first)
}

/// Opens the whole chunks of `stored` (from chunk `first` of a blob of
/// `plain` bytes) and returns plaintext bytes `start..start + n` (None: a
/// chunk does not open).
pub fn open_span(key: &LessSafeKey, plain: u64, start: u64, n: u64, first: u64, stored: &[u8]) -> Option<Vec<u8>> {
    let total = chunks(plain);
    let mut out = Vec::with_capacity(stored.len());
    for (i, sealed) in stored.chunks((CHUNK + TAG) as usize).enumerate() {
        let index = first + i as u64;
        let mut buf = sealed.to_vec();
        out.extend_from_slice(key.open_in_place(nonce(index, index + 1 == total), Aad::empty(), &mut buf).ok()?);
    }
    let from = (start - first * CHUNK) as usize;
    out.get(from..from + n as usize).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::at_rest::seal::new_key;

    fn seal_all(kek: &LessSafeKey, plain: &[u8]) -> Vec<u8> {
        let (mut out, mut sealer) = Sealer::new(kek);
        let parts: Vec<&[u8]> = if plain.is_empty() { vec![&[]] } else { plain.chunks(CHUNK as usize).collect() };
        for (i, c) in parts.iter().enumerate() {
            out.extend(sealer.seal(c, i + 1 == parts.len()));
        }
        out
    }

    #[test]
    fn sizes_map_both_ways() {
        for plain in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            assert_eq!(plain_size(stored_size(plain)), Some(plain), "{plain}");
        }
        assert_eq!(plain_size(HEADER), None, "a header alone is no blob");
        assert_eq!(plain_size(3), None);
    }

    #[test]
    fn every_range_reads_back_and_nothing_is_in_the_clear() {
        let (_, kek) = new_key();
        let plain: Vec<u8> = (0..(2 * CHUNK + 100)).map(|i| (i % 251) as u8).collect();
        let stored = seal_all(&kek, &plain);
        assert_eq!(stored.len() as u64, stored_size(plain.len() as u64));
        assert!(is_sealed(&stored) && !stored.windows(64).any(|w| w == &plain[1000..1064]));
        let key = open_header(&kek, &stored[..HEADER as usize]).unwrap();
        let p = plain.len() as u64;
        for (start, n) in [(0, 1), (0, p), (CHUNK - 1, 2), (CHUNK, CHUNK), (2 * CHUNK + 99, 1), (5, 3 * CHUNK)] {
            let n = n.min(p - start);
            let (off, len, first) = span(p, start, n);
            let got = open_span(&key, p, start, n, first, &stored[off as usize..(off + len) as usize]).unwrap();
            assert_eq!(got, &plain[start as usize..(start + n) as usize], "{start}+{n}");
        }
    }

    #[test]
    fn tampering_reordering_and_truncation_are_caught() {
        let (_, kek) = new_key();
        let (_, other) = new_key();
        let plain: Vec<u8> = vec![7; (2 * CHUNK) as usize];
        let stored = seal_all(&kek, &plain);
        assert!(open_header(&other, &stored[..HEADER as usize]).is_none(), "another KEK");
        let key = open_header(&kek, &stored[..HEADER as usize]).unwrap();
        let p = plain.len() as u64;
        let (off, len, first) = span(p, 0, p);
        let body = &stored[off as usize..(off + len) as usize];
        let mut flipped = body.to_vec();
        flipped[10] ^= 1;
        assert!(open_span(&key, p, 0, p, first, &flipped).is_none(), "a flipped bit");
        let c = (CHUNK + TAG) as usize;
        let swapped = [&body[c..], &body[..c]].concat();
        assert!(open_span(&key, p, 0, p, first, &swapped).is_none(), "chunks swapped");
        assert!(open_span(&key, CHUNK, 0, CHUNK, 0, &body[..c]).is_none(), "cut after a chunk that was not the last");
        let empty = seal_all(&kek, &[]);
        assert_eq!(plain_size(empty.len() as u64), Some(0));
    }
}
