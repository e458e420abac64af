//! Master keys: the [`KeyWrap`] trait (wrap and unwrap a 32-byte data key;
//! a KMS can implement it later), the local AES-256-GCM master key read from
//! hex text (a file or the environment), and the wrapped form of a data key,
//! which names the master key that wrapped it.

use std::path::Path;
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use super::error::AtRestError;
use super::seal::key_of;

/// Wraps and unwraps data keys. `id` is stored with each wrapped key.
pub trait KeyWrap: Send + Sync {
    /// A short, stable, non-secret name of this master key.
    fn id(&self) -> &str;
    /// Seals `key` with `aad` (the data key's owner).
    fn wrap(&self, aad: &[u8], key: &[u8; 32]) -> Result<Vec<u8>, AtRestError>;
    /// Opens what [`wrap`](Self::wrap) made with the same `aad`.
    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<[u8; 32], AtRestError>;
}

/// A master key held in memory (from a file or the environment).
pub struct LocalMasterKey {
    id: String,
    key: LessSafeKey,
}

impl LocalMasterKey {
    /// The key of 32 bytes; its id is a hash of it.
    pub fn new(bytes: &[u8; 32]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"chatd master key id\0");
        ctx.update(bytes);
        Self { id: hex::encode(&ctx.finish().as_ref()[..8]), key: key_of(bytes) }
    }

    /// From 64 hex digits (surrounding white space ignored). `source` names
    /// where they came from in the error.
    pub fn from_hex(text: &str, source: &str) -> Result<Self, AtRestError> {
        let bad = |why: &str| AtRestError::BadMasterKey { from: source.to_owned(), why: why.to_owned() };
        let bytes = hex::decode(text.trim()).map_err(|_| bad("not hex digits"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad("not 32 bytes (64 hex digits)"))?;
        Ok(Self::new(&bytes))
    }

    /// From a file of 64 hex digits.
    pub fn from_file(path: &Path) -> Result<Self, AtRestError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| AtRestError::BadMasterKey { from: source.clone(), why: e.to_string() })?;
        Self::from_hex(&text, &source)
    }

    /// A new random key and its hex text (what `chatd keys generate` writes).
    pub fn generate() -> (Self, String) {
        let bytes = rand::random::<[u8; 32]>();
        (Self::new(&bytes), hex::encode(bytes))
    }
}

/// The wrapped form: `1 | len(id) | id | nonce | sealed key and tag`.
const WRAP_FORMAT: u8 = 1;

impl KeyWrap for LocalMasterKey {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, aad: &[u8], key: &[u8; 32]) -> Result<Vec<u8>, AtRestError> {
        let nonce = rand::random::<[u8; NONCE_LEN]>();
        let mut sealed = key.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut sealed)
            .map_err(|_| AtRestError::corrupt("wrapping failed"))?;
        let mut out = vec![WRAP_FORMAT, self.id.len() as u8];
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<[u8; 32], AtRestError> {
        let (id, rest) = wrapped_parts(wrapped)?;
        if id != self.id {
            return Err(AtRestError::UnknownMasterKey { id: id.to_owned(), known: vec![self.id.clone()] });
        }
        let nonce = Nonce::try_assume_unique_for_key(&rest[..NONCE_LEN]).expect("length checked");
        let mut buf = rest[NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| AtRestError::WrongMasterKey { id: self.id.clone() })?;
        plain.try_into().map_err(|_| AtRestError::corrupt("a wrapped data key is not 32 bytes"))
    }
}

/// The master key id a wrapped key names, and what follows it.
pub fn wrapped_parts(wrapped: &[u8]) -> Result<(&str, &[u8]), AtRestError> {
    let bad = || AtRestError::corrupt("a wrapped data key has an unknown format");
    let (&format, rest) = wrapped.split_first().ok_or_else(bad)?;
    let (&len, rest) = rest.split_first().ok_or_else(bad)?;
    if format != WRAP_FORMAT || rest.len() < usize::from(len) + NONCE_LEN + 32 + 16 {
        return Err(bad());
    }
    let (id, rest) = rest.split_at(usize::from(len));
    Ok((std::str::from_utf8(id).map_err(|_| bad())?, rest))
}

/// The current master key and the earlier ones still accepted.
#[derive(Clone)]
pub struct Keyring {
    /// Wraps new data keys.
    pub current: Arc<dyn KeyWrap>,
    /// Only unwrap.
    pub previous: Vec<Arc<dyn KeyWrap>>,
}

impl Keyring {
    /// The master key named `id`, if this ring has it.
    pub fn by_id(&self, id: &str) -> Option<&Arc<dyn KeyWrap>> {
        std::iter::once(&self.current).chain(&self.previous).find(|k| k.id() == id)
    }

    /// Unwraps with whichever master key wrapped it.
    pub fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<[u8; 32], AtRestError> {
        let (id, _) = wrapped_parts(wrapped)?;
        match self.by_id(id) {
            Some(k) => k.unwrap(aad, wrapped),
            None => Err(AtRestError::UnknownMasterKey { id: id.to_owned(), known: self.ids() }),
        }
    }

    /// The ids of every key, the current first.
    pub fn ids(&self) -> Vec<String> {
        std::iter::once(&self.current).chain(&self.previous).map(|k| k.id().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_only_with_its_master_and_owner() {
        let (a, text) = LocalMasterKey::generate();
        let (b, _) = LocalMasterKey::generate();
        let dk = [9u8; 32];
        let w = a.wrap(b"conv 7", &dk).unwrap();
        assert_eq!(a.unwrap(b"conv 7", &w).unwrap(), dk);
        assert!(matches!(a.unwrap(b"conv 8", &w), Err(AtRestError::WrongMasterKey { .. })));
        assert!(matches!(b.unwrap(b"conv 7", &w), Err(AtRestError::UnknownMasterKey { .. })));
        let again = LocalMasterKey::from_hex(&format!(" {text}\n"), "test").unwrap();
        assert_eq!(again.id(), a.id(), "the id is the key's, stable");
        let ring = Keyring { current: Arc::new(b), previous: vec![Arc::new(again)] };
        assert_eq!(ring.unwrap(b"conv 7", &w).unwrap(), dk, "a previous key still unwraps");
    }

    #[test]
    fn bad_key_text_is_refused_precisely() {
        let e = LocalMasterKey::from_hex("abc", "CHAT_ENCRYPTION__MASTER_KEY").err().unwrap();
        assert!(e.to_string().contains("CHAT_ENCRYPTION__MASTER_KEY") && e.to_string().contains("hex"), "{e}");
        let e = LocalMasterKey::from_hex(&"ab".repeat(16), "x").err().unwrap();
        assert!(e.to_string().contains("32 bytes"), "{e}");
        assert!(matches!(wrapped_parts(&[1, 200, 0]), Err(AtRestError::Corrupt(_))));
    }
}
